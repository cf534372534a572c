"""Per-gait walking statistics, for comparing gait datasets (procedural walkers, mocap, E-Gait).

Every statistic is one number per gait, computed from gaits ``(T, 16, 3)`` in metres in the stepjax
frame (Y up, the walker faces -Z, their right is +X). Angles are in degrees, positive when the upper
point of a segment lies forward (towards -Z) of the lower one.

Statistics that need the world trajectory of the root (``speed_mps``, ``bounce_m``) are NaN for
root-relative gaits, where the root does not move.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from stepjax.skeleton import (HEAD, LEFT_FOOT, LEFT_HAND, NECK, RIGHT_FOOT, RIGHT_HAND, ROOT,
                              UP_AXIS)

#: Statistic name -> (column header, number of decimals) used by :func:`summary_table`.
STAT_FORMATS: dict[str, tuple[str, int]] = {
    "speed_mps": ("speed (m/s)", 2),
    "trunk_lean_deg": ("trunk lean (deg)", 1),
    "head_angle_deg": ("head angle (deg)", 1),
    "arm_swing_m": ("arm swing (m)", 2),
    "hand_height_m": ("hand height (m)", 3),
    "bounce_m": ("bounce (m)", 3),
    "cadence_spm": ("cadence (steps/min)", 0),
}

#: A root that moves less than this (metres, max over frames and axes) marks a root-relative gait.
STATIC_ROOT_TOL = 1e-6

_FORWARD_AXIS = 2  # forward is -Z


def forward_angle_deg(vectors: np.ndarray) -> np.ndarray:
    """Angle in degrees of ``vectors (..., 3)`` from vertical in the sagittal plane, forward (-Z) positive."""
    return np.degrees(np.arctan2(-vectors[..., _FORWARD_AXIS], vectors[..., UP_AXIS]))


def _is_static(root: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: the root trajectory ``(N, T, 3)`` does not move (root-relative gait)."""
    return np.abs(root - root[:, :1]).max(axis=(1, 2)) <= STATIC_ROOT_TOL


def _speed(root: np.ndarray, fps: float) -> np.ndarray:
    """Horizontal root displacement from the first to the last frame per second, ``(N,)`` m/s."""
    duration = (root.shape[1] - 1) / fps
    step = root[:, -1] - root[:, 0]
    horizontal = np.delete(step, UP_AXIS, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.linalg.norm(horizontal, axis=-1) / duration


def _cadence(gaits: np.ndarray, fps: float) -> np.ndarray:
    """Steps per minute ``(N,)`` from the crossings of the fore-aft foot separation.

    The separation ``z(left foot) - z(right foot)`` changes sign once per step; crossing times are
    linearly interpolated between frames and the cadence is ``(crossings - 1) / (last - first)``.
    NaN when fewer than two crossings fall inside the gait.
    """
    sep = gaits[:, :, LEFT_FOOT, _FORWARD_AXIS] - gaits[:, :, RIGHT_FOOT, _FORWARD_AXIS]
    sep = sep - sep.mean(axis=1, keepdims=True)
    a, b = sep[:, :-1], sep[:, 1:]
    crossing = (a * b < 0) | ((a == 0) & (b != 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(crossing, a / (a - b), np.nan)
    times = (np.arange(sep.shape[1] - 1)[None, :] + frac) / fps
    count = crossing.sum(axis=1)
    first = np.where(count > 0, np.nanmin(np.where(crossing, times, np.inf), axis=1), np.nan)
    last = np.where(count > 0, np.nanmax(np.where(crossing, times, -np.inf), axis=1), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count >= 2, 60.0 * (count - 1) / (last - first), np.nan)


def _batch_statistics(gaits: np.ndarray, fps: float) -> dict[str, np.ndarray]:
    """Statistics of same-length gaits ``(N, T, 16, 3)``; see :func:`walking_statistics`."""
    g = np.asarray(gaits, dtype=np.float64)
    root = g[:, :, ROOT]
    rel = g - root[:, :, None, :]
    hands = rel[:, :, [LEFT_HAND, RIGHT_HAND]]  # (N, T, 2, 3)
    static = _is_static(root)
    return {
        "speed_mps": np.where(static, np.nan, _speed(root, fps)),
        "trunk_lean_deg": forward_angle_deg(rel[:, :, NECK]).mean(axis=1),
        "head_angle_deg": forward_angle_deg(g[:, :, HEAD] - g[:, :, NECK]).mean(axis=1),
        "arm_swing_m": np.ptp(hands[..., _FORWARD_AXIS], axis=1).mean(axis=-1),
        "hand_height_m": hands[..., UP_AXIS].mean(axis=(1, 2)),
        "bounce_m": np.where(static, np.nan, root[:, :, UP_AXIS].std(axis=1)),
        "cadence_spm": _cadence(g, fps),
    }


def walking_statistics(gaits_world: np.ndarray | Sequence[np.ndarray], fps: float) -> dict[str, np.ndarray]:
    """Per-gait walking statistics.

    Args:
      gaits_world: gaits in metres, Y up, facing -Z: an array ``(N, T, 16, 3)`` or a sequence of
        ``(T_i, 16, 3)`` arrays of different lengths (``T_i >= 2``). World trajectories give all
        statistics; root-relative gaits give NaN speed and bounce.
      fps: frame rate in frames per second.

    Returns:
      dict of float64 arrays ``(N,)``:

      * ``speed_mps``: horizontal root displacement first -> last frame per second (m/s).
      * ``trunk_lean_deg``: mean forward angle of the root -> neck vector from vertical (degrees).
      * ``head_angle_deg``: mean forward angle of the neck -> head vector from vertical (degrees).
      * ``arm_swing_m``: range over frames of each hand's forward coordinate relative to the root,
        mean of both hands (metres).
      * ``hand_height_m``: mean height of both hands above the root (metres, negative below).
      * ``bounce_m``: standard deviation of the root height over frames (metres).
      * ``cadence_spm``: steps per minute from the fore-aft foot separation (NaN if < 2 steps seen).
    """
    if isinstance(gaits_world, np.ndarray):
        if gaits_world.ndim != 4 or gaits_world.shape[-2:] != (16, 3):
            raise ValueError(f"expected gaits (N, T, 16, 3), got {gaits_world.shape}")
        return _batch_statistics(gaits_world, fps)
    per_gait = [_batch_statistics(np.asarray(g)[None], fps) for g in gaits_world]
    if not per_gait:
        return {name: np.zeros(0) for name in STAT_FORMATS}
    return {name: np.concatenate([s[name] for s in per_gait]) for name in per_gait[0]}


def _mean_std(values: np.ndarray, decimals: int) -> str:
    """``"mean ± std"`` of the finite values, ``"n/a"`` when there are none."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return "n/a"
    return f"{finite.mean():.{decimals}f} ± {finite.std():.{decimals}f}"


def summary_table(stats_by_label: Mapping[str, Mapping[str, np.ndarray]],
                  stat_names: Sequence[str] | None = None) -> str:
    """Markdown table of mean ± std of each statistic (columns) for each group of gaits (rows).

    Args:
      stats_by_label: row label (e.g. ``"Sad"`` or ``"Sad, walkers"``) -> output of
        :func:`walking_statistics` for the gaits of that row. NaNs are ignored; a row with no finite
        value of a statistic shows ``n/a``.
      stat_names: columns, in order; default: the statistics of :data:`STAT_FORMATS` present in
        any row.

    Returns:
      The table as a string (header, separator, one line per row, trailing newline), each row
      starting with the row label and the number of gaits.
    """
    if stat_names is None:
        present = set().union(*(s.keys() for s in stats_by_label.values())) if stats_by_label else set()
        stat_names = [name for name in STAT_FORMATS if name in present]
    headers = ["", "n"] + [STAT_FORMATS.get(name, (name, 3))[0] for name in stat_names]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for label, stats in stats_by_label.items():
        count = len(next(iter(stats.values()))) if stats else 0
        cells = [str(label), str(count)]
        for name in stat_names:
            decimals = STAT_FORMATS.get(name, (name, 3))[1]
            cells.append(_mean_std(stats[name], decimals) if name in stats else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def centroid_accuracy(stats: Mapping[str, np.ndarray], labels: np.ndarray, train: np.ndarray,
                      stat_names: Sequence[str] | None = None) -> float:
    """Test accuracy of a nearest-centroid classifier on standardised statistics.

    A quick measure of how separable the classes are from summary statistics alone.

    Args:
      stats: output of :func:`walking_statistics` (``(N,)`` arrays).
      labels: int ``(N,)`` class labels.
      train: bool ``(N,)``, the training gaits (centroids and standardisation); the rest are tested.
      stat_names: statistics to use; default all those finite for every gait.

    Returns:
      Fraction of the non-training gaits whose nearest class centroid is their own class.
    """
    if stat_names is None:
        stat_names = [name for name, v in stats.items() if np.all(np.isfinite(v))]
    x = np.stack([np.asarray(stats[name], np.float64) for name in stat_names], axis=1)
    train = np.asarray(train, bool)
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    z = (x - mean) / np.where(std > 0, std, 1.0)
    classes = np.unique(labels[train])
    centroids = np.stack([z[train & (labels == c)].mean(axis=0) for c in classes])
    nearest = classes[np.argmin(((z[~train, None, :] - centroids[None]) ** 2).sum(-1), axis=1)]
    return float(np.mean(nearest == labels[~train]))
