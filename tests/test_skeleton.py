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


# ------------------------------------------------------------------------------------------------------------
# Equitable partition: the joints a graph network fed the same input everywhere cannot tell apart
# ------------------------------------------------------------------------------------------------------------

def _set_partitions(n: int):
    """Every partition of range(n) as a cell-id vector (restricted growth strings)."""
    def grow(prefix, top):
        if len(prefix) == n:
            yield np.array(prefix)
            return
        for c in range(top + 2):
            yield from grow(prefix + [c], max(top, c))
    yield from grow([0], 0)


def _is_equitable(a: np.ndarray, cells: np.ndarray) -> bool:
    """Every joint of a cell receives the same weight from every cell (sums correctly rounded, compared exactly)."""
    import math

    members = [np.flatnonzero(cells == d) for d in range(cells.max() + 1)]
    received = [tuple(math.fsum(a[k, m, w]) for k in range(a.shape[0]) for m in members) for w in range(a.shape[1])]
    return all(received[w] == received[np.flatnonzero(cells == cells[w])[0]] for w in range(a.shape[1]))


@pytest.mark.parametrize("official", [True, False])
def test_equitable_partition_of_the_skeleton_pairs_each_joint_with_its_mirror_twin(official):
    a = sk.spatial_adjacency(official=official)
    cells = sk.equitable_partition(a)
    for v in range(sk.NUM_JOINTS):
        assert set(np.flatnonzero(cells == cells[v])) == {v, sk.MIRROR_PERMUTATION[v]}, sk.JOINT_NAMES[v]
    assert cells.max() + 1 == 10 and _is_equitable(a, cells)
    np.testing.assert_array_equal(cells[:4], [0, 1, 2, 3])  # numbered by their first joint
    assert sk.quotient_adjacency(a, cells).shape == (3, 10, 10)


def test_equitable_partition_is_the_coarsest_one_on_small_random_graphs():
    """Against brute force over every partition of up to 7 joints: the result is equitable and every equitable
    partition refines it (the coarsest one is unique). Graphs get planted symmetries (a random permutation's
    orbits, weights averaged over its powers) so that the answer is not always the discrete partition."""
    rng = np.random.default_rng(0)
    nontrivial = 0
    for trial in range(60):
        v, k = rng.integers(2, 8), rng.integers(1, 4)
        weights = np.round(rng.random((k, v, v)), 1) * (rng.random((k, v, v)) < 0.5)
        perm = rng.permutation(v)
        powers = [np.arange(v)]
        while not np.array_equal(p := perm[powers[-1]], np.arange(v)):
            powers.append(p)
        a = np.full((k, v, v), np.nan)
        for kk, i, j in np.ndindex(k, v, v):  # one weight per orbit of edges: perm is an automorphism
            if np.isnan(a[kk, i, j]):
                for p in powers:
                    a[kk, p[i], p[j]] = weights[kk, i, j]
        cells = sk.equitable_partition(a)
        assert _is_equitable(a, cells)
        assert all(cells[perm[i]] == cells[i] for i in range(v))  # an automorphism keeps every joint's cell
        for other in _set_partitions(v):
            if _is_equitable(a, other):  # refines ours: joints together in `other` are together in ours
                assert all(cells[i] == cells[j] for i in range(v) for j in range(v) if other[i] == other[j])
        nontrivial += cells.max() + 1 < v
        # the quotient graph acts on one joint per cell as A acts on the cell-constant input
        x = rng.standard_normal((cells.max() + 1, 3))
        full = np.einsum("kvw,vc->kwc", a, x[cells])
        q = np.einsum("kde,dc->kec", sk.quotient_adjacency(a, cells), x)
        np.testing.assert_allclose(full, q[:, cells], atol=1e-12)
    assert nontrivial > 20  # the planted symmetries were found


def test_equitable_partition_never_merges_distinct_weights_and_checks_quotient_cells():
    """Weights far below the largest one still tell joints apart (a tolerance scaled by the largest weight
    merged them, and the quotient then gave the joint receiving 1.0 the value 0); sums of the same weights in
    another order are equal (a rounding boundary split them); the quotient refuses a partition that is not
    equitable, or does not number the joints; a bad adjacency is a ValueError."""
    a = np.zeros((1, 4, 4))
    a[0, 0, 0], a[0, 1, 2] = 1e10, 1.0  # joint 2 receives 1 from joint 1, joints 1 and 3 receive nothing
    cells = sk.equitable_partition(a)
    assert cells[2] != cells[1] and cells[2] != cells[3]
    x = np.array([0.3, 1.0, 0.7, 0.2])[:, None]
    full = np.einsum("kvw,vc->kwc", a, x)
    np.testing.assert_array_equal(np.einsum("kde,dc->kec", sk.quotient_adjacency(a, cells), x[[np.flatnonzero(
        cells == d)[0] for d in range(cells.max() + 1)]])[:, cells], full)
    b = np.zeros((1, 5, 5))
    b[0, :3, 3] = [0.1, 0.7, 0.2 + 1e-17]
    b[0, :3, 4] = b[0, :3, 3][::-1]  # the same weights into joint 4, summed in another order
    b[0, 0, :3] = b[0, 1, :3] = b[0, 2, :3] = 1.0
    cells = sk.equitable_partition(b)
    assert cells[3] == cells[4]
    with pytest.raises(ValueError, match="not an equitable partition"):
        sk.quotient_adjacency(sk.spatial_adjacency(), np.array([0, 1, 2, 3] + [4] * 12))
    with pytest.raises(ValueError, match=r"number the 16 joints 0\.\.D-1"):
        sk.quotient_adjacency(sk.spatial_adjacency(), np.arange(16) * 2)
    with pytest.raises(ValueError, match="finite"):
        sk.equitable_partition(np.full((3, 16, 16), np.nan))
    with pytest.raises(ValueError, match=r"\(K, V, V\)"):
        sk.equitable_partition(np.zeros((16, 16)))
    with pytest.raises(ValueError, match=r"\(K, V, V\)"):
        sk.equitable_partition(np.zeros((0, 3, 3)))
