import numpy as np
import pytest

from stepjax import skeleton as sk
from conftest import golden, require, EGAIT_SAMPLES


def test_official_adjacency_matches_golden_exactly():
    g = golden("graph.npz")
    a = sk.spatial_adjacency(official=True)
    np.testing.assert_array_equal(a, g["A"])
    np.testing.assert_array_equal(a.astype(np.float32), g["A_float32"])
    np.testing.assert_array_equal(sk.hop_distance(1), g["hop_dis"])
    edges = {tuple(e) for e in g["edges"].tolist() if e[0] != e[1]}
    assert edges == {tuple(b) for b in sk.BONES}


def test_adjacency_partitions_are_normalised_and_complete():
    for official in (True, False):
        a = sk.spatial_adjacency(official=official)
        np.testing.assert_allclose(a.sum(0).sum(0), np.ones(16))  # every column sums to 1
        support = (a.sum(0) > 0)
        expected = np.eye(16, dtype=bool)
        for i, j in sk.BONES:
            expected[i, j] = expected[j, i] = True
        np.testing.assert_array_equal(support, expected)
        assert np.all((a > 0).sum(0) <= 1)  # partitions are disjoint


def test_corrected_adjacency_splits_every_bone_in_both_directions():
    a = sk.spatial_adjacency(official=False)
    dist = sk.hop_distance(None)[:, 0]
    for p, c in sk.BONES:  # parent p is closer to the root than child c
        assert dist[p] < dist[c]
        assert a[2, p, c] > 0 and a[1, c, p] > 0  # centrifugal p->c in A[2], centripetal c->p in A[1]
    official = sk.spatial_adjacency(official=True)
    assert (official[2] > 0).sum() == 6 and (a[2] > 0).sum() == 15  # the quirk drops 9 centrifugal edges


def test_mirror_is_an_involution_and_swaps_sides():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 16, 3)).astype(np.float32)
    m = sk.mirror(x)
    np.testing.assert_array_equal(sk.mirror(m), x)
    np.testing.assert_array_equal(m[..., sk.LEFT_HAND, 0], -x[..., sk.RIGHT_HAND, 0])
    np.testing.assert_array_equal(m[..., sk.LEFT_HAND, 1:], x[..., sk.RIGHT_HAND, 1:])
    with pytest.raises(ValueError, match=r"\(\.\.\., 16, 3\)"):
        sk.mirror(np.zeros((5, 48)))


def test_side_convention_matches_egait_geometry():
    """E-Gait walkers face -Z with Y up, so +X is their right: joints 4-6 / 10-12 must sit at x < 0."""
    import h5py
    path = require(EGAIT_SAMPLES / "sample_features.h5")
    with h5py.File(path) as f:
        for key in f:
            p = f[key][()].reshape(-1, 16, 3)
            face = p[:, sk.HEAD] - p[:, sk.NECK]
            assert face[:, 2].mean() < 0, "head (face point) should point to -Z"
            assert p[:, [sk.LEFT_SHOULDER, sk.LEFT_ELBOW, sk.LEFT_HAND, sk.LEFT_HIP], 0].mean() < -0.05
            assert p[:, [sk.RIGHT_SHOULDER, sk.RIGHT_ELBOW, sk.RIGHT_HAND, sk.RIGHT_HIP], 0].mean() > 0.05
