"""Orbax checkpoints of a run: ``<workdir>/checkpoints`` (latest, keeps 2) and ``<workdir>/best``.

Each checkpoint is an orbax composite of

* ``state``: the pytree (train state, preprocessor arrays, ...) saved with ``StandardSave``;
* ``meta``: JSON with the epoch, the config that produced it, validation metrics and the best
  validation score so far.

Orbax writes into a temporary directory and renames it when complete, and the older of the two
``latest`` checkpoints is deleted only after the new one is finalised, so a crash mid-save never
destroys the last good checkpoint. A new best checkpoint is finalised before the ``latest`` one that
records it, so the best model named by a resumed run is always on disk.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import time
import warnings
from typing import Any, Callable, Iterator, Mapping

import jax
import orbax.checkpoint as ocp

LATEST = "checkpoints"
BEST = "best"
LOCK = ".lock"
#: The checkpoints a reader may ask for: the best-by-validation one or the newest.
WHICH = ("best", "latest")
_READ_RETRIES = 5  # reads of the newest checkpoint while a live trainer removes older ones


class ConfigMismatchError(ValueError):
    """A checkpoint was written by a run with a different (incompatible) config."""


class CheckpointCorruptError(ValueError):
    """A checkpoint on disk is damaged or incomplete (an item missing, unreadable arrays or metadata)."""


def config_to_json(cfg) -> dict:
    """ConfigDict (or dict) -> plain JSON-compatible dict (tuples become lists)."""
    d = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    return json.loads(json.dumps(d, default=lambda o: list(o) if isinstance(o, tuple) else str(o)))


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k, "<missing>"), b.get(k, "<missing>"), f"{prefix}{k}.")
        return out
    return [] if a == b else [f"{prefix[:-1]}: checkpoint has {a!r}, config has {b!r}"]


#: Config sections (and top-level keys) a run resumes only with: everything that changes its numbers.
RESUME_SECTIONS = ("task", "seed", "model", "data", "preprocess", "train", "aug")
#: Keys that may change between a run and its resumption: how the step is computed, not what (the same numbers
#: to float32 rounding). (A checkpoint written before ``model.graph_impl`` or the decoder's ``quotient_joints``
#: existed resumes under their defaults.)
RESUME_MAY_CHANGE = ("train.data_parallel", "model.temporal_impl", "model.graph_impl", "model.quotient_joints")
#: The formulation keys of :data:`RESUME_MAY_CHANGE`: fixed in a bfloat16 run (``train.compute_dtype``), where the
#: formulations round differently ('dft' computes in float32, the others in bfloat16: ~1e-2 apart).
IMPL_KEYS = ("model.temporal_impl", "model.graph_impl", "model.quotient_joints")


def check_compatible(saved: Mapping, current: Mapping, sections=RESUME_SECTIONS,
                     may_change=RESUME_MAY_CHANGE) -> list[str]:
    """Raises :class:`ConfigMismatchError` listing every differing key of the given config sections (a section
    absent from both configs matches), except the dotted keys in ``may_change`` (less :data:`IMPL_KEYS` when
    either config computes in bfloat16). Returns the differences it allowed, for the resume message."""
    dtypes = {(c.get("train") or {}).get("compute_dtype", "float32") for c in (saved, current)}
    if dtypes != {"float32"}:
        may_change = tuple(k for k in may_change if k not in IMPL_KEYS)
    allowed: list[str]
    diffs: list[str]
    allowed, diffs = [], []
    for s in sections:
        for d in _diff(saved.get(s), current.get(s), f"{s}."):
            (allowed if d.split(":")[0] in may_change else diffs).append(d)
    if diffs:
        raise ConfigMismatchError("the workdir holds a checkpoint of another config; use a new --workdir or "
                                  "the same config. Differences:\n  " + "\n  ".join(diffs))
    return allowed


class WorkdirBusyError(RuntimeError):
    """Another process is training into the same workdir."""


@contextlib.contextmanager
def workdir_lock(workdir: str | os.PathLike) -> Iterator[None]:
    """Holds an exclusive lock on ``<workdir>/.lock`` (created with the workdir) while the block runs.

    Two training processes on one workdir would interleave their checkpoints and metrics; the second one gets
    :class:`WorkdirBusyError` (naming the first one's pid and host) instead. The lock is an ``flock`` on an
    open file, so the operating system releases it when the holder exits, however it dies: no stale locks to
    clean up. Where ``fcntl`` is missing (Windows) or the file system cannot lock, the block runs unlocked
    (with a warning in the latter case). Readers (``eval.py``, loading a model) take no lock. A workdir this
    call created is removed again when the block fails before anything but the lock was written in it.
    """
    if importlib.util.find_spec("fcntl") is None:  # pragma: no cover - not POSIX
        yield
        return
    workdir = os.fspath(workdir)
    created = not os.path.isdir(workdir)
    os.makedirs(workdir, exist_ok=True)
    with _locked(workdir, created):
        yield


@contextlib.contextmanager
def _locked(workdir: str, created: bool) -> Iterator[None]:
    import fcntl

    with open(os.path.join(workdir, LOCK), "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = True
        except BlockingIOError:  # held through another open file, i.e. by another trainer
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise WorkdirBusyError(f"{workdir} is in use by {holder}, which is training into it; wait for it to "
                                   "finish or use another --workdir") from None
        except OSError as e:  # a file system without flock (e.g. ENOLCK on some NFS mounts)
            warnings.warn(f"cannot lock {workdir} ({e}); training into it unlocked", stacklevel=3)
            locked = False
        if not locked:
            yield
            return
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        f.flush()
        try:
            yield
        except BaseException:  # while still holding the lock: a run that failed before writing anything leaves
            if created and os.listdir(workdir) == [LOCK]:  # no trace (never another trainer's workdir)
                os.remove(os.path.join(workdir, LOCK))
                os.rmdir(workdir)
            raise
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _on_this_host(leaf):
    """The restore target of one leaf: its shape and dtype, placed where ``leaf`` is, or on the default device
    where it is abstract (``jax.eval_shape``) or a NumPy array. Without a placement orbax would use the sharding
    it was saved with, which fails on a machine with other devices (a data-parallel run evaluated on one device),
    and would restore the *stored* shape whatever the target's (a (3,) array into a (4,) target, silently); with
    one it refuses another shape."""
    target = ocp.utils.to_shape_dtype_struct(leaf)
    if isinstance(target, jax.ShapeDtypeStruct) and target.sharding is None:
        target = jax.ShapeDtypeStruct(target.shape, target.dtype,
                                      sharding=jax.sharding.SingleDeviceSharding(jax.devices()[0]))
    return target


#: Status codes and phrases of tensorstore's errors for files it cannot read (as opposed to orbax's structure
#: and shape comparison, a config mismatch).
_READ_ERRORS = ("DATA_LOSS", "NOT_FOUND", "Error reading", "Error opening", "Error decoding")


def _is_damage(err: BaseException) -> bool:
    """Whether a restore error says the files are damaged: tensorstore's read errors, or the bare ``Exception``
    orbax wraps them in; not out-of-memory, permission or other errors, which are passed on as they are."""
    return type(err) is Exception or any(code in str(err) for code in _READ_ERRORS)


class RunCheckpoints:
    """Latest and best-by-validation checkpoints of one workdir."""

    def __init__(self, workdir: str | os.PathLike, keep_latest: int = 2, *, create: bool = True):
        """``create=False`` for readers: nothing is created on disk (a mistyped path stays absent)."""
        workdir = os.path.abspath(os.fspath(workdir))
        self.workdir = workdir
        opts = lambda n: ocp.CheckpointManagerOptions(max_to_keep=n, create=create)
        self.latest = ocp.CheckpointManager(os.path.join(workdir, LATEST), options=opts(keep_latest))
        self.best = ocp.CheckpointManager(os.path.join(workdir, BEST), options=opts(1))

    def save(self, epoch: int, tree: Any, meta: Mapping, *, best: bool = False) -> None:
        """Saves ``latest/<epoch>`` (async) and, with ``best``, ``best/<epoch>`` first and to completion: a
        ``latest`` checkpoint whose meta names ``epoch`` as the best one then never exists without that best
        checkpoint, whenever the process dies."""
        args = lambda: ocp.args.Composite(state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(dict(meta)))
        if best and epoch not in self.best.all_steps():
            self.best.save(epoch, args=args(), force=True)
            self.best.wait_until_finished()
        if epoch not in self.latest.all_steps():
            self.latest.save(epoch, args=args(), force=True)

    def wait(self) -> None:
        self.latest.wait_until_finished()
        self.best.wait_until_finished()

    def close(self) -> None:
        self.latest.close()
        self.best.close()

    def _manager(self, which: str) -> ocp.CheckpointManager:
        if which not in WHICH:
            raise ValueError(f"which must be one of {WHICH}, got {which!r}")
        return getattr(self, which)

    def latest_epoch(self, which: str = "latest") -> int | None:
        return self._manager(which).latest_step()

    def _reading(self, which: str, epoch: int | None, read: Callable[[ocp.CheckpointManager, int], Any],
                 missing: Callable[[], Any]) -> Any:
        """``read(manager, step)`` of checkpoint ``epoch`` (``None``: the newest; ``missing()`` where there is
        none). Readers take no lock: a trainer writing this workdir may remove the listed checkpoint (its
        ``max_to_keep``) before or while it is read. A read that fails on a checkpoint no longer on disk is
        retried on the newest one (``epoch=None``), or says what happened (a named ``epoch``), instead of calling
        a good checkpoint damaged."""
        mngr = self._manager(which)
        if epoch is not None and epoch not in mngr.all_steps():
            mngr.reload()  # the manager lists the steps of when it was opened: one saved since is read too
            if epoch not in mngr.all_steps():
                raise FileNotFoundError(f"no checkpoint {mngr.directory}/{epoch} (it holds "
                                        f"{list(mngr.all_steps())})")
        for attempt in range(_READ_RETRIES):
            step = mngr.latest_step() if epoch is None else epoch
            if step is None:
                return missing()
            try:
                return read(mngr, step)
            except Exception:
                time.sleep(0.05 * (attempt + 1))  # a removal in progress: let it finish
                mngr.reload()
                if step in mngr.all_steps():  # still there: the read error is the checkpoint's own
                    raise
                if epoch is not None:
                    raise FileNotFoundError(f"checkpoint {mngr.directory}/{step} was removed while it was read: "
                                            f"a run is training into {self.workdir} (it keeps the newest ones "
                                            "only); read the newest, or wait until it has finished") from None
        raise FileNotFoundError(f"the newest checkpoint of {mngr.directory} was removed {_READ_RETRIES} times while "
                                f"it was read: a run is training into {self.workdir}; retry, or wait until it has "
                                "finished")

    def read_meta(self, which: str = "latest", epoch: int | None = None) -> Mapping | None:
        """The metadata (``epoch``, ``config``, ...) stored with a checkpoint; ``None`` without one.
        :class:`CheckpointCorruptError` when it is missing or unreadable."""
        return self._reading(which, epoch, self._read_meta, lambda: None)

    def _read_meta(self, mngr: ocp.CheckpointManager, epoch: int) -> Mapping:
        self._check_items(mngr, epoch)
        try:
            meta = mngr.restore(epoch, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        except Exception as e:  # noqa: BLE001 - orbax raises bare Exceptions for unreadable files
            if _is_damage(e) or isinstance(e, (json.JSONDecodeError, UnicodeDecodeError)):
                raise self._corrupt(mngr, epoch, e) from e
            raise
        if not isinstance(meta, Mapping) or not isinstance(meta.get("config"), Mapping):
            raise self._corrupt(mngr, epoch, "its meta holds no config")
        return meta

    def _check_items(self, mngr: ocp.CheckpointManager, epoch: int) -> None:
        missing = [item for item in ("state", "meta") if not os.path.isdir(os.path.join(mngr.directory, str(epoch),
                                                                                          item))]
        if missing:
            raise self._corrupt(mngr, epoch, f"no {' or '.join(missing)} item")

    def _corrupt(self, mngr: ocp.CheckpointManager, epoch: int, why) -> CheckpointCorruptError:
        older = [e for e in mngr.all_steps() if e < epoch]
        hint = (f"; remove it to resume or evaluate from {mngr.directory}/{max(older)}" if older else "")
        return CheckpointCorruptError(f"checkpoint {mngr.directory}/{epoch} is damaged or incomplete "
                                      f"({(str(why).strip().splitlines() or [''])[0][:200]}){hint}")

    def restore(self, abstract_tree: Any, which: str = "latest", epoch: int | None = None) -> tuple[Any, dict]:
        """Restores ``(tree, meta)`` into the structure/shapes of ``abstract_tree`` (e.g. from
        ``jax.eval_shape``). Raises :class:`ConfigMismatchError` on a structure/shape mismatch."""
        def missing():
            raise FileNotFoundError(f"no {which} checkpoint in {self.workdir}")

        abstract = jax.tree_util.tree_map(_on_this_host, abstract_tree)
        return self._reading(which, epoch, lambda mngr, step: self._restore(mngr, step, abstract), missing)

    def _restore(self, mngr: ocp.CheckpointManager, epoch: int, abstract: Any) -> tuple[Any, dict]:
        self._check_items(mngr, epoch)
        mismatch = lambda why: ConfigMismatchError(
            f"checkpoint {mngr.directory}/{epoch} does not fit the model built from this config (different "
            f"architecture or preprocessing?): {str(why)[:500]}")
        try:
            out = mngr.restore(epoch, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                              meta=ocp.args.JsonRestore()))
        except Exception as e:  # noqa: BLE001 - out of memory, permissions, ...: passed on as they are
            if _is_damage(e):
                raise self._corrupt(mngr, epoch, e) from e
            if isinstance(e, (ValueError, KeyError, TypeError)):  # orbax's structure and shape comparison
                raise mismatch(e) from e
            raise
        return out["state"], out["meta"]


def _require_dir(workdir) -> None:
    if not os.path.isdir(workdir):
        raise FileNotFoundError(f"{workdir}: no such run directory")


def _subrun_hint(workdir) -> str:
    """A hint for a parent directory of runs (STEP+Aug writes ``classifier/`` and ``generator/``) or for a
    vmapped multi-run directory (k-fold / seeds: results and config only, no checkpoints)."""
    try:
        with open(os.path.join(workdir, "config.json")) as f:
            if json.load(f).get("task") == "classifier_runs":
                return ("; it holds vmapped k-fold/seed runs (configs/step_cv.py), which keep results.json and "
                        "metrics.jsonl but no checkpoints: train one run with train.py for a model to evaluate")
    except (OSError, ValueError):
        pass
    subs = [d for d in ("classifier", "generator") if os.path.isdir(os.path.join(workdir, d, BEST))]
    return f"; did you mean {' or '.join(os.path.join(os.fspath(workdir), d) for d in subs)}?" if subs else ""


def restore_run(workdir: str | os.PathLike, task: str, abstract_tree_fn, which: str = "best",
                hints: Mapping[str, str] | None = None,
                read_saved_config: Callable[[dict], dict] | None = None) -> tuple[Any, Any]:
    """``(cfg, tree)`` of the ``which`` checkpoint of a ``task`` run ('classifier', 'generator', ...).

    The config is read from the checkpoint; ``abstract_tree_fn(cfg)`` returns the pytree (e.g. from
    ``jax.eval_shape``) the arrays are restored into. Raises ``FileNotFoundError`` without a checkpoint,
    ``ValueError`` when the run is of another task (``hints[that task]``, if any, is appended) and
    :class:`ConfigMismatchError` when the arrays do not fit. ``read_saved_config`` maps the stored config first
    (e.g. :func:`stepjax.training.model_config.read_saved_model_config`).
    """
    import ml_collections

    workdir = os.fspath(workdir)
    _require_dir(workdir)
    ckpts = RunCheckpoints(workdir, create=False)
    try:
        meta = ckpts.read_meta(which)
        if meta is None:
            raise FileNotFoundError(f"{workdir}: no {which!r} checkpoint{_subrun_hint(workdir)}")
        saved_task = meta["config"].get("task")
        if saved_task != task:
            raise ValueError(f"{workdir} holds a {saved_task!r} run, not a {task}{(hints or {}).get(saved_task, '')}")
        cfg = ml_collections.ConfigDict((read_saved_config or dict)(meta["config"]))
        tree, _ = ckpts.restore(abstract_tree_fn(cfg), which=which)
    finally:
        ckpts.close()
    return cfg, tree


def read_run_config(workdir: str | os.PathLike) -> dict:
    """The config stored with the newest checkpoint of ``workdir`` (best, else latest), as stored (see
    :func:`stepjax.training.model_config.read_saved_model_config` for the model it describes)."""
    _require_dir(workdir)
    ckpt = RunCheckpoints(workdir, create=False)
    try:
        meta = ckpt.read_meta("best") or ckpt.read_meta("latest")
    finally:
        ckpt.close()
    if meta is None:
        raise FileNotFoundError(f"{workdir}: no checkpoint found (expected {LATEST}/ or {BEST}/ inside)"
                                f"{_subrun_hint(workdir)}")
    return meta["config"]
