"""The 29 affective ("physiologically motivated") gait features of STEP, vectorised in ``jax.numpy``.

Reference: ``compute_aff_features/compute_features.py::compute_features`` of the official code
(STEP_REFERENCE section 5.4, bugs in section 7 item 17). Every feature is a per-frame quantity averaged over
the frames of a gait (speed, acceleration and jerk over frame differences), so a gait ``(T, 16, 3)`` gives
one vector ``(29,)`` (``(27,)`` without the two stride features).

Two modes:

* ``official=True`` reproduces the official numbers, quirks included: the ``if ... elif`` min/max bug in the
  bounding-box volume, Heron's formula (NaN on a negative radicand), "stride length" in **frames** with the
  official foot-strike rule and fallbacks, and a "cycle time" that is the stride length times ``time_step``.
* ``official=False`` (default) fixes them: the true axis-aligned bounding box, triangle areas from the
  cross product (never NaN), a stride length in metres and a cycle time in seconds measured independently,
  and NaN-safe norms and angles so that gradients stay finite on degenerate poses.

Feature order and units follow the official code exactly (angles in degrees, distances / 10, areas / 100,
volume / 1000, speed, acceleration and jerk per second / 10). Names use stepjax's geometric sides
(``stepjax.skeleton``: joints 4-6 and 10-12 are the **left** arm and leg; the official code calls them right):
only the names differ, the joint indices are the official ones.

NaN inputs propagate to the features (nothing is checked inside ``jit``). See ``docs/affective.md``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from stepjax.skeleton import NUM_COORDS, NUM_JOINTS, UP_AXIS
from stepjax.utils import check_real_dtype

__all__ = [
    "FEATURE_NAMES", "FEATURE_MIRROR_PERMUTATION", "NUM_FEATURES", "MIN_FRAMES", "SPEED_JOINTS",
    "Normalizer", "affective_features", "check_lengths", "fit_normalizer", "normalize",
]

#: Joints whose speed / acceleration / jerk are features 12-16 / 17-21 / 22-26 (official order).
SPEED_JOINTS: tuple[int, ...] = (6, 9, 3, 12, 15)
_FEET = (12, 15)
NUM_FEATURES = 29
#: Jerk needs three frame differences, so at least 4 frames.
MIN_FRAMES = 4

_MOTION_JOINT_NAMES = ("left_hand", "right_hand", "head", "left_foot", "right_foot")
#: Feature names (geometric sides), in the official order. The official code names in brackets where they differ.
FEATURE_NAMES: tuple[str, ...] = (
    "volume",                      # 0
    "neck_angle_by_shoulders",     # 1  angle at neck (2) between shoulders 4 and 7
    "left_shoulder_angle",         # 2  [official: right shoulder] angle at 4 between 2 and 7
    "right_shoulder_angle",        # 3  [official: left shoulder] angle at 7 between 2 and 4
    "back_vertical_angle",         # 4  angle of head - root against +Y
    "neck_angle_by_head_and_back", # 5  angle at neck between head 3 and spine 1
    "left_hand_root_distance",     # 6  [official: right hand]
    "right_hand_root_distance",    # 7
    "left_foot_root_distance",     # 8
    "right_foot_root_distance",    # 9
    "hands_neck_area",             # 10 triangle (9, 2, 6)
    "feet_root_area",              # 11 triangle (15, 0, 12)
    *(f"{j}_speed" for j in _MOTION_JOINT_NAMES),         # 12-16
    *(f"{j}_acceleration" for j in _MOTION_JOINT_NAMES),  # 17-21
    *(f"{j}_jerk" for j in _MOTION_JOINT_NAMES),          # 22-26
    "stride_length",               # 27 official: frames; fixed: metres
    "cycle_time",                  # 28 official: 27 * dt; fixed: seconds, measured
)
assert len(FEATURE_NAMES) == NUM_FEATURES


def _mirror_feature_permutation() -> tuple[int, ...]:
    perm = list(range(NUM_FEATURES))
    pairs = [(2, 3), (6, 7), (8, 9)] + [(b, b + 1) for b in (12, 17, 22)] + [(b + 3, b + 4) for b in (12, 17, 22)]
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return tuple(perm)


#: ``features(mirror(gaits)) == features(gaits)[..., FEATURE_MIRROR_PERMUTATION]`` in the fixed mode
#: (left/right pairs swap, everything else is unchanged). Take the first 27 entries when ``stride=False``.
FEATURE_MIRROR_PERMUTATION: tuple[int, ...] = _mirror_feature_permutation()


# ----------------------------------------------------------------------------- input handling

def _as_gaits(gaits) -> jax.Array:
    shape = tuple(np.shape(gaits))
    if len(shape) < 3 or shape[-2:] != (NUM_JOINTS, NUM_COORDS):
        hint = ""
        if shape and shape[-1] == NUM_JOINTS * NUM_COORDS:
            hint = "; rows of 48 columns reshape with .reshape(..., 16, 3)"
        raise ValueError(f"affective_features expects gaits of shape (..., T, {NUM_JOINTS}, {NUM_COORDS}), "
                         f"got {shape}{hint}")
    if shape[-3] < MIN_FRAMES:
        raise ValueError(f"affective_features needs at least {MIN_FRAMES} frames (jerk uses 3 frame differences), "
                         f"got T={shape[-3]} in shape {shape}")
    check_real_dtype(gaits, "affective_features: gaits")
    x = jnp.asarray(gaits)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return x


# ----------------------------------------------------------------------------- numerics
#
# Internally a gait is stored *planar*: ``p`` of shape ``(3, 16, ..., T)`` (coordinate, joint, batch..., frame),
# so each coordinate of each joint is a contiguous ``(..., T)`` plane and a 3-vector is a ``(3, ...)`` array whose
# components are whole planes. Dot and cross products are then element-wise arithmetic on long vectors instead of
# reductions over a minor axis of length 3 (measured: 2.3x faster on XLA:CPU; bench/NOTES.md).

def _dot(u, v):
    """``sum_i u[i] * v[i]`` over the leading (component) axis, any number of components."""
    out = u[0] * v[0]
    for i in range(1, u.shape[0]):
        out = out + u[i] * v[i]
    return out


def _cross(u, v):
    return jnp.stack([u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]])


def _norm(v):
    """``sqrt(v . v)`` over the leading (component) axis, value for value (0 at the origin, NaN for NaN), with a
    zero instead of a NaN gradient at the origin (``sqrt``'s infinite slope times a zero cotangent is NaN, and
    NaN gradients leak into every feature of the gait, e.g. from a joint held still for one frame pair)."""
    sq = _dot(v, v)
    pos = sq > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), sq)


def _safe_norm(v):
    """Euclidean norm over the leading (component) axis with a finite (zero) gradient at the origin."""
    sq = _dot(v, v)
    ok = sq > jnp.finfo(sq.dtype).tiny
    return jnp.where(ok, jnp.sqrt(jnp.where(ok, sq, 1.0)), 0.0)


def _angle_official(u, v):
    """``utils.angle_between``: the angle in degrees between ``u / |u|`` and ``v / |v|`` (NaN for a zero vector).

    The official code takes ``arccos(clip(u_hat . v_hat, -1, 1))``; the same angle is computed here as
    ``atan2(|u_hat x v_hat|, u_hat . v_hat)``, which agrees to ~1e-14 in float64 and, unlike ``arccos`` near
    +-1, stays accurate in float32 for angles close to 0 or 180 degrees. The NaN of a zero vector is set after
    the division by a safe norm, so that its gradient does not turn the gradients of the other features NaN.
    """
    nu, nv = _norm(u), _norm(v)
    ok = (nu > 0) & (nv > 0)
    u = u / jnp.where(ok, nu, 1.0)
    v = v / jnp.where(ok, nv, 1.0)
    s, c = _norm(_cross(u, v)), _dot(u, v)
    return jnp.where(ok, jnp.degrees(jnp.arctan2(jnp.where(ok, s, 0.0), jnp.where(ok, c, 1.0))), jnp.nan)


def _angle_safe(u, v):
    """Angle in degrees as ``atan2(|u x v|, u . v)``: accurate near 0 and 180 degrees, finite gradients.

    A zero-length vector gives 0 degrees (the angle is undefined there) with a zero gradient.
    """
    s = _safe_norm(_cross(u, v))
    c = _dot(u, v)
    tiny = jnp.finfo(c.dtype).tiny
    ok = (s * s + c * c) > tiny
    return jnp.degrees(jnp.arctan2(jnp.where(ok, s, 0.0), jnp.where(ok, c, 1.0)))


def _heron(a, b, c):
    """Official ``area_triangle``: Heron's formula on the three side lengths (NaN if the radicand is < 0, as the
    official ``sqrt``; 0 for a flat triangle, with a zero gradient there)."""
    ab = _norm(a - b)
    bc = _norm(b - c)
    ca = _norm(c - a)
    s = (ab + bc + ca) / 2
    r = s * (s - ab) * (s - bc) * (s - ca)
    pos = r > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, r, 1.0)), jnp.where(r == 0, 0.0, jnp.nan))


def _triangle_area(a, b, c):
    return 0.5 * _safe_norm(_cross(b - a, c - a))


def _box_volume(box_max, box_min, mean_t):
    """Mean over frames of the box volume / 1000; ``box_*`` are ``(3, ..., T)``."""
    size = box_max - box_min
    return mean_t(size[0] * size[1] * size[2] / 1000)


def _volume_official(p, mean_t):
    """Mean over frames of the bounding box as the official ``if ... elif`` loop over the 16 joints computes it.

    Per coordinate the loop starts from ``min = +inf, max = -inf`` and, joint by joint, does
    ``if x < min: min = x  elif x > max: max = x``. The minimum is therefore the true minimum, but a joint that
    lowers the running minimum is never tested against the maximum. Joint ``j`` reaches the maximum test iff
    ``x_j >= min(x_0, ..., x_{j-1})`` (never for joint 0), so the buggy maximum is the maximum over those joints,
    or ``-inf`` when there is none (joints in decreasing order). Closed form with an exclusive cumulative min.
    """
    cummin = jax.lax.cummin(p, axis=1)
    prefix_min = jnp.concatenate([jnp.full_like(p[:, :1], jnp.inf), cummin[:, :-1]], axis=1)
    tested = ~(p < prefix_min)
    return _box_volume(jnp.max(jnp.where(tested, p, -jnp.inf), axis=1), jnp.min(p, axis=1), mean_t)


def _volume_bbox(p, mean_t):
    return _box_volume(jnp.max(p, axis=1), jnp.min(p, axis=1), mean_t)


# ----------------------------------------------------------------------------- foot strikes

def _strike_mask(y, lengths=None):
    """Official foot-strike frames of a foot height ``y (..., T)``: interior frames ``i`` (``1 <= i <= T-2``) with
    ``y[i] <= y[i-1] and y[i] <= y[i+1]`` (local minima; every frame of a flat bottom plateau counts). With
    ``lengths (...)`` only the first ``lengths`` frames are the gait (``i <= lengths - 2``)."""
    mid = y[..., 1:-1]
    m = (mid <= y[..., :-2]) & (mid <= y[..., 2:])
    pad = jnp.zeros_like(m[..., :1])
    m = jnp.concatenate([pad, m, pad], axis=-1)
    if lengths is not None:
        m = m & (jnp.arange(y.shape[-1]) < lengths[..., None] - 1)
    return m


def _strike_stats(mask):
    """Number of strikes and ``last - first`` strike frame (= the sum of the consecutive gaps) per foot."""
    t = mask.shape[-1]
    idx = jnp.arange(t)
    count = jnp.sum(mask, axis=-1)
    first = jnp.min(jnp.where(mask, idx, t), axis=-1)
    last = jnp.max(jnp.where(mask, idx, -1), axis=-1)
    return count, last - first


def _mean_strike_gap(p, lengths=None, *, official: bool):
    """Mean gap in frames between consecutive same-foot strikes, pooled over both feet.

    Both feet with >= 2 strikes: (sum of all gaps) / (number of gaps). Only one foot: that foot's mean gap
    (+ 1 in the official code). Neither: ``T`` frames (the gait's length).
    """
    t, dtype = (p.shape[-1] if lengths is None else lengths), p.dtype
    (n1, s1), (n2, s2) = (_strike_stats(_strike_mask(p[UP_AXIS, j], lengths)) for j in _FEET)
    ok1, ok2 = n1 >= 2, n2 >= 2
    f = lambda x: x.astype(dtype)  # noqa: E731
    pooled = f(s1 + s2) / f(jnp.maximum(n1 + n2 - 2, 1))
    extra = 1 if official else 0
    one1 = f(s1) / f(jnp.maximum(n1 - 1, 1)) + extra
    one2 = f(s2) / f(jnp.maximum(n2 - 1, 1)) + extra
    return jnp.where(ok1 & ok2, pooled, jnp.where(ok1, one1, jnp.where(ok2, one2, jnp.asarray(t, dtype))))


def _stride_length_m(p, lengths, mean_t):
    """Fixed stride length in metres: twice the mean horizontal (XZ) distance between the two feet at the
    foot-strike frames of either foot (a frame that is a strike for both feet counts twice); when there is no
    strike at all, twice the mean over the gait's frames. Translation-, heading- and mirror-invariant, and defined for
    root-relative data (it does not need the walker to advance)."""
    horizontal = np.array([a for a in range(NUM_COORDS) if a != UP_AXIS])
    left, right = p[:, _FEET[0]], p[:, _FEET[1]]  # (3, ..., T)
    sep = _safe_norm(left[horizontal] - right[horizontal])  # (..., T)
    w = sum(_strike_mask(foot[UP_AXIS], lengths).astype(p.dtype) for foot in (left, right))
    total = jnp.sum(w, axis=-1)
    at_strikes = jnp.sum(w * sep, axis=-1) / jnp.where(total > 0, total, 1.0)
    return 2 * jnp.where(total > 0, at_strikes, mean_t(sep))


# ----------------------------------------------------------------------------- features

# Features 1-5: angle between (a - b) and (c - d); feature 4 uses the vertical axis as its second vector.
_ANGLE_JOINTS = np.array([(4, 2, 7, 2), (2, 4, 7, 4), (2, 7, 4, 7), (3, 0, 0, 0), (3, 2, 1, 2)], dtype=np.int32)
_VERTICAL_ROW = 3
_DISTANCE_JOINTS = (6, 9, 12, 15)  # features 6-9: distance to the root
_TRIANGLES = np.array([(9, 2, 6), (15, 0, 12)], dtype=np.int32)  # features 10-11
#: Gaits per ``lax.map`` step in :func:`_features_chunked`: ~0.5 MB of input, so the ~40 intermediate planes of a
#: chunk stay in cache (2,177 gaits: 186 ms in one piece, 63 ms in chunks of 32; bench/NOTES.md).
_CHUNK = 32


def _frame_mean(lengths, lost: int = 0):
    """Mean over the last (frame) axis: of all frames, or of the first ``lengths - lost`` (``lost`` frames are
    used up by ``lost`` frame differences)."""
    if lengths is None:
        return lambda x: jnp.mean(x, axis=-1)

    def mean(x):
        n = lengths - lost
        valid = jnp.arange(x.shape[-1]) < n[..., None]
        return jnp.sum(jnp.where(valid, x, 0), axis=-1) / n.astype(x.dtype)

    return mean


def _features(g, official: bool, time_step, stride: bool, lengths=None):
    """Features of gaits ``(..., T, 16, 3)`` -> ``(..., F)``, computed on the planar layout (see "numerics");
    ``lengths (...)``: frames of each gait (the rest is padding), ``None`` for all ``T``."""
    finite = jnp.isfinite(g).all(axis=(-2, -1))  # (..., T)
    if lengths is not None:  # padding is never read; made a copy of the last real frame so that NaN / inf there
        padding = jnp.arange(g.shape[-3]) >= lengths[..., None]  # cannot reach the gradients either
        last = jnp.take_along_axis(g, jnp.clip(lengths - 1, 0)[..., None, None, None], axis=-3)
        g = jnp.where(padding[..., None, None], last, g)
        finite |= padding
    angle = _angle_official if official else _angle_safe
    norm = _norm if official else _safe_norm
    area = _heron if official else _triangle_area
    p = jnp.moveaxis(g, (-1, -2, -3), (0, 1, -1))  # (3, 16, ..., T)
    joints = lambda idx: p[:, np.asarray(idx)]  # noqa: E731  (3, k, ..., T)
    frame_mean = _frame_mean(lengths)
    mean_t = lambda x, lost=0: jnp.moveaxis(_frame_mean(lengths, lost)(x), 0, -1)  # noqa: E731  (k, ..., T) -> (..., k)

    # Each group is computed on a stacked joint axis (fewer ops, faster compiles, especially for gradients).
    first = joints(_ANGLE_JOINTS[:, 0]) - joints(_ANGLE_JOINTS[:, 1])
    second = joints(_ANGLE_JOINTS[:, 2]) - joints(_ANGLE_JOINTS[:, 3])
    vertical = jnp.zeros_like(second[:, :1]).at[UP_AXIS].set(1.0)
    second = jnp.concatenate([second[:, :_VERTICAL_ROW], vertical, second[:, _VERTICAL_ROW + 1:]], axis=1)
    tri = [joints(_TRIANGLES[:, i]) for i in range(3)]
    cols = [
        (_volume_official(p, frame_mean) if official else _volume_bbox(p, frame_mean))[..., None],
        mean_t(angle(first, second)),
        mean_t(norm(joints(_DISTANCE_JOINTS) - p[:, :1]) / 10),
        mean_t(area(*tri) / 100),
    ]
    moving = joints(SPEED_JOINTS)  # (3, 5, ..., T)
    vel = jnp.diff(moving, axis=-1) / time_step
    acc = jnp.diff(vel, axis=-1) / time_step
    jerk = jnp.diff(acc, axis=-1) / time_step
    for lost, diff in enumerate((vel, acc, jerk), start=1):
        cols.append(mean_t(norm(diff) / 10, lost))  # (..., 5)

    if stride:
        gap = _mean_strike_gap(p, lengths, official=official)
        length = gap if official else _stride_length_m(p, lengths, frame_mean)
        cols.append(jnp.stack([length, gap * time_step], axis=-1))
    out = jnp.concatenate(cols, axis=-1).astype(g.dtype)
    # min/max and comparisons drop NaN silently: a gait with a non-finite coordinate in a real frame gets NaN
    return jnp.where(finite.all(-1)[..., None], out, jnp.nan)


def _features_chunked(g, official: bool, time_step, stride: bool, lengths=None):
    """:func:`_features` over the flattened leading axes in cache-sized chunks (``lax.map``), remainder apart.
    CPU only: on accelerators the batch runs in one piece (a sequential map would only serialise it)."""
    batch_shape, gait_shape = g.shape[:-3], g.shape[-3:]
    flat = g.reshape((-1,) + gait_shape)
    n = flat.shape[0]
    whole = n - n % _CHUNK
    if whole == 0 or jax.default_backend() != "cpu":
        return _features(g, official, time_step, stride, lengths)
    flat_len = None if lengths is None else jnp.broadcast_to(lengths, batch_shape).reshape(-1)
    fn = lambda x, n_: _features(x, official, time_step, stride, n_)  # noqa: E731
    chunk_len = None if flat_len is None else flat_len[:whole].reshape(-1, _CHUNK)
    out = jax.lax.map(lambda xs: fn(*xs), (flat[:whole].reshape((-1, _CHUNK) + gait_shape), chunk_len))
    out = out.reshape((whole, -1))
    if whole < n:
        out = jnp.concatenate([out, fn(flat[whole:], None if flat_len is None else flat_len[whole:])], axis=0)
    return out.reshape(batch_shape + out.shape[-1:])


# Compiled once per shape/dtype/mode: eager calls are fast, and inside a caller's jit this is simply inlined.
_features_jit = jax.jit(_features_chunked, static_argnums=(1, 3))  # lengths: None or an array


def affective_features(gaits, lengths=None, *, official: bool = False, time_step: float = 1 / 30,
                       stride: bool = True):
    """Affective features of gaits ``(..., T, 16, 3)`` -> ``(..., 29)`` (``(..., 27)`` with ``stride=False``).

    Pure ``jax.numpy`` (no Python loop over frames or gaits; on CPU large batches run as a ``lax.map`` over
    cache-sized chunks of gaits); works under ``jit``, ``vmap`` and ``grad``. Under ``jax.jit`` keep the
    keyword options static, e.g. ``jax.jit(functools.partial(affective_features, official=True))``.

    Args:
      gaits: raw joint positions (numpy or jax), metres, Y up, joint order of ``stepjax.skeleton``. Integer input
        is cast to the default float dtype; float64 stays float64 only with x64 enabled.
      lengths: optional int ``(...)``: the number of real frames of each gait, for variable-length gaits
        stacked to a common ``T`` (``stepjax.data.preprocess.to_fixed_length`` tiles them): only the first
        ``lengths`` frames are used, so the features equal those of the untiled gait (the official code computes
        them on the raw frames, before any padding). ``None``: every frame is real. Each must be in ``[4, T]``:
        checked when concrete (``ValueError``); lengths traced by the caller's ``jit`` are clipped to it.
      official: ``True`` reproduces ``compute_features(frames, time_step, add_stride_features)`` of the official
        code exactly, bugs included:

        * feature 0 (volume) uses the ``if ... elif`` min/max loop, so a joint that sets the running minimum is
          never tested for the maximum (joint 0 never is; joints in decreasing order give ``-inf``);
        * features 10-11 use Heron's formula as written (a negative radicand from rounding gives NaN);
        * feature 27 is the mean gap in **frames** between consecutive strikes of the same foot, strikes being
          the interior local minima of the foot height ``y`` (``y[i] <= y[i-1] and y[i] <= y[i+1]``, so every frame
          of a flat bottom plateau counts) of joints 12 and 15; gaps pooled over both feet when both have >= 2
          strikes, else the mean gap of the one foot with >= 2 strikes **plus 1**, else ``T``;
        * feature 28 is feature 27 times ``time_step`` (perfectly collinear);
        * angles of a zero-length vector are NaN (official ``angle_between`` divides by the norm).

        ``False`` (default) fixes these: the true axis-aligned bounding-box volume; triangle areas
        ``|AB x AC| / 2`` (equal to Heron wherever Heron is defined, never NaN); angles by
        ``atan2(|u x v|, u . v)`` (0 for a zero vector) and norms with zero gradient at the origin, so gradients
        are finite; feature 4 is the angle of head - root against the vertical axis (``+Y``, as in the official
        code); feature 27 is a stride length in **metres** (twice the mean horizontal distance between the feet
        at foot strikes, the same strike rule); feature 28 is the cycle time in **seconds** (mean period between
        consecutive strikes of the same foot, pooled over both feet; one foot only: that foot's mean; none:
        ``T * time_step``), no longer a rescaled copy of 27. Every fixed feature is invariant to translation and
        to left-right mirroring (up to swapping the left/right pairs, ``FEATURE_MIRROR_PERMUTATION``) and, except
        the axis-aligned volume (invariant to rotations by multiples of 90 degrees only), to rotation about Y.
      time_step: seconds per frame (1/30 for E-Gait).
      stride: append features 27-28 (the official ``add_stride_features``; its ``main.py`` leaves it off: 27
        features).

    Returns:
      ``(..., F)`` array in the input's float dtype, order ``FEATURE_NAMES``; all NaN for a gait with a NaN or
      inf coordinate in one of its (real) frames.

    Raises:
      ValueError: if the trailing shape is not ``(T, 16, 3)`` or ``T < 4``, ``lengths`` does not fit, or a
        concrete ``time_step`` is not one finite positive number.
    """
    g = _as_gaits(gaits)
    if not isinstance(time_step, jax.core.Tracer):
        _check_time_step(time_step)
    if lengths is not None:
        lengths = _as_lengths(lengths, g.shape)
    return _features_jit(g, bool(official), time_step, bool(stride), lengths)


def _check_time_step(time_step) -> None:
    try:
        value = float(np.asarray(time_step, np.float64)) if np.ndim(time_step) == 0 else None
    except (TypeError, ValueError):
        value = None
    if isinstance(time_step, (str, bytes, bool)) or value is None or not (np.isfinite(value) and value > 0):
        raise ValueError(f"time_step must be one finite positive number of seconds per frame (1/30 for E-Gait), "
                         f"got {time_step!r}")


def check_lengths(lengths, batch_shape: tuple[int, ...], num_frames: int) -> np.ndarray:
    """Concrete real-frame counts as int32, or ``ValueError`` unless they have ``batch_shape``, are integers and
    lie in ``[MIN_FRAMES, num_frames]``. For the host side of a jitted call: a traced length cannot be checked."""
    _check_lengths_spec(lengths, batch_shape)
    values = np.asarray(lengths)
    if values.size and (values.min() < MIN_FRAMES or values.max() > num_frames):
        raise ValueError(f"lengths must lie in [{MIN_FRAMES}, T={num_frames}] (jerk uses 3 frame differences), "
                         f"got min {values.min()}, max {values.max()}")
    return values.astype(np.int32)


def _check_lengths_spec(lengths, batch_shape: tuple[int, ...]) -> None:
    """The static part of :func:`check_lengths` (shape and integer dtype), which holds for traced lengths too."""
    if tuple(np.shape(lengths)) != tuple(batch_shape):
        raise ValueError(f"lengths must have the gaits' batch shape {tuple(batch_shape)}, "
                         f"got {tuple(np.shape(lengths))}")
    dtype = lengths.dtype if hasattr(lengths, "dtype") else np.asarray(lengths).dtype
    if not np.issubdtype(dtype, np.integer):
        raise ValueError(f"lengths must be integers, got dtype {dtype}")


def _as_lengths(lengths, gait_shape) -> jax.Array:
    batch_shape, t = tuple(gait_shape[:-3]), gait_shape[-3]
    if isinstance(lengths, jax.core.Tracer):  # the shape and dtype are static: checked under jit too
        _check_lengths_spec(lengths, batch_shape)
    else:
        check_lengths(lengths, batch_shape, t)
    # traced lengths (the caller's jit) cannot be checked: clipped, so that a bad one gives the features of
    # 4 or T frames rather than NaN (0 frames) or a mean diluted by padding (more than T)
    return jnp.clip(jnp.asarray(lengths, jnp.int32), MIN_FRAMES, t)


# ----------------------------------------------------------------------------- normalisation

class Normalizer(NamedTuple):
    """Per-feature min/max normalisation ``(x - center) / half_range`` (a pytree: works under ``jit``)."""

    center: jax.Array
    half_range: jax.Array


#: A feature whose training half-range is below this fraction of its centre is constant up to float rounding
#: (e.g. a shoulder angle of a rigid torso: 90 +- 2e-6 degrees in float32) and is treated as constant: dividing
#: by that range would amplify rounding noise by 1e6 or more.
CONSTANT_RTOL = 1e-5


def fit_normalizer(train_features) -> Normalizer:
    """Fits the official min/max normalisation on **training** features ``(..., F)`` (all leading axes pooled).

    ``center = (max + min) / 2`` and ``half_range = (max - min) / 2`` per feature, which maps the training set
    to ``[-1, 1]``. The official ``normalize_features.py`` fits on all gaits of the file, test included (a leak):
    fit on the training split only and apply the result to validation/test features with ``normalize``.
    A feature that is constant up to rounding (``half_range <= CONSTANT_RTOL * |center|``) gets
    ``half_range = 0`` and normalises to 0, like an exactly constant one. NaN features propagate into the statistics.
    """
    x = jnp.asarray(train_features)
    if x.ndim < 1 or x.size == 0:
        raise ValueError(f"fit_normalizer needs a non-empty (..., F) array, got shape {tuple(x.shape)}")
    x = x.reshape(-1, x.shape[-1])
    hi = jnp.max(x, axis=0)
    lo = jnp.min(x, axis=0)
    center, half = (hi + lo) / 2, (hi - lo) / 2
    return Normalizer(center=center, half_range=jnp.where(half <= CONSTANT_RTOL * jnp.abs(center), 0.0, half))


def normalize(features, normalizer: Normalizer):
    """``(x - center) / half_range`` per feature of ``features (..., F)`` with the ``(F,)`` arrays of
    ``normalizer``; a feature that was constant in training maps to 0."""
    x = jnp.asarray(features)
    center = jnp.asarray(normalizer.center)
    half = jnp.asarray(normalizer.half_range)
    if x.shape[-1:] != center.shape:
        raise ValueError(f"features have {x.shape[-1:]} trailing features, the normalizer {center.shape}")
    nonconstant = half != 0
    return jnp.where(nonconstant, (x - center) / jnp.where(nonconstant, half, 1.0), 0.0)
