"""Losses, all vectorised over batch (and time / joints where they apply).

Classification: :func:`classification_loss`.
Generation (STEP-Gen): reconstruction, collapse (push), drift (pull) and KL terms follow below.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

Array = jax.Array


def classification_loss(logits: Array, labels: Array, *, label_smoothing: float = 0.0,
                        official_double_softmax: bool = False) -> Array:
    """Mean softmax cross-entropy of ``logits (N, K)`` against integer ``labels (N,)``.

    ``official_double_softmax=True`` reproduces the official real_only bug 10: the model's softmax
    output is fed to ``CrossEntropyLoss``, which applies log-softmax again (flattens gradients).
    """
    if official_double_softmax:
        logits = jax.nn.softmax(logits, axis=-1)
    num_classes = logits.shape[-1]
    targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes, dtype=logits.dtype), label_smoothing) \
        if label_smoothing else jax.nn.one_hot(labels, num_classes, dtype=logits.dtype)
    return optax.softmax_cross_entropy(logits, targets).mean()
