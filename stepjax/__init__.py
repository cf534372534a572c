"""stepjax: STEP (emotion perception from gaits) in JAX/Flax.

The everyday entry points are importable from the top level (loaded on first use, so ``import stepjax`` stays
light): :func:`load_classifier`, :func:`freeze`, :func:`load_generator`, :func:`generate`,
:func:`affective_features`, :func:`read_egait` and :func:`write_egait`.
"""

import importlib

__version__ = "0.1.0"

LABEL_NAMES: tuple[str, ...] = ("Angry", "Neutral", "Happy", "Sad")
NUM_CLASSES = len(LABEL_NAMES)

_LAZY = {
    "load_classifier": "stepjax.inference",
    "freeze": "stepjax.inference",
    "load_generator": "stepjax.generation",
    "generate": "stepjax.generation",
    "affective_features": "stepjax.affective",
    "read_egait": "stepjax.data.egait",
    "write_egait": "stepjax.data.egait",
}
__all__ = ["LABEL_NAMES", "NUM_CLASSES", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'stepjax' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
