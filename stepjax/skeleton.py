"""The 16-joint STEP / E-Gait skeleton and its ST-GCN adjacency partitions.

Array convention used everywhere in stepjax: a gait is ``(T, 16, 3)`` float32 in metres, Y up,
coordinates ``(x, y, z)``; a batch is ``(N, T, 16, 3)``.

Side convention (checked on the real E-Gait samples in ``../shared/data/egait-samples``): the walker
faces -Z with Y up, so in a right-handed frame their right-hand side is +X. Joints 4-6 and 10-12 sit
at x < 0 in every frame of those samples, i.e. they are the **left** arm and leg. This agrees with the
E-Gait dataset README and disagrees with the names in the official code (STEP_REFERENCE section 2.1,
bug 20), which calls 4-6 / 10-12 "right". Indices are what matter to every model and feature; only
the names differ, and stepjax uses the geometric ones.

Adjacency: ``A[k, v, w]`` is the weight from source joint ``v`` into target joint ``w``; a graph
convolution computes ``out[..., w] = sum_k sum_v x_k[..., v] * A[k, v, w]``.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

NUM_JOINTS = 16
NUM_COORDS = 3
CENTER = 0  # root (pelvis) is the graph centre

JOINT_NAMES: tuple[str, ...] = (
    "root", "spine", "neck", "head",
    "left_shoulder", "left_elbow", "left_hand",
    "right_shoulder", "right_elbow", "right_hand",
    "left_hip", "left_knee", "left_foot",
    "right_hip", "right_knee", "right_foot",
)
#: Parent of each joint in the kinematic tree (-1 for the root).
PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 2, 4, 5, 2, 7, 8, 0, 10, 11, 0, 13, 14)
#: Undirected bone list (parent, child), in the order of the official ``graph.py``.
BONES: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 10), (0, 13), (1, 2), (2, 3), (2, 4), (2, 7), (4, 5), (5, 6),
    (7, 8), (8, 9), (10, 11), (11, 12), (13, 14), (14, 15),
)
#: Joint permutation that swaps left and right (an involution).
MIRROR_PERMUTATION: tuple[int, ...] = (0, 1, 2, 3, 7, 8, 9, 4, 5, 6, 13, 14, 15, 10, 11, 12)

# Named indices used by features and tests.
ROOT, SPINE, NECK, HEAD = 0, 1, 2, 3
LEFT_SHOULDER, LEFT_ELBOW, LEFT_HAND = 4, 5, 6
RIGHT_SHOULDER, RIGHT_ELBOW, RIGHT_HAND = 7, 8, 9
LEFT_HIP, LEFT_KNEE, LEFT_FOOT = 10, 11, 12
RIGHT_HIP, RIGHT_KNEE, RIGHT_FOOT = 13, 14, 15

#: Axis conventions of E-Gait data: Y up, walker facing -Z, lateral axis X.
UP_AXIS = 1
LATERAL_AXIS = 0
FORWARD = np.array([0.0, 0.0, -1.0])


def _one_hop_adjacency(num_node: int, bones: Sequence[tuple[int, int]]) -> np.ndarray:
    adj = np.zeros((num_node, num_node))
    for i, j in bones:
        adj[i, j] = adj[j, i] = 1.0
    return adj


def hop_distance(max_hop: int | None = 1, num_node: int = NUM_JOINTS,
                 bones: Sequence[tuple[int, int]] = BONES) -> np.ndarray:
    """Shortest hop distance between joints, ``(V, V)`` float64.

    With ``max_hop=1`` (the official ``graph.py``) distances beyond one hop are ``inf``. With
    ``max_hop=None`` the true graph distance is returned (finite on a connected skeleton).
    """
    adj = _one_hop_adjacency(num_node, bones)
    limit = num_node if max_hop is None else max_hop
    reach = [np.linalg.matrix_power(adj, d) > 0 for d in range(limit + 1)]
    dist = np.full((num_node, num_node), np.inf)
    for d in range(limit, -1, -1):
        dist[reach[d]] = d
    return dist


def normalize_digraph(adj: np.ndarray) -> np.ndarray:
    """``A D^-1`` with ``D = diag(column sums)``: every non-empty column sums to one."""
    col = adj.sum(0)
    inv = np.where(col > 0, 1.0 / np.where(col > 0, col, 1.0), 0.0)
    return adj * inv[None, :]


def spatial_adjacency(official: bool = False, num_node: int = NUM_JOINTS,
                      bones: Sequence[tuple[int, int]] = BONES, center: int = CENTER) -> np.ndarray:
    """ST-GCN 'spatial' partition (max_hop 1, dilation 1): ``(3, V, V)`` float64.

    ``A[0]`` holds the self links, ``A[1]`` edges into a target at least as far from the centre as
    the source ("root" + centripetal groups of the official code), ``A[2]`` edges into a target closer
    to the centre (centrifugal).

    Args:
      official: reproduce ``net/utils/graph.py`` exactly. There, distances to the centre are only
        known up to one hop and are ``inf`` elsewhere, so every edge between two joints that are both
        more than one hop from the root compares ``inf == inf`` and lands in ``A[1]`` in *both*
        directions (the ST-GCN "edges missing" quirk). ``official=False`` uses true hop distances to
        the centre, so each bone is split into a centripetal and a centrifugal entry as the ST-GCN
        paper intends (the default: the official form is a quirk, reproduced only when asked for).
        Both modes share ``A[0]`` and the column-normalised weights; they differ in which of
        ``A[1]`` / ``A[2]`` holds the edges more than one hop from the root.
    """
    one_hop = hop_distance(1, num_node, bones)
    norm = normalize_digraph((one_hop <= 1).astype(np.float64))
    to_center = (one_hop if official else hop_distance(None, num_node, bones))[:, center]
    # Entry [j, i] is an edge j -> i (source j, target i) with hop_dis[j, i] == hop.
    d_src = to_center[:, None]
    d_dst = to_center[None, :]
    self_link = one_hop == 0
    edge = one_hop == 1
    a_self = np.where(self_link, norm, 0.0)
    a_in = np.where(edge & (d_src >= d_dst), norm, 0.0)  # same distance (incl. inf == inf) or farther source
    a_out = np.where(edge & (d_src < d_dst), norm, 0.0)
    return np.stack([a_self, a_in, a_out])


def _received(a: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """``(W, K, D)``: the weight each joint w receives from each cell d in partition k, ``sum_{v in d} A[k, v, w]``,
    each sum correctly rounded (``math.fsum``): equal multisets of weights give bit-equal sums in any order."""
    k, v, w = a.shape
    members = [np.flatnonzero(cells == d) for d in range(int(cells.max()) + 1)]
    return np.array([[[math.fsum(a[kk, m, j]) for m in members] for kk in range(k)] for j in range(w)])


def equitable_partition(adjacency: np.ndarray) -> np.ndarray:
    """The joints that a graph network fed the *same* input at every joint cannot tell apart: cell ids ``(V,)``.

    The coarsest equitable partition of the weighted graph (colour refinement started from one cell): joints w and
    w' share a cell iff, for every partition ``k`` and every cell ``d``, they receive the same weight from ``d``,
    ``sum_{v in d} A[k, v, w]``. A layer that mixes joints through ``A`` and otherwise treats every joint alike
    (projections, temporal convolutions, per-channel BatchNorm, ReLU, residuals) maps a cell-constant input to a
    cell-constant output, so such a stack can run on one joint per cell with :func:`quotient_adjacency` and copy
    the result back (``out[..., cells, :]``). For the 16-joint skeleton (either partition mode) the cells are the
    10 mirror classes: each left joint with its right twin, the 4 spine joints alone. Cells are numbered by their
    first joint. The sums are compared exactly, each correctly rounded (``math.fsum``): weights that differ in
    the last bit are different weights (never merged: a merge would make the quotient wrong), sums of the same
    weights in another order are equal.

    Args:
      adjacency: ``(K, V, V)``, ``A[k, v, w]`` = weight from joint v into joint w (:func:`spatial_adjacency`).
    """
    a = np.asarray(adjacency, np.float64)
    if a.ndim != 3 or a.shape[1] != a.shape[2] or 0 in a.shape or not np.all(np.isfinite(a)):
        raise ValueError(f"adjacency must be a finite, non-empty (K, V, V) array, got shape {a.shape}")
    cells = np.zeros(a.shape[1], np.int64)
    while True:
        received = _received(a, cells)
        first: dict = {}
        refined = np.array([first.setdefault((cells[w],) + tuple(received[w].ravel()), len(first))
                            for w in range(a.shape[1])])
        if len(first) == cells.max() + 1:  # stable: no cell split
            return refined
        cells = refined


def quotient_adjacency(adjacency: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """The graph on the cells of an equitable partition: ``(K, D, D)`` float64, ``Q[k, d, e]`` = the weight that
    any joint of cell ``e`` receives from the joints of cell ``d``. A graph convolution with ``Q`` on one joint
    per cell equals the one with ``A`` on the cell-constant input (:func:`equitable_partition`). ``ValueError``
    when ``cells`` is not a numbering ``0..D-1`` of the V joints or the partition is not equitable (the quotient
    would then be wrong)."""
    a = np.asarray(adjacency, np.float64)
    cells = np.asarray(cells)
    if a.ndim != 3 or a.shape[1] != a.shape[2] or 0 in a.shape:
        raise ValueError(f"adjacency must be a non-empty (K, V, V) array, got shape {a.shape}")
    if (cells.shape != (a.shape[1],) or not np.issubdtype(cells.dtype, np.integer)
            or set(cells.tolist()) != set(range(int(cells.max()) + 1))):
        raise ValueError(f"cells must number the {a.shape[1]} joints 0..D-1 (every cell used), got {cells.tolist()}")
    received = _received(a, cells)  # (W, K, D)
    representative = np.array([np.flatnonzero(cells == e)[0] for e in range(int(cells.max()) + 1)])
    if not np.array_equal(received, received[representative[cells]]):
        raise ValueError("cells is not an equitable partition of adjacency: joints of one cell receive different "
                         "weights (use equitable_partition)")
    return np.transpose(received[representative], (1, 2, 0))  # (K, D, D): from cell d into cell e


def mirror(gaits, lateral_axis: int = LATERAL_AXIS):
    """Left-right mirror of gaits ``(..., 16, 3)``: swap sides and negate the lateral coordinate.

    Works on numpy and jax arrays (uses only indexing and multiplication).
    """
    if gaits.shape[-2:] != (NUM_JOINTS, NUM_COORDS):
        raise ValueError(f"mirror expects (..., {NUM_JOINTS}, {NUM_COORDS}) gaits, got {gaits.shape}")
    sign = np.ones(NUM_COORDS, dtype=np.float32)
    sign[lateral_axis] = -1.0
    return gaits[..., list(MIRROR_PERMUTATION), :] * sign.astype(gaits.dtype)


def bone_lengths(gaits):
    """Bone lengths ``(..., T, 15)`` of gaits ``(..., T, 16, 3)``, in the gaits' units (bone order: BONES)."""
    parents, children = np.array(BONES).T
    return np.linalg.norm(gaits[..., children, :] - gaits[..., parents, :], axis=-1)
