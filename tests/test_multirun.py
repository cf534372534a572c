"""Vmapped multi-run training: seeds and k-fold in one jitted loop."""

import json
import sys

import numpy as np
import pytest

from stepjax.training.multirun import build_runset, fit_classifier_runs, make_splits
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


def test_a_vmapped_seed_run_draws_the_batches_of_train_py_with_that_seed(tmp_path):
    """The masked shuffle of vmapped runs takes the positions below a run's training count from the same
    permutation as the single run's shuffle: with every position valid (seeds share one split) it is that
    shuffle, so a vmapped seed run trains on the batches ``train.py`` draws with that seed (the training losses
    agree to float32 rounding; they differed by 1 % in the first epoch with another masked shuffle); with fewer
    valid positions each is drawn once."""
    import jax
    import jax.numpy as jnp

    from stepjax.training.fit import fit_classifier
    from stepjax.training.loop import shuffled_batches

    rng = jax.random.fold_in(jax.random.PRNGKey(0), 3)
    np.testing.assert_array_equal(shuffled_batches(rng, 168, 16), shuffled_batches(rng, 168, 16, jnp.int32(168), 10))
    masked = np.asarray(shuffled_batches(rng, 168, 16, jnp.int32(150), 9)).ravel()
    assert len(set(masked.tolist())) == 144 and masked.max() < 150
    cfg = runs_config("seeds", num_seeds=1)
    cfg.train.epochs = 1
    cfg.seed = 4
    fit_classifier_runs(cfg, str(tmp_path / "vmapped"), progress=False)
    single = tiny_config(epochs=1)
    single.seed = 4
    fit_classifier(single, str(tmp_path / "single"), progress=False, log=lambda *a: None)
    vmapped, alone = (json.loads((tmp_path / d / "metrics.jsonl").read_text().splitlines()[0])
                      for d in ("vmapped", "single"))
    np.testing.assert_allclose(vmapped["loss"][0], alone["train_loss"], rtol=1e-6)


def test_vmapped_runs_warn_of_an_ungrouped_split_of_shared_subjects():
    """k-fold / seeds runs with ``data.group_by_subject=False`` on walkers (subjects walk several gaits) warn as a
    single run does: gaits of one subject can sit in a run's train and test parts."""
    cfg = runs_config("bogus")  # refused right after the data checks: nothing is trained
    cfg.data.group_by_subject = False
    with pytest.warns(UserWarning, match="group_by_subject=False splits 240 gaits of"), \
            pytest.raises(ValueError, match="unknown runs.mode 'bogus'"):
        fit_classifier_runs(cfg, progress=False)


def test_every_epoch_of_every_run_draws_a_new_shuffle(tmp_path):
    """With a learning rate of 1e-30 the weights do not move in float32, yet each epoch's training loss differs
    from the last: its batches (and BatchNorm's batch statistics) are drawn anew per epoch (a single shuffle
    reused every epoch would have gone unnoticed)."""
    cfg = runs_config("seeds", num_seeds=2)
    cfg.train.epochs, cfg.train.lr = 2, 1e-30
    cfg.model.dropout = cfg.model.head_dropout = 0.0  # new dropout masks alone would change the loss too
    fit_classifier_runs(cfg, str(tmp_path), progress=False)
    history = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(history) == 2 and len(history[0]["loss"]) == 2
    for run in range(2):
        assert history[0]["loss"][run] != history[1]["loss"][run]


def test_a_fold_trains_the_same_beside_a_smaller_or_larger_fold_as_beside_a_copy_of_itself(monkeypatch, tmp_path):
    """5 folds of 240 walkers leave training parts of 160 and 152 gaits: 10 and 9 batches of 16. A fold takes
    its own number of steps per epoch and its own learning-rate schedule beside a smaller fold, as beside a copy
    of itself (they once all took the smallest fold's 9 steps, so a fold's numbers depended on the folds beside
    it), and the smaller fold, whose surplus step is masked, as beside a copy of itself. Two runs every time:
    the same compiled shapes (XLA may round differently for another run count)."""
    import stepjax.training.multirun as multirun
    from stepjax.training.state import make_schedule

    cfg = runs_config("kfold", folds=5, repeats=1)
    cfg.train.epochs = 2
    all_splits, all_runs = make_splits(cfg, pipeline.load_source(cfg.data))
    big, small = (next(i for i, s in enumerate(all_splits) if len(s.train) == n) for n in (160, 152))
    results = {}
    names = {(small, big): "beside", (big, big): "big", (small, small): "small"}
    for keep, name in names.items():
        monkeypatch.setattr(multirun, "make_splits", lambda c, raw, keep=keep: (
            [all_splits[i] for i in keep], [all_runs[i] for i in keep]))
        results[keep] = fit_classifier_runs(cfg, str(tmp_path / name), progress=False)
    history = {name: [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
               for name in names.values()}
    for fold, slot, pair in ((big, 1, (big, big)), (small, 0, (small, small))):
        beside, alone = results[(small, big)]["runs"][slot], results[pair]["runs"][slot]
        assert beside["fold"] == alone["fold"] == fold
        assert beside["best_epoch"] == alone["best_epoch"]
        np.testing.assert_array_equal(beside["confusion_matrix"], alone["confusion_matrix"])
        for epoch_beside, epoch_alone in zip(history["beside"], history[names[pair]]):  # per-epoch numbers
            np.testing.assert_allclose(epoch_beside["loss"][slot], epoch_alone["loss"][slot], rtol=1e-6)
            np.testing.assert_allclose(epoch_beside["val_loss"][slot], epoch_alone["val_loss"][slot], rtol=1e-6)
    tables = multirun.learning_rate_tables(cfg.train, np.array([9, 10]))  # each run its own schedule
    assert tables.shape == (2, 20)
    for row, spe in zip(tables, (9, 10)):
        want = [float(make_schedule(cfg.train, spe)(c)) for c in range(2 * spe)]
        np.testing.assert_allclose(row[:2 * spe], want, rtol=1e-6)  # evaluated vmapped: within an ulp
        assert np.all(row[2 * spe:] == row[2 * spe - 1])


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
    assert json.loads((tmp_path / "provenance.jsonl").read_text())["event"] == "start"  # what it ran with
    from stepjax.training.checkpoint import read_run_config
    with pytest.raises(FileNotFoundError, match="no checkpoints: train one run"):  # eval.py's first call
        read_run_config(tmp_path)


def test_a_run_with_an_empty_validation_split_is_refused():
    """With no validation gaits every epoch scores NaN, nothing beats the initial weights, and the 'best'
    model reported would be the untrained one: refused before training, naming the run (a fraction that rounds
    to no subject per class; a fraction of 0 is refused by the splitter itself)."""
    cfg = runs_config("kfold", folds=3, repeats=1, val_fraction=0.001)
    with pytest.raises(ValueError, match=r"run \{'seed': 0, 'repeat': 0, 'fold': 0\} has an empty val split"):
        fit_classifier_runs(cfg, progress=False)
    cfg.runs.val_fraction = 0.0
    with pytest.raises(ValueError, match=r"val_fraction \(runs.val_fraction\) must lie in \(0, 1\), got 0.0"):
        fit_classifier_runs(cfg, progress=False)


def test_repeated_kfold_draws_new_folds_for_every_repeat():
    """``runs.repeats`` x ``runs.folds`` runs: each repeat's test folds partition all gaits exactly once, and the
    repeats use different fold assignments (repeat r is drawn with split seed ``data.split_seed + r``); repeating
    identical folds would only repeat the same numbers and understate the reported std. The run ids count through
    repeats and folds with distinct training seeds."""
    cfg = runs_config("kfold", folds=3, repeats=2)
    cfg.data.num_gaits = 120
    raw = pipeline.load_source(cfg.data)
    run_splits, runs = make_splits(cfg, raw)
    assert [(r["repeat"], r["fold"]) for r in runs] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert len({r["seed"] for r in runs}) == 6
    partitions = []
    for rep in range(2):
        tests = [run_splits[3 * rep + f].test for f in range(3)]
        np.testing.assert_array_equal(np.sort(np.concatenate(tests)), np.arange(len(raw.labels)))
        partitions.append({frozenset(t.tolist()) for t in tests})
    assert partitions[0] != partitions[1]


def test_each_run_is_preprocessed_with_statistics_of_its_own_training_split():
    """``build_runset``: run r's arrays are those of a preprocessor fitted on ``raw.gaits[split_r.train]`` only
    (``pipeline.fit_preprocessor`` + ``apply_preprocessor``, as the single-run pipeline does). Independent check of
    the affective normalisation (min/max, ``affective.fit_normalizer``): over the run's training gaits every
    non-constant feature spans exactly [-1, 1]; statistics fitted on all gaits (test fold included) would leave some
    feature of the training gaits short of +-1, and the test fold outside [-1, 1] never."""
    cfg = runs_config("kfold", folds=3, repeats=1)
    raw = pipeline.load_source(cfg.data)
    run_splits, _ = make_splits(cfg, raw)
    rs = build_runset(cfg, raw, run_splits)
    outside = 0
    for r, s in enumerate(run_splits):
        prep = pipeline.fit_preprocessor(raw.gaits[s.train], cfg.preprocess, raw.lengths_at(s.train))
        expected = pipeline.apply_preprocessor(prep, raw.gaits, raw.labels, lengths=raw.lengths)
        for got, want in zip(rs.data, expected):
            np.testing.assert_allclose(np.asarray(got[r]), np.asarray(want), rtol=1e-6, atol=1e-6)
        train_feats = np.asarray(rs.data.affective[r])[s.train]
        spread = train_feats.max(0) - train_feats.min(0)
        varying = spread > 1e-3
        assert varying.sum() > 20
        np.testing.assert_allclose(train_feats.max(0)[varying], 1.0, atol=1e-5)
        np.testing.assert_allclose(train_feats.min(0)[varying], -1.0, atol=1e-5)
        outside += int((np.abs(np.asarray(rs.data.affective[r])[s.test]) > 1 + 1e-5).any())
    assert outside > 0  # the test folds really hold gaits beyond the training range (the check has teeth)


def test_reported_test_predictions_come_from_the_best_validation_epoch():
    """Model selection: each run's test report is that of its variables at ``best_epoch`` (best validation accuracy),
    not of the last epoch. High constant learning rate, 4 epochs, 6 seeds: some run peaks before the last epoch
    (asserted). Reference: the same runs trained for only ``b + 1`` epochs, ``b`` the earliest best epoch (a constant
    schedule and per-epoch randomness ``fold_in(rng, epoch)`` make epochs 0..b identical), where every run whose best
    epoch is <= b selects the same epoch; their confusion matrices must equal those of the 4-epoch training."""
    cfg = runs_config("seeds", num_seeds=6)
    cfg.data.num_gaits = 120
    cfg.data.num_frames = 16
    cfg.preprocess.num_affective = 0
    cfg.model.update(kernel_size=3, channels=(8, 8, 8), hidden=16)
    cfg.train.update(epochs=4, lr=0.1, schedule="constant")
    full = fit_classifier_runs(cfg, progress=False)
    best = [r["best_epoch"] for r in full["runs"]]
    b = min(best)
    assert b < cfg.train.epochs - 1, best  # precondition: some run's best epoch is not its last
    cfg.train.epochs = b + 1
    short = fit_classifier_runs(cfg, progress=False)
    compared = 0
    for a, s in zip(full["runs"], short["runs"]):
        if a["best_epoch"] <= b:
            assert s["best_epoch"] == a["best_epoch"]
            assert a["confusion_matrix"] == s["confusion_matrix"], (a["seed"], a["best_epoch"])
            assert a["accuracy"] == s["accuracy"]
            compared += 1
    assert compared >= 1


@pytest.mark.parametrize("mode", ["seeds", "kfold"])
def test_mirror_augmentation_reaches_every_run_as_in_the_single_run_pipeline(mode):
    """``data.augment_mirror`` in vmapped runs (it used to be ignored there): each run trains on ITS training
    gaits followed by their mirrored copies, with the preprocessing fitted on both, and evaluates on the real
    validation / test gaits only. Reference per run: ``fit_preprocessor`` / ``apply_preprocessor`` on that
    run's split by hand (k-fold: a different split per run), and for seeds ``pipeline.prepare`` itself."""
    from stepjax import skeleton

    cfg = runs_config(mode, **({"num_seeds": 2} if mode == "seeds" else {"folds": 3, "repeats": 1}))
    cfg.data.augment_mirror = True
    raw = pipeline.load_source(cfg.data)
    run_splits, _ = make_splits(cfg, raw)
    rs = build_runset(cfg, raw, run_splits)
    assert rs.data.gaits.shape[1] == 2 * len(raw.labels)
    for r, s in enumerate(run_splits):
        train_gaits = np.concatenate([raw.gaits[s.train], np.asarray(skeleton.mirror(raw.gaits[s.train]))])
        train_labels = np.tile(raw.labels[s.train], 2)
        prep = pipeline.fit_preprocessor(train_gaits, cfg.preprocess)
        want = {"train": pipeline.apply_preprocessor(prep, train_gaits, train_labels)}
        for name in ("val", "test"):
            idx = getattr(s, name)
            want[name] = pipeline.apply_preprocessor(prep, raw.gaits[idx], raw.labels[idx])
        if mode == "seeds":
            single = pipeline.prepare(cfg)
            for name in want:
                for a, b in zip(single[name], want[name]):
                    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
        for name, idx, count in (("train", rs.train_idx, rs.train_count), ("val", rs.val_idx, rs.val_count),
                                 ("test", rs.test_idx, rs.test_count)):
            rows = np.asarray(idx[r])[:int(count[r])]
            assert len(rows) == len(want[name].labels), name
            for got, ref in zip(rs.data, want[name]):
                np.testing.assert_allclose(np.asarray(got[r])[rows], np.asarray(ref), rtol=1e-5, atol=1e-5,
                                           err_msg=f"run {r} {name}")
