"""Checkpoint evaluation used by ``eval.py``: a split of the run's own data, or any E-Gait files."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from typing import Sequence, cast

import numpy as np

from stepjax import LABEL_NAMES
from stepjax.data import pipeline
from stepjax.data.preprocess import check_min_frames, to_fixed_length, validate_gaits, warn_if_not_metres
from stepjax.inference import make_predict_fn, predict_gaits, predict_in_chunks, restore_classifier
from stepjax.metrics import aggregate, classification_report, format_aggregate, format_confusion
from stepjax.training import provenance
from stepjax.training.checkpoint import ConfigMismatchError
from stepjax.training.progress import run_split

SPLITS = ("train", "val", "test", "all")


def predict_labels(predict_fn, variables, gaits: np.ndarray, chunk: int = 512,
                   lengths: np.ndarray | None = None) -> np.ndarray:
    """Argmax predictions for raw gaits ``(N, T, 16, 3)`` (``lengths``: real frames per gait), jitted, in chunks;
    ``ValueError`` on non-finite logits (:func:`~stepjax.inference.predict_in_chunks`)."""
    return cast(np.ndarray, predict_in_chunks(predict_fn, variables, gaits, chunk, lengths).logits).argmax(-1)


def evaluate_workdir(workdir: str, split: str = "test", features: str | None = None, labels: str | None = None,
                     which: str = "best") -> dict:
    """Classification report of one run's checkpoint on ``split`` of its own data, or on E-Gait files.
    ``report['trained_with']``: the provenance record of the run's start (:mod:`stepjax.training.provenance`), or
    ``None`` for a run from before runs recorded one."""
    cfg, model, variables = restore_classifier(workdir, which)
    predict_fn = make_predict_fn(model, int(cfg.data.get("num_frames") or 0) or None)
    if features:
        from stepjax.data.egait import read_egait

        data = read_egait(features, labels or None)
        y, source = data.labels, os.fspath(features)
        frames, policy = pipeline.trained_num_frames(cfg), cfg.data.get("length_policy", "tile")
        check_min_frames(data.gaits, source)  # before the leak check, which brings them to the training length
        check_no_training_gaits(workdir, cfg, to_fixed_length(data.gaits, frames, policy), source)
        preds = predict_gaits(predict_fn, variables, data.gaits, frames, policy, name=source).logits.argmax(-1)
    else:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
        raw = pipeline.load_source(cfg.data)
        s = run_split(workdir, raw, cfg.data, hint="evaluate it on named files with --features/--labels, or retrain",
                      parts=() if split == "all" else SPLITS[:3])
        idx = np.arange(len(raw.labels)) if split == "all" else getattr(s, split)
        if len(idx) == 0:
            others = [name for name in ("val", "train") if name != split and len(getattr(s, name))]
            hint = f" (its data.split is {tuple(cfg.data.split)}); evaluate --split {others[0]}" if others else ""
            raise ValueError(f"split {split!r} of {workdir} is empty{hint}")
        gaits, y, source = raw.gaits[idx], raw.labels[idx], f"{cfg.data.source}:{split}"
        validate_gaits(gaits)
        warn_if_not_metres(gaits, source)
        preds = predict_labels(predict_fn, variables, gaits, lengths=raw.lengths_at(idx))
    report = classification_report(y, preds, len(LABEL_NAMES))
    report.update(workdir=os.fspath(workdir), data=source, checkpoint=which,
                  trained_with=provenance.run_start(workdir))
    return report


def _gait_digests(gaits: np.ndarray) -> list[bytes]:
    """One digest per gait ``(N, T, 16, 3)``, of its float32 bytes."""
    return [hashlib.sha1(np.ascontiguousarray(g, np.float32).tobytes()).digest() for g in gaits]


def check_no_training_gaits(workdir: str, cfg, gaits: np.ndarray, source: str) -> None:
    """Refuses (``ValueError``) to score gaits ``(N, T, 16, 3)``, at the run's training length, that are gaits
    the run trained on or was selected on (its train or validation part, bit for bit, e.g. the E-Gait file it
    was trained on): a score over them is not a test number. Warns when the run's own data cannot be read to
    check (files moved or changed since training)."""
    try:
        raw = pipeline.load_source(cfg.data)
        s = run_split(workdir, raw, cfg.data, hint="not checked")
    except (OSError, ValueError) as e:
        why = ("its data or split is not the one it trained on" if isinstance(e, ConfigMismatchError) else
               f"its own data does not load as in training: {str(e).splitlines()[0][:200]}")
        warnings.warn(f"{source} could not be checked for gaits {workdir} trained on or was selected on ({why}); "
                      f"a score over such gaits would not be a test number", UserWarning, stacklevel=3)
        return
    seen = {d: part for part in ("val", "train") for d in _gait_digests(raw.gaits[getattr(s, part)])}
    held_in = [seen.get(d) for d in _gait_digests(gaits)]
    counts = {part: held_in.count(part) for part in ("train", "val") if part in held_in}
    if counts:
        raise ValueError(f"{sum(counts.values())} of the {len(gaits)} gaits of {source} are gaits {workdir} "
                         f"{' or '.join([{'train': 'trained on', 'val': 'was selected on'}[p] for p in counts])} "
                         f"({', '.join(f'{n} of its {p} part' for p, n in counts.items())}): a score over them is "
                         f"not a test number; evaluate --split test (its held-out gaits), files without them, or "
                         f"--split all to score every gait of its data knowingly")


def summed_confusion(out: dict) -> np.ndarray:
    """The confusion matrix ``(K, K)`` summed over the runs of an :func:`evaluate_workdirs` result."""
    return np.sum([r["confusion_matrix"] for r in out["runs"]], axis=0)


def format_reports(out: dict) -> str:
    """The text report of an :func:`evaluate_workdirs` result (what ``eval.py`` prints): per run its scores,
    what it was trained with and per-class precision / recall; the confusion matrix (summed over runs) and, for
    several runs, mean +- sample std."""
    lines = []
    for r in out["runs"]:
        lines.append(f"{r['workdir']} ({r['checkpoint']} checkpoint) on {r['data']} (n={r['num_gaits']}): accuracy "
                     f"{r['accuracy']:.4f}  balanced_accuracy {r['balanced_accuracy']:.4f}  "
                     f"macro_f1 {r['macro_f1']:.4f}")
        lines.append(f"    trained with {provenance.summary(r.get('trained_with'))}")
        lines += [f"    {name:8s} precision {pc['precision']:.3f}  recall {pc['recall']:.3f}  n={pc['support']}"
                  for name, pc in r["per_class"].items()]
    if len(out["runs"]) > 1:
        lines.append(f"confusion matrix summed over the {len(out['runs'])} runs:")
    lines.append(format_confusion(summed_confusion(out)))
    agg = out["aggregate"]
    if agg["num_runs"] > 1:
        if len(out.get("software", ())) > 1:
            lines.append("note: these runs were trained with different software: " + "; ".join(out["software"]))
        lines.append(f"mean +- sample std (ddof=1) over {agg['num_runs']} runs: " + format_aggregate(agg))
    return "\n".join(lines)


def evaluate_workdirs(workdirs: Sequence[str], **kwargs) -> dict:
    """Reports of several runs (seeds / folds) and their mean +- std. Runs evaluated on their own splits must
    share their data config (a mean over different datasets is not a protocol number), and a run given twice
    would count as two: else ``ValueError``."""
    resolved = [os.path.realpath(w) for w in workdirs]
    repeated = sorted({w for w, r in zip(workdirs, resolved) if resolved.count(r) > 1})
    if repeated:
        raise ValueError(f"the same run is given more than once ({', '.join(map(str, repeated))}): a mean +- std "
                         "over runs needs each run once")
    if len(workdirs) > 1 and not kwargs.get("features"):
        from stepjax.training.checkpoint import read_run_config

        data = {w: json.dumps(read_run_config(w).get("data"), sort_keys=True) for w in workdirs}
        if len(set(data.values())) > 1:
            raise ValueError("these runs were trained on different data configs, so their own test splits differ: "
                             "evaluate them separately, or all on the same files with --features/--labels")
    reports = [evaluate_workdir(w, **kwargs) for w in workdirs]
    return {"runs": reports, "aggregate": aggregate(reports), "software": distinct_software(reports)}


def distinct_software(reports: Sequence[dict]) -> list[str]:
    """The different software the runs of ``reports`` were trained with, in order of appearance: the first as
    its :func:`~stepjax.training.provenance.summary` line, each other one as that line plus what differs from
    the first (e.g. ``numpy 2.0.0 -> 1.26.4``), and ``'unrecorded'`` where some runs have a record and some do
    not. One entry (or none) when they agree: several mean the runs mix code or library versions."""
    records = [r.get("trained_with") for r in reports]
    seen: list[dict] = []
    for record in records:
        if record and not any(not provenance.software_changes(s, record) for s in seen):
            seen.append(record)
    out = [provenance.summary(s) if i == 0 else
           f"{provenance.summary(s)} ({'; '.join(provenance.software_changes(seen[0], s))})"
           for i, s in enumerate(seen)]
    return out + (["unrecorded"] if seen and None in records else [])
