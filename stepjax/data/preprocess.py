"""Preprocessing: input validation, fixed-length policies, root-centring and Umeyama alignment.

Official STEP preprocessing (STEP_REFERENCE section 1.4, ``common.get_affective_features[:, :, :48]``):
1. every variable-length gait is tiled cyclically to the longest length in the file;
2. the root (joint 0) is subtracted from every joint, per frame;
3. a similarity transform (rotation R, scale c, translation t; Umeyama / ``ralign``) maps the gait's
   root-centred **first frame** onto a reference frame Y, and is applied to every frame:
   ``aligned = c R (x - root) + t``. The root therefore ends at ``t``, not at 0.

stepjax stores the reference pose with the model (the official code takes frame 0 of the first key
of the file, so key order changes the preprocessing: bug 13). The alignment here is batched with
``jnp.linalg.svd`` and works under ``jit`` / ``vmap``.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from stepjax import NUM_CLASSES
from stepjax.skeleton import NUM_COORDS, NUM_JOINTS, ROOT
from stepjax.utils import check_real_dtype

LENGTH_POLICIES = ("tile", "crop", "resample")


def validate_gaits(gaits, name: str = "gaits", *, batched: bool | None = True, check_finite: bool = True) -> None:
    """Raises ``ValueError`` unless ``gaits`` is ``(N, T, 16, 3)`` (``(T, 16, 3)`` if not batched, either with
    ``batched=None``) and finite.

    Meant for API edges, outside ``jit`` (the finiteness check reads the values).
    """
    shape = tuple(np.shape(gaits))
    want = (4,) if batched else (3,) if batched is not None else (3, 4)
    if len(shape) not in want or shape[-2:] != (NUM_JOINTS, NUM_COORDS):
        layout = {(4,): "(N, T, 16, 3)", (3,): "(T, 16, 3)"}.get(
            want, "(N, T, 16, 3) or one gait (T, 16, 3)")  # type: ignore[arg-type]  # (3, 4) is no key: the default
        hint = ""
        if shape and shape[-1] == NUM_JOINTS * NUM_COORDS:
            hint = "; E-Gait rows of 48 columns reshape with .reshape(..., 16, 3)"
        raise ValueError(f"{name} must have shape {layout}, got {shape}{hint}")
    if shape[-3] < 1:
        raise ValueError(f"{name} has no frames: shape {shape}")
    check_real_dtype(gaits, name)
    xp = jnp if isinstance(gaits, jax.Array) else np  # a device array: only one scalar comes back to the host
    if check_finite and not bool(xp.all(xp.isfinite(gaits))):
        raise ValueError(f"{name} contains NaN or inf values")


#: Plausible median body height (metres) of a gait batch: outside it, the data is probably not in metres.
BODY_HEIGHT_RANGE_M = (0.3, 3.0)


def warn_if_not_metres(gaits, name: str = "gaits") -> float:
    """Warns (``UserWarning``) when the median body height of ``gaits (N, T, 16, 3)`` (vertical extent of the
    joints in the first frame) lies outside :data:`BODY_HEIGHT_RANGE_M`: stepjax expects metres, and gaits in
    centimetres or millimetres get confident but meaningless predictions. Returns that height."""
    import warnings

    first = np.asarray(gaits)[:, 0]
    height = float(np.median(first[..., 1].max(-1) - first[..., 1].min(-1))) if len(first) else float("nan")
    lo, hi = BODY_HEIGHT_RANGE_M
    if np.isfinite(height) and not lo <= height <= hi:
        warnings.warn(f"{name}: median body height {height:.4g} is outside {lo}-{hi}; stepjax expects metres with "
                      f"Y up (centimetres? divide by 100)", stacklevel=2)
    return height


def validate_labels(labels, name: str = "labels", num_classes: int = NUM_CLASSES) -> np.ndarray:
    """``labels`` as int32 ``(N,)`` after checking that they are whole numbers in ``[0, num_classes)`` (0 Angry,
    1 Neutral, 2 Happy, 3 Sad); raises ``ValueError`` naming the first offending entries. API edges only (reads
    the values)."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices, got shape {arr.shape}")
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must be integer class indices, got dtype {arr.dtype}")
    bad = ~np.isfinite(arr) | (arr != np.round(arr)) | (arr < 0) | (arr >= num_classes) if arr.size else arr
    if arr.size and bad.any():
        idx = np.flatnonzero(bad)[:5]
        raise ValueError(f"{name} must be whole numbers in 0..{num_classes - 1}; entries {idx.tolist()} are "
                         f"{arr[idx].tolist()}")
    return arr.astype(np.int32)


# ----------------------------------------------------------------------------- fixed length

def _check_frames(value, name: str) -> int:
    try:
        whole = not isinstance(value, (bool, str, bytes)) and int(value) == value and value >= 1
    except (TypeError, ValueError, OverflowError):  # NaN, inf, None, arrays
        whole = False
    if not whole:
        raise ValueError(f"{name} must be a whole number of frames >= 1, got {value!r}")
    return int(value)


def _check_gait_list(gaits: Sequence[np.ndarray]) -> list[np.ndarray]:
    if len(gaits) == 0:
        raise ValueError("no gaits")
    out = []
    for i, g in enumerate(gaits):
        g = np.asarray(g, np.float32)
        validate_gaits(g, f"gait {i}", batched=False, check_finite=False)
        out.append(g)
    return out


def check_min_frames(gaits: Sequence[np.ndarray], name: str = "gaits", keys: Sequence[str] | None = None) -> None:
    """Raises ``ValueError`` naming the gaits ``[(T_i, 16, 3)]`` of fewer than ``affective.MIN_FRAMES`` (4) frames.

    The affective features' jerk takes 3 frame differences, and one to three frames are a pose, not a gait:
    brought to the training length they would be classified as a repeated pose. Called where gaits enter the
    pipeline and ``predict_gaits`` (inside ``jit`` a length cannot be checked, only clipped)."""
    from stepjax.affective import MIN_FRAMES

    for i, g in enumerate(gaits):  # shapes first (a (T, 48) row gets its reshape hint)
        validate_gaits(g, f"gait {keys[i] if keys is not None else i}", batched=False, check_finite=False)
    short = [i for i, g in enumerate(gaits) if np.shape(g)[0] < MIN_FRAMES]
    if short:
        names = ", ".join(f"{keys[i] if keys is not None else i} ({np.shape(gaits[i])[0]})" for i in short[:5])
        raise ValueError(f"{name}: {len(short)} of {len(gaits)} gaits have fewer than {MIN_FRAMES} frames (the "
                         f"affective features' jerk needs {MIN_FRAMES}): {names}{', ...' if len(short) > 5 else ''}; "
                         "drop them or use longer clips")


def tile_to_length(gait: np.ndarray, length: int) -> np.ndarray:
    """Official cyclic padding: ``np.tile`` along time, then truncate to ``length`` frames."""
    reps = math.ceil(length / gait.shape[0])
    return np.tile(gait, (reps,) + (1,) * (gait.ndim - 1))[:length]


def crop_to_length(gait: np.ndarray, length: int, start: int = 0) -> np.ndarray:
    """Takes ``length`` frames from ``start``; shorter gaits are tiled first."""
    if gait.shape[0] < start + length:
        gait = tile_to_length(gait, start + length)
    return gait[start:start + length]


def resample_to_length(gait: np.ndarray, length: int) -> np.ndarray:
    """Linear interpolation in time to exactly ``length`` frames (first and last frames kept)."""
    t_in = gait.shape[0]
    if t_in == 1:
        return np.repeat(gait, length, axis=0)
    pos = np.linspace(0.0, t_in - 1, length)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, t_in - 1)
    w = (pos - lo).reshape((-1,) + (1,) * (gait.ndim - 1))
    return ((1 - w) * gait[lo] + w * gait[hi]).astype(gait.dtype)


def to_fixed_length(gaits: Sequence[np.ndarray], length: int | None = None, policy: str = "tile") -> np.ndarray:
    """Stacks variable-length gaits ``[(T_i, 16, 3)]`` into ``(N, length, 16, 3)`` float32.

    Args:
      length: target frames; ``None`` uses ``max_i T_i`` like the official loader.
      policy: ``'tile'`` (official cyclic repetition, then truncation), ``'crop'`` (first ``length``
        frames, tiled when too short) or ``'resample'`` (linear time warp; changes speeds).
    """
    if policy not in LENGTH_POLICIES:
        raise ValueError(f"unknown length policy {policy!r}; choose one of {LENGTH_POLICIES}")
    gaits = _check_gait_list(gaits)
    length = max(g.shape[0] for g in gaits) if length is None else _check_frames(length, "length")
    fn = {"tile": tile_to_length, "crop": crop_to_length, "resample": resample_to_length}[policy]
    return np.stack([fn(g, length) for g in gaits]).astype(np.float32)


def real_frame_counts(gaits: Sequence[np.ndarray], length: int | None = None, policy: str = "tile") -> np.ndarray:
    """Frames of each gait that :func:`to_fixed_length` keeps unrepeated: ``min(T_i, length)`` for ``'tile'`` and
    ``'crop'`` (the rest of a short gait is its cyclic repetition), ``length`` for ``'resample'``. int32 ``(N,)``;
    pass it as ``lengths`` to the affective features so that they are those of the real frames."""
    if policy not in LENGTH_POLICIES:
        raise ValueError(f"unknown length policy {policy!r}; choose one of {LENGTH_POLICIES}")
    gaits = _check_gait_list(gaits)
    length = max(g.shape[0] for g in gaits) if length is None else _check_frames(length, "length")
    if policy == "resample":
        return np.full(len(gaits), length, np.int32)
    return np.asarray([min(g.shape[0], length) for g in gaits], np.int32)


def sliding_windows(gait: np.ndarray, length: int, hop: int) -> np.ndarray:
    """All windows ``(W, length, 16, 3)`` of one gait ``(T, 16, 3)`` starting every ``hop`` frames (tiled if too
    short)."""
    length, hop = _check_frames(length, "length"), _check_frames(hop, "hop")
    if np.ndim(gait) != 3 or np.shape(gait)[-2:] != (NUM_JOINTS, NUM_COORDS):
        raise ValueError(f"sliding_windows: gait must be one gait (T, {NUM_JOINTS}, {NUM_COORDS}), got shape "
                         f"{np.shape(gait)}")
    gait = np.asarray(gait)
    if gait.shape[0] == 0:
        raise ValueError("sliding_windows: the gait has no frames")
    if gait.shape[0] <= length:
        return tile_to_length(gait, length)[None]
    starts = range(0, gait.shape[0] - length + 1, hop)
    return np.stack([gait[s:s + length] for s in starts])


# ----------------------------------------------------------------------------- alignment

def root_center(gaits):
    """Subtracts the root joint from every joint, per frame: ``(..., T, 16, 3)``."""
    return gaits - gaits[..., ROOT:ROOT + 1, :]


def similarity_transform(source, target):
    """Umeyama similarity ``target ~ c R source + t`` for point sets ``(..., J, 3)``.

    Reproduces the official ``get_transformation`` (``ralign``): ``M = Yc Xc^T / J``,
    ``U D V^T = svd(M)``, ``S = I`` except ``S[2,2] = -1`` when ``det(M) < 0`` (full rank) or
    ``det(U) det(V) < 0`` (rank 2), ``R = U S V^T``, ``c = trace(D S) / var(X)``,
    ``t = mu_Y - c R mu_X``. ``R`` is always a proper rotation. Batched over leading axes.
    A source without spread (every point at one place, e.g. a zeroed first frame: ``var(X) = 0``) has no
    defined rotation or scale (the official code returns a 2-D identity there and then fails): it gets
    ``R = I``, ``c = 1`` (a pure translation onto the target's centroid) instead of NaN.

    Returns:
      ``(R (..., 3, 3), c (...), t (..., 3))``.
    """
    mu_x = source.mean(-2, keepdims=True)
    mu_y = target.mean(-2, keepdims=True)
    xc = source - mu_x
    yc = target - mu_y
    num = source.shape[-2]
    m = jnp.einsum("...ji,...jk->...ik", yc, xc, precision="highest") / num  # (3, 3) = Yc Xc^T / J
    var_x = jnp.sum(xc ** 2, axis=(-2, -1)) / num
    spread = var_x > jnp.finfo(var_x.dtype).tiny
    # without spread, decompose a stand-in with distinct singular values: no NaN in the SVD's gradient
    m = jnp.where(spread[..., None, None], m, jnp.diag(jnp.asarray([3.0, 2.0, 1.0], m.dtype)))
    u, d, vt = jnp.linalg.svd(m)
    tol = jnp.max(d, axis=-1, keepdims=True) * 3 * jnp.finfo(d.dtype).eps
    rank = jnp.sum(d > tol, axis=-1)
    flip_full = jnp.linalg.det(m) < 0
    flip_rank2 = jnp.linalg.det(u) * jnp.linalg.det(vt) < 0
    flip = jnp.where(rank >= 3, flip_full, flip_rank2)
    s = jnp.where(flip, -1.0, 1.0).astype(d.dtype)
    sign = jnp.stack([jnp.ones_like(s), jnp.ones_like(s), s], axis=-1)  # diag(S)
    rot = jnp.einsum("...ij,...j,...jk->...ik", u, sign, vt, precision="highest")
    rot = jnp.where(spread[..., None, None], rot, jnp.eye(3, dtype=rot.dtype))
    scale = jnp.where(spread, jnp.sum(d * sign, axis=-1) / jnp.where(spread, var_x, 1.0), 1.0)
    rot_mu_x = jnp.einsum("...ij,...j->...i", rot, mu_x[..., 0, :], precision="highest")
    trans = mu_y[..., 0, :] - scale[..., None] * rot_mu_x
    return rot, scale, trans


def align_to_reference(gaits, reference):
    """Official STEP alignment of gaits ``(..., T, 16, 3)`` to a reference pose ``(16, 3)``.

    The gait is root-centred per frame, the similarity transform of its first frame onto
    ``root_center(reference)`` is found (:func:`similarity_transform`) and applied to every frame.
    Pure jnp: jit-able and vmap-able. ``ValueError`` for other shapes (checked on the static shapes).
    """
    if (np.ndim(gaits) < 3 or tuple(np.shape(gaits)[-2:]) != (NUM_JOINTS, NUM_COORDS)
            or np.shape(gaits)[-3] < 1):
        raise ValueError(f"align_to_reference: gaits must be (..., T, {NUM_JOINTS}, {NUM_COORDS}) with T >= 1, got "
                         f"{tuple(np.shape(gaits))}")
    check_real_dtype(gaits, "align_to_reference: gaits")
    if tuple(np.shape(reference)) != (NUM_JOINTS, NUM_COORDS):
        raise ValueError(f"align_to_reference: reference must be one pose ({NUM_JOINTS}, {NUM_COORDS}), got "
                         f"{tuple(np.shape(reference))}")
    centred = root_center(jnp.asarray(gaits))
    ref = root_center(jnp.asarray(reference, centred.dtype))
    rot, scale, trans = similarity_transform(centred[..., 0, :, :], jnp.broadcast_to(ref, centred[..., 0, :, :].shape))
    m = scale[..., None, None] * rot  # (..., 3, 3)
    # out[..., i] = sum_j m[i, j] * centred[..., j] as three fused multiply-adds: a batched 3x3 einsum
    # (one tiny dot per gait) was 8x slower on XLA:CPU (bench/run.py "align": 124 ms -> 16 ms, 2,177 gaits)
    out = sum(m[..., None, None, :, j] * centred[..., j:j + 1] for j in range(3))
    return out + trans[..., None, None, :]


def official_reference(gaits) -> np.ndarray:
    """The official reference pose: root-centred first frame of the first gait, ``(16, 3)``."""
    if len(gaits) == 0:
        raise ValueError("official_reference: no gaits")
    validate_gaits(np.asarray(gaits[0], np.float32), "official_reference: the first gait", batched=False,
                   check_finite=False)
    return np.asarray(root_center(np.asarray(gaits[0], np.float32))[0])
