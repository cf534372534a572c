"""Pure, jitted training pieces: one step, one whole epoch (``lax.scan``), chunked evaluation.

A *step function* has the signature ``step(state, batch, rng) -> (state, metrics)`` where ``batch``
is a pytree of arrays with a leading batch axis and ``metrics`` a dict of scalars. ``epoch_fn``
turns it into one jitted function of ``(state, data, rng)`` that shuffles the data held on device,
drops the last incomplete batch (as the official DataLoader does) and scans the step over batches.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from stepjax.losses import classification_loss
from stepjax.training.state import TrainState

Batch = Any
StepFn = Callable[[TrainState, Batch, jax.Array], tuple[TrainState, dict]]


def cast_floating(tree, dtype):
    """``tree`` with its floating-point leaves cast to ``dtype`` (other leaves untouched)."""
    return jax.tree_util.tree_map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def classifier_train_step(state: TrainState, batch, rng: jax.Array, *, label_smoothing: float = 0.0,
                          official_double_softmax: bool = False,
                          compute_dtype: str | None = None) -> tuple[TrainState, dict]:
    """One optimizer step of a :class:`~stepjax.models.STEPClassifier` on ``batch`` (an ``Arrays``).

    ``compute_dtype`` (e.g. ``'bfloat16'``): mixed precision. The float32 parameters (master weights)
    and the inputs are cast to it for the forward and backward pass; gradients, the optimizer update,
    the BatchNorm running statistics (accumulated in float32 by :class:`stepjax.nn.BatchNorm`), the logits and
    the loss stay in float32. The temporal DFT formulation computes in float32 whatever its input (its sums over ~100
    frequency terms would lose too much in bfloat16). ``None``/``'float32'``: everything in float32.
    """
    affective = batch.affective if batch.affective.shape[-1] else None
    mixed = compute_dtype is not None and jnp.dtype(compute_dtype) != jnp.float32

    def loss_fn(params):
        gaits, aff = batch.gaits, affective
        if mixed:
            params, gaits, aff = cast_floating((params, gaits, aff), jnp.dtype(compute_dtype))
        (logits, _), updates = state.apply_fn(
            {"params": params, "batch_stats": state.batch_stats}, gaits, aff, train=True,
            mutable=["batch_stats"], rngs={"dropout": rng})
        logits = logits.astype(jnp.float32)
        loss = classification_loss(logits, batch.labels, label_smoothing=label_smoothing,
                                   official_double_softmax=official_double_softmax)
        return loss, (logits, updates["batch_stats"])

    (loss, (logits, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = state.apply_gradients(grads=grads, batch_stats=stats)
    acc = jnp.mean(jnp.argmax(logits, -1) == batch.labels)
    return state, {"loss": loss, "accuracy": acc}


def scan_steps(step: StepFn, state: TrainState, data, order: jax.Array, rngs: jax.Array,
               num_steps: jax.Array | None = None):
    """Runs ``step`` over the batches ``data[order[i]]`` (``order (num_batches, batch_size)``) with
    ``lax.scan``; returns the final state and the metrics averaged over steps. Not jitted itself.

    ``num_steps`` (possibly traced, ``<= num_batches``): only the first ``num_steps`` batches update the state
    and count in the metrics; the later ones are computed and discarded (vmapped runs whose training sets differ
    in size: each run takes as many steps as it would alone)."""

    def body(state, xs):
        i, idx, r = xs
        batch = jax.tree_util.tree_map(lambda a: a[idx], data)
        new_state, metrics = step(state, batch, r)
        if num_steps is None:
            return new_state, metrics
        active = i < num_steps
        return jax.tree_util.tree_map(lambda new, old: jnp.where(active, new, old), new_state, state), metrics

    state, metrics = jax.lax.scan(body, state, (jnp.arange(order.shape[0]), order, rngs))
    if num_steps is None:
        return state, jax.tree_util.tree_map(jnp.mean, metrics)
    active = jnp.arange(order.shape[0]) < num_steps
    return state, jax.tree_util.tree_map(lambda m: jnp.sum(jnp.where(active, m, 0)) / num_steps, metrics)


def shuffled_batches(rng: jax.Array, n: int, batch_size: int, valid: jax.Array | None = None,
                     num_batches: int | None = None) -> jax.Array:
    """Indices ``(num_batches, batch_size)`` of a random permutation, last incomplete batch dropped.

    With ``valid`` (a count ``<= n``, possibly traced) only positions ``< valid`` are drawn: used when
    runs of different training-set sizes are vmapped together (``num_batches`` must then be given). They are
    the positions ``< valid`` of the same permutation, in its order, so a run with ``valid == n`` draws exactly
    the batches of the unmasked call: a vmapped seed run the batches of ``train.py`` with that seed.
    """
    perm = jax.random.permutation(rng, n)
    if valid is not None:
        perm = perm[jnp.argsort(perm >= valid, stable=True)]
    num_batches = n // batch_size if num_batches is None else num_batches
    if num_batches == 0:
        raise ValueError(f"training set of {n} gaits is smaller than one batch of {batch_size}")
    return perm[: num_batches * batch_size].reshape(num_batches, batch_size)


def epoch_fn(step: StepFn, batch_size: int) -> Callable:
    """``(state, data, rng) -> (state, mean metrics)``: one shuffled pass over ``data``, jitted.

    The permutation comes from ``rng`` (so an epoch is a pure function of its inputs; resuming
    from a checkpoint replays exactly the same batches).
    """

    @jax.jit
    def run(state: TrainState, data, rng: jax.Array):
        n = jax.tree_util.tree_leaves(data)[0].shape[0]
        perm_rng, step_rng = jax.random.split(rng)
        order = shuffled_batches(perm_rng, n, batch_size)
        return scan_steps(step, state, data, order, jax.random.split(step_rng, order.shape[0]))

    return run


def chunked_apply(fn: Callable, inputs, chunk: int):
    """Applies ``fn`` (a batch -> pytree of per-example outputs) over ``inputs`` in chunks with
    ``lax.map``, padding the last chunk (by repeating the last example); returns outputs for exactly
    the ``N`` inputs."""
    n = jax.tree_util.tree_leaves(inputs)[0].shape[0]
    padded = max(1, -(-n // chunk)) * chunk  # whole chunks: splits of different sizes share compiled code
    pad = lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], padded - n, axis=0)]) if padded > n else a
    stacked = jax.tree_util.tree_map(lambda a: pad(a).reshape(padded // chunk, chunk, *a.shape[1:]), inputs)
    out = jax.lax.map(fn, stacked)
    return jax.tree_util.tree_map(lambda a: a.reshape(padded, *a.shape[2:])[:n], out)


@functools.partial(jax.jit, static_argnames=("apply_fn", "chunk"))
def classifier_logits(apply_fn: Callable, variables, gaits: jax.Array, affective: jax.Array,
                      chunk: int = 128) -> tuple[jax.Array, jax.Array]:
    """Eval-mode ``(logits (N, K), features (N, C))`` over a whole split, in chunks."""

    def one(batch):
        g, a = batch
        return apply_fn(variables, g, a if a.shape[-1] else None, train=False)

    return chunked_apply(one, (gaits, affective), chunk)


def evaluate_classifier(state_or_variables, apply_fn: Callable, data, chunk: int = 128) -> dict:
    """Loss and predictions on a split (``Arrays``); returns host numpy values."""
    variables = state_or_variables
    if isinstance(state_or_variables, TrainState):
        variables = {"params": state_or_variables.params, "batch_stats": state_or_variables.batch_stats}
    logits, _ = classifier_logits(apply_fn, variables, data.gaits, data.affective, chunk)
    loss = classification_loss(logits, data.labels)
    preds = np.asarray(jnp.argmax(logits, -1))
    labels = np.asarray(data.labels)
    return {"loss": float(loss), "accuracy": float(np.mean(preds == labels)), "preds": preds, "labels": labels,
            "logits": np.asarray(logits)}
