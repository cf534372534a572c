"""E-Gait HDF5 files: reader and writer.

Layout (STEP_REFERENCE section 1): ``features*.h5`` holds one dataset per gait key, shape ``(T_i, 48)``
with column ``3 * joint + coord`` (joint-major xyz, metres, Y up); ``labels*.h5`` holds an integer
scalar under the same key. Synthetic STEP-Gen files (``featuresCVAEGCN_1_2000.h5``) have no labels
file: their keys end in the emotion word (``00003_Happy``) and the label is decoded from it.

Keys are matched by name, never by position (the official loader zips ``keys()`` of the two files).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import re
from typing import Mapping, Sequence

import h5py
import numpy as np

from stepjax import LABEL_NAMES
from stepjax.data.preprocess import validate_labels
from stepjax.skeleton import NUM_COORDS, NUM_JOINTS

NUM_COLUMNS = NUM_JOINTS * NUM_COORDS
_KEY_LABEL = re.compile(r"_(" + "|".join(LABEL_NAMES) + r")$", re.IGNORECASE)


class EGaitFormatError(ValueError):
    """An E-Gait file does not follow the expected layout (message names file and key)."""


@dataclasses.dataclass(frozen=True)
class EGaitData:
    """Gaits of one E-Gait file pair.

    Attributes:
      keys: dataset keys, sorted by name (h5py order).
      gaits: one float32 array ``(T_i, 16, 3)`` per key (variable length).
      labels: int32 ``(N,)``, 0 Angry, 1 Neutral, 2 Happy, 3 Sad.
    """

    keys: tuple[str, ...]
    gaits: tuple[np.ndarray, ...]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([g.shape[0] for g in self.gaits], dtype=np.int32)


def label_from_key(key: str) -> int:
    """Label of a synthetic key such as ``00003_Happy`` (STEP's order Angry, Neutral, Happy, Sad)."""
    match = _KEY_LABEL.search(key)
    if match is None:
        raise EGaitFormatError(
            f"key {key!r} does not end in one of {LABEL_NAMES}; pass a labels file for such data (read_egait's "
            f"labels_path; in a config --config.data.labels_path; eval.py --labels)")
    return [n.lower() for n in LABEL_NAMES].index(match.group(1).lower())


def _read_gait(path: str, f: h5py.File, key: str) -> np.ndarray:
    node = f[key]
    if not isinstance(node, h5py.Dataset):
        raise EGaitFormatError(f"{path}: key {key!r} is a group, expected a (T, {NUM_COLUMNS}) dataset")
    if not (np.issubdtype(node.dtype, np.floating) or np.issubdtype(node.dtype, np.integer)):
        raise EGaitFormatError(f"{path}: key {key!r} has dtype {node.dtype}, expected real numbers (float)")
    data = np.asarray(node[()])
    if data.ndim != 2 or data.shape[1] != NUM_COLUMNS:
        raise EGaitFormatError(
            f"{path}: key {key!r} has shape {data.shape}, expected (T, {NUM_COLUMNS}) "
            f"= {NUM_JOINTS} joints x {NUM_COORDS} coords, column 3*joint+coord")
    if data.shape[0] == 0:
        raise EGaitFormatError(f"{path}: key {key!r} has no frames")
    with np.errstate(over="ignore"):
        data32 = data.astype(np.float32)  # checked after the cast: 1e39 is finite in float64, inf in float32
    if not np.all(np.isfinite(data32)):
        bad = np.argwhere(~np.isfinite(data32))[0]
        raise EGaitFormatError(
            f"{path}: key {key!r} contains NaN/inf (first at frame {bad[0]}, column {bad[1]}"
            + (f": {float(data[tuple(bad)])!r}, beyond float32's range)" if np.isfinite(data[tuple(bad)]) else ")"))
    return data32.reshape(data.shape[0], NUM_JOINTS, NUM_COORDS)


def _read_label(path: str, f: h5py.File, key: str, num_classes: int) -> int:
    node = f[key]
    if not isinstance(node, h5py.Dataset):
        raise EGaitFormatError(f"{path}: label of key {key!r} is a group, expected one integer")
    value = np.asarray(node[()])
    numeric = value.dtype != bool and (np.issubdtype(value.dtype, np.integer)
                                       or np.issubdtype(value.dtype, np.floating))
    if (value.size != 1 or not numeric or not np.isfinite(value).all()
            or float(value.reshape(())) != int(value.reshape(()))):
        shown = np.array2string(value.ravel(), threshold=6) if value.size > 1 else repr(value)
        raise EGaitFormatError(f"{path}: label of key {key!r} is {shown} (dtype {value.dtype}, shape {value.shape}), "
                               f"expected one integer")
    label = int(value.reshape(()))
    if not 0 <= label < num_classes:
        raise EGaitFormatError(f"{path}: label of key {key!r} is {label}, expected 0..{num_classes - 1}")
    return label


def _check_hdf5(path: str | os.PathLike) -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(f"E-Gait file not found: {os.fspath(path)}")
    if not h5py.is_hdf5(path):
        raise EGaitFormatError(f"{os.fspath(path)}: not an HDF5 file")


@contextlib.contextmanager
def _open_hdf5(path: str):
    """``h5py.File(path, 'r')`` after :func:`_check_hdf5`; h5py's errors on a damaged file (e.g. truncated: the
    signature is intact, the data is not) become :class:`EGaitFormatError` naming the file."""
    _check_hdf5(path)
    try:
        with h5py.File(path, "r") as f:
            yield f
    except OSError as err:
        raise EGaitFormatError(f"{path}: cannot be read, a truncated or damaged HDF5 file? ({err})") from None


def read_egait_gaits(features_path: str | os.PathLike) -> tuple[tuple[str, ...], tuple[np.ndarray, ...]]:
    """``(keys, gaits)`` of an E-Gait ``features*.h5`` without labels (e.g. gaits to classify): keys sorted by
    name, one float32 ``(T_i, 16, 3)`` per key. Raises as :func:`read_egait`."""
    features_path = os.fspath(features_path)
    with _open_hdf5(features_path) as ff:
        keys = tuple(sorted(ff.keys()))
        if not keys:
            raise EGaitFormatError(f"{features_path}: file holds no gaits")
        gaits = tuple(_read_gait(features_path, ff, k) for k in keys)
    return keys, gaits


def read_egait(features_path: str | os.PathLike, labels_path: str | os.PathLike | None = None,
               *, num_classes: int = len(LABEL_NAMES)) -> EGaitData:
    """Reads an E-Gait ``features*.h5`` (+ ``labels*.h5``) pair.

    Args:
      features_path: HDF5 file with one ``(T_i, 48)`` dataset per key (T_i <= 75 for E-Gait,
        <= 240 for ELMD).
      labels_path: HDF5 file with one integer scalar per key. ``None`` decodes labels from the key
        suffix (synthetic STEP-Gen files such as ``00003_Happy``).

    Raises:
      FileNotFoundError: a file is missing.
      EGaitFormatError: empty file, key in one file only, wrong column count, non-finite values,
        labels outside ``0..num_classes-1``; the message names the file and the key.
    """
    features_path = os.fspath(features_path)
    if labels_path is not None:
        _check_hdf5(labels_path)  # before the (longer) read of the gaits
    keys, gaits = read_egait_gaits(features_path)
    if labels_path is None:
        try:
            labels = [label_from_key(k) for k in keys]
        except EGaitFormatError as err:
            raise EGaitFormatError(f"{features_path}: {err}; read_egait_gaits reads gaits without labels") from None
    else:
        labels_path = os.fspath(labels_path)
        with _open_hdf5(labels_path) as fl:
            label_keys = set(fl.keys())
            if not label_keys:
                raise EGaitFormatError(f"{labels_path}: file holds no labels")
            missing = [k for k in keys if k not in label_keys]
            if missing:
                raise EGaitFormatError(
                    f"{labels_path}: no label for key {missing[0]!r} of {features_path} "
                    f"({len(missing)} keys missing)")
            extra = sorted(label_keys.difference(keys))
            if extra:
                raise EGaitFormatError(
                    f"{features_path}: no gait for key {extra[0]!r} of {labels_path} "
                    f"({len(extra)} keys missing)")
            labels = [_read_label(labels_path, fl, k, num_classes) for k in keys]
    return EGaitData(keys=keys, gaits=gaits, labels=np.asarray(labels, dtype=np.int32))


def write_egait(features_path: str | os.PathLike, labels_path: str | os.PathLike | None,
                gaits: Mapping[str, np.ndarray], labels: Mapping[str, int] | None = None, *,
                labelled: bool = True) -> None:
    """Writes gaits in the E-Gait layout (read back by :func:`read_egait`).

    Args:
      features_path: output ``features*.h5``.
      labels_path: output ``labels*.h5``; ``None`` writes no labels file (then every key must end in
        the emotion word, as STEP-Gen's synthetic files do, unless ``labelled=False``).
      gaits: key -> ``(T, 16, 3)`` or ``(T, 48)`` array (stored float64 ``(T, 48)`` like E-Gait).
      labels: key -> int label, required when ``labels_path`` is given.
      labelled: ``False`` writes gaits without any labels (e.g. to classify with ``python -m stepjax.predict``;
        read back with :func:`read_egait_gaits`).
    """
    if not gaits:
        raise ValueError("write_egait: no gaits to write")
    bad_keys = [k for k in gaits if not isinstance(k, str) or "/" in k or not k]
    if bad_keys:  # h5py would make groups of slashed keys, which read_egait (rightly) refuses
        raise ValueError(f"write_egait: keys must be non-empty strings without '/', got {bad_keys[:3]}")
    check_output_paths(features_path, labels_path)
    if labels_path is not None:
        if labels is None or set(labels) != set(gaits):
            raise ValueError("write_egait: labels must have exactly the keys of gaits")
        validate_labels([labels[k] for k in gaits], "write_egait: labels")
    elif labelled:
        from_keys = {k: label_from_key(k) for k in gaits}
        if labels is not None:  # stored only in the key suffixes: they must say the same
            if set(labels) != set(gaits):
                raise ValueError("write_egait: labels must have exactly the keys of gaits")
            wrong = [k for k in gaits if int(validate_labels([labels[k]], "write_egait: labels")[0]) != from_keys[k]]
            if wrong:
                k = wrong[0]
                raise ValueError(f"write_egait: without a labels file the label is the key's emotion word, but key "
                                 f"{k!r} ({LABEL_NAMES[from_keys[k]]}) was given label {labels[k]} "
                                 f"({len(wrong)} such keys): fix the keys or the labels, or pass labels_path")
    elif labels is not None:
        raise ValueError("write_egait: labels given with labelled=False, which writes no labels; drop them or "
                         "pass labels_path")
    rows = {key: _egait_rows(key, gait) for key, gait in gaits.items()}  # every gait checked before any write
    files = {features_path: lambda f: [f.create_dataset(key, data=arr) for key, arr in rows.items()]}
    if labels_path is not None:
        assert labels is not None  # refused above when labels_path is given without labels
        files[labels_path] = lambda f: [f.create_dataset(key, data=np.int64(labels[key])) for key in gaits]
    _write_atomically(files)


def check_output_paths(features_path: str | os.PathLike, labels_path: str | os.PathLike | None) -> None:
    """``ValueError`` for output paths the writers refuse: a NumPy extension (``python -m stepjax.predict`` reads
    ``*.npy`` as a NumPy array) or one file for both gaits and labels. The writers call it; CLIs call it before
    their work."""
    for path in (features_path, labels_path):
        if path is not None and os.fspath(path).lower().endswith((".npy", ".npz")):
            raise ValueError(f"{path}: an HDF5 file under a NumPy extension (stepjax.predict would read it as "
                             "NumPy); name it *.h5")
    if labels_path is not None and os.path.abspath(os.fspath(labels_path)) == os.path.abspath(os.fspath(features_path)):
        raise ValueError(f"write_egait: the features and labels paths are the same file ({features_path}); "
                         "the labels would overwrite the gaits")


def _egait_rows(key: str, gait) -> np.ndarray:
    """A gait as E-Gait's float64 ``(T, 48)`` rows; ``ValueError`` for another shape or NaN/inf."""
    arr = np.asarray(gait)
    if not (arr.dtype.kind in "fiu" or arr.dtype.name.startswith(("bfloat", "float"))):  # ml_dtypes: kind 'V'
        raise ValueError(f"write_egait: gait {key!r} has dtype {arr.dtype}, expected real numbers")
    arr = arr.astype(np.float64)
    if arr.ndim == 3 and arr.shape[-2:] == (NUM_JOINTS, NUM_COORDS):
        arr = arr.reshape(arr.shape[0], NUM_COLUMNS)
    if arr.ndim != 2 or arr.shape[1] != NUM_COLUMNS or arr.shape[0] == 0:
        raise ValueError(f"write_egait: gait {key!r} has shape {np.shape(gait)}, expected (T, 16, 3) or (T, 48)")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"write_egait: gait {key!r} contains NaN/inf")
    return arr


def _write_atomically(files: Mapping) -> None:
    """Writes HDF5 files ``{path: fill(h5py.File)}`` through temporary files in their folders, renamed over the
    paths only once all are complete: a failure while writing leaves every earlier file as it was."""
    tmps = {}
    for path in files:
        folder = os.path.dirname(os.path.abspath(os.fspath(path)))
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"{path}: no such folder {folder}")
        tmps[path] = os.path.join(folder, f".{os.path.basename(os.fspath(path))}.{os.getpid()}.tmp")
    try:
        for path, fill in files.items():
            with h5py.File(tmps[path], "w") as f:
                fill(f)
        for path, tmp in tmps.items():
            os.replace(tmp, path)
    finally:
        for tmp in tmps.values():
            if os.path.exists(tmp):
                os.remove(tmp)


def write_egait_arrays(features_path: str | os.PathLike, labels_path: str | os.PathLike | None,
                       gaits: np.ndarray, labels: Sequence[int] | np.ndarray, keys: Sequence[str] | None = None
                       ) -> list[str]:
    """Writes a batch ``(N, T, 16, 3)`` with keys ``{i:05d}_{Emotion}`` (STEP-Gen style) by default."""
    if isinstance(gaits, (list, tuple)) and len({np.shape(g) for g in gaits}) > 1:
        raise ValueError(f"write_egait_arrays: gaits of different shapes {sorted({np.shape(g) for g in gaits})[:3]}: "
                         "pass write_egait a dict of key -> gait (any lengths), or bring them to one length "
                         "(stepjax.data.preprocess.to_fixed_length)")
    gaits = np.asarray(gaits)
    if gaits.ndim not in (3, 4):
        raise ValueError(f"write_egait_arrays: gaits must be a batch (N, T, 16, 3) or (N, T, 48), got shape "
                         f"{gaits.shape}" + (" (one gait: add a leading axis, gaits[None])" if gaits.ndim == 2 else ""))
    labels = validate_labels(labels, "write_egait_arrays: labels").tolist()
    if keys is None:
        keys = [f"{i + 1:05d}_{LABEL_NAMES[l]}" for i, l in enumerate(labels)]
    if not (len(keys) == len(labels) == len(gaits)):
        raise ValueError(f"write_egait_arrays: {len(gaits)} gaits, {len(labels)} labels, {len(keys)} keys")
    repeated = sorted(k for k, n in collections.Counter(keys).items() if n > 1)
    if repeated:
        raise ValueError(f"write_egait_arrays: keys must be distinct, repeated: {repeated[:3]}")
    write_egait(features_path, labels_path, dict(zip(keys, gaits)), dict(zip(keys, labels)))
    return list(keys)
