"""Shared test helpers: location of ../shared (read-only reference data) and skips when absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = (PROJECT_ROOT / ".." / "shared").resolve()
GOLDEN = SHARED / "golden" / "official-step"
EGAIT_SAMPLES = SHARED / "data" / "egait-samples"
BANDAI = SHARED / "data" / "bandai-walk"


def require(path: Path) -> Path:
    """Returns ``path`` or skips the test when the shared reference data is not present."""
    if not path.exists():
        pytest.skip(f"reference data not available: {path} (the ../shared folder sits beside the project "
                    f"only in the development checkout)")
    return path


def golden(name: str):
    """Loads ``../shared/golden/official-step/<name>`` (npz) or skips."""
    return np.load(require(GOLDEN / name))


def to_nhwc(x):
    """Official model tensor ``(N, C, T, V, 1)`` -> stepjax ``(N, T, V, C)``."""
    return np.asarray(x)[..., 0].transpose(0, 2, 3, 1)
