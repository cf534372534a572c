"""Losses, all vectorised over batch (and time / joints where they apply).

Classification: :func:`classification_loss`.
Generation (STEP-Gen): reconstruction, collapse (push), drift (pull) and KL terms follow below;
:func:`generator_loss` combines them (see its docstring for the two normalisations).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import optax

Array = jax.Array


def classification_loss(logits: Array, labels: Array, *, label_smoothing: float = 0.0,
                        official_double_softmax: bool = False) -> Array:
    """Mean softmax cross-entropy of ``logits (N, K)`` against integer ``labels (N,)`` in ``[0, K)``.

    ``official_double_softmax=True`` reproduces the official real_only bug 10: the model's softmax
    output is fed to ``CrossEntropyLoss``, which applies log-softmax again (flattens gradients).

    ``label_smoothing`` must lie in ``[0, 1]``. A label outside ``[0, K)`` is a ``ValueError`` when the labels
    are concrete; traced labels (inside the caller's ``jit``) cannot raise, so the loss and its gradients are NaN
    instead of the plausible numbers an all-zero one-hot row would give.
    """
    chex.assert_rank([logits, labels], [2, 1])  # static shapes: checked under jit too
    chex.assert_equal_shape_prefix([logits, labels], 1)
    chex.assert_type(labels, int)
    if not isinstance(label_smoothing, jax.core.Tracer) and not 0 <= label_smoothing <= 1:
        raise ValueError(f"label_smoothing must lie in [0, 1] (the mass spread over the classes), "
                         f"got {label_smoothing!r}")
    if not isinstance(labels, jax.core.Tracer):
        from stepjax.data.preprocess import validate_labels

        validate_labels(labels, "labels", logits.shape[-1])
    if official_double_softmax:
        logits = jax.nn.softmax(logits, axis=-1)
    num_classes = logits.shape[-1]
    # smoothing by 0 leaves the targets as they are: no Python branch, so a traced (vmapped) smoothing works
    targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes, dtype=logits.dtype), label_smoothing)
    # NaN targets for an invalid label (not an all-zero row): the loss and its gradients become NaN
    targets = jnp.where(((labels >= 0) & (labels < num_classes))[:, None], targets, jnp.nan)
    return optax.softmax_cross_entropy(logits, targets).mean()


# ---------------------------------------------------------------------------------------------------
# STEP-Gen generator losses (STEP_REFERENCE 4.2 and 8; paper eq. 3-8)
#
# Gaits are stepjax layout ``(N, T, V, 3)``; every term depends on ``d = x - x_hat`` only. The
# official code reshapes ``(N, 3, T, V, 1)`` tensors to ``(N, T, V*3)`` joint-major, so a "frame" is
# the 48 values ``d[n, t].reshape(-1)``; per-frame means below are over (V, 3).
# ---------------------------------------------------------------------------------------------------

#: Defaults of :func:`generator_loss` with ``official=False`` (per-element means); see its docstring.
DEFAULT_LAMBDA_COLLAPSE = 16.0
DEFAULT_LAMBDA_DRIFT = 1.0
DEFAULT_BETA = 0.14


def default_loss_weights(official: bool = False) -> tuple[float, float, float]:
    """``(lambda_collapse, lambda_drift, beta)`` of :func:`generator_loss` when left ``None``: 1 each in the
    official (summed) mode, else the ``DEFAULT_*`` constants (per-element means; see its docstring)."""
    return (1.0, 1.0, 1.0) if official else (DEFAULT_LAMBDA_COLLAPSE, DEFAULT_LAMBDA_DRIFT, DEFAULT_BETA)


def _diff(x: Array, x_hat: Array) -> Array:
    if x.shape != x_hat.shape or x.ndim != 4:
        raise ValueError(f"x and x_hat must both be (N, T, V, C), got {x.shape} and {x_hat.shape}")
    return x - x_hat


def _mean(a: Array) -> Array:
    """Mean that is 0 (not nan) over an empty array, e.g. accelerations of a 2-frame clip."""
    return a.mean() if a.size else jnp.zeros((), a.dtype)


def anchor_frames(num_frames: int) -> tuple[int, int, int]:
    """The drift anchors (first, middle, last) of the official code: ``(0, int(T/2) - 1, T - 1)``.

    The middle index follows Python indexing, so for T = 1 it is ``-1 % T`` = 0.
    """
    if num_frames < 1:
        raise ValueError("need at least one frame")
    return 0, (int(num_frames / 2) - 1) % num_frames, num_frames - 1


def reconstruction_loss(x: Array, x_hat: Array) -> Array:
    """Mean squared error over all elements (``L_rec``; the official ``mse_loss`` 'mean' as well)."""
    return jnp.mean(jnp.square(_diff(x, x_hat)))


def velocity_loss(x: Array, x_hat: Array, *, official: bool = False) -> Array:
    """Squared error of the frame-to-frame velocities ``x[t] - x[t-1]`` (t >= 1).

    ``official=True``: plain sum (the official per-scalar loop); else the mean over the ``N(T-1)VC`` terms.
    """
    sq = jnp.square(jnp.diff(_diff(x, x_hat), n=1, axis=1))
    return sq.sum() if official else _mean(sq)


def acceleration_loss(x: Array, x_hat: Array, *, official: bool = False) -> Array:
    """Squared error of the second differences ``x[t] - 2 x[t-1] + x[t-2]`` (t >= 2); sum or mean."""
    sq = jnp.square(jnp.diff(_diff(x, x_hat), n=2, axis=1))
    return sq.sum() if official else _mean(sq)


def collapse_loss(x: Array, x_hat: Array, *, official: bool = False) -> Array:
    """Push ("collapse") regulariser, paper eq. 4-6: velocity + acceleration error
    (:func:`velocity_loss` + :func:`acceleration_loss`). Invariant to a per-(joint, coord) offset
    constant in time added to ``x_hat``."""
    return velocity_loss(x, x_hat, official=official) + acceleration_loss(x, x_hat, official=official)


def drift_loss(x: Array, x_hat: Array, *, official: bool = False) -> Array:
    """Pull ("drift") regulariser, paper eq. 7: error of the displacements from the anchor frames.

    ``sq[n, t, a] = mean_f ((x[t] - x[a]) - (x_hat[t] - x_hat[a]))^2`` over the 48 values of a frame,
    for anchors a in :func:`anchor_frames`. ``official=True``: summed over n, t and a (the official
    ``L_anchor``); else the mean over all (n, t, a, v, c). Invariant to a constant-in-time offset.
    """
    d = _diff(x, x_hat)
    anchors = jnp.asarray(anchor_frames(d.shape[1]))
    sq = jnp.square(d[:, :, None] - d[:, None, anchors])  # (N, T, 3, V, C)
    return sq.mean(axis=(-2, -1)).sum() if official else sq.mean()


def kl_divergence(mu: Array, logvar: Array, *, official: bool = False) -> Array:
    """``KL(N(mu, exp(logvar)) || N(0, I))`` per element ``-0.5 (1 + logvar - mu^2 - exp(logvar))``:
    summed over batch and latent with ``official=True`` (the official ``vae_loss``), else their mean."""
    chex.assert_equal_shape([mu, logvar])
    kl = -0.5 * (1.0 + logvar - jnp.square(mu) - jnp.exp(logvar))
    return kl.sum() if official else kl.mean()


def generator_loss(x: Array, x_hat: Array, mu: Array, logvar: Array, *,
                   lambda_collapse: float | None = None, lambda_drift: float | None = None,
                   beta: float | None = None, official: bool = False) -> tuple[Array, dict[str, Array]]:
    """STEP-Gen loss ``rec + lambda_collapse * collapse + lambda_drift * drift + beta * KL``.

    Args:
      x: input gaits ``(N, T, V, 3)``; x_hat: reconstructions (same shape); mu, logvar: ``(N, Z)``.
      official: ``True`` reproduces the official ``vae_loss`` = ``between_frame_loss`` + KL exactly
        (STEP_REFERENCE 4.2): rec is a mean over all elements, drift (``L_anchor``) is summed over
        (n, t, anchor) of per-frame means, velocity and acceleration are plain sums of squares, KL is
        summed over the batch; the lambdas and beta default to 1. The relative weights are then set by
        the normalisations (per element: rec 1/(N T 48), drift 1/48, vel/acc 1, KL 1), so the result
        grows with N and T and the reconstruction term is negligible (bug 16).
        ``False`` (default): every term is a per-element mean (batch- and length-independent).
      lambda_collapse, lambda_drift, beta: weights; ``None`` = the default of the chosen mode.
        Baseline-CVAE (reconstruction + KL only) is ``lambda_collapse = lambda_drift = 0``.

    Defaults for ``official=False`` (``DEFAULT_LAMBDA_COLLAPSE = 16``, ``DEFAULT_LAMBDA_DRIFT = 1``,
    ``DEFAULT_BETA = 0.14``): they keep the *official balance between drift, collapse and KL* (the
    terms that dominate the official loss) while lifting the reconstruction term to the drift's
    weight. Written with per-element means, the official loss is ``rec + 3NT drift + 48N(T-1) vel +
    48N(T-2) acc + 32N KL``; divided by the drift weight 3NT this is ``drift + 16(T-1)/T collapse +
    32/(3T) KL`` (+ a vanishing ``rec/(3NT)``), i.e. lambda_collapse ~ 15.8 and beta ~ 0.142 at the
    official T = 75, for every N. Reconstruction gets weight 1, like drift: for errors on the time scale
    of a stride both are of the same magnitude, and it is the only term that sees a constant offset.

    Returns:
      ``(total, components)`` with components ``rec, drift, vel, acc, collapse (= vel + acc), kl``
      (unweighted, in the chosen normalisation) and ``total``.
    """
    lambda_collapse, lambda_drift, beta = (d if v is None else v for v, d in
                                           zip((lambda_collapse, lambda_drift, beta), default_loss_weights(official)))
    parts = {
        "rec": reconstruction_loss(x, x_hat),
        "drift": drift_loss(x, x_hat, official=official),
        "vel": velocity_loss(x, x_hat, official=official),
        "acc": acceleration_loss(x, x_hat, official=official),
        "kl": kl_divergence(mu, logvar, official=official),
    }
    parts["collapse"] = parts["vel"] + parts["acc"]
    total = parts["rec"] + lambda_collapse * parts["collapse"] + lambda_drift * parts["drift"] + beta * parts["kl"]
    parts["total"] = total
    return total, parts
