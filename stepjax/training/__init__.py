"""Training: train state and optimizers, jitted epochs, orbax checkpointing, the fit loop."""

from stepjax import _lazy_submodules

__getattr__ = _lazy_submodules(__name__, ("augment", "checkpoint", "fit", "fit_generator", "loop", "model_config",
                                         "multirun", "parallel", "progress", "run", "state"))
