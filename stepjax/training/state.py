"""Train state and optimizers built from a config (``cfg.train``)."""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

OPTIMIZERS = ("adam_l2", "adamw", "sgd")
SCHEDULES = ("constant", "piecewise", "cosine")


class TrainState(train_state.TrainState):
    """Flax train state plus BatchNorm running statistics (``batch_stats`` collection)."""

    batch_stats: Any = None


COMPUTE_DTYPES = ("float32", "bfloat16")


def check_train_config(cfg, name: str = "train") -> None:
    """Fails fast (before any data is read) on a ``train`` section that could only fail later or run nothing."""
    epochs = cfg.get("epochs")
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"{name}.epochs must be a positive integer, got {epochs!r}")
    batch = cfg.get("batch_size")
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ValueError(f"{name}.batch_size must be a positive integer, got {batch!r}")
    dtype = cfg.get("compute_dtype", "float32")
    if dtype not in COMPUTE_DTYPES:
        raise ValueError(f"{name}.compute_dtype must be one of {COMPUTE_DTYPES}, got {dtype!r}")
    if not cfg.get("lr", 0) > 0:
        raise ValueError(f"{name}.lr must be > 0, got {cfg.get('lr')!r}")
    if cfg.get("schedule") not in SCHEDULES:
        raise ValueError(f"unknown {name}.schedule {cfg.get('schedule')!r}; choose one of {SCHEDULES}")
    if cfg.get("optimizer") not in OPTIMIZERS:
        raise ValueError(f"unknown {name}.optimizer {cfg.get('optimizer')!r}; choose one of {OPTIMIZERS}")
    # options that would silently train something else (a negative clip norm flips every gradient: ascent)
    for key, low, high, meaning in (("grad_clip", 0.0, math.inf, "0 = no clipping"),
                                    ("label_smoothing", 0.0, 1.0, "a fraction of the target mass"),
                                    ("weight_decay", 0.0, math.inf, "a decay rate"),
                                    ("warmup_epochs", 0.0, math.inf, "epochs"),
                                    ("momentum", 0.0, 1.0, "a fraction")):
        value = cfg.get(key, low)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not (
                math.isfinite(value) and low <= value <= high):
            bounds = f">= {low:g}" if high == math.inf else f"in [{low:g}, {high:g}]"
            raise ValueError(f"{name}.{key} must be a finite number {bounds} ({meaning}), got {value!r}")


def make_schedule(cfg, steps_per_epoch: int) -> optax.Schedule:
    """Learning rate per optimizer step.

    * ``'piecewise'``: ``lr * 0.1 ** #(milestones <= epoch)`` (the official ``adjust_lr``, but correct after
      resuming past a milestone: bug 19); milestones in epochs, or, with ``milestone_unit='fraction'``, in
      fractions of ``epochs`` (so that shortening a run with ``--config.train.epochs`` scales them);
    * ``'cosine'``: linear warm-up for ``warmup_epochs`` then cosine decay to 0 at ``epochs``;
    * ``'constant'``.
    """
    if cfg.schedule == "constant":
        return optax.constant_schedule(cfg.lr)
    if cfg.schedule == "piecewise":
        unit = cfg.get("milestone_unit", "epoch")
        if unit not in ("epoch", "fraction"):
            raise ValueError(f"unknown train.milestone_unit {unit!r}; choose 'epoch' or 'fraction'")
        epochs = [int(round(m * cfg.epochs)) if unit == "fraction" else int(m) for m in cfg.milestones]
        scales: dict[int, float] = {}
        for e in epochs:  # milestones that fall on one epoch decay once each (PyTorch's MultiStepLR does too)
            scales[e * steps_per_epoch] = scales.get(e * steps_per_epoch, 1.0) * 0.1
        return optax.piecewise_constant_schedule(cfg.lr, scales)
    if cfg.schedule == "cosine":
        total = max(cfg.epochs * steps_per_epoch, 1)
        warmup = min(int(cfg.get("warmup_epochs", 0) * steps_per_epoch), total - 1)
        return optax.warmup_cosine_decay_schedule(0.0 if warmup else cfg.lr, cfg.lr, warmup, total)
    raise ValueError(f"unknown train.schedule {cfg.schedule!r}; choose one of {SCHEDULES}")


def _decay_mask(params):
    """AdamW decays kernels only (not biases, BN scales or edge-importance masks)."""
    return jax.tree_util.tree_map_with_path(lambda path, _: path[-1].key == "kernel", params)


def make_optimizer(cfg, steps_per_epoch: int | None,
                   schedule: optax.Schedule | None = None) -> optax.GradientTransformation:
    """``'adam_l2'`` is torch Adam with coupled L2 (the official recipe: ``wd * theta`` added to the
    gradient of every parameter before the moments); ``'adamw'`` decouples the decay and skips
    non-kernel parameters; ``'sgd'`` is momentum SGD with coupled L2. The learning rate follows
    ``make_schedule(cfg, steps_per_epoch)``, or ``schedule`` when given (e.g. a table per vmapped run)."""
    if schedule is None:
        if steps_per_epoch is None:  # None comes with a schedule: the vmapped runs' per-run tables
            raise ValueError("make_optimizer needs steps_per_epoch to place the learning-rate schedule, or a schedule")
        schedule = make_schedule(cfg, steps_per_epoch)
    if cfg.optimizer == "adam_l2":
        tx = optax.chain(optax.add_decayed_weights(cfg.weight_decay), optax.scale_by_adam(),
                         optax.scale_by_learning_rate(schedule))
    elif cfg.optimizer == "adamw":
        tx = optax.adamw(schedule, weight_decay=cfg.weight_decay, mask=_decay_mask)
    elif cfg.optimizer == "sgd":
        tx = optax.chain(optax.add_decayed_weights(cfg.weight_decay),
                         optax.sgd(schedule, momentum=cfg.get("momentum", 0.9), nesterov=True))
    else:
        raise ValueError(f"unknown train.optimizer {cfg.optimizer!r}; choose one of {OPTIMIZERS}")
    if cfg.get("grad_clip", 0):
        tx = optax.chain(optax.clip_by_global_norm(cfg.grad_clip), tx)
    return tx


def create_train_state(model: nn.Module, tx: optax.GradientTransformation, rng: jax.Array,
                       *example_inputs) -> TrainState:
    """Initialises ``model`` on ``example_inputs`` (in eval mode) and wraps params, stats and ``tx``.

    The initialisation is jitted: run eagerly, every initializer op compiles on its own (~4x slower
    on CPU for these models).
    """

    @jax.jit
    def init(rng, *inputs):
        return model.init({"params": rng, "dropout": rng}, *inputs, train=False)

    variables = init(rng, *example_inputs)
    return TrainState.create(apply_fn=model.apply, params=variables["params"], tx=tx,
                             batch_stats=variables.get("batch_stats", {}))


def count_params(params) -> int:
    return int(sum(jnp.size(x) for x in jax.tree_util.tree_leaves(params)))
