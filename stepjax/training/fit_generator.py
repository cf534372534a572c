"""The STEP-Gen (CVAE) training loop: aligned real gaits -> jitted epochs -> validation-loss model selection.

``fit_generator(cfg, workdir)`` is what ``train.py`` calls for ``cfg.task == 'generator'``; it mirrors
:func:`stepjax.training.fit.fit_classifier`:

* data: :func:`stepjax.data.pipeline.prepare` (the same seeded split as a classifier with the same
  ``cfg.data``); the CVAE sees the **preprocessed (aligned) gaits** (official, STEP_REFERENCE 1.4 / 4.1)
  and one-hot labels. The fitted preprocessor (reference pose) is saved with the model.
* loss: :func:`stepjax.losses.generator_loss` with ``cfg.loss`` (``official`` normalisation or the default
  per-element means; ``lambda_collapse = lambda_drift = 0`` is the Baseline-CVAE).
* every epoch: train metrics (mean over batches) and validation metrics of every component
  ``rec, drift, vel, acc, collapse, kl, total`` go to ``metrics.jsonl`` (the push-pull loss curves).
  The validation loss uses eval-mode BN and a *fixed* reparameterisation noise (one key per gait, the
  same every epoch), so it is deterministic and comparable across epochs.
* model selection: lowest validation ``total``; orbax ``checkpoints/`` (latest) and ``best/``.
* resume: re-running on a workdir continues from the latest checkpoint and ends with the same
  parameters as an uninterrupted run (epoch ``e`` uses ``fold_in(seed, e)``).
* ``split.json`` records the real indices of the train / val / test parts (the generator learns from
  ``train`` only); ``results.json`` the validation and test losses of the best checkpoint. Inside STEP+Aug
  (``data.within_training_split``) the parts are an inner split of the classifier's training part and there
  is no test part: the generator never sees the classifier's validation or test gaits.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from typing import Any, Callable, overload

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from stepjax import NUM_CLASSES
from stepjax.data import pipeline
from stepjax.losses import default_loss_weights, generator_loss
from stepjax.models.cvae import STEPGenCVAE, reparameterize
from stepjax.training import checkpoint as ckpt_lib
from stepjax.training import parallel
from stepjax.training.loop import chunked_apply, epoch_fn
from stepjax.training.model_config import read_saved_model_config, start_run_config
from stepjax.training.progress import RunProgress, write_split
from stepjax.training.state import TrainState, count_params, make_optimizer
from stepjax.utils import write_json

COMPONENTS = ("rec", "drift", "vel", "acc", "collapse", "kl", "total")
#: Components that the official normalisation sums over the batch (scaled by the batch size in
#: validation so that train and validation numbers are on the same per-batch scale).
_SUMMED_OFFICIAL = ("drift", "vel", "acc", "collapse", "kl")


def build_generator(cfg) -> STEPGenCVAE:
    """The CVAE described by ``cfg.model`` (sequences become tuples in the model's ``__post_init__``)."""
    model = STEPGenCVAE(**cfg.model)
    # one instance per architecture: the train state's treedef holds ``model.apply`` (bound-method equality
    # is by identity), so equal models must be the same object for compiled epochs to be reused
    return _MODELS.setdefault(model, model)


_MODELS: dict[STEPGenCVAE, STEPGenCVAE] = {}


def loss_weights(cfg) -> dict:
    """``generator_loss`` keyword arguments from ``cfg.loss`` with ``None`` resolved to the mode's defaults."""
    loss: Any = cfg.get("loss", {}) or {}  # a ConfigDict or a dict
    official = bool(loss.get("official", False))
    names = ("lambda_collapse", "lambda_drift", "beta")
    out = {n: float(d if loss.get(n) is None else loss.get(n)) for n, d in zip(names, default_loss_weights(official))}
    warmup = loss.get("warmup_epochs", 0.0) or 0.0
    for key, value in (*out.items(), ("warmup_epochs", warmup)):  # a negative weight would maximise its term
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
            raise ValueError(f"loss.{key} must be a finite number >= 0, got {value!r}")
    out["official"] = official
    return out


def loss_warmup_steps(cfg, steps_per_epoch: int) -> int:
    """Optimizer steps of the push, pull and KL weights' linear warm-up: ``cfg.loss.warmup_epochs`` (may be
    fractional) times ``steps_per_epoch``, rounded."""
    return int(round(float((cfg.get("loss", {}) or {}).get("warmup_epochs", 0.0) or 0.0) * steps_per_epoch))


def create_generator_state(model: STEPGenCVAE, tx, rng: jax.Array, num_frames: int) -> TrainState:
    """Initialises the CVAE (eval mode) on a dummy batch and wraps it in a :class:`TrainState`."""
    # jitted and cached: an eager init compiles every initializer and op separately (tens of seconds on CPU)
    variables = _cached_init(model, num_frames)(rng)
    state = TrainState.create(apply_fn=model.apply, params=variables["params"], tx=tx,
                              batch_stats=variables.get("batch_stats", {}))
    return _strong_step(state)


def _strong_step(state: TrainState) -> TrainState:
    """``step`` as a strongly typed int32 array: ``TrainState.create`` stores the Python int 0 (weak type),
    and the epoch function would otherwise compile twice (weak step in, strong step out)."""
    return state.replace(step=jnp.asarray(state.step, jnp.int32))


def _uncommitted(tree):
    """Restored arrays come back committed to a device, which makes jitted functions compiled for fresh
    (uncommitted) arrays miss their cache; re-creating them from host values avoids that recompile."""
    return jax.tree_util.tree_map(lambda a: jnp.asarray(np.asarray(a)), tree)


def generator_preprocessor(cfg, reference) -> pipeline.Preprocessor:
    """The gait part of the fitted preprocessing (alignment to ``reference``); the CVAE uses no affective
    features. (Only the reference pose is checkpointed.)"""
    return pipeline.Preprocessor.from_config(cfg.preprocess, reference, num_affective=0)


def _run_tree(state: TrainState, prep: pipeline.Preprocessor) -> dict:
    return {"train_state": state, "reference": prep.reference}


def init_output_from_data(state: TrainState, gaits) -> TrainState:
    """Data-dependent init of the decoder's output BN: scale = std and bias = mean of the training gaits
    ``(N, T, 16, 3)`` (aligned, metres) per (joint, coord) over gaits and frames.

    The output BN normalises its input over the batch, so at init the decoder emits unit-variance
    coordinates while aligned gaits vary by ~0.08 (metres) around their mean pose; with a modern learning
    rate (1e-3) it takes hundreds of steps just to shrink the BN scale, and the reconstruction term sits
    above the variance of the data meanwhile. (The official recipe uses lr 0.1, where this is quick.)
    """
    g = np.asarray(gaits, np.float64)
    mean, std = g.mean(axis=(0, 1)), g.std(axis=(0, 1))
    params = jax.tree_util.tree_map(lambda a: a, state.params)  # shallow copy of the nested dicts
    bn = dict(params["decoder"]["data_bn"]["bn"])
    bn["scale"] = jnp.asarray(std, bn["scale"].dtype)
    bn["bias"] = jnp.asarray(mean, bn["bias"].dtype)
    params["decoder"]["data_bn"]["bn"] = bn
    return state.replace(params=params, opt_state=state.tx.init(params))


def generator_train_step(state: TrainState, batch, rng: jax.Array, *, weights: dict,
                         warmup_steps: int = 0, num_classes: int = NUM_CLASSES) -> tuple[TrainState, dict]:
    """One optimizer step of the CVAE on ``batch`` (``.gaits`` aligned ``(B, T, 16, 3)``, ``.labels`` int ``(B,)``).

    ``warmup_steps > 0``: the push-pull and KL weights (``lambda_collapse``, ``lambda_drift``, ``beta``)
    ramp linearly from ``1/warmup_steps`` of their value to their value over the first ``warmup_steps``
    optimizer steps; the reconstruction keeps weight 1 (KL annealing, extended to the push-pull terms: a
    motionless "mean gait" decoder is a local minimum that the push-pull terms deepen, see
    docs/generator.md). The returned components are unweighted. ``num_classes``: the model's
    (``STEPGenCVAE.num_classes``), the width of the one-hot condition.
    """
    sample_rng, dropout_rng = jax.random.split(rng)
    onehot = jax.nn.one_hot(batch.labels, num_classes, dtype=batch.gaits.dtype)
    weights = dict(weights)
    if warmup_steps:
        # step: an int32 array (create_generator_state), traced under jit
        ramp = jnp.minimum(1.0, (state.step + 1).astype(jnp.float32) / warmup_steps)  # type: ignore[union-attr]
        weights.update({k: weights[k] * ramp for k in ("lambda_collapse", "lambda_drift", "beta")})

    def loss_fn(params):
        (x_hat, mu, logvar), updates = state.apply_fn(
            {"params": params, "batch_stats": state.batch_stats}, batch.gaits, onehot, train=True,
            rng=sample_rng, mutable=["batch_stats"], rngs={"dropout": dropout_rng})
        total, parts = generator_loss(batch.gaits, x_hat, mu, logvar, **weights)
        return total, (parts, updates["batch_stats"])

    (_, (parts, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    return state.apply_gradients(grads=grads, batch_stats=stats), parts


def make_eval_fn(model: STEPGenCVAE, weights: dict, batch_size: int, chunk: int = 256) -> Callable:
    """``(variables, data, rng) -> {component: mean}`` over a whole split in eval mode (jitted inside).

    Per-gait losses (one fixed noise key per gait index, so the result is independent of ``chunk``)
    are averaged over gaits. With the official normalisation the terms summed over the batch are
    multiplied by ``batch_size``, i.e. reported on the scale of one training batch. The split is padded
    on the host to a multiple of ``chunk`` (padding masked out), so splits of different sizes up to
    the same padded size share one compiled function.
    """
    weights = dict(weights)

    @jax.jit
    def run(variables, gaits, labels, valid, rng):
        keys = jax.vmap(lambda i: jax.random.fold_in(rng, i))(jnp.arange(labels.shape[0]))

        def one(batch):
            x, y, k = batch
            onehot = jax.nn.one_hot(y, model.num_classes, dtype=x.dtype)
            mu, logvar = model.apply(variables, x, onehot, method="encode")
            eps = jax.vmap(lambda kk: jax.random.normal(kk, mu.shape[1:], mu.dtype))(k)
            x_hat = model.apply(variables, reparameterize(mu, logvar, eps), onehot, x.shape[1], method="decode")
            return jax.vmap(lambda a, b, m, lv: generator_loss(a[None], b[None], m[None], lv[None],
                                                                **weights)[1])(x, x_hat, mu, logvar)

        parts = chunked_apply(one, (gaits, labels, keys), min(chunk, labels.shape[0]))
        w = valid / valid.sum()
        parts = {k: jnp.sum(v * w) for k, v in parts.items()}
        if weights["official"]:
            parts = {k: v * batch_size if k in _SUMMED_OFFICIAL else v for k, v in parts.items()}
        parts["total"] = (parts["rec"] + weights["lambda_collapse"] * parts["collapse"]
                          + weights["lambda_drift"] * parts["drift"] + weights["beta"] * parts["kl"])
        return parts

    def evaluate(variables, data, rng) -> dict:
        n = len(data.labels)
        padded = -(-n // chunk) * chunk if n > chunk else chunk
        idx = np.minimum(np.arange(padded), n - 1)
        valid = jnp.asarray(np.arange(padded) < n, jnp.float32)
        out = run(variables, jnp.asarray(data.gaits)[idx], jnp.asarray(data.labels)[idx], valid, rng)
        return {k: float(v) for k, v in out.items()}

    return evaluate


# Compiled pieces shared by every fit_generator call of this process with the same model / loss /
# optimizer (a resumed run, STEP+Aug seeds, the reports): XLA:CPU compiles cost 10-30 s each here.
@functools.lru_cache(maxsize=16)
def _cached_init(model: STEPGenCVAE, num_frames: int) -> Callable:
    x = jnp.zeros((1, num_frames, 16, 3), jnp.float32)
    y = jnp.zeros((1, model.num_classes), jnp.float32)
    return jax.jit(lambda r: model.init({"params": r, "sample": r, "dropout": r}, x, y, train=False))


@functools.lru_cache(maxsize=16)
def _cached_optimizer(train_json: str, steps_per_epoch: int):
    return make_optimizer(ml_collections.ConfigDict(json.loads(train_json)), steps_per_epoch)


@functools.lru_cache(maxsize=16)
def _cached_epoch(model: STEPGenCVAE, weights: tuple, batch_size: int, warmup_steps: int,
                  mesh: parallel.Mesh | None = None) -> Callable:
    w = dict(weights)
    step = functools.partial(generator_train_step, weights=w, warmup_steps=warmup_steps,
                             num_classes=model.num_classes)
    return epoch_fn(step if mesh is None else parallel.data_parallel_step(step, mesh), batch_size)


@functools.lru_cache(maxsize=16)
def _cached_eval(model: STEPGenCVAE, weights: tuple, batch_size: int, chunk: int) -> Callable:
    return make_eval_fn(model, dict(weights), batch_size, chunk)


#: The config sections a generator run resumes only with (its loss weights too).
GENERATOR_RESUME_SECTIONS = ckpt_lib.RESUME_SECTIONS + ("loss",)


def _variables(state: TrainState) -> dict:
    return {"params": state.params, "batch_stats": state.batch_stats}


def generator_run_config(cfg, workdir: str):
    """``(cfg, cfg_json, mesh)`` of a generator run, checked before any data is prepared
    (:func:`stepjax.training.model_config.start_run_config`; the loss section too)."""
    loss_weights(cfg)  # refuses negative or non-finite loss weights
    return start_run_config(cfg, workdir, GENERATOR_RESUME_SECTIONS)


@overload
def fit_generator(cfg, workdir: str, *, progress: bool = ..., log=..., stop_after: None = ...) -> dict: ...
@overload
def fit_generator(cfg, workdir: str, *, progress: bool = ..., log=..., stop_after: int | None = ...) -> dict | None: ...
def fit_generator(cfg, workdir: str, *, progress: bool = True, log=print, stop_after: int | None = None) -> dict | None:
    """Trains the STEP-Gen CVAE; returns the report of the best-validation checkpoint.

    ``stop_after``: stop (checkpointed) after this many epochs of *this* call and return ``None``;
    re-running resumes. Returns ``{'best_epoch', 'val': {component: value}, 'test': {...},
    'num_params', 'num_train', 'train_indices', 'val_indices'}`` (the real gaits it was trained and selected
    on; no ``'test'`` without a test part).
    """
    os.makedirs(workdir, exist_ok=True)
    cfg, cfg_json, mesh = generator_run_config(cfg, workdir)  # mesh: None unless train.data_parallel
    data = pipeline.prepare(cfg)
    train, val, test, prep, split = data["train"], data["val"], data["test"], data["preprocessor"], data["split"]
    frames_recorded = pipeline.record_num_frames(cfg_json, train.gaits)
    model = build_generator(cfg)
    weights = loss_weights(cfg)
    batch_size = int(cfg.train.batch_size)
    steps_per_epoch = len(train.labels) // batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"training split has {len(train.labels)} gaits, fewer than batch_size={batch_size}")
    tx = _cached_optimizer(json.dumps(cfg_json["train"], sort_keys=True), steps_per_epoch)
    root = jax.random.PRNGKey(cfg.seed)
    init_rng, train_rng, val_rng = jax.random.split(root, 3)
    state = create_generator_state(model, tx, init_rng, int(train.gaits.shape[1]))
    if cfg.train.get("init_output_from_data", False):
        state = init_output_from_data(state, train.gaits)

    tracker = RunProgress(workdir, cfg_json, int(cfg.train.epochs), checkpoint_every=cfg.get("checkpoint_every", 1),
                          sections=GENERATOR_RESUME_SECTIONS, log=log, frames_recorded=frames_recorded,
                          read_saved_config=read_saved_model_config)
    state = _strong_step(_uncommitted(tracker.resume(_run_tree(state, prep))["train_state"]))
    write_split(workdir, split, resumed=tracker.start_epoch > 0, fingerprint=data["raw"].fingerprint())

    log(f"STEPGenCVAE: {count_params(state.params):,} parameters; train/val/test = {len(train.labels)}/"
        f"{len(val.labels)}/{0 if test is None else len(test.labels)} gaits; {steps_per_epoch} steps/epoch; "
        f"loss {weights}")
    warmup_steps = loss_warmup_steps(cfg, steps_per_epoch)
    if mesh is not None:  # the batch split over every device (as the classifier's)
        state = parallel.replicate(state, mesh)
        log(f"data parallel over {mesh.size} devices")
    run_epoch = _cached_epoch(model, tuple(sorted(weights.items())), batch_size, warmup_steps, mesh)
    evaluate = _cached_eval(model, tuple(sorted(weights.items())), batch_size,
                            int(cfg.get("eval", {}).get("batch_size", 256)))
    bar = tqdm(tracker.epochs(), initial=tracker.start_epoch, total=tracker.num_epochs, disable=not progress,
               desc="train generator", unit="epoch", dynamic_ncols=True)
    for epoch in bar:
        t0 = time.time()
        state, train_metrics = run_epoch(state, train, jax.random.fold_in(train_rng, epoch))
        train_metrics = {k: float(v) for k, v in train_metrics.items()}
        if not np.isfinite(train_metrics["total"]):
            raise FloatingPointError(f"generator training loss became {train_metrics['total']} at epoch {epoch}; "
                                     f"lower train.lr or enable train.grad_clip")
        val_metrics = evaluate(_variables(state), val, val_rng)
        record = {"epoch": epoch, "time_s": round(time.time() - t0, 3)}
        record.update({f"train_{k}": train_metrics[k] for k in COMPONENTS})
        record.update({f"val_{k}": val_metrics[k] for k in COMPONENTS})
        score = (-val_metrics["total"],) if np.isfinite(val_metrics["total"]) else (-np.inf,)
        tracker.end_epoch(epoch, _run_tree(state, prep), record, score)
        bar.set_postfix(loss=f"{record['train_total']:.4g}", val=f"{record['val_total']:.4g}", best=tracker.best_epoch)
        if tracker.preempted(epoch, _run_tree(state, prep), stop_after):
            return None

    restored, meta = tracker.finish(_run_tree(state, prep))
    best = _uncommitted(_variables(restored["train_state"]))
    result: dict[str, Any] = {"best_epoch": meta["epoch"], "num_params": count_params(state.params),
                              "num_train": int(len(train.labels)), "loss": weights,
                              "val": evaluate(best, val, val_rng)}
    if test is not None:
        result["test"] = evaluate(best, test, val_rng)
    tracker.close()
    write_json(os.path.join(workdir, "results.json"), result)
    result["train_indices"], result["val_indices"] = np.asarray(split.train), np.asarray(split.val)
    return result
