"""Tests of the procedural walkers (stepjax.data.walkers) and the walking statistics (gait_stats)."""

from __future__ import annotations

import numpy as np
import pytest

from stepjax.data.gait_stats import centroid_accuracy, summary_table, walking_statistics
from stepjax.data.walkers import EGAIT_CLASS_PROBS, STYLE_PARAMS, WalkerData, make_walkers
from stepjax.skeleton import (BONES, HEAD, LEFT_FOOT, LEFT_HAND, LEFT_HIP, LEFT_SHOULDER, NECK,
                              RIGHT_FOOT, RIGHT_HAND, RIGHT_HIP, RIGHT_SHOULDER, ROOT, bone_lengths)

ANGRY, NEUTRAL, HAPPY, SAD = range(4)
FPS = 30.0


@pytest.fixture(scope="module")
def world() -> WalkerData:
    """800 walkers (200 per class) with their world trajectory."""
    return make_walkers(800, seed=11, root_relative=False)


@pytest.fixture(scope="module")
def world_stats(world: WalkerData) -> dict[str, np.ndarray]:
    return walking_statistics(world.gaits, world.fps)


@pytest.fixture(scope="module")
def relative() -> WalkerData:
    return make_walkers(96, seed=3, num_frames=40)


def class_means(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean of ``values (N,)`` per class, ``(4,)``."""
    return np.array([values[labels == c].mean() for c in range(4)])


# ----------------------------------------------------------------------------- format


def test_same_seed_is_bit_identical_and_seeds_differ():
    a = make_walkers(24, seed=5, root_relative=False)
    b = make_walkers(24, seed=5, root_relative=False)
    c = make_walkers(24, seed=6, root_relative=False)
    assert a.gaits.tobytes() == b.gaits.tobytes()
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.subjects, b.subjects)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert np.abs(a.gaits - c.gaits).max() > 0.05


def test_shapes_dtypes_and_params(relative: WalkerData):
    n, t = 96, 40
    assert relative.gaits.shape == (n, t, 16, 3) and relative.gaits.dtype == np.float32
    assert relative.labels.shape == (n,) and relative.labels.dtype == np.int32
    assert relative.subjects.shape == (n,) and relative.subjects.dtype == np.int32
    assert set(relative.labels) == {0, 1, 2, 3}
    assert set(STYLE_PARAMS) <= set(relative.params)
    assert all(v.shape == (n,) for v in relative.params.values())
    assert np.isfinite(relative.gaits).all()
    assert make_walkers(0, seed=0).gaits.shape == (0, 75, 16, 3)


def test_root_relative_root_is_exactly_zero(relative: WalkerData):
    assert np.all(relative.gaits[:, :, ROOT] == 0.0)


def test_class_balance_and_probs():
    assert np.bincount(make_walkers(10, seed=0, num_frames=2).labels, minlength=4).tolist() in (
        [3, 3, 2, 2], [3, 2, 3, 2], [2, 3, 3, 2], [3, 2, 2, 3], [2, 3, 2, 3], [2, 2, 3, 3])
    egait = make_walkers(342, seed=0, num_frames=2, class_probs=EGAIT_CLASS_PROBS)
    assert np.bincount(egait.labels, minlength=4).tolist() == [112, 33, 78, 119]
    for probs in ((1.0, 0.0, -1.0, 1.0), (np.nan, 1.0, 1.0, 1.0), (1.0, 1.0, 1.0)):
        with pytest.raises(ValueError, match="class_probs must be 4 non-negative numbers"):
            make_walkers(4, seed=0, class_probs=probs)


@pytest.mark.parametrize("kwargs,name", [(dict(num_gaits=2.5), "num_gaits=2.5"), (dict(num_gaits=True), "num_gaits"),
                                         (dict(seed=-1), "seed=-1"), (dict(num_frames=10.7), "num_frames=10.7"),
                                         (dict(fps=float("nan")), "fps=nan"), (dict(difficulty=float("inf")),
                                                                               "difficulty=inf")])
def test_make_walkers_names_a_bad_argument(kwargs, name):
    """Not a raw numpy error or NaN gaits: the argument, its value and what is needed."""
    args = {"num_gaits": 4, "seed": 0, "num_frames": 8, **kwargs}
    with pytest.raises(ValueError, match=f"make_walkers: {name}.*; need integers"):
        make_walkers(**args)


# ----------------------------------------------------------------------------- body


def test_bone_lengths_constant_plausible_and_symmetric(relative: WalkerData):
    lengths = bone_lengths(relative.gaits.astype(np.float64))  # (N, T, 15)
    assert lengths.std(axis=1).max() < 1e-5
    mean = lengths.mean(axis=1)
    bone = {pair: mean[:, k] for k, pair in enumerate(BONES)}
    assert np.all((mean > 0.05) & (mean < 0.55))
    assert np.all((bone[(10, 11)] > 0.33) & (bone[(10, 11)] < 0.50))  # thigh
    assert np.all((bone[(4, 5)] > 0.22) & (bone[(4, 5)] < 0.34))      # upper arm
    assert np.allclose(bone[(10, 11)], bone[(13, 14)], atol=1e-5)     # left == right
    assert np.allclose(bone[(5, 6)], bone[(8, 9)], atol=1e-5)


def test_subjects_share_proportions_and_differ_between_subjects(relative: WalkerData):
    lengths = bone_lengths(relative.gaits.astype(np.float64)).mean(axis=1)  # (N, 15)
    counts = np.bincount(relative.subjects)
    assert counts.min() >= 8 and counts.max() <= 8  # 96 gaits, 8 per subject
    per_subject = [lengths[relative.subjects == s] for s in range(counts.size)]
    assert max(np.abs(p - p[0]).max() for p in per_subject) < 1e-5
    assert len({tuple(np.round(p[0], 4)) for p in per_subject}) == counts.size
    # every subject walks with more than one emotion
    assert all(len(set(relative.labels[relative.subjects == s])) > 1 for s in range(counts.size))


def test_walker_faces_and_travels_towards_minus_z(world: WalkerData):
    g = world.gaits
    # right side at +X (facing -Z with Y up)
    assert np.all(g[:, :, RIGHT_HIP, 0] > g[:, :, LEFT_HIP, 0])
    assert np.all(g[:, :, RIGHT_SHOULDER, 0] > g[:, :, LEFT_SHOULDER, 0])
    travel = g[:, -1, ROOT] - g[:, 0, ROOT]
    assert np.all(travel[:, 2] < -0.2) and np.all(np.abs(travel[:, 0]) < 0.15)
    np.testing.assert_allclose(-travel[:, 2] / ((g.shape[1] - 1) / FPS), world.params["speed_mps"], rtol=0.02)
    # E-Gait head convention: a face point in front of the neck
    face = make_walkers(16, seed=2, head_convention="egait").gaits
    assert np.all(face[:, :, HEAD, 2] < face[:, :, NECK, 2] - 0.05)


def test_feet_planted_in_stance_and_on_the_ground(world: WalkerData):
    g = world.gaits.astype(np.float64)
    for foot in (LEFT_FOOT, RIGHT_FOOT):
        height = g[:, :, foot, 1]
        assert np.all((height.min(axis=1) > 0.04) & (height.min(axis=1) < 0.13))
        step = np.linalg.norm(np.diff(g[:, :, foot][..., [0, 2]], axis=1), axis=-1)  # m per frame
        low = height <= height.min(axis=1, keepdims=True) + 0.005
        stance = low[:, 1:] & low[:, :-1]
        assert step[stance].mean() < 0.005 and step[~stance].mean() > 5 * step[stance].mean()


def test_start_phase_is_random(world: WalkerData):
    phase = world.params["phase0_rad"]
    assert np.histogram(phase, bins=4, range=(0, 2 * np.pi))[0].min() > 100


# ----------------------------------------------------------------------------- emotions


def test_sad_is_slowest_most_stooped_with_the_lowest_head(world: WalkerData, world_stats):
    labels = world.labels
    others = [ANGRY, NEUTRAL, HAPPY]
    speed = class_means(world_stats["speed_mps"], labels)
    lean = class_means(world_stats["trunk_lean_deg"], labels)
    head = class_means(world_stats["head_angle_deg"], labels)
    head_height = class_means((world.gaits[:, :, HEAD, 1] - world.gaits[:, :, ROOT, 1]).mean(1), labels)
    assert 0.35 < speed[SAD] < 0.65 and speed[SAD] < speed[others].min() - 0.4
    assert lean[SAD] > lean[others].max() + 1.5
    assert head[SAD] > head[others].max() + 4.0
    assert head_height[SAD] < head_height[others].min() - 0.003
    swing = class_means(world_stats["arm_swing_m"], labels)
    hands = class_means(world_stats["hand_height_m"], labels)
    assert swing[SAD] < swing[others].min() - 0.1 and hands[SAD] < hands[others].min() - 0.02


def test_angry_and_happy_faster_than_neutral_happy_bouncy_with_high_hands(world: WalkerData, world_stats):
    labels = world.labels
    speed = class_means(world_stats["speed_mps"], labels)
    assert min(speed[ANGRY], speed[HAPPY]) > speed[NEUTRAL] + 0.08
    bounce = class_means(world_stats["bounce_m"], labels)
    hands = class_means(world_stats["hand_height_m"], labels)
    others = [ANGRY, NEUTRAL, SAD]
    assert bounce[HAPPY] > bounce[others].max() + 0.005
    assert hands[HAPPY] > hands[others].max() + 0.02
    lean = class_means(world_stats["trunk_lean_deg"], labels)
    assert lean[ANGRY] > max(lean[NEUTRAL], lean[HAPPY]) + 2.0


def test_classes_overlap_but_are_learnable(world: WalkerData, world_stats):
    train = world.subjects % 2 == 0
    accuracy = centroid_accuracy(world_stats, world.labels, train)
    assert 0.5 < accuracy < 0.98
    easy, hard = (make_walkers(400, seed=4, root_relative=False, difficulty=d) for d in (0.3, 2.5))
    acc = [centroid_accuracy(walking_statistics(w.gaits, FPS), w.labels, w.subjects % 2 == 0)
           for w in (easy, hard)]
    assert acc[0] > accuracy > acc[1]


# ----------------------------------------------------------------------------- statistics


def hand_made_gait(num_frames: int = 61, speed: float = 1.3, lean_deg: float = 10.0,
                   head_deg: float = 20.0) -> np.ndarray:
    """A gait ``(T, 16, 3)`` with known statistics: walks at ``speed`` towards -Z, root bounces
    2 cm at 2 Hz, neck leans ``lean_deg`` forward, head ``head_deg``, hands swing +-0.2 m at 1 Hz
    0.1 m below the root, feet alternate at 1 stride per second (120 steps/min)."""
    t = np.arange(num_frames) / FPS
    g = np.zeros((num_frames, 16, 3))
    g[:, ROOT] = np.stack([0.0 * t, 0.9 + 0.02 * np.sin(4 * np.pi * t), -speed * t], -1)
    lean, head = np.radians(lean_deg), np.radians(head_deg)
    g[:, NECK] = g[:, ROOT] + 0.5 * np.array([0.0, np.cos(lean), -np.sin(lean)])
    g[:, HEAD] = g[:, NECK] + 0.1 * np.array([0.0, np.cos(head), -np.sin(head)])
    zero = 0.0 * t
    for hand, sign in ((LEFT_HAND, 1.0), (RIGHT_HAND, -1.0)):
        g[:, hand] = g[:, ROOT] + np.stack([zero, zero - 0.1, sign * 0.2 * np.sin(2 * np.pi * t)], -1)
    for foot, sign in ((LEFT_FOOT, 1.0), (RIGHT_FOOT, -1.0)):
        g[:, foot] = g[:, ROOT] + np.stack([zero, zero - 0.8, sign * 0.15 * np.sin(2 * np.pi * t + 0.3)], -1)
    return g


def test_walking_statistics_on_a_hand_made_gait():
    g = hand_made_gait()
    s = walking_statistics(g[None], FPS)
    assert all(v.shape == (1,) for v in s.values())
    np.testing.assert_allclose(s["speed_mps"], 1.3, rtol=1e-9)
    np.testing.assert_allclose(s["trunk_lean_deg"], 10.0, atol=1e-6)
    np.testing.assert_allclose(s["head_angle_deg"], 20.0, atol=1e-6)
    t = np.arange(g.shape[0]) / FPS
    np.testing.assert_allclose(s["arm_swing_m"], 0.2 * np.ptp(np.sin(2 * np.pi * t)), rtol=1e-9)  # ~0.4
    np.testing.assert_allclose(s["hand_height_m"], -0.1, atol=1e-9)
    np.testing.assert_allclose(s["bounce_m"], 0.02 * np.std(np.sin(4 * np.pi * t)), rtol=1e-9)  # ~0.014
    np.testing.assert_allclose(s["cadence_spm"], 120.0, rtol=0.02)
    backwards = hand_made_gait(lean_deg=-5.0, head_deg=-15.0)
    np.testing.assert_allclose(walking_statistics(backwards[None], FPS)["head_angle_deg"], -15.0, atol=1e-6)


def test_walking_statistics_root_relative_and_lists():
    g = hand_made_gait()
    rel = g - g[:, ROOT:ROOT + 1]
    s = walking_statistics(rel[None], FPS)
    assert np.isnan(s["speed_mps"]).all() and np.isnan(s["bounce_m"]).all()
    np.testing.assert_allclose(s["trunk_lean_deg"], 10.0, atol=1e-6)
    short = hand_made_gait(num_frames=31, speed=0.5)
    listed = walking_statistics([g, short], FPS)
    assert listed["speed_mps"].shape == (2,)
    np.testing.assert_allclose(listed["speed_mps"], [1.3, 0.5], rtol=1e-9)
    np.testing.assert_allclose(listed["cadence_spm"][0], walking_statistics(g[None], FPS)["cadence_spm"][0])


def test_summary_table_formats_mean_std_per_row():
    stats = {"speed_mps": np.array([1.0, 2.0]), "bounce_m": np.array([np.nan, np.nan])}
    table = summary_table({"Sad, walkers": stats, "Happy": {"speed_mps": np.array([0.5])}})
    lines = table.strip().splitlines()
    assert len(lines) == 4 and lines[0].startswith("|  | n | speed (m/s)")
    assert "| Sad, walkers | 2 | 1.50 ± 0.50 | n/a |" in table
    assert "| Happy | 1 | 0.50 ± 0.00 | n/a |" in table
