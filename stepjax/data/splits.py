"""Seeded, stratified train/validation/test splits and k-fold, optionally grouped by subject.

The official code uses ``train_test_split(test_size=0.1)`` with no seed, no stratification and no
validation set, and selects models on the test set (bug 12). Here every split is a pure function of
``(labels, groups, seed)``; with ``groups`` (subject / actor ids) no group appears in two parts.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from stepjax.utils import is_integer


class Split(NamedTuple):
    """Index arrays (int64, sorted) into the dataset."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def _units(labels: np.ndarray, groups: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Stratification units: each sample, or each group labelled by its most frequent class."""
    if groups is None:
        return np.arange(len(labels)), labels
    groups = np.asarray(groups)
    if groups.shape != labels.shape:
        raise ValueError(f"groups shape {groups.shape} != labels shape {labels.shape}")
    ok = (groups.dtype.kind in "iuUS" or (groups.dtype.kind == "f" and np.all(np.isfinite(groups)))
          or (groups.dtype.kind == "O" and all(isinstance(g, (str, bytes)) or is_integer(g) for g in groups.flat)))
    if not ok:  # NaN ids are never equal to themselves (their gaits would fall out of every part); None
        raise ValueError(f"groups must be integer or string ids (finite if float), got dtype {groups.dtype}"
                         + (" with NaN/inf" if groups.dtype.kind == "f" else " holding other objects"
                            if groups.dtype.kind == "O" else ""))
    uniq, inverse = np.unique(groups, return_inverse=True)
    counts = np.zeros((len(uniq), int(labels.max()) + 1), np.int64)
    np.add.at(counts, (inverse, labels), 1)
    return uniq, counts.argmax(1)


def _expand(unit_ids: np.ndarray, labels: np.ndarray, groups: npt.ArrayLike | None) -> np.ndarray:
    if groups is None:
        return np.sort(unit_ids)
    return np.sort(np.flatnonzero(np.isin(np.asarray(groups), unit_ids)))


def _check(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
    if labels.dtype.kind not in "iuf":
        raise ValueError(f"labels must be non-negative whole class indices, got dtype {labels.dtype}")
    bad = labels < 0
    if labels.dtype.kind == "f":  # float labels were once truncated (1.7 -> 1)
        bad |= ~np.isfinite(labels) | (labels != np.round(labels))
    if bad.any():
        raise ValueError(f"labels must be non-negative whole class indices, got {labels[bad][:5].tolist()}")
    return labels.astype(np.int64)


def _check_seed(seed) -> int:
    if not is_integer(seed) or seed < 0:
        raise ValueError(f"split seed must be an integer >= 0 (data.split_seed in a config), got {seed!r}")
    return int(seed)


def train_val_test_split(labels: npt.ArrayLike, fractions: tuple[float, float, float] = (0.7, 0.2, 0.1),
                         seed: int = 0, groups: npt.ArrayLike | None = None, min_val_per_class: int = 0) -> Split:
    """Stratified split into train / validation / test index sets.

    Each class of samples is shuffled with ``default_rng(seed)`` and cut at the cumulative ``fractions``
    (rounded per class, half to even), so class proportions are kept in every part as closely as integer counts
    allow; the part sizes can differ from ``fraction * N`` by up to about half a gait per class (4 x 75 gaits at
    (0.7, 0.2, 0.1): 208 / 64 / 28). With ``groups`` the units are the groups, each stratified by its most
    frequent class: a subject who walks in several emotions moves all of them, so the parts' class shares are
    only approximately those of the data (1,200 walkers of 150 subjects: class shares in the validation and test
    parts off 0.25 by ~0.035 in the median, up to ~0.08). ``min_val_per_class``: every class with more units than
    that gives at least that many to validation, taken from its training share while one training unit is left,
    then from its test share (STEP+Aug's inner split of a few subjects per class, where rounding would leave
    validation empty).
    """
    labels = _check(labels)
    fr = np.asarray(fractions, np.float64)
    if fr.shape != (3,) or np.any(fr < 0) or not np.isclose(fr.sum(), 1.0):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    if not is_integer(min_val_per_class) or min_val_per_class < 0:
        raise ValueError(f"min_val_per_class must be an integer >= 0, got {min_val_per_class!r}")
    units, unit_labels = _units(labels, None if groups is None else np.asarray(groups))
    rng = np.random.default_rng(_check_seed(seed))
    parts: list[list[np.ndarray]] = [[], [], []]
    for c in np.unique(unit_labels):
        members = rng.permutation(units[unit_labels == c])
        cuts = np.round(np.cumsum(fr)[:2] * len(members)).astype(int)
        if 0 < min_val_per_class < len(members):
            cuts = _with_min_val(cuts, len(members), min_val_per_class)
        for i, chunk in enumerate(np.split(members, cuts)):
            parts[i].append(chunk)
    out = [_expand(np.concatenate(p) if p else np.array([], int), labels, groups) for p in parts]
    return Split(*out)


def _with_min_val(cuts: np.ndarray, n: int, min_val: int) -> np.ndarray:
    """Cut points ``[end of train, end of val]`` of ``n`` units moved so that validation holds ``min_val`` units:
    taken from train while it keeps one unit, then from test."""
    n_train, n_val = int(cuts[0]), int(cuts[1] - cuts[0])
    from_train = min(max(min_val - n_val, 0), max(n_train - 1, 0))
    n_train, n_val = n_train - from_train, n_val + from_train
    n_val += min(max(min_val - n_val, 0), n - n_train - n_val)  # from test
    return np.array([n_train, n_train + n_val])


def stratified_kfold(labels: npt.ArrayLike, k: int = 5, seed: int = 0,
                     groups: npt.ArrayLike | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` stratified folds ``[(train_idx, test_idx)]``; every sample is tested exactly once."""
    labels = _check(labels)
    if not is_integer(k) or k < 2:
        raise ValueError(f"k must be an integer >= 2, got {k!r}")
    units, unit_labels = _units(labels, None if groups is None else np.asarray(groups))
    if len(units) < k:
        raise ValueError(f"cannot make {k} folds from {len(units)} samples/groups")
    rng = np.random.default_rng(_check_seed(seed))
    fold_of = np.empty(len(units), np.int64)
    offset = 0
    for c in np.unique(unit_labels):
        idx = rng.permutation(np.flatnonzero(unit_labels == c))
        fold_of[idx] = (np.arange(len(idx)) + offset) % k  # round-robin keeps folds balanced
        offset += len(idx)
    folds = []
    for f in range(k):
        test = _expand(units[fold_of == f], labels, groups)
        train = _expand(units[fold_of != f], labels, groups)
        folds.append((train, test))
    return folds


def kfold_with_validation(labels: npt.ArrayLike, k: int = 5, seed: int = 0, val_fraction: float = 0.2,
                          groups: npt.ArrayLike | None = None) -> list[Split]:
    """k-fold test folds, each training part split again (stratified) into train and validation."""
    labels = _check(labels)
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction (runs.val_fraction) must lie in (0, 1), got {val_fraction!r}")
    out = []
    for f, (train, test) in enumerate(stratified_kfold(labels, k, seed, groups)):
        sub_groups = None if groups is None else np.asarray(groups)[train]
        inner = train_val_test_split(labels[train], (1 - val_fraction, val_fraction, 0.0),
                                     seed=seed * 1000 + f + 1, groups=sub_groups)
        out.append(Split(train[inner.train], train[inner.val], test))
    return out
