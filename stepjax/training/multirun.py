"""Many classifier runs (seeds, or repeated stratified k-fold) as ONE vmapped, jitted training loop.

Each run r has its own initialisation, shuffling and dropout randomness, its own fitted preprocessing
(alignment reference and affective normalisation from its own training split) and its own train /
validation / test indices. Runs are stacked on a leading axis and every epoch of all runs is a single
``jax.jit(jax.vmap(...))`` call; model selection (best validation accuracy, ties to lower loss) is done
per run on device. Training sets of different sizes (k-fold) are handled with masked permutations and masked
steps: run r takes ``floor(n_r / batch)`` batches per epoch from its own shuffled training indices and follows
the learning-rate schedule of that many steps per epoch, whatever the sizes of the runs beside it; the scan runs
``max_r`` steps and a run's surplus steps leave its state untouched.

BatchNorm statistics are per run (vmap over runs, each run's batch inside), which is exactly what S
independent runs compute.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from stepjax import LABEL_NAMES
from stepjax.data import pipeline, splits
from stepjax.data import preprocess as pp
from stepjax.losses import classification_loss
from stepjax.metrics import aggregate, classification_report
from stepjax.training import checkpoint as ckpt_lib
from stepjax.training import provenance
from stepjax.training.fit import build_classifier, make_classifier_step
from stepjax.training.loop import scan_steps, shuffled_batches
from stepjax.training.model_config import resolve_model_config
from stepjax.training.state import check_train_config, create_train_state, make_optimizer, make_schedule
from stepjax.utils import write_json


class RunSet(NamedTuple):
    """Per-run data, stacked on a leading run axis R (indices padded; counts give the valid prefix)."""

    data: pipeline.Arrays  # gaits (R, N, T, 16, 3), affective (R, N, F), labels (R, N)
    train_idx: jax.Array  # (R, max_train) int32
    train_count: jax.Array  # (R,)
    val_idx: jax.Array  # (R, max_val)
    val_count: jax.Array
    test_idx: jax.Array  # (R, max_test)
    test_count: jax.Array


def _pad(idx_list: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    width = max(1, max(len(i) for i in idx_list))
    out = np.zeros((len(idx_list), width), np.int32)
    for r, i in enumerate(idx_list):
        out[r, :len(i)] = i
        out[r, len(i):] = i[0] if len(i) else 0
    return out, np.array([len(i) for i in idx_list], np.int32)


def make_splits(cfg, raw: pipeline.RawDataset) -> tuple[list[splits.Split], list[dict]]:
    """The runs of ``cfg.runs``: ``mode='seeds'`` (one split, ``num_seeds`` seeds) or ``mode='kfold'``
    (``repeats`` x ``folds`` stratified folds, each with an inner validation split)."""
    groups = raw.subjects if pipeline.is_grouped(raw, cfg.data) else None
    if cfg.runs.mode == "seeds":
        split = pipeline.split_dataset(raw, cfg.data)
        pipeline.warn_if_lopsided(split, tuple(cfg.data.split), len(raw.labels), grouped=groups is not None)
        pipeline.warn_if_classes_missing([split], raw.labels, num_classes=pipeline.model_num_classes(cfg),
                                         grouped=groups is not None)
        runs = [dict(seed=cfg.seed + s, repeat=0, fold=0) for s in range(cfg.runs.num_seeds)]
        return [split] * len(runs), runs
    if cfg.runs.mode == "kfold":
        out, runs = [], []
        for rep in range(cfg.runs.repeats):
            folds = splits.kfold_with_validation(raw.labels, cfg.runs.folds, seed=cfg.data.split_seed + rep,
                                                 val_fraction=cfg.runs.val_fraction, groups=groups)
            for f, s in enumerate(folds):
                out.append(s)
                runs.append(dict(seed=cfg.seed + rep * cfg.runs.folds + f, repeat=rep, fold=f))
        pipeline.warn_if_classes_missing(out, raw.labels, [f"repeat {r['repeat']} fold {r['fold']}" for r in runs],
                                         pipeline.model_num_classes(cfg), grouped=groups is not None)
        return out, runs
    raise ValueError(f"unknown runs.mode {cfg.runs.mode!r}; choose 'seeds' or 'kfold'")


def build_runset(cfg, raw: pipeline.RawDataset, run_splits: Sequence[splits.Split]) -> RunSet:
    """Fits each run's preprocessing on its own training split and stacks everything.

    With ``data.augment_mirror`` every gait's mirrored copy is appended (index ``i + N``; in k-fold every gait
    trains in some fold) and each run trains, and fits its preprocessing, on its training gaits followed by their
    mirrored copies, as :func:`pipeline.prepare` does for one run; validation and test stay the real gaits."""
    gaits, labels, lengths = raw.gaits, raw.labels, raw.lengths
    if cfg.data.get("augment_mirror", False):
        n = len(labels)
        gaits, labels = pipeline.augment_mirror(gaits, labels)
        lengths = None if lengths is None else np.concatenate([lengths, lengths])
        run_splits = [s._replace(train=np.concatenate([s.train, s.train + n])) for s in run_splits]
    arrays = []
    for s in run_splits:
        prep = pipeline.fit_preprocessor(gaits[s.train], cfg.preprocess, None if lengths is None else lengths[s.train])
        arrays.append(pipeline.apply_preprocessor(prep, gaits, labels, lengths=lengths))
    data = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *arrays)
    tr, trc = _pad([s.train for s in run_splits])
    va, vac = _pad([s.val for s in run_splits])
    te, tec = _pad([s.test for s in run_splits])
    return RunSet(data, *map(jnp.asarray, (tr, trc, va, vac, te, tec)))


def _gather(data: pipeline.Arrays, idx: jax.Array) -> pipeline.Arrays:
    return jax.tree_util.tree_map(lambda a: a[idx], data)


def _masked_eval(apply_fn, variables, data: pipeline.Arrays, idx: jax.Array, count: jax.Array):
    """(loss, accuracy, predictions) on ``data[idx[:count]]`` for one run (inside vmap)."""
    sub = _gather(data, idx)
    logits, _ = apply_fn(variables, sub.gaits, sub.affective if sub.affective.shape[-1] else None, train=False)
    mask = jnp.arange(idx.shape[0]) < count
    ce = jax.vmap(lambda l, y: classification_loss(l[None], y[None]))(logits, sub.labels)
    loss = jnp.sum(jnp.where(mask, ce, 0.0)) / count
    preds = jnp.argmax(logits, -1)
    acc = jnp.sum(jnp.where(mask, preds == sub.labels, False)) / count
    return loss, acc, preds


def learning_rate_tables(train_cfg, steps_per_epoch: np.ndarray) -> np.ndarray:
    """``(R, epochs * max(steps_per_epoch))`` float32: run r's learning rate at each of its optimizer steps,
    ``make_schedule(train_cfg, steps_per_epoch[r])`` evaluated on the host (each run keeps the schedule of its
    own training-set size; a row is padded with its last value)."""
    length = int(train_cfg.epochs) * int(np.max(steps_per_epoch))
    rows = []
    for spe in np.asarray(steps_per_epoch).tolist():
        own = int(train_cfg.epochs) * spe
        values = np.asarray(jax.vmap(make_schedule(train_cfg, spe))(jnp.arange(own)), np.float32)
        rows.append(np.concatenate([values, np.full(length - own, values[-1], np.float32)]))
    return np.stack(rows)


class _Carry(NamedTuple):
    state: Any
    best_variables: Any
    best_score: jax.Array  # (2,) accuracy, -loss
    best_epoch: jax.Array


def fit_classifier_runs(cfg, workdir: str | None = None, *, progress: bool = True, log=print) -> dict:
    """Trains all runs of ``cfg.runs`` in one vmapped loop; returns per-run test reports and mean +- std."""
    if cfg.train.get("data_parallel", False):
        raise ValueError("train.data_parallel is for single runs (train.py with configs/step.py, step_gen.py, "
                         "step_aug.py); the vmapped runs of a k-fold / seeds config train on one device")
    check_train_config(cfg.train)
    cfg = resolve_model_config(cfg)
    if workdir:  # the config of the numbers (these runs keep no checkpoints: see the README)
        os.makedirs(workdir, exist_ok=True)
        write_json(os.path.join(workdir, "config.json"), ckpt_lib.config_to_json(cfg))
        provenance.append(workdir, "start", 0, log)
    raw = pipeline.load_source(cfg.data)
    pp.validate_gaits(raw.gaits, "dataset gaits")
    pp.warn_if_not_metres(raw.gaits, "dataset gaits")
    pipeline.check_labels_fit_model(raw.labels, pipeline.model_num_classes(cfg))
    pipeline.warn_if_ungrouped(raw, cfg.data)
    run_splits, runs = make_splits(cfg, raw)
    r: dict | int  # a run's description here, a run's index below
    for r, s in zip(runs, run_splits):  # an empty validation split would keep the initial weights as "best"
        empty = [name for name in ("train", "val", "test") if len(getattr(s, name)) == 0]
        if empty:
            advice = ("raise runs.val_fraction or use fewer folds" if cfg.runs.mode == "kfold"
                      else "change data.split or use more gaits")
            raise ValueError(f"run {r} has an empty {' and '.join(empty)} split ({len(raw.labels)} gaits); {advice}")
    rs = build_runset(cfg, raw, run_splits)
    num_runs = len(runs)
    model = build_classifier(cfg)
    batch_size = int(cfg.train.batch_size)
    run_batches = np.asarray(rs.train_count) // batch_size  # each run's steps per epoch, as if trained alone
    if run_batches.min() == 0:
        raise ValueError(f"the smallest training split is smaller than batch_size={batch_size}")
    num_batches = int(run_batches.max())  # the scan length; runs with fewer batches skip the last steps
    lr_tables = jnp.asarray(learning_rate_tables(cfg.train, run_batches))
    tx = make_optimizer(cfg.train, num_batches)  # the optimizer state's structure; each run's schedule below
    step = make_classifier_step(cfg.train)
    f = int(cfg.preprocess.num_affective)
    example = (rs.data.gaits[0, :1], rs.data.affective[0, :1] if f else None)
    seeds = jnp.asarray([r["seed"] for r in runs], jnp.uint32)
    init_rngs, train_rngs = jax.vmap(lambda s: jax.random.split(jax.random.PRNGKey(s)))(seeds).transpose(1, 0, 2)
    states = jax.vmap(lambda r: create_train_state(model, tx, r, *example))(init_rngs)
    variables = lambda st: {"params": st.params, "batch_stats": st.batch_stats}
    carry = _Carry(states, jax.vmap(variables)(states), jnp.tile(jnp.array([-1.0, -jnp.inf]), (num_runs, 1)),
                   jnp.zeros((num_runs,), jnp.int32))

    def one_run_epoch(c: _Carry, data, train_idx, train_count, val_idx, val_count, rng, lr_table, epoch):
        perm_rng, step_rng = jax.random.split(jax.random.fold_in(rng, epoch))
        order = train_idx[shuffled_batches(perm_rng, train_idx.shape[0], batch_size, train_count, num_batches)]
        run_tx = make_optimizer(cfg.train, None, schedule=lambda count: lr_table[jnp.minimum(count, len(lr_table) - 1)])
        state, metrics = scan_steps(step, c.state.replace(tx=run_tx), data, order,
                                    jax.random.split(step_rng, num_batches), train_count // batch_size)
        state = state.replace(tx=tx)
        v_loss, v_acc, _ = _masked_eval(model.apply, variables(state), data, val_idx, val_count)
        score = jnp.stack([v_acc, -v_loss])
        better = (score[0] > c.best_score[0]) | ((score[0] == c.best_score[0]) & (score[1] > c.best_score[1]))
        pick = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(better, a, b), new, old)
        c = _Carry(state, pick(variables(state), c.best_variables), jnp.where(better, score, c.best_score),
                   jnp.where(better, epoch, c.best_epoch))
        return c, dict(metrics, val_loss=v_loss, val_accuracy=v_acc)

    epoch_all = jax.jit(jax.vmap(one_run_epoch, in_axes=(0, 0, 0, 0, 0, 0, 0, 0, None)))
    history = []
    t_start = time.time()
    for epoch in tqdm(range(int(cfg.train.epochs)), disable=not progress, desc=f"{num_runs} runs", unit="epoch"):
        carry, metrics = epoch_all(carry, rs.data, rs.train_idx, rs.train_count, rs.val_idx, rs.val_count,
                                   train_rngs, lr_tables, epoch)
        history.append({k: np.asarray(v).tolist() for k, v in metrics.items()} | {"epoch": epoch})
        loss = np.asarray(metrics["loss"])
        if not np.all(np.isfinite(loss)):
            r = int(np.flatnonzero(~np.isfinite(loss.reshape(num_runs, -1)).any(-1))[0])
            raise FloatingPointError(f"training loss of run {runs[r]} became {loss.reshape(num_runs, -1)[r].tolist()} "
                                     f"at epoch {epoch}; lower train.lr or enable train.grad_clip")
    jax.block_until_ready(carry)
    train_time = time.time() - t_start

    test_fn = jax.jit(jax.vmap(lambda v, d, i, n: _masked_eval(model.apply, v, d, i, n)))
    _, _, preds = test_fn(carry.best_variables, rs.data, rs.test_idx, rs.test_count)
    preds = np.asarray(preds)
    reports = []
    for r, s in enumerate(run_splits):
        rep = classification_report(raw.labels[s.test], preds[r, :len(s.test)], len(LABEL_NAMES))
        rep.update(runs[r], best_epoch=int(carry.best_epoch[r]))
        reports.append(rep)
    result = {"runs": reports, "aggregate": aggregate(reports), "train_time_s": train_time, "num_runs": num_runs}
    if workdir:
        os.makedirs(workdir, exist_ok=True)
        write_json(os.path.join(workdir, "results.json"), result)
        with open(os.path.join(workdir, "metrics.jsonl"), "w") as fh:
            fh.writelines(json.dumps(h) + "\n" for h in history)
    return result
