"""Vmapped multi-run training: seeds and k-fold in one jitted loop."""

import json
import sys

import numpy as np
import pytest

from stepjax.training.multirun import fit_classifier_runs, make_splits
from stepjax.data import pipeline
from conftest import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "tests"))
from test_training import tiny_config  # noqa: E402

sys.path.insert(0, str(PROJECT_ROOT / "configs"))
import step_cv  # noqa: E402


def runs_config(mode, **runs):
    cfg = tiny_config(epochs=3)
    cfg.task = "classifier_runs"
    cfg.runs = step_cv.get_config().runs
    cfg.runs.mode = mode
    cfg.runs.update(runs)
    return cfg


def test_vmapped_seeds_are_independent_runs():
    """Seed 1 trained beside seed 0 (slot 1) or beside seed 2 (slot 0) gives the same run: no cross-talk
    between vmapped runs (e.g. BatchNorm statistics or shuffles shared across runs)."""
    both = fit_classifier_runs(runs_config("seeds", num_seeds=2), progress=False)  # seeds 0, 1
    cfg1 = runs_config("seeds", num_seeds=2)
    cfg1.seed = 1  # seeds 1, 2 (same shapes: the compiled loop is reused)
    alone = fit_classifier_runs(cfg1, progress=False)
    a, b = both["runs"][1], alone["runs"][0]
    assert a["seed"] == b["seed"] == 1
    assert a["best_epoch"] == b["best_epoch"]
    np.testing.assert_array_equal(a["confusion_matrix"], b["confusion_matrix"])
    assert both["runs"][0]["confusion_matrix"] != both["runs"][1]["confusion_matrix"] or \
        both["runs"][0]["best_epoch"] != both["runs"][1]["best_epoch"]  # seeds really differ
    agg = both["aggregate"]["accuracy"]
    assert agg["mean"] == pytest.approx(np.mean(agg["values"])) and agg["std"] >= 0


def test_kfold_runs_test_every_gait_once_and_report_mean_std(tmp_path):
    cfg = runs_config("kfold", folds=3, repeats=1)
    raw = pipeline.load_source(cfg.data)
    run_splits, runs = make_splits(cfg, raw)
    tests = np.sort(np.concatenate([s.test for s in run_splits]))
    np.testing.assert_array_equal(tests, np.arange(len(raw.labels)))
    for s in run_splits:  # grouped by subject: no walker in two parts of a fold
        assert not set(raw.subjects[s.train]) & set(raw.subjects[s.test])
        assert not set(raw.subjects[s.train]) & set(raw.subjects[s.val])
    result = fit_classifier_runs(cfg, str(tmp_path), progress=False)
    assert result["num_runs"] == 3
    assert sum(r["num_gaits"] for r in result["runs"]) == len(raw.labels)
    assert result["aggregate"]["accuracy"]["mean"] > 0.3
    assert (tmp_path / "results.json").exists() and (tmp_path / "metrics.jsonl").exists()
    assert json.loads((tmp_path / "config.json").read_text())["runs"]["folds"] == 3
    from stepjax.training.checkpoint import read_run_config
    with pytest.raises(FileNotFoundError, match="no checkpoints: train one run"):  # eval.py's first call
        read_run_config(tmp_path)


def test_a_run_with_an_empty_validation_split_is_refused():
    """With no validation gaits every epoch scores NaN, nothing beats the initial weights, and the 'best'
    model reported would be the untrained one: refused before training, naming the run."""
    cfg = runs_config("kfold", folds=3, repeats=1, val_fraction=0.0)
    with pytest.raises(ValueError, match=r"run \{'seed': 0, 'repeat': 0, 'fold': 0\} has an empty val split"):
        fit_classifier_runs(cfg, progress=False)
