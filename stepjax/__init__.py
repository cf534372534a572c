"""stepjax: STEP (emotion perception from gaits) in JAX/Flax."""

__version__ = "0.1.0"

LABEL_NAMES: tuple[str, ...] = ("Angry", "Neutral", "Happy", "Sad")
NUM_CLASSES = len(LABEL_NAMES)
