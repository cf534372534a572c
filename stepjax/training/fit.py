"""The classifier training loop: data -> jitted epochs -> validation model selection -> test.

``fit_classifier(cfg, workdir)`` is what ``train.py`` calls for ``cfg.task == 'classifier'``.
Re-running it on an existing workdir resumes from the latest checkpoint and ends with the same
parameters as an uninterrupted run (every epoch is a pure function of the state, the data and
``fold_in(seed, epoch)``).
"""

from __future__ import annotations

import functools
import json
import os
import time
from typing import overload

import jax
import numpy as np
from tqdm.auto import tqdm

from stepjax import LABEL_NAMES
from stepjax.data import pipeline
from stepjax.metrics import classification_report
from stepjax.models.classifier import STEPClassifier
from stepjax.training import parallel
from stepjax.training.loop import classifier_train_step, epoch_fn, evaluate_classifier
from stepjax.training.model_config import read_saved_model_config, start_run_config
from stepjax.training.progress import METRICS_FILE, RunProgress, write_split
from stepjax.training.state import TrainState, count_params, create_train_state, make_optimizer
from stepjax.utils import write_json



def build_classifier(cfg) -> STEPClassifier:
    """The model described by ``cfg.model`` (affective width taken from ``cfg.preprocess``)."""
    return STEPClassifier(num_affective=int(cfg.preprocess.num_affective), **cfg.model)  # lists become tuples


def make_classifier_step(train_cfg):
    """``step(state, batch, rng)``: :func:`classifier_train_step` with the options of ``cfg.train``."""
    return functools.partial(classifier_train_step, label_smoothing=float(train_cfg.get("label_smoothing", 0.0)),
                             official_double_softmax=bool(train_cfg.get("official_double_softmax", False)),
                             compute_dtype=str(train_cfg.get("compute_dtype", "float32")))


def _score(report: dict) -> tuple[float, float]:
    """Validation score used for model selection: accuracy, ties broken by lower loss."""
    return report["accuracy"], -report["loss"]


def classifier_run_config(cfg, workdir: str):
    """``(cfg, cfg_json, mesh)`` of a classifier run, checked before any data is prepared
    (:func:`stepjax.training.model_config.start_run_config`)."""
    return start_run_config(cfg, workdir)


@overload
def fit_classifier(cfg, workdir: str, *, progress: bool = ..., log=..., stop_after: None = ...,
                   extra_train: tuple[np.ndarray, np.ndarray] | None = ...) -> dict: ...
@overload
def fit_classifier(cfg, workdir: str, *, progress: bool = ..., log=..., stop_after: int | None = ...,
                   extra_train: tuple[np.ndarray, np.ndarray] | None = ...) -> dict | None: ...
def fit_classifier(cfg, workdir: str, *, progress: bool = True, log=print, stop_after: int | None = None,
                   extra_train: tuple[np.ndarray, np.ndarray] | None = None) -> dict | None:
    """Trains a STEP classifier; returns the final report (test metrics of the best-val checkpoint). The real
    gaits' train / val / test indices go to ``<workdir>/split.json`` (:func:`~stepjax.training.progress.read_split`).

    ``stop_after``: stop (checkpointed) after this many epochs of *this* call and return ``None``, as
    a pre-empted job would; re-running resumes.
    ``extra_train``: additional ``(raw gaits (M, T, 16, 3), labels (M,))`` added to the training
    split only (STEP+Aug's synthetic gaits); validation and test stay real.

    The report: ``{'best_epoch', 'num_train' (gaits per training epoch: real, extra, mirrored copies), 'val',
    'test'}`` (no ``'test'`` without a test part).
    """
    os.makedirs(workdir, exist_ok=True)
    cfg, cfg_json, mesh = classifier_run_config(cfg, workdir)  # mesh: None unless train.data_parallel
    data = pipeline.prepare(cfg, extra_train=extra_train)
    train, val, test = data["train"], data["val"], data["test"]
    frames_recorded = pipeline.record_num_frames(cfg_json, train.gaits)
    prep = data["preprocessor"]
    model = build_classifier(cfg)
    batch_size = int(cfg.train.batch_size)
    steps_per_epoch = len(train.labels) // batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"training split has {len(train.labels)} gaits, fewer than batch_size={batch_size}")
    tx = make_optimizer(cfg.train, steps_per_epoch)
    example = (train.gaits[:1], train.affective[:1] if prep.num_affective else None)
    root = jax.random.PRNGKey(cfg.seed)
    init_rng, train_rng = jax.random.split(root)
    state = create_train_state(model, tx, init_rng, *example)

    tracker = RunProgress(workdir, cfg_json, int(cfg.train.epochs),
                          checkpoint_every=cfg.get("checkpoint_every", 1), log=log,
                          frames_recorded=frames_recorded, read_saved_config=read_saved_model_config)
    state = tracker.resume({"train_state": state, "preprocessor": prep})["train_state"]
    write_split(workdir, data["split"], resumed=tracker.start_epoch > 0, fingerprint=data["raw"].fingerprint())
    log(f"{model.__class__.__name__}: {count_params(state.params):,} parameters; "
        f"train/val/test = {len(train.labels)}/{len(val.labels)}/{0 if test is None else len(test.labels)} gaits; "
        f"{steps_per_epoch} steps/epoch")
    step = make_classifier_step(cfg.train)
    if mesh is not None:
        step = parallel.data_parallel_step(step, mesh)
        state = parallel.replicate(state, mesh)
        log(f"data parallel over {mesh.size} devices")
    run_epoch = epoch_fn(step, batch_size)
    test_every_epoch = bool(cfg.get("eval", {}).get("report_test_every_epoch", False))
    bar = tqdm(tracker.epochs(), initial=tracker.start_epoch, total=tracker.num_epochs, disable=not progress,
               desc="train", unit="epoch", dynamic_ncols=True)
    for epoch in bar:
        t0 = time.time()
        state, train_metrics = run_epoch(state, train, jax.random.fold_in(train_rng, epoch))
        train_metrics = {k: float(v) for k, v in train_metrics.items()}
        if not np.isfinite(train_metrics["loss"]):
            raise FloatingPointError(f"training loss became {train_metrics['loss']} at epoch {epoch}; "
                                     f"lower train.lr or enable train.grad_clip")
        val_eval = evaluate_classifier(state, model.apply, val)
        record = {"epoch": epoch, "time_s": round(time.time() - t0, 3),
                  "train_loss": train_metrics["loss"], "train_accuracy": train_metrics["accuracy"],
                  "val_loss": val_eval["loss"], "val_accuracy": val_eval["accuracy"]}
        if test_every_epoch and test is not None:  # official-parity reporting only, never used for selection
            record["test_accuracy"] = evaluate_classifier(state, model.apply, test)["accuracy"]
        tree = {"train_state": state, "preprocessor": prep}
        tracker.end_epoch(epoch, tree, record, _score(val_eval))
        bar.set_postfix(loss=f"{record['train_loss']:.3f}", acc=f"{record['train_accuracy']:.3f}",
                        val_acc=f"{record['val_accuracy']:.3f}", best=tracker.best_epoch)
        if tracker.preempted(epoch, tree, stop_after):
            return None

    restored, meta = tracker.finish({"train_state": state, "preprocessor": prep})
    best_state = restored["train_state"]
    result = {"best_epoch": meta["epoch"], "num_train": int(len(train.labels)),
              "val": _report(best_state, model, val)}
    if test is not None:
        result["test"] = _report(best_state, model, test)
    if test_every_epoch:
        with open(os.path.join(workdir, METRICS_FILE)) as f:
            accs = [json.loads(l).get("test_accuracy") for l in f]
        accs = [a for a in accs if a is not None]
        if accs:  # the official protocol's number (test-set selection): reported, clearly labelled
            result["test_accuracy_max_over_epochs_OFFICIAL_PROTOCOL"] = max(accs)
    tracker.close()
    write_json(os.path.join(workdir, "results.json"), result)
    return result


def _report(state: TrainState, model, data) -> dict:
    ev = evaluate_classifier(state, model.apply, data)
    rep = classification_report(ev["labels"], ev["preds"], len(LABEL_NAMES))
    rep["loss"] = ev["loss"]
    return rep
