"""Generator metrics (``stepjax.gen_metrics``) against values written out independently in the tests:
FID against a float64 scipy reference, motion statistics of hand-made gaits, recognition accuracy of
logits with known argmax. All host numpy; no model, no data files."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings, strategies as st

from stepjax import LABEL_NAMES
from stepjax.gen_metrics import feature_statistics, fid, motion_statistics, set_metrics


def _reference_fid(a: np.ndarray, b: np.ndarray) -> float:
    """Textbook FID (Heusel et al.; pytorch-fid): unbiased covariances (ddof=1) and
    ``tr(S1 + S2 - 2 sqrtm(S1 S2))`` with scipy's general matrix square root, in float64."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False, ddof=1), np.cov(b, rowvar=False, ddof=1)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    assert np.abs(np.imag(covmean)).max() < 1e-8  # full-rank covariances: the root is real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(np.real(covmean)))


def test_fid_matches_the_unbiased_scipy_reference():
    """Two small full-rank sets (N = 12 and 20 in 4-d) with different means and covariances: ``fid``
    equals the scipy reference with ``np.cov(ddof=1)`` (rtol 1e-6; the two differ only by round-off).
    Small N makes the (N-1)/N factor of a biased covariance visible (several percent of the FID).
    ``feature_statistics`` returns exactly ``np.cov(ddof=1)`` as its docstring says ("unbiased")."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=(12, 4)) @ rng.normal(size=(4, 4))
    b = 0.5 + rng.normal(size=(20, 4)) @ np.diag([2.0, 0.3, 1.0, 0.7])
    want = _reference_fid(a, b)
    assert want > 1.0  # the sets really differ
    assert fid(a, b) == pytest.approx(want, rel=1e-6)
    assert fid(b, a) == pytest.approx(want, rel=1e-6)  # symmetric
    mu, sigma = feature_statistics(a)
    np.testing.assert_allclose(mu, a.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(a, rowvar=False, ddof=1), rtol=1e-12, atol=1e-12)
    # two samples in 1-d: the unbiased variance of {0, 2} is 2 (the biased one would be 1)
    assert feature_statistics(np.array([[0.0], [2.0]]))[1][0, 0] == pytest.approx(2.0, rel=1e-12)


V = 16  # joints; joint 0 is the root


def _static_pose(rng) -> np.ndarray:
    """A pose ``(V, 3)`` with distinct joint positions (so differences over joints are nonzero)."""
    return rng.normal(size=(V, 3))


def test_motion_statistics_of_a_static_pose_carried_by_a_moving_root_are_zero():
    """A rigid pose translated at constant velocity (root and every joint move by (0.3, -0.1, 0.05) per
    frame) does not move relative to the root: joint_speed = pose_std = 0 (atol 1e-12). Also a pose that
    is static in world coordinates scores 0."""
    rng = np.random.default_rng(0)
    pose = _static_pose(rng)
    t = np.arange(10, dtype=np.float64)
    moving = pose[None, None] + t[None, :, None, None] * np.array([0.3, -0.1, 0.05])  # (1, T, V, 3)
    stats = motion_statistics(np.concatenate([moving, moving + 1.0]))  # N = 2
    assert stats["joint_speed"] == pytest.approx(0.0, abs=1e-12)
    assert stats["pose_std"] == pytest.approx(0.0, abs=1e-12)
    still = motion_statistics(np.broadcast_to(pose, (3, 7, V, 3)))
    assert still == pytest.approx({"joint_speed": 0.0, "pose_std": 0.0}, abs=1e-12)


def test_motion_statistics_of_one_oscillating_joint_on_a_moving_root():
    """Hand-computed: the whole pose translates at constant velocity and joint 5 additionally alternates
    0, d, 0, d, ... (T = 8, even) along x relative to the root. Root-relative, joint 5 moves by exactly d
    every frame and the 15 others not at all: joint_speed = mean over (N, T-1, V) of the per-joint step
    length = d / V. Its x coordinate takes 0 and d equally often: population std d / 2; the other
    V * 3 - 1 (joint, coord) std's are 0: pose_std = (d / 2) / (3 V). rtol 1e-12 (float64)."""
    d = 0.4
    rng = np.random.default_rng(2)
    pose = _static_pose(rng)
    T = 8
    t = np.arange(T, dtype=np.float64)
    g = pose[None] + t[:, None, None] * np.array([0.1, 0.2, -0.3])  # (T, V, 3)
    g[:, 5, 0] += d * (t % 2)
    stats = motion_statistics(g[None])
    assert stats["joint_speed"] == pytest.approx(d / V, rel=1e-12)
    assert stats["pose_std"] == pytest.approx(d / 2 / (3 * V), rel=1e-12)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_motion_statistics_ignore_any_root_trajectory(seed):
    """Property: adding an arbitrary per-frame offset (the root trajectory) to every joint of random gaits
    leaves both statistics unchanged (rtol 1e-9, atol 1e-12), since they are root-relative; the joint
    speed equals a naive loop over gaits, frames and joints of ||(x_j - x_0)[t+1] - (x_j - x_0)[t]||."""
    rng = np.random.default_rng(seed)
    n, T = rng.integers(1, 4), rng.integers(2, 7)
    g = rng.normal(size=(n, T, V, 3))
    root_path = 5.0 * rng.normal(size=(n, T, 1, 3))
    a, b = motion_statistics(g), motion_statistics(g + root_path)
    assert b == pytest.approx(a, rel=1e-9, abs=1e-12)
    steps = [np.linalg.norm((g[i, t + 1, j] - g[i, t + 1, 0]) - (g[i, t, j] - g[i, t, 0]))
             for i in range(n) for t in range(T - 1) for j in range(V)]
    assert a["joint_speed"] == pytest.approx(np.mean(steps), rel=1e-9)


def test_set_metrics_recognition_accuracy_and_per_class():
    """Logits whose argmax is a known prediction vector: labels 0,1,2,3,0,1,2,3, predictions
    0,1,2,3 (first half all right) then 1,1,3,3 (second half 2 of 4 right). Accuracy 6/8 = 0.75 exactly;
    per class (2 gaits each): Angry 1/2, Neutral 1, Happy 1/2, Sad 1. ``num_gaits`` = 8."""
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    preds = np.array([0, 1, 2, 3, 1, 1, 3, 3])
    rng = np.random.default_rng(3)
    logits = 5.0 * np.eye(4)[preds] + rng.uniform(-1, 1, (8, 4))  # argmax = preds (margin >= 3)
    assert np.array_equal(logits.argmax(-1), preds)
    features = rng.normal(size=(8, 6))
    out = set_metrics(features, labels, logits)
    assert out["num_gaits"] == 8
    assert out["recognition_accuracy"] == 0.75
    assert out["recognition_per_class"] == {"Angry": 0.5, "Neutral": 1.0, "Happy": 0.5, "Sad": 1.0}
    assert "recognition_accuracy" not in set_metrics(features, labels)  # no logits: no accuracy


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_set_metrics_accuracy_is_the_count_weighted_mean_of_per_class(seed):
    """Property on random labels / predictions (every class twice or more): recognition accuracy equals
    the fraction of all correct predictions (naive count, exact) and the per-class accuracies weighted
    by class counts (rtol 1e-12)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 30))
    labels = np.concatenate([np.repeat(np.arange(4), 2), rng.integers(0, 4, n - 8)])
    rng.shuffle(labels)
    preds = np.where(rng.random(n) < 0.6, labels, rng.integers(0, 4, n))
    logits = np.eye(4)[preds] + 0.1 * rng.random((n, 4))
    out = set_metrics(rng.normal(size=(n, 3)), labels, logits)
    correct = sum(int(p == l) for p, l in zip(preds, labels))
    assert out["recognition_accuracy"] == correct / n
    counts = np.bincount(labels, minlength=4)
    weighted = sum(counts[c] * out["recognition_per_class"][LABEL_NAMES[c]] for c in range(4)) / n
    assert out["recognition_accuracy"] == pytest.approx(weighted, rel=1e-12)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_motion_statistics_count_only_the_real_frames_of_tiled_gaits(seed):
    """Gaits tiled to T frames (``lengths`` real frames each, the rest repeats): the statistics are those of
    the real frames only, pooled over all real frame pairs / all gaits as a loop over the untiled gaits gives
    (the jump at the tiling seam would otherwise count as motion); lengths = T is the plain call."""
    from stepjax.data.preprocess import to_fixed_length

    rng = np.random.default_rng(seed)
    t = 12
    lengths = rng.integers(1, t + 1, 3)
    real = [rng.normal(size=(n, 16, 3)) for n in lengths]
    tiled = np.asarray(to_fixed_length([g.astype(np.float32) for g in real], t, "tile"), np.float64)
    got = motion_statistics(tiled, lengths)
    rel = [(g - g[:, :1])[:n] for g, n in zip(tiled, lengths)]  # root-relative real frames
    speeds = np.concatenate([np.linalg.norm(np.diff(r, axis=0), axis=-1).ravel() for r in rel])
    want_speed = speeds.mean() if len(speeds) else 0.0
    want_std = np.mean([r.std(axis=0).mean() for r in rel])
    assert got["joint_speed"] == pytest.approx(want_speed, rel=1e-12, abs=1e-12)
    assert got["pose_std"] == pytest.approx(want_std, rel=1e-12, abs=1e-12)
    assert motion_statistics(tiled, np.full(3, t)) == motion_statistics(tiled)
    with pytest.raises(ValueError, match="lengths"):
        motion_statistics(tiled, np.array([0, 3, 3]))


def test_metrics_refuse_inputs_that_would_give_a_raw_error_or_a_misread_number():
    """NaN features (a LinAlgError or NaN), labels that do not match the features or lie outside 0..3 (-1 was
    once reported as 'Sad'), and zero pairs (a NaN mean) are clear errors; a set where no class has two gaits
    (a tiny real test split) reports multimodality NaN with a warning instead of losing every metric."""
    from stepjax.gen_metrics import diversity, multimodality

    rng = np.random.default_rng(0)
    f = rng.normal(size=(12, 5))
    with pytest.raises(ValueError, match=r"features of 1 of 12 samples are NaN/inf \(first rows \[3\]\)"):
        fid(np.where(np.arange(12)[:, None] == 3, np.nan, f), f)
    with pytest.raises(ValueError, match=r"need one label per feature vector: 12 features, labels of shape \(6,\)"):
        multimodality(f, np.zeros(6, int))
    for bad in (-1, 7):
        with pytest.raises(ValueError, match="labels must be whole numbers in 0..3"):
            set_metrics(f, np.full(12, bad))
    with pytest.raises(ValueError, match="num_pairs must be an integer >= 1, got 0"):
        diversity(f, 0)
    labels = np.repeat([0, 1, 2], 4)
    labels[-1] = 3  # a class of one gait has no pair: it is left out of the mean, not counted as distance 0
    assert multimodality(f, labels) == multimodality(f[:11], labels[:11])
    with pytest.warns(UserWarning, match="multimodality of a set of 4 gaits with no class of 2"):
        report = set_metrics(f[:4], np.arange(4), rng.normal(size=(4, 4)))
    assert np.isnan(report["multimodality"]) and np.isfinite(report["diversity"]) and "recognition_accuracy" in report
