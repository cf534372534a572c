"""Training: train state and optimizers, jitted epochs, orbax checkpointing, the fit loop."""
