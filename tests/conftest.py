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


def golden_tolerance(cpu: float, other: float) -> float:
    """A golden test's tolerance: ``cpu`` on XLA:CPU (a few times the error measured there), ``other`` on other
    backends: the looser one an H100 passed (bench/RESULTS_GPU.md), except for the float32 noise-floor test of
    the affective features, which no GPU has run."""
    import jax

    return cpu if jax.default_backend() == "cpu" else other


def which_recorder(asked: list):
    """A stand-in for a ``restore_*`` / ``load_*`` function ``(workdir, which='best', ...)``: appends the
    checkpoint it was asked for to ``asked`` and raises ``LookupError('recorded')`` (nothing is read)."""

    def record(workdir, which="best", *args, **kwargs):
        asked.append(which)
        raise LookupError("recorded")

    return record


def flat_params(tree) -> dict:
    """``{'layer/sub/leaf': numpy array}`` of a parameter pytree (names joined with '/')."""
    import jax

    return {"/".join(str(getattr(p, "key", p)) for p in path): np.asarray(a)
            for path, a in jax.tree_util.tree_flatten_with_path(tree)[0]}


def to_nhwc(x):
    """Official model tensor ``(N, C, T, V, 1)`` -> stepjax ``(N, T, V, C)``."""
    return np.asarray(x)[..., 0].transpose(0, 2, 3, 1)


def _enable_compilation_cache() -> None:
    """Persistent XLA cache for the test session: identical computations compiled by different tests
    (e.g. a training run and its resumed twin, or the eval.py subprocess) compile once."""
    import os
    import tempfile

    import jax

    path = os.environ.setdefault("STEPJAX_JAX_CACHE", os.path.join(tempfile.gettempdir(), "stepjax-test-xla-cache"))
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)


_enable_compilation_cache()
