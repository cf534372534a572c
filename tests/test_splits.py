import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

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
    with pytest.warns(UserWarning, match=r"lopsided: val 5% \(asked 15%\);"):
        pipeline.warn_if_lopsided(s, (0.7, 0.15, 0.15), 160)
    w = make_walkers(1200, seed=0, num_frames=8)  # configs/step.py: 840/184/176, no warning
    s = splits.train_val_test_split(w.labels, (0.7, 0.15, 0.15), 0, groups=w.subjects)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipeline.warn_if_lopsided(s, (0.7, 0.15, 0.15), 1200)


def test_split_errors():
    with pytest.raises(ValueError, match="fractions"):
        splits.train_val_test_split([0, 1, 2], (0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="cannot make 5 folds"):
        splits.stratified_kfold([0, 1, 2], k=5)
    for bad in ([0, 1.7, 2], [0, -1, 2], [0.0, np.nan]):  # 1.7 was once truncated to class 1
        with pytest.raises(ValueError, match="non-negative whole class indices"):
            splits.train_val_test_split(np.array(bad), (0.5, 0.25, 0.25))
