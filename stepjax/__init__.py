"""stepjax: STEP (emotion perception from gaits) in JAX/Flax."""

__version__ = "0.1.0"

LABEL_NAMES: tuple[str, ...] = ("Angry", "Neutral", "Happy", "Sad")
NUM_CLASSES = len(LABEL_NAMES)


def load_classifier(workdir, which: str = "best"):
    """``(predict_fn, variables)`` of a trained classifier workdir (see :mod:`stepjax.inference`)."""
    from stepjax.inference import load_classifier as _load

    return _load(workdir, which)
