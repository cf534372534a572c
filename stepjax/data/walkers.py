"""Procedural emotional walkers: the built-in gait dataset of stepjax.

A kinematic walker on the 16-joint STEP skeleton (:mod:`stepjax.skeleton`), vectorised over gaits
and frames (loops run over body segments only):

* per-subject body proportions (segment lengths around adult means, a few % spread);
* a gait cycle with random start phase, cadence, step length and stance fraction; the ankles follow
  planted-foot paths (no sliding in stance, minimum-jerk swing with foot lift, heel rise) and hip and
  knee flexion come from two-link inverse kinematics, so the pelvis rises and falls like an inverted
  pendulum over the stance leg;
* pelvis rotation, obliquity and lateral sway, trunk lean and stoop with counter-rotation, head drop,
  counter-phase arm swing at shoulder and elbow;
* forward kinematics with rotation matrices, so bone lengths are exactly constant within a gait.

Emotions (0 Angry, 1 Neutral, 2 Happy, 3 Sad) set the class means of the style parameters
(:data:`STYLE_PARAMS`) the way the gait literature and the Bandai mocap walks show: Sad walks are slow
with short steps, stooped, head down, small arm swing and low hands; Angry walks are fast with a
forward lean, large and abrupt (high-jerk) arm swing and heavy heel strikes; Happy walks are fast-ish,
bouncy (rising on the toes), upright with the chin up and the hands carried high; Neutral is in
between. Each gait's parameters add subject offsets and per-gait noise (scaled by ``difficulty``) so
the classes overlap, and joint angles get slow drifts and per-frame jitter.

Frame: metres, Y up, the walker faces and walks towards -Z, their right is +X (joints 4-6 / 10-12 are
the left arm / leg). ``docs/walkers.md`` lists the per-class values and compares them with Bandai.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence, cast

import numpy as np

from stepjax import NUM_CLASSES
from stepjax.skeleton import (HEAD, LEFT_ELBOW, LEFT_FOOT, LEFT_HAND, LEFT_HIP, LEFT_KNEE,
                              LEFT_SHOULDER, NECK, NUM_JOINTS, PARENTS, RIGHT_ELBOW, RIGHT_FOOT,
                              RIGHT_HAND, RIGHT_HIP, RIGHT_KNEE, RIGHT_SHOULDER, SPINE)
from stepjax.utils import is_integer

NUM_EMOTIONS = NUM_CLASSES  # the four STEP emotions (stepjax.LABEL_NAMES)
#: E-Gait's class frequencies (Angry, Neutral, Happy, Sad) over its 342 real gaits.
EGAIT_CLASS_PROBS: tuple[float, ...] = tuple(c / 342 for c in (112, 33, 78, 119))

HeadConvention = Literal["mocap", "egait"]
#: Forward angle (degrees from vertical) of E-Gait's neck -> head vector (a face point).
EGAIT_HEAD_FORWARD_DEG = 55.0


@dataclass(frozen=True)
class StyleParam:
    """Class-conditional distribution of one style parameter.

    A gait of class ``c`` by subject ``s`` gets ``spread = difficulty * (subject_std * z_s +
    gait_std * z_g)`` with standard normals ``z_s`` drawn once per subject (shared by all its gaits,
    whatever their class) and ``z_g`` once per gait, and the value
    ``clip(means[c] + spread, low, high)``, or ``clip(means[c] * exp(spread), low, high)`` when
    ``relative`` (amplitudes and rates: the stds are then relative, in log units).
    """

    means: tuple[float, float, float, float]  # Angry, Neutral, Happy, Sad
    gait_std: float
    subject_std: float
    relative: bool = False
    low: float = -math.inf
    high: float = math.inf

    def sample(self, labels: np.ndarray, spread: np.ndarray) -> np.ndarray:
        """Values ``(N,)`` for classes ``labels (N,)`` and spreads ``(N,)``."""
        mean = np.asarray(self.means)[labels]
        value = mean * np.exp(spread) if self.relative else mean + spread
        return np.clip(value, self.low, self.high)


_REL = dict(relative=True)
#: Style parameters, class means in the order Angry, Neutral, Happy, Sad (units in the names;
#: angles are joint angles in degrees, positive = flexion / forward).
STYLE_PARAMS: dict[str, StyleParam] = {
    # Gait cycle: speed = step length * cadence / 60 (step length also scales with body size).
    "cadence_spm": StyleParam((124.0, 112.0, 122.0, 70.0), 0.13, 0.07, **_REL, low=50.0, high=170.0),
    "step_m": StyleParam((0.71, 0.64, 0.68, 0.42), 0.15, 0.08, **_REL, low=0.2, high=0.95),
    # Trunk: lower-trunk forward lean (root -> spine) and upper-trunk flexion (stoop, spine -> neck).
    "lean_deg": StyleParam((7.0, 0.5, 2.5, 5.0), 4.5, 2.5, low=-10.0, high=30.0),
    "stoop_deg": StyleParam((1.0, 0.0, 0.5, 15.0), 5.0, 3.0, low=-10.0, high=40.0),
    # Neck flexion relative to the upper trunk (positive = chin down).
    "head_drop_deg": StyleParam((2.0, -4.0, -12.0, 2.0), 9.0, 5.0, low=-40.0, high=50.0),
    # Arms: shoulder flexion swing amplitude and mean, elbow flexion mean and swing, abduction.
    "arm_swing_deg": StyleParam((30.0, 21.0, 38.0, 9.0), 0.35, 0.18, **_REL, high=60.0),
    "shoulder_flex_deg": StyleParam((4.0, 2.0, 9.0, -2.0), 5.0, 3.0, low=-20.0, high=35.0),
    "elbow_flex_deg": StyleParam((40.0, 20.0, 48.0, 10.0), 16.0, 9.0, low=0.0, high=120.0),
    "elbow_swing_deg": StyleParam((16.0, 10.0, 12.0, 4.0), 0.4, 0.2, **_REL, high=45.0),
    "arm_abduction_deg": StyleParam((12.0, 8.0, 10.0, 5.0), 5.0, 3.0, low=0.0, high=30.0),
    # Abruptness of the arm swing (tanh shaping; ~0 = sinusoidal, large = square-ish: more jerk).
    "sharpness": StyleParam((2.5, 0.8, 1.2, 0.6), 0.4, 0.2, **_REL, low=0.1, high=5.0),
    # Feet and pelvis: swing foot lift, rise onto the toes at mid-stance (bounce), knee yield after
    # heel strike (pelvis dip, heavy steps), lateral pelvis sway.
    "foot_lift_m": StyleParam((0.12, 0.10, 0.12, 0.06), 0.25, 0.12, **_REL, high=0.25),
    "bounce_m": StyleParam((0.005, 0.004, 0.05, 0.002), 0.5, 0.25, **_REL, high=0.08),
    "stomp_m": StyleParam((0.012, 0.006, 0.006, 0.003), 0.5, 0.25, **_REL, high=0.05),
    "sway_m": StyleParam((0.020, 0.020, 0.025, 0.030), 0.3, 0.2, **_REL, high=0.07),
}

#: Mean segment lengths in metres of an average adult (scaled per subject).
SEGMENT_MEANS: dict[str, float] = {
    "lower_spine": 0.21,   # root -> spine
    "upper_spine": 0.21,   # spine -> neck
    "head": 0.10,          # neck -> head (mocap convention: head centre above the neck)
    "face": 0.14,          # neck -> head (E-Gait convention: a face point 55 deg forward)
    "shoulder": 0.16,      # neck -> shoulder
    "upper_arm": 0.28,
    "forearm": 0.24,
    "hip": 0.09,           # root -> hip joint
    "thigh": 0.41,
    "shank": 0.41,
    "ankle_height": 0.08,  # ankle joint above the ground with the foot flat
    "foot_width": 0.075,   # ankle distance from the line of progression (half the step width)
}
#: Per-subject spread: overall size (relative std) and an independent factor per segment.
BODY_SCALE_STD = 0.045
SEGMENT_STD = 0.025
SHOULDER_DROP_DEG = 15.0  # neck -> shoulder points this far below horizontal
HIP_DROP_DEG = 10.0       # root -> hip points this far below horizontal

# Gait-cycle constants (phase 0 = right heel strike; fractions are of a stride).
_ARM_LAG = 0.05            # the arms lag the opposite leg a little
_HEEL_STRIKE_REACH = 0.25  # the ankle lands a quarter stride ahead of the pelvis (symmetric stance,
                           # so the pendulum height is continuous when the support changes legs)
_PENDULUM_SPAN = 0.8       # horizontal span of the pendulum / ankle distance (rolling over the foot
                           # flattens the pelvis arc)
_KNEE_SOFTNESS = 0.006     # metres the pelvis stays below full extension of the supporting leg
_STANCE_AT_1_2_MPS = 0.62  # stance fraction at 1.2 m/s; it shrinks as walks get faster
_STANCE_PER_MPS = -0.06
_PELVIS_YAW_DEG = 6.0      # pelvis rotation amplitude at a 0.65 m step (proportional to the step)
_PELVIS_ROLL_DEG = 4.0     # pelvic obliquity amplitude (the swing side drops)
_TRUNK_BOB_DEG = 1.0       # trunk pitch oscillation twice per stride
_SWAY_LAG = 0.05           # the lateral sway lags the stance


@dataclass(frozen=True)
class WalkerData:
    """A batch of procedural walks.

    Attributes:
      gaits: float32 ``(N, T, 16, 3)`` joint positions in metres (Y up, facing -Z).
      labels: int32 ``(N,)`` emotion, 0 Angry, 1 Neutral, 2 Happy, 3 Sad.
      subjects: int32 ``(N,)`` subject id (same body and style offsets), for grouped splits.
      params: per-gait parameters, float64 ``(N,)`` each: the keys of :data:`STYLE_PARAMS` plus
        ``speed_mps`` (forward speed), ``stance_fraction``, ``scale`` (subject size factor) and
        ``phase0_rad`` (gait phase at the first frame, 0 = right heel strike).
      fps: frames per second.
    """

    gaits: np.ndarray
    labels: np.ndarray
    subjects: np.ndarray
    params: Mapping[str, np.ndarray] = field(default_factory=dict)
    fps: float = 30.0


# ----------------------------------------------------------------------------- sampling


def _class_labels(rng: np.random.Generator, num_gaits: int,
                  class_probs: Sequence[float] | None) -> np.ndarray:
    """Shuffled labels ``(N,)`` with class counts as close as possible to ``N * class_probs``."""
    probs = np.full(NUM_EMOTIONS, 1.0) if class_probs is None else np.asarray(class_probs, float)
    if probs.shape != (NUM_EMOTIONS,) or not np.all(np.isfinite(probs) & (probs >= 0)) or probs.sum() <= 0:
        raise ValueError(f"class_probs must be {NUM_EMOTIONS} non-negative numbers, got {class_probs}")
    expected = num_gaits * probs / probs.sum()
    counts = np.floor(expected).astype(int)
    counts[np.argsort(-(expected - counts), kind="stable")[:num_gaits - counts.sum()]] += 1
    return rng.permutation(np.repeat(np.arange(NUM_EMOTIONS), counts)).astype(np.int32)


def _subject_ids(rng: np.random.Generator, num_gaits: int, gaits_per_subject: int) -> np.ndarray:
    """Shuffled subject ids ``(N,)``: ``ceil(N / gaits_per_subject)`` subjects, near-equal counts."""
    num_subjects = max(1, math.ceil(num_gaits / gaits_per_subject))
    return rng.permutation(np.arange(num_gaits) % num_subjects).astype(np.int32)


def _subject_bodies(rng: np.random.Generator, num_subjects: int) -> dict[str, np.ndarray]:
    """Segment lengths ``(S,)`` in metres per subject (keys of :data:`SEGMENT_MEANS`) and ``scale``."""
    scale = np.clip(1.0 + BODY_SCALE_STD * rng.standard_normal(num_subjects), 0.85, 1.15)
    factors = np.clip(1.0 + SEGMENT_STD * rng.standard_normal((len(SEGMENT_MEANS), num_subjects)),
                      0.92, 1.08)
    body = {name: mean * scale * f for (name, mean), f in zip(SEGMENT_MEANS.items(), factors)}
    body["scale"] = scale
    return body


def _gait_styles(rng: np.random.Generator, labels: np.ndarray, subjects: np.ndarray,
                 subject_scale: np.ndarray, difficulty: float) -> dict[str, np.ndarray]:
    """Style parameters ``(N,)`` per gait (see :class:`StyleParam`); step length scales with size."""
    num_subjects = int(subjects.max()) + 1 if subjects.size else 0
    z_subject = rng.standard_normal((num_subjects, len(STYLE_PARAMS)))
    z_gait = rng.standard_normal((labels.size, len(STYLE_PARAMS)))
    styles = {}
    for k, (name, p) in enumerate(STYLE_PARAMS.items()):
        spread = difficulty * (p.subject_std * z_subject[subjects, k] + p.gait_std * z_gait[:, k])
        styles[name] = p.sample(labels, spread)
    styles["step_m"] = styles["step_m"] * subject_scale[subjects]
    return styles


def _jitter(rng: np.random.Generator, time_s: np.ndarray, num_gaits: int, smooth_deg: float,
            white_deg: float, components: int = 3, max_hz: float = 1.0) -> np.ndarray:
    """Angle noise ``(N, T)`` float32 in degrees: a slow drift plus per-frame white noise.

    The drift of each gait is a random combination (std ``smooth_deg``) of sines and cosines at
    ``components`` frequencies in ``[0.1, max_hz]`` Hz drawn per call: a small matrix product.
    """
    freq = rng.uniform(0.1, max_hz, components)
    arg = 2 * np.pi * freq[:, None] * time_s[None, :]
    basis = np.concatenate([np.sin(arg), np.cos(arg)]).astype(np.float32)  # (2K, T)
    coef = rng.standard_normal((num_gaits, 2 * components), dtype=np.float32)
    drift = (coef * np.float32(smooth_deg / math.sqrt(components))) @ basis
    white = rng.standard_normal((num_gaits, time_s.size), dtype=np.float32)
    return drift + np.float32(white_deg) * white


# ----------------------------------------------------------------------------- gait curves


def _bump(phase: np.ndarray, centre: float, concentration: float) -> np.ndarray:
    """Periodic bump in [0, 1] peaking at ``centre`` (fraction of the stride), von Mises shaped."""
    return np.exp(concentration * (np.cos(phase - 2 * np.pi * centre) - 1.0))


def _sharpen(wave: np.ndarray, sharpness: np.ndarray) -> np.ndarray:
    """Squashes a wave in [-1, 1] towards a square wave: ``tanh(k w) / tanh(k)`` (k = ``sharpness``)."""
    return np.tanh(sharpness * wave) / np.tanh(sharpness)


def _min_jerk(tau: np.ndarray) -> np.ndarray:
    """Minimum-jerk profile from 0 to 1 over ``tau`` in [0, 1] (zero velocity, acceleration at the ends)."""
    return tau ** 3 * (10.0 - 15.0 * tau + 6.0 * tau ** 2)


def _upper_body_angles(s: Mapping[str, np.ndarray], phase: np.ndarray, time_s: np.ndarray,
                       rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Pelvis, trunk, head and arm angle curves ``(N, T)`` float32 in degrees.

    ``s`` holds the style parameters as ``(N, 1)`` float32 columns. Keys: ``pelvis_yaw`` (right hip
    forward), ``pelvis_roll`` (right side up), ``lean``, ``stoop``, ``head_drop``, ``abduction`` and
    per side (``_r``, ``_l``) ``arm`` (shoulder flexion) and ``elbow`` (flexion). The right leg has
    ``phase``, the left ``phase + pi``; each arm swings with the opposite leg.
    """
    n = phase.shape[0]
    angles = {
        "pelvis_yaw": (_PELVIS_YAW_DEG * (s["step_m"] / 0.65) * np.cos(phase)
                       + _jitter(rng, time_s, n, 0.5, 0.2)),
        "pelvis_roll": _PELVIS_ROLL_DEG * np.sin(phase) + _jitter(rng, time_s, n, 0.5, 0.2),
        "lean": s["lean_deg"] + _TRUNK_BOB_DEG * np.cos(2 * phase) + _jitter(rng, time_s, n, 1.0, 0.3),
        "stoop": s["stoop_deg"] + _jitter(rng, time_s, n, 1.0, 0.3),
        "head_drop": s["head_drop_deg"] + _jitter(rng, time_s, n, 2.0, 0.5),
        "abduction": s["arm_abduction_deg"] + _jitter(rng, time_s, n, 1.0, 0.3),
    }
    for side, offset in (("_r", 0.0), ("_l", np.pi)):
        swing = _sharpen(-np.cos(phase + offset - 2 * np.pi * _ARM_LAG), s["sharpness"])  # +1: forward
        angles["arm" + side] = (s["shoulder_flex_deg"] + s["arm_swing_deg"] * swing
                                + _jitter(rng, time_s, n, 1.5, 0.5))
        angles["elbow" + side] = np.maximum(
            s["elbow_flex_deg"] + s["elbow_swing_deg"] * 0.5 * (1.0 + swing)
            + _jitter(rng, time_s, n, 2.0, 0.5), 0.0)
    return angles


def _stance_fraction(speed_mps: np.ndarray) -> np.ndarray:
    """Fraction of the stride a foot is on the ground, shrinking with speed (m/s), in [0.55, 0.7]."""
    return np.clip(_STANCE_AT_1_2_MPS + _STANCE_PER_MPS * (speed_mps - 1.2), 0.55, 0.7)


def _ankle_path(stride_fraction: np.ndarray, stance: np.ndarray, stride: np.ndarray,
                lift: np.ndarray, toe_rise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Planned ankle path of one leg over the stride, relative to the pelvis travelling at constant speed.

    Args:
      stride_fraction: ``(N, T)`` in [0, 1), 0 = this leg's heel strike.
      stance, stride, lift, toe_rise: ``(N, 1)`` stance fraction, stride length (m), swing foot
        lift (m) and mid-stance rise onto the toes (m).

    Returns:
      ``forward (N, T)``: ankle position ahead of the pelvis along the walking direction (m): it lands
      a quarter stride ahead, moves back at walking speed during stance (the foot is planted) and
      forward during swing, with a minimum-jerk world displacement of one stride.
      ``height (N, T)``: minimum ankle height above its flat-foot height (m): the rise onto the toes
      at mid-stance and the swing lift. (The heel rise before toe-off is added where the leg needs it,
      see :func:`_legs_and_root`.)
    """
    u = stride_fraction
    in_stance = u < stance
    tau_swing = np.clip((u - stance) / (1.0 - stance), 0.0, 1.0)
    strike = _HEEL_STRIKE_REACH * stride
    forward = np.where(in_stance, strike - u * stride,
                       strike - stance * stride
                       + stride * (_min_jerk(tau_swing) - (1.0 - stance) * tau_swing))
    stance_height = toe_rise * np.sin(np.pi * np.minimum(u / stance, 1.0)) ** 2
    swing_height = lift * 6.75 * tau_swing * (1.0 - tau_swing) ** 2  # peaks at a third of the swing
    return forward, np.where(in_stance, stance_height, swing_height)


# ----------------------------------------------------------------------------- kinematics

_ROTATION_PLANE = {0: (1, 2), 1: (2, 0), 2: (0, 1)}  # axis -> (i, j): e_i turns towards e_j

#: A rotation frame is the tuple of its three columns, each ``(3, N, T)`` (or broadcastable to it):
#: column ``k`` is the world direction of the segment's local axis ``k``. Columns are shared between
#: frames (no copies), and elementwise arithmetic on them is much faster than stacked 3x3 products.
Frame = tuple[np.ndarray, np.ndarray, np.ndarray]
_WORLD: Frame = cast(Frame, tuple(np.eye(3, dtype=np.float32)[:, k, None, None] for k in range(3)))


def _turn(frame: Frame, axis: int, degrees: np.ndarray) -> Frame:
    """``frame @ R_axis(degrees)`` for angles ``(N, T)``.

    ``R_axis`` is the right-handed rotation about ``axis`` (0 X, 1 Y, 2 Z). With Y up and forward
    -Z: about X a positive angle swings a downward segment forward (flexion of hip, shoulder, elbow)
    and tilts an upward segment backward; about Y it turns +X towards -Z; about Z it lifts +X.
    Only columns ``i`` and ``j`` of the frame change.
    """
    i, j = _ROTATION_PLANE[axis]
    rad = np.radians(degrees)
    c, s = np.cos(rad), np.sin(rad)
    columns = list(frame)
    columns[i] = c * frame[i]
    columns[i] += s * frame[j]
    columns[j] = c * frame[j]
    columns[j] -= s * frame[i]
    return cast(Frame, tuple(columns))


def _apply(frame: Frame, offset: np.ndarray) -> np.ndarray:
    """Rotates per-gait offsets ``(N, 3)`` by a frame: world vectors ``(3, N, T)``."""
    offset = offset.astype(frame[0].dtype)
    used = [k for k in range(3) if np.any(offset[:, k])] or [0]  # skip zero components
    return sum(frame[k] * offset[:, k, None] for k in used)


def _upper_body_frames(angles: Mapping[str, np.ndarray]) -> dict[int, Frame]:
    """World rotation of the segment ending at each non-leg joint (and the hips' pelvis frame).

    Segment ``parent -> j`` is ``R_j @ rest_offset_j``. The pelvis (hips) and the lower trunk both
    hang off the world frame, so pelvic obliquity does not tilt the trunk; the thorax counter-rotates.
    """
    yaw, roll = angles["pelvis_yaw"], angles["pelvis_roll"]
    pelvis = _turn(_turn(_WORLD, 1, yaw), 2, roll)
    spine = _turn(_turn(_turn(_WORLD, 1, 0.4 * yaw), 2, -0.5 * roll), 0, -angles["lean"])
    thorax = _turn(_turn(spine, 1, -0.8 * yaw), 0, -angles["stoop"])
    frames = {SPINE: spine, NECK: thorax, HEAD: _turn(thorax, 0, -angles["head_drop"]),
              LEFT_SHOULDER: thorax, RIGHT_SHOULDER: thorax, LEFT_HIP: pelvis, RIGHT_HIP: pelvis}
    for side, sign, elbow, hand in (("_r", 1.0, RIGHT_ELBOW, RIGHT_HAND),
                                    ("_l", -1.0, LEFT_ELBOW, LEFT_HAND)):
        frames[elbow] = _turn(_turn(thorax, 2, sign * angles["abduction"]), 0, angles["arm" + side])
        frames[hand] = _turn(frames[elbow], 0, angles["elbow" + side])
    return frames


def _two_link_frames(hip_to_ankle: np.ndarray, thigh: np.ndarray, shank: np.ndarray,
                     knee_jitter: np.ndarray) -> tuple[Frame, Frame]:
    """Thigh and shank frames that put the ankle at ``hip_to_ankle (3, N, T)`` (inverse kinematics).

    The leg lies in the plane through the hip spanned by the forward axis and the downward direction
    tilted sideways by the abduction ``atan2(dx, -dy)``; in that plane the hip flexes and the knee
    bends forward-pointing (law of cosines). The distance is clipped to the reachable range.
    ``thigh``, ``shank``: ``(N,)`` lengths (m); ``knee_jitter``: ``(N, T)`` degrees added to both joints.
    """
    dx, dy, dz = hip_to_ankle
    down = np.sqrt(dx ** 2 + dy ** 2)
    forward = -dz
    upper, lower = thigh[:, None].astype(np.float32), shank[:, None].astype(np.float32)
    reach = np.clip(np.sqrt(down ** 2 + forward ** 2), np.abs(upper - lower) + 1e-4,
                    (upper + lower) * (1.0 - 1e-6))
    cos_hip = (upper ** 2 + reach ** 2 - lower ** 2) / (2 * upper * reach)
    cos_knee = (upper ** 2 + lower ** 2 - reach ** 2) / (2 * upper * lower)
    hip = np.degrees(np.arctan2(forward, down) + np.arccos(np.clip(cos_hip, -1.0, 1.0)))
    knee = 180.0 - np.degrees(np.arccos(np.clip(cos_knee, -1.0, 1.0)))
    thigh_frame = _turn(_turn(_WORLD, 2, np.degrees(np.arctan2(dx, -dy))), 0, hip + knee_jitter)
    return thigh_frame, _turn(thigh_frame, 0, -(knee + knee_jitter))


def _rest_offsets(body: Mapping[str, np.ndarray], head_convention: HeadConvention) -> dict[int, np.ndarray]:
    """Rest offset ``(N, 3)`` in metres of each non-root joint from its parent (left side at -X)."""
    def lateral(length: np.ndarray, drop_deg: float, sign: float) -> np.ndarray:
        a = np.radians(drop_deg)
        return np.stack([sign * length * np.cos(a), -length * np.sin(a), 0.0 * length], axis=-1)

    def vertical(length: np.ndarray, sign: float = 1.0) -> np.ndarray:
        zero = 0.0 * length
        return np.stack([zero, sign * length, zero], axis=-1)

    if head_convention == "mocap":
        head = vertical(body["head"])
    elif head_convention == "egait":
        a = np.radians(EGAIT_HEAD_FORWARD_DEG)
        head = np.stack([0.0 * body["face"], body["face"] * np.cos(a), -body["face"] * np.sin(a)], -1)
    else:
        raise ValueError(f"head_convention must be 'mocap' or 'egait', got {head_convention!r}")
    return {
        SPINE: vertical(body["lower_spine"]), NECK: vertical(body["upper_spine"]), HEAD: head,
        LEFT_SHOULDER: lateral(body["shoulder"], SHOULDER_DROP_DEG, -1.0),
        RIGHT_SHOULDER: lateral(body["shoulder"], SHOULDER_DROP_DEG, 1.0),
        LEFT_ELBOW: vertical(body["upper_arm"], -1.0), RIGHT_ELBOW: vertical(body["upper_arm"], -1.0),
        LEFT_HAND: vertical(body["forearm"], -1.0), RIGHT_HAND: vertical(body["forearm"], -1.0),
        LEFT_HIP: lateral(body["hip"], HIP_DROP_DEG, -1.0),
        RIGHT_HIP: lateral(body["hip"], HIP_DROP_DEG, 1.0),
        LEFT_KNEE: vertical(body["thigh"], -1.0), RIGHT_KNEE: vertical(body["thigh"], -1.0),
        LEFT_FOOT: vertical(body["shank"], -1.0), RIGHT_FOOT: vertical(body["shank"], -1.0),
    }


def _forward_kinematics(frames: Mapping[int, Frame], offsets: Mapping[int, np.ndarray]) -> np.ndarray:
    """Root-relative joint positions ``(N, T, 16, 3)`` (a transposed view; parents before children)."""
    n, t = frames[SPINE][0].shape[1:]
    pos = [np.zeros((3, n, t), dtype=frames[SPINE][0].dtype)]
    for joint in range(1, NUM_JOINTS):
        pos.append(pos[PARENTS[joint]] + _apply(frames[joint], offsets[joint]))
    return np.stack(pos).transpose(2, 3, 0, 1)


def _legs_and_root(s: Mapping[str, np.ndarray], body: Mapping[str, np.ndarray], phase: np.ndarray,
                   time_s: np.ndarray, frames: dict[int, Frame], offsets: Mapping[int, np.ndarray],
                   rng: np.random.Generator) -> np.ndarray:
    """Adds the thigh and shank frames to ``frames`` and returns the root trajectory ``(3, N, T)``.

    The ankles follow :func:`_ankle_path` at ``+-foot_width`` from the line of progression. The root
    walks towards -Z at constant speed and sways towards the stance leg. Its height vaults like an
    inverted pendulum over the supporting leg (the one whose heel strike is the most recent), a
    virtual leg whose ankle is ``_PENDULUM_SPAN`` times as far ahead / behind (the roll over the foot
    flattens the arc), lowered by a soft knee and a knee yield after each heel strike (``stomp_m``).
    Where a leg cannot reach its planned ankle, the ankle rises (heel strike on a lifted foot, heel
    rise before toe-off). Inverse kinematics then places the knees.
    """
    speed = s["step_m"] * s["cadence_spm"] / 60.0
    stance = _stance_fraction(speed)
    col = {name: value[:, None].astype(np.float32) for name, value in body.items()}
    reach = (col["thigh"] + col["shank"]) * (1.0 - 1e-4)
    sway = s["sway_m"] * np.sin(phase - 2 * np.pi * _SWAY_LAG)
    root_z = -speed * time_s[None, :].astype(np.float32)

    # Knee yield peaks a tenth of a stride after each heel strike (bump at 0.2 of a step).
    knee_yield = _KNEE_SOFTNESS * col["scale"] + s["stomp_m"] * _bump(2 * phase, 0.2, 6.0)
    legs = []
    for sign, hip, knee, foot, offset in ((1.0, RIGHT_HIP, RIGHT_KNEE, RIGHT_FOOT, 0.0),
                                          (-1.0, LEFT_HIP, LEFT_KNEE, LEFT_FOOT, np.pi)):
        fraction = np.mod((phase + offset) / (2 * np.pi), 1.0)
        forward, rise = _ankle_path(fraction, stance, 2.0 * s["step_m"], s["foot_lift_m"], s["bounce_m"])
        hip_pos = _apply(frames[hip], offsets[hip])  # relative to the root
        ankle_x, ankle_z = sign * col["foot_width"] - sway - hip_pos[0], -forward - hip_pos[2]
        legs.append(dict(knee=knee, foot=foot, hip_y=hip_pos[1], x=ankle_x, z=ankle_z,
                         planned_y=col["ankle_height"] + rise, supports=fraction < 0.5))
    right, left = legs
    vault = {key: np.where(right["supports"], right[key], left[key])
             for key in ("x", "z", "hip_y", "planned_y")}
    vault_drop = np.sqrt(np.maximum(reach ** 2 - vault["x"] ** 2 - (_PENDULUM_SPAN * vault["z"]) ** 2, 0.0))
    root_y = vault["planned_y"] + vault_drop - vault["hip_y"] - knee_yield

    n = phase.shape[0]
    for leg in legs:
        drop = np.sqrt(np.maximum(reach ** 2 - leg["x"] ** 2 - leg["z"] ** 2, 0.0))  # hip above ankle
        ankle_y = np.maximum(leg["planned_y"], root_y + leg["hip_y"] - drop)
        hip_to_ankle = np.stack([leg["x"], ankle_y - root_y - leg["hip_y"], leg["z"]])
        frames[leg["knee"]], frames[leg["foot"]] = _two_link_frames(
            hip_to_ankle, body["thigh"], body["shank"], _jitter(rng, time_s, n, 1.0, 0.3))
    return np.stack([np.broadcast_to(sway, root_y.shape), root_y, np.broadcast_to(root_z, root_y.shape)])


def make_walkers(num_gaits: int, seed: int, num_frames: int = 75, fps: float = 30.0,
                 root_relative: bool = True, class_probs: Sequence[float] | None = None,
                 difficulty: float = 1.0, gaits_per_subject: int = 8,
                 head_convention: HeadConvention = "mocap") -> WalkerData:
    """Generates procedural emotional walks.

    Args:
      num_gaits: number of gaits ``N``.
      seed: seed of ``numpy.random.default_rng`` (the only randomness); the same arguments give
        bit-identical arrays.
      num_frames: frames per gait ``T``.
      fps: frame rate (frames per second).
      root_relative: subtract the root from every joint (E-Gait-like: root == 0 in every frame);
        ``False`` keeps the world trajectory, walking towards -Z from ``x = z = 0`` with the feet on
        the ground plane (ankles ``ankle_height`` above ``y = 0`` when flat).
      class_probs: relative class frequencies (Angry, Neutral, Happy, Sad); default uniform, e.g.
        :data:`EGAIT_CLASS_PROBS`. Class counts are the nearest integers to ``N * class_probs``.
      difficulty: scales the within-class spread (subject offsets and per-gait noise) of every style
        parameter; 0 gives one style per class, larger values more overlap.
      gaits_per_subject: gaits per subject; subjects share body proportions and style offsets and
        walk with every emotion.
      head_convention: ``"mocap"`` puts the head joint above the neck (BVH / mocap skeletons);
        ``"egait"`` at a face point 55 degrees forward of vertical from the neck, as in E-Gait.

    Returns:
      :class:`WalkerData` with float32 gaits ``(N, T, 16, 3)`` in metres (Y up, facing -Z), int32
      labels and subjects ``(N,)`` and the per-gait parameters.
    """
    is_real = lambda v: isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)  # noqa: E731
    bad = [f"{name}={value!r}" for name, value, ok in (
        ("num_gaits", num_gaits, is_integer(num_gaits) and num_gaits >= 0),
        ("seed", seed, seed >= 0 if is_integer(seed) else not isinstance(seed, (float, str, bytes, bool))),
        ("num_frames", num_frames, is_integer(num_frames) and num_frames >= 1),
        ("fps", fps, is_real(fps) and np.isfinite(fps) and fps > 0),
        ("difficulty", difficulty, is_real(difficulty) and np.isfinite(difficulty) and difficulty >= 0),
        ("gaits_per_subject", gaits_per_subject, is_integer(gaits_per_subject) and gaits_per_subject >= 1)) if not ok]
    if bad:
        raise ValueError(f"make_walkers: {', '.join(bad)}; need integers num_gaits >= 0, seed >= 0, num_frames >= 1, "
                         "gaits_per_subject >= 1 and finite fps > 0, difficulty >= 0")
    num_gaits, num_frames, gaits_per_subject = int(num_gaits), int(num_frames), int(gaits_per_subject)
    rng = np.random.default_rng(int(seed) if is_integer(seed) else seed)  # a JAX integer too
    labels = _class_labels(rng, num_gaits, class_probs)
    subjects = _subject_ids(rng, num_gaits, gaits_per_subject)
    bodies = _subject_bodies(rng, int(subjects.max()) + 1 if num_gaits else 0)
    body = {name: value[subjects] for name, value in bodies.items()}
    styles = _gait_styles(rng, labels, subjects, bodies["scale"], difficulty)
    time_s = np.arange(num_frames) / fps
    phase0 = rng.uniform(0.0, 2 * np.pi, num_gaits)
    # Joint angles and kinematics run in float32 (for speed; bone lengths stay constant to ~1e-7 m).
    phase = (phase0[:, None] + (np.pi / 60.0) * styles["cadence_spm"][:, None] * time_s).astype(np.float32)
    s = {name: value[:, None].astype(np.float32) for name, value in styles.items()}

    frames = _upper_body_frames(_upper_body_angles(s, phase, time_s, rng))
    offsets = _rest_offsets(body, head_convention)
    root = _legs_and_root(s, body, phase, time_s, frames, offsets, rng)
    gaits = _forward_kinematics(frames, offsets)
    if not root_relative:
        gaits = gaits + root.transpose(1, 2, 0)[:, :, None, :]
    speed = styles["step_m"] * styles["cadence_spm"] / 60.0
    params = dict(styles, speed_mps=speed, stance_fraction=_stance_fraction(speed),
                  scale=body["scale"], phase0_rad=phase0)
    return WalkerData(gaits=np.ascontiguousarray(gaits, dtype=np.float32), labels=labels,
                      subjects=subjects, params=params, fps=float(fps))
