"""From a data config to device-ready, split, preprocessed arrays.

``load_source(cfg)`` reads raw gaits (built-in walkers or E-Gait HDF5 files) into one convention;
``fit_preprocessor(train_gaits, cfg)`` fits everything that depends on data on the **training split
only** (alignment reference, affective-feature normalisation); ``Preprocessor.__call__`` is a pure
jnp function of raw gaits, used for training, evaluation and :func:`stepjax.load_classifier` alike,
so inference reproduces training preprocessing exactly.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import warnings
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from stepjax import NUM_CLASSES
from stepjax import affective as aff
from stepjax.data import preprocess as pp
from stepjax.data import splits
from stepjax.skeleton import mirror


class RawDataset(NamedTuple):
    """Raw (un-aligned) fixed-length gaits ``(N, T, 16, 3)`` float32, labels int32 ``(N,)``, subject ids, and
    ``lengths`` int32 ``(N,)``: the real frames of gaits that were tiled to ``T`` (``None``: all ``T`` are real).
    ``subjects (N,)``: who walked each gait (splits keep a subject in one part), ``None`` where unknown; ``keys``:
    the gaits' names in the source (E-Gait keys, BVH file names), ``None`` for the walkers."""

    gaits: np.ndarray
    labels: np.ndarray
    subjects: np.ndarray | None
    keys: tuple[str, ...] | None = None
    lengths: np.ndarray | None = None
    files: tuple[str, ...] = ()  # the files the data was read from (none for procedural walkers)

    def lengths_at(self, idx) -> np.ndarray | None:
        """``lengths[idx]``, or ``None`` when every frame is real."""
        return None if self.lengths is None else self.lengths[idx]

    def fingerprint(self) -> str | None:
        """SHA-256 (hex) of the bytes of the files the data was read from, in order: recorded with a run's split
        (``split.json``) so that evaluating or resuming it on files that changed since is refused. The files, not
        the arrays: parsing (BVH forward kinematics) rounds differently on other CPUs, the files do not. ``None``
        for data read from no file (the walkers are a function of the config, which is compared anyway)."""
        if not self.files:
            return None
        h = hashlib.sha256()
        for path in self.files:
            with open(path, "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
        return h.hexdigest()


def load_source(cfg) -> RawDataset:
    """Reads ``cfg.source``: ``'walkers'`` (procedural, seeded), ``'egait'`` (``cfg.path`` [+ ``cfg.labels_path``]) or
    ``'bandai'`` (BVH motion capture, ``cfg.path``; :func:`load_bandai_windows`)."""
    policy = cfg.get("length_policy", "tile")
    if policy not in pp.LENGTH_POLICIES:  # refused for every source: it is stored with the run and used by eval
        raise ValueError(f"unknown data.length_policy {policy!r}; choose one of {pp.LENGTH_POLICIES}")
    if cfg.source == "walkers":
        from stepjax.data.walkers import make_walkers

        if not cfg.num_gaits or cfg.num_gaits < 1:
            raise ValueError(f"data.num_gaits must be >= 1 for the walker source, got {cfg.num_gaits!r}")
        w = make_walkers(cfg.num_gaits, seed=cfg.seed, num_frames=cfg.num_frames, difficulty=cfg.get("difficulty", 1.0))
        return RawDataset(np.asarray(w.gaits, np.float32), np.asarray(w.labels, np.int32),
                          np.asarray(w.subjects, np.int32))
    if cfg.source == "egait":
        from stepjax.data.egait import read_egait

        if not cfg.get("path"):
            raise ValueError("data.source='egait' needs --config.data.path=/path/to/features.h5 "
                             "(and data.labels_path unless labels are in the key suffix)")
        data = read_egait(cfg.path, cfg.get("labels_path") or None)
        pp.check_min_frames(data.gaits, cfg.path, data.keys)
        length, policy = cfg.get("num_frames") or None, cfg.get("length_policy", "tile")
        gaits = pp.to_fixed_length(data.gaits, length, policy)
        files = (cfg.path,) + ((cfg.labels_path,) if cfg.get("labels_path") else ())
        return RawDataset(gaits, data.labels, window_groups(data.keys), data.keys,
                          pp.real_frame_counts(data.gaits, length, policy), tuple(map(os.fspath, files)))
    if cfg.source == "bandai":
        return load_bandai_windows(cfg)
    raise ValueError(f"unknown data.source {cfg.source!r}; choose 'walkers', 'egait' or 'bandai'")


def window_groups(keys: Sequence[str]) -> np.ndarray | None:
    """Clip ids ``(N,)`` int32 of E-Gait keys that name windows of clips, ``'<stem>_f<first frame>'`` (what
    ``stepjax.data.bvh --window`` writes; a grouped split then keeps the windows of one clip, which overlap and
    share the actor, in one part); each other key is its own clip. ``None`` where no key names a window
    (E-Gait itself: every gait independent as far as the file tells)."""
    from stepjax.data.bvh import window_stem

    stems = [window_stem(k) for k in keys]
    if stems == list(keys):
        return None
    return np.unique(stems, return_inverse=True)[1].astype(np.int32).reshape(-1)


def load_bandai_windows(cfg) -> RawDataset:
    """The emotion-styled walks of the Bandai Namco Research Motion Dataset (dataset-1; real motion capture)
    cut into ``cfg.num_frames``-frame windows every ``cfg.hop`` frames (default: no overlap).

    Labels from the style (angry 0, normal = Neutral 1, happy 2, sad 3); ``subjects`` = the clip index, so the
    subject-grouped split (``group_by_subject=True``) never puts windows of one clip into two parts (windows of a
    clip overlap and share the actor's idiosyncrasies). Gaits are root-relative, 30 fps, facing -Z (as E-Gait);
    a clip shorter than a window becomes one window brought to length by ``cfg.length_policy``.
    ``cfg.contents`` (optional) restricts the walk directions (default: walk, walk-back, walk-left, walk-right).
    """
    from stepjax.data.bvh import BANDAI_WALK_CONTENTS, bandai_data_folder, load_bandai_emotion_walks, window_clip

    if not cfg.get("path"):
        raise ValueError("data.source='bandai' needs --config.data.path=/path/to/bandai-walk (the folder holding "
                         "data/dataset-1_<content>_<style>_<take>.bvh)")
    frames = int(cfg.get("num_frames") or 0)
    if frames < 4:
        raise ValueError(f"data.num_frames must be >= 4 for Bandai windows, got {frames}")
    hop = int(cfg.get("hop") or frames)
    contents = tuple(cfg.get("contents") or BANDAI_WALK_CONTENTS)
    walks = load_bandai_emotion_walks(cfg.path, target_fps=30, root_relative=True, contents=contents)
    gaits, labels, clips, keys = [], [], [], []
    for clip, (stem, label, gait) in enumerate(walks):
        for key, window in window_clip(stem, gait, frames, hop).items():
            gaits.append(window)
            labels.append(label)
            clips.append(clip)
            keys.append(key)
    policy = cfg.get("length_policy", "tile")
    pp.check_min_frames(gaits, cfg.path, keys)
    fixed = pp.to_fixed_length(gaits, frames, policy)
    files = tuple(os.path.join(bandai_data_folder(cfg.path), f"{stem}.bvh") for stem, _, _ in walks)
    return RawDataset(np.asarray(fixed, np.float32), np.asarray(labels, np.int32), np.asarray(clips, np.int32),
                      tuple(keys), pp.real_frame_counts(gaits, frames, policy), files)


#: Frames per gait of a config whose ``data.num_frames`` is 0 and of runs that did not record it (the official 75).
DEFAULT_NUM_FRAMES = 75


def trained_num_frames(cfg) -> int:
    """Frames per gait a run trained on: ``cfg.data.num_frames``, which training records when the config said 0
    ('the longest gait of the source'; :func:`record_num_frames`), else :data:`DEFAULT_NUM_FRAMES`."""
    return int(cfg["data"].get("num_frames") or DEFAULT_NUM_FRAMES)


def record_num_frames(cfg_json: dict, train_gaits: np.ndarray) -> bool:
    """Writes the length actually used into the run's saved config where it said 0, so that every loader
    (``load_classifier``, ``load_generator``, STEP+Aug, ``eval.py``) rebuilds the model for that length.
    Returns whether it did (pass it to ``RunProgress(frames_recorded=...)``)."""
    if cfg_json["data"].get("num_frames"):
        return False
    cfg_json["data"]["num_frames"] = int(train_gaits.shape[1])
    return True


def _split_advice(grouped: bool, knob: str) -> str:
    """How to mend a lopsided split or a class missing from a part, for the warnings."""
    if grouped:
        return (f"with few subjects per class the grouped split moves whole subjects: use more gaits/subjects or "
                f"other {knob} (data.group_by_subject=False only where gaits of one subject or clip are independent)")
    return f"rounding per class moves whole gaits: use more gaits or other {knob}"


def warn_if_lopsided(split: splits.Split, fractions, num_gaits: int, *, grouped: bool = True,
                     what: str = "the split", knob: str = "data.split fractions") -> None:
    """Warns when a part of the split is far from its fraction (off by more than half of it and 5 points): a
    grouped split of few subjects per class moves whole subjects, and rounding per class can leave e.g. 5 %
    for validation instead of 15 % (model selection on a handful of gaits). ``what`` names the split and
    ``knob`` the option that sets it, for the message."""
    parts = {name: len(getattr(split, name)) / max(num_gaits, 1) for name in ("train", "val", "test")}
    off = [f"{name} {share:.0%} (asked {f:.0%})" for (name, share), f in zip(parts.items(), fractions)
           if abs(share - f) > max(0.05, 0.5 * f)]
    if off:
        warnings.warn(f"{what} of {num_gaits} gaits is lopsided: {', '.join(off)}; {_split_advice(grouped, knob)}",
                      stacklevel=2)


def _group_name(data_cfg) -> str:
    """What the groups of a source are, for messages."""
    return {"egait": "clips (keys <clip>_f<first frame>)", "bandai": "clips"}.get(data_cfg.get("source"), "subjects")


def warn_if_ungrouped(raw: RawDataset, data_cfg) -> None:
    """Warns when ``data.group_by_subject=False`` splits gaits that share subjects or clips (walkers' subjects,
    Bandai or converted BVH windows, which overlap) gait by gait: gaits of one subject or clip then sit in
    train and test, and the test score is not one on unseen walkers."""
    if raw.subjects is None or data_cfg.get("group_by_subject", True):
        return
    groups = len(np.unique(raw.subjects))
    if groups < len(raw.subjects):
        warnings.warn(f"data.group_by_subject=False splits {len(raw.subjects)} gaits of {groups} subjects or clips "
                      f"gait by gait: gaits of one subject or clip (windows of one clip share frames) can sit in "
                      f"train and test, which inflates the test score; keep data.group_by_subject=True for a score "
                      f"on unseen subjects or clips", UserWarning, stacklevel=3)


def is_grouped(raw: RawDataset, data_cfg) -> bool:
    """Whether the split of ``raw`` is grouped by subject (``data.group_by_subject`` and subject ids known)."""
    return bool(data_cfg.get("group_by_subject", True)) and raw.subjects is not None


def model_num_classes(cfg) -> int:
    """The classes a run's model predicts: ``cfg.model.num_classes``, else :data:`stepjax.NUM_CLASSES`."""
    return int((cfg.get("model") or {}).get("num_classes", NUM_CLASSES))


def check_labels_fit_model(labels: np.ndarray, num_classes: int) -> None:
    """Refuses data with labels ``>= num_classes``, which the run's model cannot predict (inside the jitted step
    such a label makes the loss NaN, which would read as a learning-rate problem)."""
    top = int(np.max(labels)) if len(labels) else -1
    if top >= num_classes:
        raise ValueError(f"the data has labels up to {top} ({int(np.sum(np.asarray(labels) >= num_classes))} gaits "
                         f">= {num_classes}) but the model predicts {num_classes} classes (model.num_classes); set "
                         f"model.num_classes to at least {top + 1} or leave those gaits out")


def warn_if_classes_missing(run_splits: Sequence[splits.Split], labels: np.ndarray,
                            run_names: Sequence[str] | None = None, num_classes: int = NUM_CLASSES, *,
                            grouped: bool = True) -> None:
    """Warns when one of the ``num_classes`` classes has no gait in the data at all (a 4-class model would be
    trained and scored on fewer classes, with healthy-looking numbers), and when a class of the data has no gait
    in a run's training part (the model never learns it) or in its validation part (model selection ignores it):
    a grouped split or fold with one or two subjects per class moves each class whole. ``run_names`` label the
    runs of a k-fold protocol (e.g. ``'repeat 0 fold 3'``). Empty parts are left to the callers, which refuse
    them."""
    from stepjax import LABEL_NAMES

    present = np.unique(labels)
    absent = np.setdiff1d(np.arange(num_classes), present)
    if absent.size:
        names = ", ".join(LABEL_NAMES[c] if c < len(LABEL_NAMES) else str(c) for c in absent)
        warnings.warn(f"the data has no gait of {names}: the {num_classes}-class model is trained, selected and "
                      f"tested on {present.size} class(es) only, and its accuracy says nothing about the others",
                      stacklevel=2)
    problems = []
    for i, split in enumerate(run_splits):
        for part in ("train", "val"):
            idx = getattr(split, part)
            missing = np.setdiff1d(present, labels[idx])
            if len(idx) and missing.size:
                names = ", ".join(LABEL_NAMES[c] if c < len(LABEL_NAMES) else str(c) for c in missing)
                where = f"{run_names[i]} " if run_names is not None else ""
                problems.append(f"{where}{'training' if part == 'train' else 'validation'} part has no {names}")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        warnings.warn(f"classes missing from a split: {'; '.join(problems[:3])}{more}; "
                      f"{_split_advice(grouped, 'fractions or fewer folds')}", stacklevel=2)


#: The share of the training part that selects a run of ``data.within_training_split`` (STEP+Aug's generator).
DEFAULT_INNER_VAL_FRACTION = 0.15


def outer_split(raw: RawDataset, cfg) -> splits.Split:
    """Seeded stratified train/val/test split of ``cfg.split`` (grouped by subject when known and
    ``cfg.group_by_subject``): the split of every classifier with this data config."""
    groups = raw.subjects if is_grouped(raw, cfg) else None
    return splits.train_val_test_split(raw.labels, tuple(cfg.split), seed=cfg.split_seed, groups=groups)


def split_dataset(raw: RawDataset, cfg) -> splits.Split:
    """The run's split: :func:`outer_split`, or with ``cfg.within_training_split`` (STEP+Aug's generator) an inner
    stratified (grouped) split of the outer *training* part into train and validation by ``cfg.inner_val_fraction``
    (at least one gait or subject per class in validation where the class has two), with no test part: such a run
    never sees a gait of the outer validation or test part."""
    outer = outer_split(raw, cfg)
    if not cfg.get("within_training_split", False):
        return outer
    fraction = inner_val_fraction(cfg)
    groups = raw.subjects[outer.train] if is_grouped(raw, cfg) else None  # type: ignore[index]  # is_grouped: not None
    inner = splits.train_val_test_split(raw.labels[outer.train], (1.0 - fraction, fraction, 0.0),
                                        seed=cfg.split_seed + 1, groups=groups, min_val_per_class=1)
    return splits.Split(outer.train[inner.train], outer.train[inner.val], np.array([], np.int64))


def inner_val_fraction(cfg) -> float:
    """The share of the training part that validates a ``within_training_split`` run (checked)."""
    return check_fraction(cfg.get("inner_val_fraction", DEFAULT_INNER_VAL_FRACTION), "data.inner_val_fraction")


def check_fraction(value, name: str) -> float:
    """``value`` as a float if it is a real number strictly between 0 and 1, else ``ValueError`` naming ``name``."""
    import numbers

    # (numbers.Real declares no comparison with int for the type checker; every Real compares at run time)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < 1:  # type: ignore[operator]
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    return float(value)


def split_fractions(cfg) -> tuple[float, float, float]:
    """The train / val / test shares of the whole data that :func:`split_dataset` aims at."""
    train, val, test = (float(f) for f in cfg.split)
    if cfg.get("within_training_split", False):
        inner = inner_val_fraction(cfg)
        return train * (1.0 - inner), train * inner, 0.0
    return train, val, test


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Preprocessor:
    """Pure preprocessing of raw gaits, fitted on the training split.

    Array fields (pytree leaves, saved in checkpoints): ``reference`` ``(16, 3)`` alignment pose,
    ``aff_center`` / ``aff_half_range`` ``(F,)`` affective normalisation, ``None`` without affective
    features (Baseline-STEP; no zero-size arrays: orbax cannot checkpoint those). Static fields: flags.
    """

    reference: jax.Array
    aff_center: jax.Array | None
    aff_half_range: jax.Array | None
    align: bool = dataclasses.field(default=True, metadata=dict(static=True))
    num_affective: int = dataclasses.field(default=0, metadata=dict(static=True))
    affective_official: bool = dataclasses.field(default=False, metadata=dict(static=True))
    time_step: float = dataclasses.field(default=1 / 30, metadata=dict(static=True))

    @classmethod
    def from_config(cls, cfg, reference, aff_center=None, aff_half_range=None,
                    num_affective: int | None = None) -> "Preprocessor":
        """The preprocessor of ``cfg`` (a config's ``preprocess`` section) with fitted arrays ``reference (16, 3)``
        and, with affective features, ``aff_center`` / ``aff_half_range (F,)``; ``num_affective`` overrides
        ``cfg.num_affective`` (the CVAE uses none)."""
        f = int(cfg.get("num_affective", 0)) if num_affective is None else num_affective
        return cls(jnp.asarray(reference, jnp.float32), aff_center, aff_half_range, align=bool(cfg.get("align", True)),
                   num_affective=f, affective_official=bool(cfg.get("affective_official", False)),
                   time_step=float(cfg.get("time_step", 1 / 30)))

    def gaits(self, raw: jax.Array) -> jax.Array:
        """Model input ``(N, T, 16, 3)``: aligned to the stored reference (official) or raw."""
        return pp.align_to_reference(raw, self.reference) if self.align else raw

    def affective(self, raw: jax.Array, lengths: jax.Array | None = None) -> jax.Array | None:
        """Normalised affective features ``(N, F)`` of raw gaits, or ``None`` for Baseline-STEP. ``lengths (N,)``:
        real frames of gaits tiled to a common length (:attr:`RawDataset.lengths`), ``None``: all frames."""
        if not self.num_affective:
            return None
        if self.aff_center is None or self.aff_half_range is None:
            raise ValueError(f"this Preprocessor computes {self.num_affective} affective features but holds no fitted "
                             "normalisation (aff_center, aff_half_range): build it with fit_preprocessor, or "
                             "Preprocessor.from_config with both arrays")
        feats = aff.affective_features(raw, lengths, official=self.affective_official, time_step=self.time_step,
                                       stride=self.num_affective == 29)
        return aff.normalize(feats, aff.Normalizer(self.aff_center, self.aff_half_range))

    def __call__(self, raw: jax.Array, lengths: jax.Array | None = None) -> tuple[jax.Array, jax.Array | None]:
        return self.gaits(raw), self.affective(raw, lengths)


def _check_finite_features(feats: np.ndarray, official: bool) -> None:
    """One non-finite training feature would make its normalisation statistics, hence that feature of every
    gait, NaN: refused, naming the gaits and features."""
    bad = ~np.isfinite(feats)
    if bad.any():
        gaits, features = np.flatnonzero(bad.any(1)), np.flatnonzero(bad.any(0))
        raise ValueError(
            f"affective features {features.tolist()} of {len(gaits)} training gait(s) (indices in the training "
            f"split: {gaits[:10].tolist()}) are not finite; "
            + ("the official formulas (preprocess.affective_official=True) give NaN for degenerate poses "
               "(a zero-length limb vector, Heron's formula on a flat triangle): use affective_official=False "
               "or remove those gaits" if official else "check those gaits for repeated or collapsed joints"))


def fit_preprocessor(train_gaits: np.ndarray, cfg, lengths: np.ndarray | None = None) -> Preprocessor:
    """Fits the alignment reference and the affective normalisation on training gaits ``(N, T, 16, 3)`` only.

    ``cfg.reference``: ``'first'`` (official: root-centred first frame of the first training gait)
    or ``'mean'`` (mean root-centred first frame over the training gaits; less arbitrary).
    ``lengths``: real frames per gait (:attr:`RawDataset.lengths`), ``None`` when all are real.
    """
    centred = np.asarray(pp.root_center(train_gaits[:, 0]))
    if cfg.reference == "first":
        reference = centred[0]
    elif cfg.reference == "mean":
        reference = centred.mean(0)
    else:
        raise ValueError(f"unknown preprocess.reference {cfg.reference!r}; choose 'first' or 'mean'")
    num_aff = int(cfg.num_affective)
    center: jax.Array | None
    half: jax.Array | None
    if num_aff not in (0, 27, 29):
        raise ValueError(f"preprocess.num_affective must be 0, 27 or 29, got {num_aff}")
    if num_aff:
        feats = _chunked(functools.partial(_affective_jit, official=bool(cfg.affective_official),
                                           time_step=float(cfg.time_step), stride=num_aff == 29),
                         np.asarray(train_gaits, np.float32), lengths, 256)
        _check_finite_features(np.asarray(feats), bool(cfg.affective_official))
        norm = aff.fit_normalizer(feats)
        center, half = jnp.asarray(norm.center), jnp.asarray(norm.half_range)
    else:
        center = half = None
    return Preprocessor.from_config(cfg, reference, center, half)


class Arrays(NamedTuple):
    """Model-ready arrays of one split: ``gaits (N,T,16,3)``, ``affective (N,F)`` (F may be 0), ``labels (N,)``."""

    gaits: jax.Array
    affective: jax.Array
    labels: jax.Array


def apply_preprocessor(prep: Preprocessor, raw: np.ndarray, labels: np.ndarray, chunk: int = 256, *,
                       lengths: np.ndarray | None = None) -> Arrays:
    """Runs the jitted preprocessor over raw gaits in fixed-size chunks (the last one padded), so
    splits of any size, and preprocessors fitted on other splits (the fitted arrays are arguments, not
    constants), share one compiled function; returns device arrays. ``lengths``: real frames per gait
    (:attr:`RawDataset.lengths`), ``None`` when all are real."""
    gaits, feats = _chunked(functools.partial(_preprocess_jit, prep), raw, lengths, chunk)
    if feats is None:
        feats = jnp.zeros((gaits.shape[0], 0), gaits.dtype)
    return Arrays(gaits, feats, jnp.asarray(labels, jnp.int32))


@jax.jit
def _preprocess_jit(prep: Preprocessor, raw: jax.Array, lengths: jax.Array | None):
    return prep(raw, lengths)


@functools.partial(jax.jit, static_argnames=("official", "time_step", "stride"))
def _affective_jit(raw: jax.Array, lengths: jax.Array | None, *, official: bool, time_step: float, stride: bool):
    return aff.affective_features(raw, lengths, official=official, time_step=time_step, stride=stride)


def _chunked(fn, raw: np.ndarray, lengths: np.ndarray | None, chunk: int):
    """``fn(raw, lengths)`` (a jitted function) over fixed-size chunks (the last one padded with copies of the
    last gait), so that every chunk has the one shape ``fn`` was compiled for."""
    n = len(raw)
    pad = lambda a: np.concatenate([a, np.repeat(a[-1:], (-n) % chunk, axis=0)]) if n % chunk else a  # noqa: E731
    padded = pad(raw)
    if lengths is not None:
        lengths = pad(aff.check_lengths(lengths, (n,), raw.shape[1]))  # on the host: jit could only clip them
    outs = [fn(jnp.asarray(padded[s:s + chunk]), None if lengths is None else jnp.asarray(lengths[s:s + chunk]))
            for s in range(0, len(padded), chunk)]
    return jax.tree_util.tree_map(lambda *a: jnp.concatenate(a)[:n], *outs)


def augment_mirror(raw: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Doubles a training set, gaits ``(N, T, 16, 3)`` and labels ``(N,)``, with left-right mirrored copies
    (emotion is mirror-invariant): ``(2N, T, 16, 3)``, ``(2N,)``."""
    return np.concatenate([raw, np.asarray(mirror(raw))]), np.concatenate([labels, labels])


def prepare(cfg, extra_train: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any]:
    """Loads, splits and preprocesses according to ``cfg.data`` / ``cfg.preprocess``.

    Returns a dict with ``preprocessor``, ``train`` / ``val`` / ``test`` :class:`Arrays`, ``split``
    and ``raw``. Everything fitted (reference pose, normalisation) sees the training split only.
    ``extra_train`` (raw gaits, labels), e.g. synthetic gaits, joins the training split only.
    """
    raw = load_source(cfg.data)
    pp.validate_gaits(raw.gaits, "dataset gaits")
    pp.warn_if_not_metres(raw.gaits, "dataset gaits")
    warn_if_ungrouped(raw, cfg.data)
    split = split_dataset(raw, cfg.data)
    grouped = is_grouped(raw, cfg.data)
    if cfg.data.get("within_training_split", False):  # STEP+Aug's generator: shares of the classifier's training part
        inner = inner_val_fraction(cfg.data)
        warn_if_lopsided(split, (1.0 - inner, inner, 0.0), len(split.train) + len(split.val), grouped=grouped,
                         what="the generator's split of the classifier's training part",
                         knob="aug.generator_val_fraction")
    else:
        warn_if_lopsided(split, split_fractions(cfg.data), len(raw.labels), grouped=grouped)
    check_labels_fit_model(raw.labels, model_num_classes(cfg))
    warn_if_classes_missing([split], raw.labels, num_classes=model_num_classes(cfg), grouped=grouped)
    groups = raw.subjects if grouped else None
    gaits = f"{len(raw.labels)} gaits" + (f" of {len(np.unique(groups))} {_group_name(cfg.data)}"
                                         if groups is not None else "")
    if len(split.train) == 0 or len(split.val) == 0:
        raise ValueError(f"split {tuple(cfg.data.split)} leaves an empty train or validation set ({gaits}"
                         + (f"; a grouped split moves whole {_group_name(cfg.data).split(' ')[0]}: use more of them "
                            "(data.group_by_subject=False splits gait by gait, putting gaits of one subject or "
                            "clip in train and test)" if grouped else "") + ")")
    if len(split.test) == 0 and split_fractions(cfg.data)[2] > 0:
        raise ValueError(f"split {tuple(cfg.data.split)} asks for a test set but leaves it empty "
                         f"({gaits}" + (f"; a grouped split moves whole {_group_name(cfg.data).split(' ')[0]}): use "
                         "more of them, data.group_by_subject=False (gaits of one subject or clip then sit in train "
                         "and test)," if grouped else "): use more gaits, a larger test fraction")
                         + " or a test fraction of 0 for no test set")
    train_raw, train_labels, train_len = raw.gaits[split.train], raw.labels[split.train], raw.lengths_at(split.train)
    if extra_train is not None:
        extra_gaits = np.asarray(extra_train[0], np.float32)
        pp.validate_gaits(extra_gaits, "extra training gaits")
        extra_labels = pp.validate_labels(extra_train[1], "extra training labels")
        if extra_gaits.shape[1:] != train_raw.shape[1:] or len(extra_gaits) != len(extra_labels):
            raise ValueError(f"extra training gaits {extra_gaits.shape} / labels {extra_labels.shape} do not "
                             f"match the real gaits {train_raw.shape[1:]}")
        train_raw = np.concatenate([train_raw, extra_gaits])
        train_labels = np.concatenate([train_labels, extra_labels])
        if train_len is not None:  # generated gaits have all their frames
            train_len = np.concatenate([train_len, np.full(len(extra_gaits), train_raw.shape[1], np.int32)])
    if cfg.data.get("augment_mirror", False):
        train_raw, train_labels = augment_mirror(train_raw, train_labels)
        train_len = None if train_len is None else np.concatenate([train_len, train_len])
    prep = fit_preprocessor(train_raw, cfg.preprocess, train_len)
    out = {"preprocessor": prep, "split": split, "raw": raw,
           "train": apply_preprocessor(prep, train_raw, train_labels, lengths=train_len)}
    for name in ("val", "test"):
        idx = getattr(split, name)
        out[name] = (apply_preprocessor(prep, raw.gaits[idx], raw.labels[idx], lengths=raw.lengths_at(idx))
                     if len(idx) else None)
    return out
