"""Bookkeeping shared by every training loop: resume, best-by-validation selection, checkpoints, metrics.

A loop (``fit_classifier``, ``fit_generator``) does::

    progress = RunProgress(workdir, cfg_json, epochs, log=log)
    tree = progress.resume(tree)                      # restores the latest checkpoint, if any
    for epoch in progress.epochs():
        ...train one epoch, validate...
        progress.end_epoch(epoch, tree, record, score)  # metrics line, best tracking, checkpoints
        if progress.preempted(epoch, tree, stop_after):
            return None                               # checkpointed; re-running resumes
    best_tree, meta = progress.finish(tree)           # the best-by-validation checkpoint

Files in the workdir: ``metrics.jsonl`` (one JSON record per epoch), ``config.json``, ``split.json`` (the
indices and data hash, :func:`write_split`), ``provenance.jsonl`` (software and devices of each start and resume,
:mod:`stepjax.training.provenance`) and the orbax checkpoints of
:class:`stepjax.training.checkpoint.RunCheckpoints`.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Sequence

from stepjax.training import checkpoint as ckpt_lib
from stepjax.training import provenance
from stepjax.utils import is_integer

METRICS_FILE = "metrics.jsonl"
SPLIT_FILE = "split.json"


def write_split(workdir: str, split, resumed: bool = False, fingerprint: str | None = None) -> None:
    """Records the real train / val / test indices of a run (a :class:`~stepjax.data.splits.Split`) and the
    data's ``fingerprint`` (:meth:`stepjax.data.pipeline.RawDataset.fingerprint`) in ``<workdir>/split.json``
    (through a temporary file). ``resumed``: the run continues from a checkpoint, and a recorded split or data
    that differs is a :class:`~stepjax.training.checkpoint.ConfigMismatchError` (:func:`check_split`), not
    silently replaced."""
    if resumed:
        check_split(workdir, split, fingerprint, hint="train in a new workdir")
    record: dict[str, Any] = _split_parts(split)
    if fingerprint is not None:
        record["data_files_sha256"] = fingerprint
    path = os.path.join(workdir, SPLIT_FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(record, f)
    os.replace(tmp, path)


def _split_parts(split) -> dict[str, list[int]]:
    return {k: [int(i) for i in getattr(split, k)] for k in ("train", "val", "test")}


def check_split(workdir: str | os.PathLike, split, fingerprint: str | None = None, *, hint: str,
                parts: Sequence[str] = ("train", "val", "test")) -> None:
    """Raises :class:`~stepjax.training.checkpoint.ConfigMismatchError` when ``<workdir>/split.json`` records
    other train / val / test indices than ``split`` (the split a run's config gives now), or other data than
    ``fingerprint`` (where both are known): the data file or the splitting changed since the run was trained,
    and its "test" gaits would not be the ones it never saw. No ``split.json`` (a run from before runs recorded
    it): nothing to compare; no fingerprint in it (a run from before those): the parts only. ``hint``: what to do
    instead, for the message; ``parts``: the parts that matter (none for an evaluation on all gaits)."""
    path = os.path.join(workdir, SPLIT_FILE)
    if not os.path.exists(path):
        return
    with open(path) as f:
        recorded = json.load(f)
    changed = [k for k, v in _split_parts(split).items() if k in parts and recorded.get(k) != v]
    if fingerprint is not None and recorded.get("data_files_sha256") not in (None, fingerprint):
        changed.append("the data files")
    if changed:
        raise ckpt_lib.ConfigMismatchError(
            f"{workdir} was trained on other data than its config gives now ({', '.join(changed)} differ from its "
            f"{SPLIT_FILE}: the data file or the splitting changed since training); {hint}")


def run_split(workdir: str | os.PathLike, raw, data_cfg, *, hint: str,
              parts: Sequence[str] = ("train", "val", "test")):
    """The split a run trained with, for evaluating it on ``raw`` (its data as loaded now, a
    :class:`~stepjax.data.pipeline.RawDataset`) under its data config ``data_cfg``: the indices its ``split.json``
    records where it also records the data files and they are unchanged (the parts a run trained on, whatever the
    splitting code gives now, e.g. after a change of how keys are grouped), checked to be disjoint parts of the
    gaits loaded now; else the split the config gives now, once :func:`check_split` has found it to be the
    recorded one (walkers: no files, so the data is compared through the split; runs from before ``split.json``:
    nothing to compare). :class:`~stepjax.training.checkpoint.ConfigMismatchError` where neither holds."""
    import numpy as np

    from stepjax.data import pipeline, splits

    fingerprint = raw.fingerprint()
    path = os.path.join(workdir, SPLIT_FILE)
    if fingerprint is not None and os.path.exists(path):
        with open(path) as f:
            recorded = json.load(f)
        if recorded.get("data_files_sha256") == fingerprint:
            try:
                idx = _recorded_parts(recorded)
            except (KeyError, TypeError, ValueError) as e:
                raise ckpt_lib.ConfigMismatchError(f"{path} is not a split record ({e!r}); {hint}") from None
            flat, num_gaits = np.concatenate(idx), len(raw.labels)
            if flat.size and (flat.min() < 0 or flat.max() >= num_gaits or len(np.unique(flat)) != flat.size):
                raise ckpt_lib.ConfigMismatchError(
                    f"{path} records parts that are not disjoint parts of the {num_gaits} gaits the data gives now "
                    f"(the loader changed since training?); {hint}")
            return splits.Split(*idx)
    split = pipeline.split_dataset(raw, data_cfg)
    check_split(workdir, split, fingerprint, hint=hint, parts=parts)
    return split


def _recorded_parts(recorded: dict) -> list:
    """The train / val / test int64 index arrays of a ``split.json`` record."""
    import numpy as np

    return [np.asarray(recorded[k], np.int64).reshape(-1) for k in ("train", "val", "test")]


def read_split(workdir: str) -> dict:
    """``{'train', 'val', 'test'}`` int64 index arrays a run was trained with (``split.json``)."""
    with open(os.path.join(workdir, SPLIT_FILE)) as f:
        recorded = json.load(f)
    return dict(zip(("train", "val", "test"), _recorded_parts(recorded)))


class MetricsLog:
    """Append-only JSON-lines metrics file; on resume, lines past the restored epoch are dropped."""

    def __init__(self, path: str, resume_epoch: int | None):
        self.path = path
        lines = []
        if resume_epoch is not None and os.path.exists(path):
            with open(path) as f:
                lines = [l for l in f if l.strip() and json.loads(l).get("epoch", -1) <= resume_epoch]
        with open(path, "w") as f:
            f.writelines(lines)

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def read_metrics(workdir: str) -> list[dict]:
    """The per-epoch records of a run's ``metrics.jsonl`` (empty if there is none)."""
    path = os.path.join(workdir, METRICS_FILE)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def check_checkpoint_every(value) -> int:
    """``checkpoint_every`` (epochs between ``latest`` checkpoints) as an int; ``ValueError`` unless >= 1."""
    if not is_integer(value) or value < 1:
        raise ValueError(f"checkpoint_every must be an integer >= 1 (epochs), got {value!r}")
    return int(value)


class RunProgress:
    """Resume point, best-by-validation bookkeeping and per-epoch checkpoints of one training run.

    Args:
      workdir: the run directory (created).
      cfg_json: the run's config as JSON (:func:`checkpoint.config_to_json`); stored with every checkpoint.
      num_epochs: total epochs of the run.
      sections: config sections that must match a checkpoint to resume from it.
      checkpoint_every: save a ``latest`` checkpoint every this many epochs (best and last always).
      log: a print-like function.
      frames_recorded: ``cfg_json`` holds the length that ``data.num_frames = 0`` resolved to
        (:func:`stepjax.data.pipeline.record_num_frames`); a checkpoint written before runs recorded it (0
        there) then still resumes.
      read_saved_config: maps a checkpoint's stored config to the form of ``cfg_json`` before they are compared
        (e.g. :func:`stepjax.training.model_config.resolve_model_config` with ``saved=True``).
    """

    best_score: tuple | None
    best_epoch: int | None

    def __init__(self, workdir: str, cfg_json: dict, num_epochs: int, *,
                 sections: Sequence[str] = ckpt_lib.RESUME_SECTIONS, checkpoint_every: int = 1,
                 log: Callable = print, frames_recorded: bool = False,
                 read_saved_config: Callable[[dict], dict] | None = None):
        check_checkpoint_every(checkpoint_every)
        os.makedirs(workdir, exist_ok=True)
        self.frames_recorded = frames_recorded
        self.read_saved_config = read_saved_config or (lambda saved: saved)
        self.workdir, self.cfg_json, self.num_epochs = workdir, cfg_json, int(num_epochs)
        self.sections, self.checkpoint_every, self.log = tuple(sections), int(checkpoint_every), log
        self.ckpts = ckpt_lib.RunCheckpoints(workdir)
        self.start_epoch, self.best_score, self.best_epoch = 0, None, None
        self.metrics_log: MetricsLog | None = None
        self._meta: dict | None = None

    def resume(self, tree: Any) -> Any:
        """``tree`` restored from the latest checkpoint (after a config check), or ``tree`` for a new run.
        Also (re)writes ``config.json`` and trims ``metrics.jsonl`` to the restored epoch."""
        resume_epoch = self.ckpts.latest_epoch()
        if resume_epoch is not None:
            changed = check_saved_config(self.ckpts.read_meta()["config"],  # type: ignore[index]  # epoch found above
                                         self.cfg_json, sections=self.sections,
                                         read_saved_config=self.read_saved_config,
                                         frames_recorded=self.frames_recorded)
            if changed:
                self.log("Resuming with changes that keep the numbers to float32 rounding: " + "; ".join(changed))
            tree, meta = self.ckpts.restore(tree)
            self.start_epoch = meta["epoch"] + 1
            self.best_score = tuple(meta["best_score"]) if meta.get("best_score") else None
            self.best_epoch = meta.get("best_epoch")
            self._check_best(tree, meta)
            nxt = (f"continuing at epoch {self.start_epoch} of {self.num_epochs}" if self.start_epoch < self.num_epochs
                   else "all epochs done, evaluating the best checkpoint")
            self.log(f"Resuming {self.workdir} after epoch {meta['epoch']}, {nxt} (best validation epoch "
                     f"{self.best_epoch}).")
        provenance.append(self.workdir, "start" if resume_epoch is None else "resume", self.start_epoch, self.log)
        self.metrics_log = MetricsLog(os.path.join(self.workdir, METRICS_FILE), resume_epoch)
        with open(os.path.join(self.workdir, "config.json"), "w") as f:
            json.dump(self.cfg_json, f, indent=2)
        return tree

    def _check_best(self, tree: Any, meta: dict) -> None:
        """Makes the best-so-far bookkeeping agree with ``best/`` on disk: the restored epoch is re-saved as best if
        it is the best one, else the newest best checkpoint on disk is taken: quietly where it is newer than the
        restored epoch (a run stopped between a new best save and the latest save that names it, the state the
        save order leaves), with a warning otherwise (a checkpoint written before saves were ordered, a ``best/``
        directory removed by hand); with none on disk the search starts afresh (with a warning)."""
        if self.best_epoch is None or self.best_epoch in self.ckpts.best.all_steps():
            return
        if self.best_epoch == meta["epoch"]:
            self.ckpts.save(meta["epoch"], tree, meta, best=True)
            return
        on_disk = self.ckpts.read_meta("best")
        missing = self.best_epoch
        if on_disk is None:
            self.best_score = self.best_epoch = None
        else:
            self.best_score, self.best_epoch = tuple(on_disk["best_score"]), on_disk["epoch"]
            if on_disk["epoch"] > meta["epoch"]:
                # a new best is saved to completion before the latest checkpoint that names it: a run stopped in
                # between leaves best/ ahead of latest/ (the designed state, not damage); the resumed run
                # retrains up to that epoch and keeps the best checkpoint it finds there
                return
        self.log(f"WARNING: the best checkpoint of epoch {missing} is missing from {self.workdir}/best; "
                 f"best-by-validation selection continues from {self.best_epoch if on_disk else 'scratch'}.")

    def epochs(self) -> range:
        return range(self.start_epoch, self.num_epochs)

    def end_epoch(self, epoch: int, tree: Any, record: dict, score: tuple) -> bool:
        """Logs ``record``, tracks the best ``score`` (higher is better; validation only) and checkpoints.
        Returns whether this epoch is the best so far."""
        is_best = self.best_score is None or tuple(score) > self.best_score
        if is_best:
            self.best_score, self.best_epoch = tuple(score), epoch
        assert self.best_score is not None  # set just above when it was None (is_best)
        self._meta = {"epoch": epoch, "config": self.cfg_json, "metrics": record,
                      "best_score": list(self.best_score), "best_epoch": self.best_epoch}
        last = epoch == self.num_epochs - 1
        if is_best or last or (epoch + 1) % self.checkpoint_every == 0:
            self.ckpts.save(epoch, tree, self._meta, best=is_best)
        self.metrics_log.write(record)  # type: ignore[union-attr]  # set by resume(), which every loop calls first
        return is_best

    def preempted(self, epoch: int, tree: Any, stop_after: int | None) -> bool:
        """``True`` (after checkpointing and closing) when ``stop_after`` epochs of this call are done and
        the run is not: a pre-empted job; re-running the same command resumes."""
        if stop_after is None or epoch + 1 - self.start_epoch < stop_after or epoch == self.num_epochs - 1:
            return False
        self.ckpts.save(epoch, tree, self._meta, best=False)  # type: ignore[arg-type]  # set by end_epoch(epoch)
        self.ckpts.wait()
        self.ckpts.close()
        return True

    def finish(self, tree: Any) -> tuple[Any, dict]:
        """Waits for pending saves; returns ``(tree, meta)`` of the best-by-validation checkpoint
        (restored into the structure of ``tree``). Keep the object for :meth:`close`."""
        self.ckpts.wait()
        return self.ckpts.restore(tree, which="best")

    def close(self) -> None:
        self.ckpts.close()


def refuse_another_config(workdir: str, cfg_json: dict, *, sections: Sequence[str] = ckpt_lib.RESUME_SECTIONS,
                          read_saved_config: Callable[[dict], dict] | None = None) -> None:
    """Raises :class:`~stepjax.training.checkpoint.ConfigMismatchError` at once when ``workdir`` holds a checkpoint
    of another config, before any data is loaded; :meth:`RunProgress.resume` checks again once the length that
    ``data.num_frames = 0`` stands for is known (it is left out here)."""
    if not os.path.isdir(os.path.join(workdir, ckpt_lib.LATEST)):
        return
    ckpts = ckpt_lib.RunCheckpoints(workdir, create=False)
    try:
        meta = ckpts.read_meta()
    finally:
        ckpts.close()
    if meta is None:
        return
    check_saved_config(meta["config"], cfg_json, sections=sections, read_saved_config=read_saved_config)


def check_saved_config(saved: dict, cfg_json: dict, *, sections: Sequence[str] = ckpt_lib.RESUME_SECTIONS,
                       read_saved_config: Callable[[dict], dict] | None = None,
                       frames_recorded: bool = False) -> list[str]:
    """The one comparison of a checkpoint's stored config ``saved`` with a run's ``cfg_json`` (both JSON):
    :func:`~stepjax.training.checkpoint.check_compatible` over ``sections`` after ``read_saved_config`` (see
    :class:`RunProgress`), with the frame count compared only once it is known: where ``cfg_json`` still says
    ``data.num_frames = 0`` (before the data is prepared) it is left out on both sides, and with
    ``frames_recorded`` (``cfg_json`` holds the resolved length) a checkpoint that stored 0 (written before runs
    recorded it) takes the resolved length. Raises ``ConfigMismatchError``; returns the allowed changes."""
    saved = (read_saved_config or (lambda c: c))(saved)
    frames = (cfg_json.get("data") or {}).get("num_frames")
    if not frames:
        saved, cfg_json = ({**c, "data": {**(c.get("data") or {}), "num_frames": 0}} for c in (saved, cfg_json))
    elif frames_recorded and not (saved.get("data") or {}).get("num_frames"):
        saved = {**saved, "data": {**(saved.get("data") or {}), "num_frames": frames}}
    return ckpt_lib.check_compatible(saved, cfg_json, sections=sections)
