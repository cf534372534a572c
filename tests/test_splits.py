import sys
import warnings

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

from conftest import PROJECT_ROOT
from stepjax.data import splits


@settings(max_examples=20, deadline=None)
@given(n=st.integers(40, 400), seed=st.integers(0, 100), grouped=st.booleans())
def test_split_is_a_disjoint_stratified_partition(n, seed, grouped):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    groups = rng.integers(0, n // 4, n) if grouped else None
    s = splits.train_val_test_split(labels, (0.7, 0.2, 0.1), seed=seed, groups=groups)
    allidx = np.concatenate(s)
    np.testing.assert_array_equal(np.sort(allidx), np.arange(n))  # partition
    if grouped:
        for a, b in [(s.train, s.val), (s.train, s.test), (s.val, s.test)]:
            assert not set(groups[a]) & set(groups[b])
    else:
        for c in range(4):  # per-class counts within rounding of the fractions
            n_c = (labels == c).sum()
            assert abs((labels[s.train] == c).sum() - 0.7 * n_c) <= 1
            assert abs((labels[s.test] == c).sum() - 0.1 * n_c) <= 1


def test_split_is_deterministic_in_seed():
    labels = np.repeat(np.arange(4), 25)
    a = splits.train_val_test_split(labels, seed=5)
    b = splits.train_val_test_split(labels, seed=5)
    c = splits.train_val_test_split(labels, seed=6)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.test, c.test)


@pytest.mark.parametrize("grouped", [False, True])
def test_kfold_tests_every_sample_once(grouped):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 200)
    groups = np.arange(200) // 5 if grouped else None
    folds = splits.kfold_with_validation(labels, k=5, seed=1, groups=groups)
    tests = np.concatenate([f.test for f in folds])
    np.testing.assert_array_equal(np.sort(tests), np.arange(200))
    for f in folds:
        assert not set(f.train) & set(f.val) and not set(f.train) & set(f.test) and not set(f.val) & set(f.test)
        if grouped:
            assert not set(groups[f.train]) & set(groups[f.test])
            assert not set(groups[f.train]) & set(groups[f.val])
        for c in range(4):  # each test fold holds ~1/5 of each class
            assert abs((labels[f.test] == c).sum() - (labels == c).sum() / 5) <= 1.5 + (4 if grouped else 0)


def test_a_lopsided_grouped_split_is_flagged():
    """160 walkers of 20 subjects (5 per class) at (0.7, 0.15, 0.15): whole subjects move, and rounding per class
    leaves 8 validation gaits (5 %); training warns instead of selecting on them silently."""
    from stepjax.data import pipeline
    from stepjax.data.walkers import make_walkers

    w = make_walkers(160, seed=0, num_frames=8)
    s = splits.train_val_test_split(w.labels, (0.7, 0.15, 0.15), 0, groups=w.subjects)
    assert (len(s.train), len(s.val), len(s.test)) == (120, 8, 32)
    with pytest.warns(UserWarning, match=r"lopsided: val 5% \(asked 15%\); with few subjects per class the grouped"):
        pipeline.warn_if_lopsided(s, (0.7, 0.15, 0.15), 160)
    with pytest.warns(UserWarning, match=r"lopsided: val 5% \(asked 15%\); rounding per class moves whole gaits: "
                                         r"use more gaits or other data.split fractions$"):  # not grouped: no subjects
        pipeline.warn_if_lopsided(s, (0.7, 0.15, 0.15), 160, grouped=False)
    w = make_walkers(1200, seed=0, num_frames=8)  # configs/step.py: 840/184/176, no warning
    s = splits.train_val_test_split(w.labels, (0.7, 0.15, 0.15), 0, groups=w.subjects)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipeline.warn_if_lopsided(s, (0.7, 0.15, 0.15), 1200)


def test_a_class_missing_from_a_training_or_validation_part_is_flagged():
    """One subject per class (an actor per emotion): grouped folds move each class whole, so every fold trains
    without the class it tests on; the protocol warns, naming the run, the part and the class. Three subjects
    per class: every part has every class, no warning."""
    import ml_collections

    from stepjax.data import pipeline
    from stepjax.training.multirun import make_splits

    labels = np.repeat(np.arange(4), 30)
    one_subject = labels.copy()  # subject c walks class c only
    folds = splits.kfold_with_validation(labels, 2, 0, 0.3, groups=one_subject)
    with pytest.warns(UserWarning, match=r"classes missing from a split: fold 0 training part has no \w+, \w+; "
                                         r"fold 1 training part has no \w+, \w+; with few subjects"):
        pipeline.warn_if_classes_missing(folds, labels, ["fold 0", "fold 1"])
    by_hand = splits.Split(np.arange(120), np.flatnonzero(labels != 2), np.array([], int))
    with pytest.warns(UserWarning, match=r"split: validation part has no Happy; with"):
        pipeline.warn_if_classes_missing([by_hand], labels)
    three_subjects = labels * 3 + np.arange(120) % 3
    folds = splits.kfold_with_validation(labels, 3, 0, 0.3, groups=three_subjects)
    assert all(len(f.val) for f in folds)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipeline.warn_if_classes_missing(folds, labels)
        whole = splits.Split(np.arange(60), np.arange(60), np.array([], int))
        pipeline.warn_if_classes_missing([whole], labels[:60], num_classes=2)  # a 2-class model: nothing missing
    one_class = np.full(60, 2)  # a 4-class model on one class once reported a healthy 0.79 accuracy, silently
    with pytest.warns(UserWarning, match=r"the data has no gait of Angry, Neutral, Sad: the 4-class model is "
                                         r"trained, selected and tested on 1 class\(es\) only"):
        pipeline.warn_if_classes_missing([whole], one_class)
    raw = pipeline.RawDataset(gaits=np.zeros((120, 8, 16, 3), np.float32), labels=labels.astype(np.int32),
                              subjects=one_subject, lengths=None)  # the k-fold protocol (configs/step_cv.py) warns
    cfg = ml_collections.ConfigDict(dict(seed=0, data=dict(split_seed=0, group_by_subject=True),
                                         runs=dict(mode="kfold", repeats=1, folds=2, val_fraction=0.3)))
    with pytest.warns(UserWarning, match=r"repeat 0 fold 0 training part has no"):
        make_splits(cfg, raw)


def test_a_run_within_the_training_split_never_sees_its_validation_or_test_gaits():
    """``data.within_training_split`` (STEP+Aug's generator): an inner stratified split of the outer training part
    by ``inner_val_fraction``, grouped by subject, no test part; the fraction is checked."""
    import ml_collections

    from stepjax.data import pipeline

    data = ml_collections.ConfigDict(dict(source="walkers", num_gaits=480, num_frames=8, seed=0,
                                          split=(0.7, 0.15, 0.15), split_seed=3))
    raw = pipeline.load_source(data)
    outer = pipeline.split_dataset(raw, data)
    data.within_training_split, data.inner_val_fraction = True, 0.2
    inner = pipeline.split_dataset(raw, data)
    np.testing.assert_array_equal(np.sort(np.concatenate([inner.train, inner.val])), outer.train)
    assert len(inner.test) == 0 and 0.1 < len(inner.val) / len(outer.train) < 0.3
    assert not set(raw.subjects[inner.train]) & set(raw.subjects[inner.val])
    np.testing.assert_array_equal(pipeline.outer_split(raw, data).test, outer.test)
    assert pipeline.split_fractions(data) == pytest.approx((0.56, 0.14, 0.0))
    sys.path.insert(0, str(PROJECT_ROOT / "configs"))
    import step_gen

    cfg = step_gen.get_config()  # 120 walkers: the inner split is lopsided, and the warning says which split
    cfg.data.update(dict(num_gaits=120, num_frames=8, within_training_split=True, inner_val_fraction=0.15))
    with pytest.warns(UserWarning, match=r"the generator's split of the classifier's training part of 88 gaits is "
                                         r"lopsided: val 27% \(asked 15%\).*other aug.generator_val_fraction"):
        pipeline.prepare(cfg)
    for bad in (0.0, 1.0, True, "0.2"):
        with pytest.raises(ValueError, match="data.inner_val_fraction must be a number in \\(0, 1\\)"):
            pipeline.split_dataset(raw, ml_collections.ConfigDict({**data.to_dict(), "inner_val_fraction": bad}))


def test_an_empty_test_part_is_refused_unless_asked_for(capsys):
    """64 walkers grouped by subject at (0.7, 0.2, 0.1) leave no test gait: training refuses it up front (it once
    trained and printed the validation metrics as an unlabelled JSON blob); a test fraction of 0 is allowed, and
    train.py then labels the validation report it prints."""
    import ml_collections

    from stepjax.data import pipeline
    from stepjax.training.run import _print_classifier_report

    data = ml_collections.ConfigDict(dict(source="walkers", num_gaits=64, num_frames=8, seed=0, split=(0.7, 0.2, 0.1),
                                          split_seed=0))
    preprocess = ml_collections.ConfigDict(dict(align=True, reference="mean", num_affective=0,
                                                affective_official=False, time_step=1 / 30))
    cfg = ml_collections.ConfigDict(dict(data=data, preprocess=preprocess))
    with pytest.warns(UserWarning, match="lopsided"), pytest.raises(ValueError, match="leaves it empty.*subjects"):
        pipeline.prepare(cfg)
    ungrouped = ml_collections.ConfigDict(cfg.to_dict())  # no advice to ungroup a split that is not grouped
    ungrouped.data.update(dict(num_gaits=12, split=(0.7, 0.25, 0.05), group_by_subject=False))
    with pytest.raises(ValueError, match=r"empty \(12 gaits\): use more gaits, a larger"), \
            pytest.warns(UserWarning, match="group_by_subject=False splits 12 gaits of 2 subjects"):
        pipeline.prepare(ungrouped)
    cfg.data.split = (0.8, 0.2, 0.0)  # no test set asked for: prepared, without a test part
    prepared = pipeline.prepare(cfg)
    assert prepared["test"] is None and len(prepared["split"].test) == 0 and len(prepared["train"].labels) > 0
    report = dict(accuracy=0.5, balanced_accuracy=0.4, macro_f1=0.3, num_gaits=16,
                  confusion_matrix=np.diag([4, 4, 4, 4]).tolist())
    _print_classifier_report({"best_epoch": 2, "val": report})
    assert capsys.readouterr().out == ("no test set; validation (best-val epoch 2): accuracy 0.5000  "
                                       "balanced_accuracy 0.4000  macro_f1 0.3000  n=16\n")
    _print_classifier_report({"best_epoch": 1, "test": report}, "STEP+Aug ", "; trained on 5 real + 3 synthetic",
                             "real gaits only")
    out = capsys.readouterr().out.splitlines()
    assert len(out) > 2 and out[-1].startswith("STEP+Aug test, real gaits only (best-val epoch 1; trained on 5 real "
                                               "+ 3 synthetic): accuracy 0.5000")


def test_split_errors():
    for fractions in ((0.5, 0.5, 0.5), (1.2, -0.2, 0.0)):  # a negative fraction sums to 1 too
        with pytest.raises(ValueError, match="fractions must be three non-negative numbers summing to 1"):
            splits.train_val_test_split([0, 1, 2], fractions)
    for n in (3, 4):  # 4 units for 5 folds would leave one fold empty
        with pytest.raises(ValueError, match=f"cannot make 5 folds from {n} samples/groups"):
            splits.stratified_kfold(list(range(n)), k=5)
    for k in (1, 2.5, True):
        with pytest.raises(ValueError, match="k must be an integer >= 2"):
            splits.stratified_kfold([0, 1, 2, 3] * 3, k=k)
    labels = np.array([0, 1, 2, 3] * 5)
    for groups in (np.array([0, 1, np.nan, 2] * 5), np.array([None, 1, 2, 3] * 5, dtype=object)):  # NaN != NaN:
        with pytest.raises(ValueError, match="groups must be integer or string ids"):  # gaits fell out of every part
            splits.train_val_test_split(labels, (0.5, 0.25, 0.25), groups=groups)
    names = np.array([f"s{i // 2}" for i in range(20)], dtype=object)  # e.g. a pandas column of subject names
    a = splits.train_val_test_split(labels, (0.5, 0.25, 0.25), groups=names)
    b = splits.train_val_test_split(labels, (0.5, 0.25, 0.25), groups=names.astype(str))
    assert all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("train", "val", "test"))
    for bad in ([0, 1.7, 2], [0, -1, 2], [0.0, np.nan]):  # 1.7 was once truncated to class 1
        with pytest.raises(ValueError, match="non-negative whole class indices"):
            splits.train_val_test_split(np.array(bad), (0.5, 0.25, 0.25))
    for seed in (-1, 1.5, None):  # numpy's own errors named no seed (and None drew a fresh, unrecorded split)
        with pytest.raises(ValueError, match=r"split seed must be an integer >= 0 \(data.split_seed"):
            splits.train_val_test_split(labels, (0.5, 0.25, 0.25), seed=seed)
        with pytest.raises(ValueError, match="split seed must be an integer >= 0"):
            splits.kfold_with_validation(labels, 2, seed=seed)
    for fraction in (0, 1, 1.5, None, "0.2"):
        with pytest.raises(ValueError, match=r"val_fraction \(runs.val_fraction\) must lie in \(0, 1\)"):
            splits.kfold_with_validation(labels, 2, val_fraction=fraction)


@settings(max_examples=30, deadline=None)
@given(counts=st.lists(st.integers(1, 30), min_size=2, max_size=5), k=st.integers(2, 6), seed=st.integers(0, 100),
       grouped=st.booleans())
@example(counts=[11, 11, 11, 11], k=5, seed=0, grouped=False)
def test_kfold_folds_are_balanced_in_size(counts, k, seed, grouped):
    """Round-robin over the classes one after another (``stratified_kfold``'s 'keeps folds balanced'): the numbers
    of stratification units (gaits, or subjects when grouped) of any two folds differ by at most 1, overall and per
    class, and the folds partition the units. E.g. 4 classes x 11 gaits, k=5: sizes 9, 9, 9, 9, 8 (a round robin
    restarted at fold 0 for every class would give 12, 8, 8, 8, 8)."""
    labels = np.repeat(np.arange(len(counts)), counts)
    if len(labels) < k:
        return
    groups = np.arange(len(labels)) // 2 + 1000 * labels if grouped else None  # subjects of 1-2 gaits of one class
    if grouped and len(np.unique(groups)) < k:
        return
    folds = splits.stratified_kfold(labels, k, seed, groups)
    tests = [test for _, test in folds]
    np.testing.assert_array_equal(np.sort(np.concatenate(tests)), np.arange(len(labels)))  # disjoint, covering
    for train, test in folds:
        np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(len(labels)))
    unit_of = np.arange(len(labels)) if groups is None else groups
    unit_labels = []  # the label of each unit (gait or group) of each test fold
    for test in tests:
        _, first = np.unique(unit_of[test], return_index=True)
        unit_labels.append(labels[test][first])
    sizes = [len(u) for u in unit_labels]
    assert max(sizes) - min(sizes) <= 1, sizes
    for c in range(len(counts)):
        per_class = [int((ul == c).sum()) for ul in unit_labels]
        assert max(per_class) - min(per_class) <= 1, (c, per_class)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 1000))
def test_kfold_inner_validation_splits_are_drawn_independently_per_fold(seed):
    """4 classes x 10 gaits, k=5: every fold trains on 8 gaits of each class and holds 2 of them out for validation
    (val_fraction=0.25). Which 2 (their ranks among the fold's 8 training gaits of the class) must be drawn afresh per
    fold: with one seed for every fold's inner split, every fold would validate on the same ranks (the same
    permutation of equally many members), i.e. the validation choices of the folds would be perfectly correlated.
    Checked: the rank patterns are not identical in all 5 folds; validation sets are disjoint from training and test
    sets and hold 2 gaits per class."""
    labels = np.repeat(np.arange(4), 10)
    folds = splits.kfold_with_validation(labels, k=5, seed=seed, val_fraction=0.25)
    patterns = []
    for f in folds:
        assert not set(f.val) & set(f.test) and not set(f.train) & set(f.val) and not set(f.train) & set(f.test)
        inner = np.sort(np.concatenate([f.train, f.val]))
        pattern = []
        for c in range(4):
            members = inner[labels[inner] == c]
            assert len(members) == 8 and (labels[f.val] == c).sum() == 2
            pattern.append(tuple(np.flatnonzero(np.isin(members, f.val)).tolist()))
        patterns.append(tuple(pattern))
    assert len(set(patterns)) > 1, patterns


@settings(max_examples=150, deadline=None)
@given(counts=st.lists(st.integers(1, 12), min_size=1, max_size=4), fractions=st.sampled_from(
    [(0.85, 0.15, 0.0), (0.7, 0.15, 0.15), (0.1, 0.1, 0.8), (0.1, 0.9, 0.0), (1.0, 0.0, 0.0)]),
    min_val=st.integers(0, 2), seed=st.integers(0, 50), grouped=st.booleans())
@example(counts=[2], fractions=(0.1, 0.1, 0.8), min_val=1, seed=0, grouped=False)  # once put a gait in two parts
def test_a_minimum_of_validation_units_per_class_moves_units_and_never_loses_one(counts, fractions, min_val, seed,
                                                                                grouped):
    """``min_val_per_class`` (STEP+Aug's inner split): every class with more units than the minimum gets at least
    that many in validation, taken from train (one unit stays) then from test; no unit is lost or duplicated, and
    0 is the plain split."""
    labels = np.repeat(np.arange(len(counts)), [3 * c if grouped else c for c in counts])
    groups = np.repeat(np.arange(sum(counts)), 3) if grouped else None
    s = splits.train_val_test_split(labels, fractions, seed, groups, min_val_per_class=min_val)
    everything = np.concatenate(s)
    assert len(everything) == len(labels) and len(np.unique(everything)) == len(labels)
    plain = splits.train_val_test_split(labels, fractions, seed, groups)
    if min_val == 0:
        assert all(np.array_equal(a, b) for a, b in zip(s, plain))
    units = (lambda idx: len(np.unique(groups[idx]))) if grouped else len
    for c, n in enumerate(counts):
        part = {name: units(getattr(s, name)[labels[getattr(s, name)] == c]) for name in ("train", "val", "test")}
        was = {name: units(getattr(plain, name)[labels[getattr(plain, name)] == c]) for name in ("train", "val", "test")}
        if n > min_val:
            assert part["val"] >= min(min_val, was["val"] + max(was["train"] - 1, 0) + was["test"])
            assert part["train"] >= min(was["train"], 1)
        else:
            assert part == was


def test_three_subjects_per_class_keep_one_in_validation():
    """Bandai-like: 3 clips (subjects) per class at (0.85, 0.15, 0) round to no validation clip at all; with a
    minimum of one, each class gives one clip to validation and keeps two for training."""
    labels, groups = np.repeat(np.arange(4), 15), np.repeat(np.arange(12), 5)
    assert len(splits.train_val_test_split(labels, (0.85, 0.15, 0.0), 1, groups).val) == 0
    s = splits.train_val_test_split(labels, (0.85, 0.15, 0.0), 1, groups, min_val_per_class=1)
    np.testing.assert_array_equal(np.bincount(labels[s.val], minlength=4), [5] * 4)
    assert len(s.train) == 40 and not set(groups[s.train]) & set(groups[s.val])
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="min_val_per_class must be an integer >= 0"):
            splits.train_val_test_split(labels, (0.85, 0.15, 0.0), 1, groups, min_val_per_class=bad)


def test_windows_of_one_clip_stay_in_one_part_of_an_egait_split(tmp_path):
    """A BVH folder converted with ``--window`` (keys ``<clip>_f<first frame>``) and trained with
    configs/egait.py: the overlapping windows of one clip stay in one part (grouped by the key's clip), as
    data.source='bandai' keeps them; keys that name no window are split one by one, as E-Gait's own."""
    sys.path.insert(0, str(PROJECT_ROOT / "configs"))
    import egait as egait_config

    from stepjax.data import pipeline
    from stepjax.data.bvh import window_clip, window_stem
    from stepjax.data.egait import write_egait
    from stepjax.data.walkers import make_walkers

    assert [window_stem(k) for k in ("walk_f12", "walk_f0_f75", "walk_f", "walk_fx3", "002_Sad")] == [
        "walk", "walk_f0", "walk_f", "walk_fx3", "002_Sad"]
    w = make_walkers(24, seed=0, num_frames=96)
    gaits, labels = {}, {}
    for i in range(24):
        for key, win in window_clip(f"clip{i:02d}", np.asarray(w.gaits[i]), 32, 16).items():
            gaits[key], labels[key] = win.reshape(32, 48), int(w.labels[i])
    cfg = egait_config.get_config()
    cfg.data.path, cfg.data.labels_path = str(tmp_path / "windows.h5"), str(tmp_path / "windows_labels.h5")
    cfg.data.num_frames = 32
    write_egait(cfg.data.path, cfg.data.labels_path, gaits, labels)
    raw = pipeline.load_source(cfg.data)
    assert len(raw.labels) == 24 * 5 and len(np.unique(raw.subjects)) == 24
    split = pipeline.split_dataset(raw, cfg.data)
    clip = np.array([window_stem(k) for k in raw.keys])
    train, val, test = (set(clip[getattr(split, p)]) for p in ("train", "val", "test"))
    assert test and not (train & test) and not (val & test) and not (train & val)
    plain = {f"{i:03d}": g for i, g in enumerate(gaits.values())}  # the same gaits under E-Gait-like keys
    write_egait(cfg.data.path, cfg.data.labels_path, plain, dict(zip(plain, labels.values())))
    assert pipeline.load_source(cfg.data).subjects is None
    one_clip = {f"gait_f{i:03d}": g for i, g in enumerate(gaits.values())}  # keys that read as one clip's windows
    write_egait(cfg.data.path, cfg.data.labels_path, one_clip, dict(zip(one_clip, labels.values())))
    with pytest.raises(ValueError, match=r"empty train or validation set \(120 gaits of 1 clips \(keys "
                                         r"<clip>_f<first frame>\); a grouped split .*group_by_subject=False"), \
            pytest.warns(UserWarning):
        pipeline.prepare(cfg)


def test_an_ungrouped_split_of_gaits_sharing_subjects_warns():
    """``data.group_by_subject=False`` on gaits that share subjects or clips (walkers' subjects; Bandai windows,
    which overlap) puts gaits of one subject in train and test: allowed, with a warning saying so."""
    import ml_collections

    from stepjax.data import pipeline

    data = ml_collections.ConfigDict(dict(source="walkers", num_gaits=96, num_frames=8, seed=0, split=(0.6, 0.2, 0.2),
                                          split_seed=0, group_by_subject=False))
    preprocess = ml_collections.ConfigDict(dict(align=True, reference="mean", num_affective=0,
                                                affective_official=False, time_step=1 / 30))
    cfg = ml_collections.ConfigDict(dict(data=data, preprocess=preprocess))
    with pytest.warns(UserWarning, match=r"group_by_subject=False splits 96 gaits of \d+ subjects or clips gait by "
                                         r"gait: .* inflates the test score"):
        prepared = pipeline.prepare(cfg)
    subjects = prepared["raw"].subjects
    assert set(subjects[prepared["split"].train]) & set(subjects[prepared["split"].test])  # what it warns of
    cfg.data.group_by_subject = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipeline.prepare(cfg)
    assert not [w for w in caught if "group_by_subject=False splits" in str(w.message)]
