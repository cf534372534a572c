"""stepjax: STEP (emotion perception from gaits) in JAX/Flax.

The everyday entry points are importable from the top level (loaded on first use, so ``import stepjax`` stays
light): :func:`load_classifier`, :func:`freeze`, :func:`load_generator`, :func:`generate`,
:func:`affective_features`, :func:`read_egait` and :func:`write_egait`; the submodules load on first use too
(``stepjax.models.STEPClassifier``, ``stepjax.data.egait.read_egait``).
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
SUBMODULES = ("affective", "data", "evaluation", "gen_eval", "gen_metrics", "generation", "inference", "losses",
              "metrics", "models", "nn", "official", "predict", "skeleton", "training", "utils", "viz")


def _lazy_submodules(package: str, names: tuple[str, ...]):
    """A package's ``__getattr__`` that imports ``<package>.<name>`` on first access, so that e.g.
    ``stepjax.models.STEPClassifier`` works after a bare ``import stepjax`` without importing everything."""

    def __getattr__(name: str):
        if name in names:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


_submodule = _lazy_submodules(__name__, SUBMODULES)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    return _submodule(name)


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(SUBMODULES))
