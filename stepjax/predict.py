"""Emotion predictions of a trained classifier for gaits without labels.

    python -m stepjax.predict --workdir runs/step --gaits walks.h5                 # CSV on stdout
    python -m stepjax.predict --workdir runs/step --gaits walks.npy --out predictions.csv
    python -m stepjax.predict --workdir runs/step --gaits walks.h5 --out predictions.json

Inputs: an E-Gait-layout ``features*.h5`` (one ``(T_i, 48)`` dataset per key; labels not needed) or a ``.npy`` of
gaits ``(N, T, 16, 3)``, ``(T, 16, 3)`` or E-Gait rows ``(N, T, 48)``, in metres, Y up. Gaits are brought to the
run's training length with its length policy and their affective features computed on their real frames, as in
training (:func:`stepjax.inference.predict_gaits`). Output: one row per gait, its key (the HDF5 key or the index),
the predicted emotion and the four class probabilities.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from typing import Sequence

import numpy as np

from stepjax import LABEL_NAMES
from stepjax.utils import check_real_dtype


def read_gaits(path: str | os.PathLike) -> tuple[list[str], list[np.ndarray]]:
    """``(keys, gaits [(T_i, 16, 3)])`` of an E-Gait ``.h5`` or a ``.npy`` array (see the module docstring)."""
    path = os.fspath(path)
    if path.endswith(".npy"):
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no such file")
        try:
            arr = np.load(path, allow_pickle=False)
        except ValueError as err:  # pickled objects, or not a NumPy file
            raise ValueError(f"{path}: not a NumPy array of gaits ({err})") from None
        check_real_dtype(arr, path)
        if arr.ndim == 3 and arr.shape[-1] == 48:
            arr = arr.reshape(arr.shape[0], arr.shape[1], 16, 3)
        elif arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4:
            raise ValueError(f"{path}: expected gaits (N, T, 16, 3), (T, 16, 3) or (N, T, 48), got {arr.shape}")
        return [str(i) for i in range(len(arr))], list(arr.astype(np.float32))
    from stepjax.data.egait import read_egait_gaits
    from stepjax.data.preprocess import check_min_frames

    keys, gaits = read_egait_gaits(path)
    check_min_frames(gaits, path, keys)  # named by key, which the user can act on
    return list(keys), list(gaits)


def predict_file(workdir: str | os.PathLike, path: str | os.PathLike, which: str = "best") -> list[dict]:
    """One ``{'key', 'emotion', 'label', 'p_Angry', ...}`` per gait of ``path`` from ``workdir``'s checkpoint."""
    from stepjax.data.pipeline import trained_num_frames
    from stepjax.inference import make_predict_fn, predict_gaits, restore_classifier

    keys, gaits = read_gaits(path)
    cfg, model, variables = restore_classifier(workdir, which)
    out = predict_gaits(make_predict_fn(model), variables, gaits, trained_num_frames(cfg),
                        cfg.data.get("length_policy", "tile"), name=os.fspath(path))
    labels = out.probs.argmax(-1)
    return [{"key": k, "emotion": LABEL_NAMES[y], "label": int(y),
             **{f"p_{name}": float(p) for name, p in zip(LABEL_NAMES, probs)}}
            for k, y, probs in zip(keys, labels, out.probs)]


def write_rows(rows: list[dict], out) -> None:
    """CSV with a header (``out``: an open text file)."""
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m stepjax.predict", description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", required=True, help="classifier training workdir (train.py)")
    p.add_argument("--gaits", required=True, help="E-Gait features*.h5 or a .npy of gaits (N, T, 16, 3)")
    p.add_argument("--out", default=None, help="write here (a .csv or .json file) instead of CSV on stdout")
    p.add_argument("--checkpoint", choices=("best", "latest"), default="best")
    args = p.parse_args(argv)
    if args.out and not args.out.lower().endswith((".csv", ".json")):
        p.error(f"--out must end in .csv or .json, got {args.out}")
    from absl import logging

    from stepjax.utils import check_output_dir, cli_errors, enable_compilation_cache, write_json

    logging.set_verbosity(logging.WARNING)  # orbax logs every restore at INFO
    enable_compilation_cache()
    with cli_errors("python -m stepjax.predict"):
        check_output_dir(args.out)
        rows = predict_file(args.workdir, args.gaits, args.checkpoint)
        if args.out and args.out.lower().endswith(".json"):
            write_json(args.out, rows)
        elif args.out:
            with open(args.out, "w", newline="") as f:
                write_rows(rows, f)
        else:
            write_rows(rows, sys.stdout)
        if args.out:
            counts = np.bincount([r["label"] for r in rows], minlength=len(LABEL_NAMES))
            print(f"wrote {len(rows)} predictions to {args.out} ("
                  + ", ".join(f"{n} {c}" for n, c in zip(LABEL_NAMES, counts)) + ")", file=sys.stderr)


if __name__ == "__main__":
    main()
