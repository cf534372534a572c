"""Repeated stratified k-fold protocol for STEP, all folds trained at once as one vmapped loop.

    python train.py --config configs/step_cv.py --workdir runs/step_cv

Reports test accuracy / balanced accuracy / macro-F1 as mean +- sample std (ddof=1) over repeats x folds (each fold
selects its model on its own inner validation split; its test fold is never seen in training).
Seeds instead of folds: --config.runs.mode=seeds --config.runs.num_seeds=8.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(__file__))
import step  # noqa: E402


def get_config():
    cfg = step.get_config()
    cfg.task = "classifier_runs"
    cfg.runs = ml_collections.ConfigDict(dict(mode="kfold", folds=5, repeats=2, val_fraction=0.2, num_seeds=8))
    cfg.train.epochs = 20
    return cfg
