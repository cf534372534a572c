"""BVH motion-capture import: parser, forward kinematics, and conversion to 16-joint STEP gaits.

Pipeline of :func:`bvh_to_step16` (every step is vectorised over frames):

1. :func:`parse_bvh` reads the HIERARCHY and MOTION sections into a :class:`BVH`.
2. :func:`forward_kinematics` gives world positions ``(F, J, 3)`` in file units, starting at the
   top joint (Bandai's animated ``joint_Root``, not ``Hips``).
3. A joint map (:data:`BANDAI_MAP`, :data:`CMU_MAP`, :data:`MIXAMO_MAP`, or your own) turns the file's
   joints into the 16 STEP joints (:mod:`stepjax.skeleton`: 4-6 / 10-12 are the **left** arm / leg).
4. Units become metres, frames are resampled to ``target_fps`` (linear interpolation in time), the
   clip is turned about the vertical (Y) axis so that the walker faces -Z, and (by default) the root
   is subtracted from every joint, as in E-Gait.

BVH conventions used here (the de-facto standard of Biovision / CMU / Blender exporters):

* Y is up (true for Bandai, CMU and Mixamo exports); no axis swap is made.
* Rotation channels are intrinsic Euler angles in degrees applied in the order they are listed:
  channels ``c1 c2 c3`` give ``R = R_c1 @ R_c2 @ R_c3`` (each a right-handed rotation about an axis).
* A joint's local translation is its OFFSET, except that position channels, where present, *replace*
  the matching OFFSET component. This holds for the root (whose OFFSET is normally 0) and for Bandai
  files where every joint has 6 channels.
* World transform: ``G_j = G_parent @ R_j`` and ``p_j = p_parent + G_parent @ t_j``.

The command line tool (``python -m stepjax.data.bvh`` or ``stepjax-bvh2egait``) converts a folder of
BVH files into an E-Gait ``features`` / ``labels`` HDF5 pair, see :func:`main`.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Mapping, NoReturn, Sequence

import numpy as np

from stepjax import LABEL_NAMES
from stepjax.skeleton import (LEFT_HIP, LEFT_SHOULDER, NUM_JOINTS, RIGHT_HIP, RIGHT_SHOULDER, ROOT,
                              HEAD, UP_AXIS)

PathOrText = str | os.PathLike

#: Canonical channel names; a CHANNELS line may use any capitalisation.
POSITION_CHANNELS: tuple[str, ...] = ("Xposition", "Yposition", "Zposition")
ROTATION_CHANNELS: tuple[str, ...] = ("Xrotation", "Yrotation", "Zrotation")
_CHANNEL_BY_LOWER = {c.lower(): c for c in POSITION_CHANNELS + ROTATION_CHANNELS}
_AXIS = {"X": 0, "Y": 1, "Z": 2}


# ----------------------------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, eq=False)
class BVH:
    """A parsed BVH file.

    Attributes:
      source: file path, or ``"<text>"`` when parsed from a string (used in error messages).
      joint_names: ``J`` joint names in file (depth-first) order; End Sites are not joints.
      parents: int ``(J,)``, index of each joint's parent, -1 for a top (ROOT) joint (parsed files
        list parents before children; hand-built ones may use any order).
      offsets: float64 ``(J, 3)``, OFFSET of each joint in file units.
      channels: per joint, the tuple of its channel names (canonical capitalisation, file order).
      frame_time: seconds per frame.
      motion: float64 ``(F, C)``, one row per frame, ``C = sum(len(c) for c in channels)``.
      end_sites: ``(parent joint index, OFFSET (3,))`` of each End Site, in file order.
    """

    source: str
    joint_names: tuple[str, ...]
    parents: np.ndarray
    offsets: np.ndarray
    channels: tuple[tuple[str, ...], ...]
    frame_time: float
    motion: np.ndarray
    end_sites: tuple[tuple[int, np.ndarray], ...] = ()

    @property
    def num_frames(self) -> int:
        return int(self.motion.shape[0])

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def fps(self) -> float:
        """Frame rate, snapped to the nearest integer when the file's rounded Frame Time is within
        0.01% of one (``0.0333333`` -> 30)."""
        raw = 1.0 / self.frame_time
        nearest = round(raw)
        return float(nearest) if nearest > 0 and abs(raw - nearest) <= 1e-4 * nearest else raw

    @property
    def channel_starts(self) -> np.ndarray:
        """int ``(J,)``: column of ``motion`` where each joint's channels start."""
        sizes = [len(c) for c in self.channels]
        return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)

    def joint_index(self, name: str) -> int:
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise ValueError(f"{self.source}: no joint named {name!r}") from None


class _Tokens:
    """Whitespace tokens of the HIERARCHY section with line numbers, for error messages."""

    def __init__(self, lines: Sequence[str], source: str):
        self.items = [(tok, n + 1) for n, line in enumerate(lines) for tok in line.split()]
        self.pos = 0
        self.source = source

    def peek(self) -> str | None:
        return self.items[self.pos][0] if self.pos < len(self.items) else None

    def next(self, what: str) -> str:
        if self.pos >= len(self.items):
            self.fail(f"unexpected end of HIERARCHY, expected {what}")
        tok = self.items[self.pos][0]
        self.pos += 1
        return tok

    def expect(self, literal: str) -> None:
        tok = self.next(repr(literal))
        if tok != literal:
            self.fail(f"expected {literal!r}, found {tok!r}", back=1)

    def number(self, what: str) -> float:
        tok = self.next(what)
        try:
            return float(tok)
        except ValueError:
            self.fail(f"expected a number for {what}, found {tok!r}", back=1)

    def fail(self, message: str, back: int = 0) -> NoReturn:
        line = self.items[min(self.pos - back, len(self.items) - 1)][1] if self.items else 0
        raise ValueError(f"{self.source}: line {line}: {message}")


def _read_source(path_or_text: PathOrText) -> tuple[str, str]:
    """Returns ``(source name, text)``; a multi-line string containing ``HIERARCHY`` is BVH text."""
    if isinstance(path_or_text, str) and "\n" in path_or_text and "HIERARCHY" in path_or_text:
        return "<text>", path_or_text
    if isinstance(path_or_text, bytes):
        path_or_text = os.fsdecode(path_or_text)
    if not isinstance(path_or_text, (str, os.PathLike)):
        raise TypeError(f"expected a BVH path, BVH text or a parsed BVH, got {type(path_or_text).__name__}")
    path = Path(path_or_text)
    if not path.exists():
        raise FileNotFoundError(f"BVH file not found: {path}")
    if not path.is_file():
        raise ValueError(f"{path} is not a BVH file (a directory? the command-line tool converts folders)")
    return str(path), path.read_text(encoding="utf-8", errors="replace")


def _parse_channels(tokens: _Tokens, joint: str) -> tuple[str, ...]:
    count = tokens.number(f"the channel count of {joint}")
    if count != int(count) or count < 0:
        tokens.fail(f"joint {joint}: bad channel count {count}", back=1)
    names = []
    for _ in range(int(count)):
        tok = tokens.next(f"a channel name of {joint}")
        canonical = _CHANNEL_BY_LOWER.get(tok.lower())
        if canonical is None:
            tokens.fail(f"joint {joint}: unknown channel name {tok!r} "
                        f"(expected one of {POSITION_CHANNELS + ROTATION_CHANNELS})", back=1)
        names.append(canonical)
    if len(set(names)) != len(names):
        tokens.fail(f"joint {joint}: repeated channel in {names}")
    return tuple(names)


def _parse_offset(tokens: _Tokens, owner: str) -> np.ndarray:
    tokens.expect("OFFSET")
    return np.array([tokens.number(f"the OFFSET of {owner}") for _ in range(3)])


def _parse_hierarchy(tokens: _Tokens):
    names: list[str] = []
    parents: list[int] = []
    offsets: list[np.ndarray] = []
    channels: list[tuple[str, ...]] = []
    end_sites: list[tuple[int, np.ndarray]] = []

    def joint_body(name: str, parent: int) -> None:
        index = len(names)
        names.append(name)
        parents.append(parent)
        tokens.expect("{")
        offsets.append(_parse_offset(tokens, name))
        has_channels = tokens.peek() == "CHANNELS"
        if has_channels:
            tokens.expect("CHANNELS")
        channels.append(_parse_channels(tokens, name) if has_channels else ())
        while True:
            tok = tokens.next(f"JOINT, End Site or '}}' in {name}")
            if tok == "}":
                return
            if tok == "JOINT":
                joint_body(tokens.next("a joint name"), index)
            elif tok == "End":
                tokens.expect("Site")
                tokens.expect("{")
                end_sites.append((index, _parse_offset(tokens, f"the End Site of {name}")))
                tokens.expect("}")
            else:
                tokens.fail(f"unexpected {tok!r} in joint {name}", back=1)

    tokens.expect("HIERARCHY")
    while tokens.peek() is not None:
        tokens.expect("ROOT")
        joint_body(tokens.next("the root name"), -1)
    if not names:
        tokens.fail("HIERARCHY holds no ROOT joint")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        tokens.fail(f"duplicate joint names {duplicates}")
    return names, parents, offsets, channels, end_sites


_HEADER = re.compile(r"^\s*(Frames|Frame\s+Time)\s*:\s*(\S+)\s*$", re.IGNORECASE)


def _parse_motion(lines: Sequence[str], first_line: int, num_channels: int, source: str):
    """Parses the lines after ``MOTION``; returns ``(frame_time, motion (F, C))``."""
    header: dict[str, float] = {}
    body_start = len(lines)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        match = _HEADER.match(line)
        if match is None:
            body_start = i
            break
        key = "frames" if match.group(1).lower() == "frames" else "frame_time"
        try:
            header[key] = float(match.group(2))
        except ValueError:
            raise ValueError(f"{source}: line {first_line + i}: bad value {match.group(2)!r} "
                             f"for {match.group(1)}") from None
    for key, label in (("frames", "Frames:"), ("frame_time", "Frame Time:")):
        if key not in header:
            raise ValueError(f"{source}: MOTION section has no '{label}' line")
    num_frames, frame_time = header["frames"], header["frame_time"]
    if num_frames != int(num_frames) or num_frames < 1:
        raise ValueError(f"{source}: bad frame count {num_frames:g} in MOTION (need an integer >= 1)")
    if not frame_time > 0:
        raise ValueError(f"{source}: bad Frame Time {frame_time:g} (need > 0 seconds)")
    if not MIN_FRAME_TIME_S <= frame_time <= MAX_FRAME_TIME_S:  # resampling would make 1 or 200,000 frames of it
        raise ValueError(f"{source}: Frame Time {frame_time:g} s per frame is {1 / frame_time:g} fps, outside "
                         f"{1 / MAX_FRAME_TIME_S:g}-{1 / MIN_FRAME_TIME_S:g} fps: BVH gives seconds per frame "
                         "(e.g. 0.0333333 at 30 fps; milliseconds or a frame rate there are a broken export)")
    num_frames = int(num_frames)
    rows = [(first_line + body_start + i, line.split()) for i, line in enumerate(lines[body_start:])]
    rows = [(n, r) for n, r in rows if r]
    for n, values in rows:
        if len(values) != num_channels:
            raise ValueError(f"{source}: line {n}: wrong number of values per frame: {len(values)}, "
                             f"expected {num_channels} (one per channel); the file may be truncated "
                             f"(header says {num_frames} frames, {len(rows)} frame lines found)")
    if len(rows) != num_frames:
        raise ValueError(f"{source}: frame count mismatch: header says {num_frames} frames, "
                         f"{len(rows)} frame lines found (truncated or extra MOTION data)")
    try:
        motion = np.array([v for _, r in rows for v in r], dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"{source}: non-numeric value in MOTION ({err})") from None
    if not np.all(np.isfinite(motion)):
        raise ValueError(f"{source}: MOTION contains NaN/inf")
    return frame_time, motion.reshape(num_frames, num_channels)


def parse_bvh(path_or_text: PathOrText) -> BVH:
    """Parses a BVH file (a path) or BVH text (a multi-line string that contains ``HIERARCHY``); a parsed
    :class:`BVH` is returned as it is.

    Handles any number of channels per joint (3, 6, ... in any order), End Sites, several ROOTs and
    an animated top root.

    Raises:
      FileNotFoundError: the path does not exist.
      ValueError: malformed file; the message names the file (and line) and the problem: missing
        MOTION section, frame count mismatch, wrong number of values per frame, unknown channel...
    """
    if isinstance(path_or_text, BVH):
        return path_or_text
    source, text = _read_source(path_or_text)
    lines = text.splitlines()
    motion_at = next((i for i, line in enumerate(lines) if line.strip().upper() == "MOTION"), None)
    if motion_at is None:
        raise ValueError(f"{source}: missing MOTION section (the file has no line 'MOTION')")
    tokens = _Tokens(lines[:motion_at], source)
    names, parents, offsets, channels, end_sites = _parse_hierarchy(tokens)
    num_channels = sum(len(c) for c in channels)
    frame_time, motion = _parse_motion(lines[motion_at + 1:], motion_at + 2, num_channels, source)
    return BVH(source=source, joint_names=tuple(names), parents=np.array(parents, dtype=np.int64),
               offsets=np.array(offsets, dtype=np.float64).reshape(-1, 3), channels=tuple(channels),
               frame_time=frame_time, motion=motion, end_sites=tuple(end_sites))


def _children(parents: np.ndarray) -> dict[int, list[int]]:
    children: dict[int, list[int]] = {j: [] for j in range(-1, len(parents))}
    for j, p in enumerate(parents):
        children[int(p)].append(j)
    return children


def depth_first_order(parents: np.ndarray) -> list[int]:
    """Joint indices in depth-first (file) order, parents before children, from ``parents (J,)``.

    Raises:
      ValueError: the parents do not form a forest (a cycle or a bad index).
    """
    children = _children(parents)
    order: list[int] = []
    stack = list(reversed(children[-1]))
    while stack:
        j = stack.pop()
        order.append(j)
        stack.extend(reversed(children[j]))
    if sorted(order) != list(range(len(parents))):
        raise ValueError(f"joint parents {list(parents)} do not form a tree (cycle or bad index)")
    return order


def format_bvh(bvh: BVH, precision: int = 6) -> str:
    """Writes a :class:`BVH` as BVH text (inverse of :func:`parse_bvh` up to float printing).

    Useful to write edited or synthetic clips; joints (and their motion columns) are written in
    depth-first order. ``precision`` is the number of significant digits.
    """
    children = _children(bvh.parents)
    sites: dict[int, list[np.ndarray]] = {}
    for parent, offset in bvh.end_sites:
        sites.setdefault(parent, []).append(offset)

    def fmt(values) -> str:
        return " ".join(f"{float(v):.{precision}g}" for v in values)

    out = ["HIERARCHY"]

    def write(j: int, depth: int) -> None:
        pad = "  " * depth
        out.append(f"{pad}{'ROOT' if bvh.parents[j] < 0 else 'JOINT'} {bvh.joint_names[j]}")
        out.append(f"{pad}{{")
        out.append(f"{pad}  OFFSET {fmt(bvh.offsets[j])}")
        if bvh.channels[j]:
            out.append(f"{pad}  CHANNELS {len(bvh.channels[j])} {' '.join(bvh.channels[j])}")
        for c in children[j]:
            write(c, depth + 1)
        for offset in sites.get(j, []):
            out.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET {fmt(offset)}", f"{pad}  }}"])
        out.append(f"{pad}}}")

    for root in children[-1]:
        write(root, 0)
    starts = bvh.channel_starts
    columns = [starts[j] + k for j in depth_first_order(bvh.parents) for k in range(len(bvh.channels[j]))]
    out += ["MOTION", f"Frames: {bvh.num_frames}", f"Frame Time: {bvh.frame_time:.{precision + 2}g}"]
    out += [fmt(row) for row in bvh.motion[:, columns]]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------------
# Forward kinematics
# ----------------------------------------------------------------------------------------------

def axis_rotation(axis: int, degrees: np.ndarray) -> np.ndarray:
    """Right-handed rotation matrices ``(..., 3, 3)`` about ``axis`` (0 X, 1 Y, 2 Z) by ``degrees``."""
    rad = np.deg2rad(np.asarray(degrees, dtype=np.float64))
    c, s = np.cos(rad), np.sin(rad)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]  # the plane rotated: (y, z), (z, x), (x, y)
    mat = np.zeros(rad.shape + (3, 3))
    mat[..., axis, axis] = 1.0
    mat[..., i, i] = c
    mat[..., j, j] = c
    mat[..., i, j] = -s
    mat[..., j, i] = s
    return mat


def local_transforms(bvh: BVH) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame local rotation ``(F, J, 3, 3)`` and translation ``(F, J, 3)`` of every joint.

    Rotation channels compose in listed order (``R = R_c1 @ R_c2 @ R_c3``); position channels
    replace the matching OFFSET component.
    """
    num_frames = bvh.num_frames
    rot = np.broadcast_to(np.eye(3), (num_frames, bvh.num_joints, 3, 3)).copy()
    trans = np.broadcast_to(bvh.offsets, (num_frames, bvh.num_joints, 3)).copy()
    for j, (start, names) in enumerate(zip(bvh.channel_starts, bvh.channels)):
        for k, name in enumerate(names):
            values = bvh.motion[:, start + k]
            if name in POSITION_CHANNELS:
                trans[:, j, _AXIS[name[0]]] = values
            else:
                rot[:, j] = rot[:, j] @ axis_rotation(_AXIS[name[0]], values)
    return rot, trans


def forward_kinematics(bvh: BVH) -> np.ndarray:
    """World positions ``(F, J, 3)`` float64 of every joint (End Sites excluded), in file units.

    Starts at each top (ROOT) joint, so an animated top root (Bandai's ``joint_Root``) moves the
    whole body. Loops over joints in depth-first order, vectorised over frames.
    """
    rot, trans = local_transforms(bvh)
    world_rot = np.empty_like(rot)
    world_pos = np.empty_like(trans)
    for j in depth_first_order(bvh.parents):
        p = bvh.parents[j]
        if p < 0:
            world_rot[:, j] = rot[:, j]
            world_pos[:, j] = trans[:, j]
        else:
            world_rot[:, j] = world_rot[:, p] @ rot[:, j]
            world_pos[:, j] = world_pos[:, p] + np.einsum("fab,fb->fa", world_rot[:, p], trans[:, j])
    return world_pos


# ----------------------------------------------------------------------------------------------
# Joint maps: STEP joint index -> source joints whose mean position is used
# ----------------------------------------------------------------------------------------------

JointMap = Mapping[int, Sequence[str]]


def _make_map(root: str, spine: Sequence[str], neck: str, head: str,
              arm: Sequence[str], leg: Sequence[str], left: str, right: str) -> dict[int, tuple[str, ...]]:
    """Builds a 16-joint map; ``arm`` / ``leg`` are name templates with ``{}`` for the side tag."""
    joint_map: dict[int, tuple[str, ...]] = {0: (root,), 1: tuple(spine), 2: (neck,), 3: (head,)}
    for first, side in ((4, left), (7, right)):
        joint_map.update({first + k: (name.format(side),) for k, name in enumerate(arm)})
    for first, side in ((10, left), (13, right)):
        joint_map.update({first + k: (name.format(side),) for k, name in enumerate(leg)})
    return joint_map


#: Bandai Namco Research Motion Dataset (``_L`` is the actor's left: STEP 4-6 / 10-12).
BANDAI_MAP = _make_map("Hips", ("Spine", "Chest"), "Neck", "Head",
                       ("UpperArm_{}", "LowerArm_{}", "Hand_{}"), ("UpperLeg_{}", "LowerLeg_{}", "Foot_{}"),
                       "L", "R")
#: CMU mocap BVH conversions (and other MotionBuilder-style names).
CMU_MAP = _make_map("Hips", ("Spine", "Spine1"), "Neck", "Head",
                    ("{}Arm", "{}ForeArm", "{}Hand"), ("{}UpLeg", "{}Leg", "{}Foot"), "Left", "Right")
#: Mixamo exports (``mixamorig:`` namespace).
MIXAMO_MAP = {k: tuple(f"mixamorig:{n}" for n in names) for k, names in CMU_MAP.items()}
#: Maps tried by :func:`detect_joint_map`, by name.
JOINT_MAPS: dict[str, JointMap] = {"bandai": BANDAI_MAP, "cmu": CMU_MAP, "mixamo": MIXAMO_MAP}


def _missing_names(joint_map: JointMap, names: Sequence[str]) -> list[str]:
    present = set(names)
    return sorted({n for group in joint_map.values() for n in group if n not in present})


def _check_joint_map(joint_map: JointMap) -> None:
    if sorted(joint_map) != list(range(NUM_JOINTS)) or any(len(v) == 0 for v in joint_map.values()):
        raise ValueError(f"a joint map needs a non-empty list of names for each STEP joint 0..{NUM_JOINTS - 1}, "
                         f"got keys {sorted(joint_map)}")
    single = sorted(k for k, v in joint_map.items() if isinstance(v, str))
    if single:  # a bare string would be read as a list of one-letter joint names
        raise ValueError(f"a joint map gives each STEP joint a list of source names, e.g. {{0: ['Hips']}}; joint "
                         f"{single[0]} has the string {joint_map[single[0]]!r}")


def detect_joint_map(names: Sequence[str]) -> JointMap:
    """Returns the first of :data:`JOINT_MAPS` whose source joints are all in ``names``.

    Raises:
      ValueError: no map fits; lists the names each map misses.
    """
    missing = {key: _missing_names(joint_map, names) for key, joint_map in JOINT_MAPS.items()}
    for key, joint_map in JOINT_MAPS.items():
        if not missing[key]:
            return joint_map
    detail = "; ".join(f"{key} misses {m}" for key, m in missing.items())
    raise ValueError(f"no joint map fits the joints {list(names)}: {detail}. "
                     f"Pass joint_map={{step index: [source joint names]}} for this skeleton")


def apply_joint_map(positions: np.ndarray, names: Sequence[str], joint_map: JointMap,
                    source: str = "<bvh>") -> np.ndarray:
    """Maps world positions ``(F, J, 3)`` of joints ``names`` to the 16 STEP joints ``(F, 16, 3)``.

    Each STEP joint is the mean position of its source joints.

    Raises:
      ValueError: a source joint of the map is not in ``names`` (message lists them all).
    """
    _check_joint_map(joint_map)
    missing = _missing_names(joint_map, names)
    if missing:
        raise ValueError(f"{source}: joints {missing} of the joint map are missing from the file "
                         f"(it has {list(names)})")
    index = {n: i for i, n in enumerate(names)}
    return np.stack([positions[:, [index[n] for n in joint_map[k]]].mean(axis=1)
                     for k in range(NUM_JOINTS)], axis=1)


# ----------------------------------------------------------------------------------------------
# Units, time resampling, heading
# ----------------------------------------------------------------------------------------------

#: ``units='auto'`` reads the file as centimetres when the median root-to-head distance exceeds this.
AUTO_CM_THRESHOLD = 3.0
_UNIT_SCALES = {"m": 1.0, "cm": 0.01, "mm": 0.001}


def root_to_head(step16: np.ndarray) -> float:
    """Median root-to-head distance of gaits ``(F, 16, 3)``, in their units: a body-size check."""
    return float(np.median(np.linalg.norm(step16[:, HEAD] - step16[:, ROOT], axis=-1)))


def unit_scale(step16: np.ndarray, units: str | float = "auto") -> float:
    """Metres per file unit for gaits ``(F, 16, 3)`` in file units.

    ``'auto'``: centimetres when the median root-to-head distance is above :data:`AUTO_CM_THRESHOLD`
    units, else metres. ``'m'`` / ``'cm'`` / ``'mm'`` or a positive float (metres per unit) force it.
    """
    if isinstance(units, str):
        if units == "auto":
            return 0.01 if root_to_head(step16) > AUTO_CM_THRESHOLD else 1.0
        if units not in _UNIT_SCALES:
            raise ValueError(f"units must be 'auto', {sorted(_UNIT_SCALES)} or a float scale, got {units!r}")
        return _UNIT_SCALES[units]
    scale = float(units)
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"a float units scale must be finite and > 0 (metres per file unit), got {units!r}")
    return scale


#: The Frame Time (seconds per frame) a BVH file may give: 1 fps to 10,000 fps.
MIN_FRAME_TIME_S, MAX_FRAME_TIME_S = 1e-4, 1.0


def resample(frames: np.ndarray, source_fps: float, target_fps: float) -> np.ndarray:
    """Linear interpolation in time of ``(F, ...)`` frames from ``source_fps`` to ``target_fps``.

    Output frame ``k`` is at time ``k / target_fps`` (the first frames coincide); the clip keeps its
    duration, so ``T = floor((F - 1) * target_fps / source_fps) + 1`` frames. Same rates: a copy.
    """
    if not (0 < source_fps < np.inf and 0 < target_fps < np.inf):
        raise ValueError(f"frame rates must be finite and > 0, got source {source_fps}, target {target_fps}")
    num = frames.shape[0]
    ratio = source_fps / target_fps  # source frames per target frame
    if abs(ratio - 1.0) < 1e-9 or num == 1:
        return frames.copy()
    count = int(np.floor((num - 1) / ratio + 1e-9)) + 1
    position = np.arange(count) * ratio
    lower = np.minimum(np.floor(position + 1e-9).astype(np.int64), num - 1)
    upper = np.minimum(lower + 1, num - 1)
    weight = np.clip(position - lower, 0.0, 1.0).reshape((count,) + (1,) * (frames.ndim - 1))
    return (1.0 - weight) * frames[lower] + weight * frames[upper]


def _horizontal(v: np.ndarray) -> np.ndarray:
    out = np.array(v, dtype=np.float64)
    out[..., UP_AXIS] = 0.0
    return out


def body_facing(step16: np.ndarray, shoulders: bool = True) -> np.ndarray:
    """Horizontal unit facing direction ``(3,)`` of a clip ``(F, 16, 3)`` from its hip and shoulder lines
    (``shoulders=False``: the hip line only, the pelvis, as the converter of the golden Bandai clips does).

    ``facing = up x (right - left)`` (right-handed frame, Y up): a walker whose right side is +X
    faces -Z. Mirror-equivariant, because mirroring swaps the left and right joints as well.
    """
    right, left = ([RIGHT_HIP, RIGHT_SHOULDER], [LEFT_HIP, LEFT_SHOULDER]) if shoulders else ([RIGHT_HIP], [LEFT_HIP])
    lateral = _horizontal((step16[:, right] - step16[:, left]).sum(axis=1).mean(axis=0))
    up = np.eye(3)[UP_AXIS]
    facing = np.cross(up, lateral)
    norm = np.linalg.norm(facing)
    if norm < 1e-9:
        raise ValueError(f"cannot estimate the heading: the hip{' and shoulder' if shoulders else ''} lines are "
                         "vertical or zero")
    return facing / norm


#: The root must travel at least this far (metres) and this fast (m/s) for ``heading='auto'`` to
#: use the travel direction.
MIN_TRAVEL_DISTANCE = 0.3
MIN_TRAVEL_SPEED = 0.15
#: ``heading='auto'`` uses the travel direction only when it is within this angle of the body facing
#: (so backward or sideways walks keep the body facing).
MAX_TRAVEL_FACING_ANGLE = 60.0


def travel_direction(root: np.ndarray, fps: float) -> tuple[np.ndarray, float]:
    """Least-squares horizontal velocity of a root trajectory ``(F, 3)`` in metres.

    Returns ``(unit direction (3,), speed m/s)``; the direction is zero when the root does not move.
    """
    if root.shape[0] < 2:
        return np.zeros(3), 0.0
    t = np.arange(root.shape[0]) / fps
    t = t - t.mean()
    velocity = _horizontal((t[:, None] * (root - root.mean(axis=0))).sum(axis=0) / (t ** 2).sum())
    speed = float(np.linalg.norm(velocity))
    return (velocity / speed if speed > 0 else np.zeros(3)), speed


#: How :func:`estimate_heading` can estimate the direction a walker faces.
HEADINGS = ("auto", "body", "hips", "travel")


def estimate_heading(step16: np.ndarray, fps: float, heading: str = "auto") -> np.ndarray:
    """Horizontal unit direction ``(3,)`` the walker faces in a clip ``(F, 16, 3)`` (metres, Y up).

    Args:
      heading: ``'body'`` (hip + shoulder lines, :func:`body_facing`), ``'hips'`` (the hip line only: the
        heading of the golden Bandai clips, ``../shared/golden``; sideways walks turn the shoulders),
        ``'travel'`` (least-squares root velocity; falls back to the body when the root does not move
        clearly), or ``'auto'``: travel when the root moves clearly (>= :data:`MIN_TRAVEL_DISTANCE` m and
        >= :data:`MIN_TRAVEL_SPEED` m/s) within :data:`MAX_TRAVEL_FACING_ANGLE` of the body facing,
        else the body facing. Backward walks thus face -Z and travel +Z.
    """
    if heading not in HEADINGS:
        raise ValueError(f"heading must be one of {HEADINGS}, got {heading!r}")
    if heading == "hips":
        return body_facing(step16, shoulders=False)
    facing = body_facing(step16)
    if heading == "body":
        return facing
    direction, speed = travel_direction(step16[:, ROOT], fps)
    duration = (step16.shape[0] - 1) / fps
    moves = speed >= MIN_TRAVEL_SPEED and speed * duration >= MIN_TRAVEL_DISTANCE
    if not moves:
        return facing
    if heading == "travel" or direction @ facing >= np.cos(np.deg2rad(MAX_TRAVEL_FACING_ANGLE)):
        return direction
    return facing


def heading_rotation(facing: np.ndarray) -> np.ndarray:
    """Rotation ``(3, 3)`` about Y that turns the horizontal unit vector ``facing`` into -Z.

    Its rows are the new axes: ``x' = facing x up`` (the walker's right), ``y' = up``, ``z' = -facing``.
    """
    up = np.eye(3)[UP_AXIS]
    facing = _horizontal(facing)
    facing = facing / np.linalg.norm(facing)
    rot = np.stack([np.cross(facing, up), up, -facing])
    return rot


# ----------------------------------------------------------------------------------------------
# BVH -> 16-joint STEP gait
# ----------------------------------------------------------------------------------------------

def bvh_to_step16(path: PathOrText | BVH, joint_map: JointMap | None = None, *, target_fps: float = 30.0,
                  root_relative: bool = True, canonical_heading: bool = True,
                  units: str | float = "auto", heading: str = "auto") -> np.ndarray:
    """Converts a BVH clip into a STEP gait ``(T, 16, 3)`` float32 in metres (Y up, facing -Z).

    Steps: FK from the top joint, joint map (mean of the source joints), units to metres,
    linear resampling to ``target_fps``, rotation about Y so that the walker faces -Z
    (:func:`estimate_heading`), then root subtraction.

    Args:
      path: BVH file, BVH text, or a parsed :class:`BVH`.
      joint_map: STEP index -> source joint names; ``None`` auto-detects (:func:`detect_joint_map`).
      target_fps: output frame rate; the clip keeps its duration (see :func:`resample`).
      root_relative: subtract the root from every joint (root == 0 exactly, as in E-Gait). With
        ``False`` the world trajectory is kept, rotated with the heading and shifted horizontally so
        that the root starts at ``x = z = 0`` (heights stay as in the file).
      canonical_heading: rotate about Y so that the walker faces -Z (their right side at +X).
      units: ``'auto'``, ``'m'``, ``'cm'``, ``'mm'`` or metres per file unit (see :func:`unit_scale`).
      heading: how the heading is estimated, ``'auto'`` / ``'travel'`` / ``'body'`` / ``'hips'``
        (:func:`estimate_heading`).

    Mirroring the input (world X negated, left/right joints swapped) mirrors the output
    (:func:`stepjax.skeleton.mirror`), and a yaw rotation of the input leaves it unchanged.
    """
    if joint_map is not None and not isinstance(joint_map, Mapping):
        raise TypeError(f"joint_map must map STEP joint indices to source joint names (or None to detect it), got "
                        f"{joint_map!r}; the options after it are keyword-only, e.g. "
                        "bvh_to_step16(path, target_fps=30)")
    bvh = path if isinstance(path, BVH) else parse_bvh(path)
    if joint_map is None:
        joint_map = detect_joint_map(bvh.joint_names)
    step16 = apply_joint_map(forward_kinematics(bvh), bvh.joint_names, joint_map, bvh.source)
    scale = unit_scale(step16, units)
    step16 = resample(step16 * scale, bvh.fps, target_fps)
    height = root_to_head(step16)
    if not 0.2 <= height <= 1.5:
        warnings.warn(f"{bvh.source}: root-to-head distance is {height:.3g} m after unit scale {scale:g}; "
                      f"pass units= explicitly if the file is not in metres or centimetres", stacklevel=2)
    if canonical_heading:
        step16 = step16 @ heading_rotation(estimate_heading(step16, target_fps, heading)).T
    if root_relative:
        step16 = step16 - step16[:, ROOT:ROOT + 1]
    else:
        step16 = step16 - _horizontal(step16[0, ROOT])
    return step16.astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Bandai Namco dataset-1 walks
# ----------------------------------------------------------------------------------------------

#: Emotion words -> STEP labels (0 Angry, 1 Neutral, 2 Happy, 3 Sad); Bandai calls Neutral "normal".
EMOTION_LABELS: dict[str, int] = {"angry": 0, "neutral": 1, "normal": 1, "happy": 2, "sad": 3}
BANDAI_EMOTION_STYLES: tuple[str, ...] = ("angry", "normal", "happy", "sad")
BANDAI_WALK_CONTENTS: tuple[str, ...] = ("walk", "walk-back", "walk-left", "walk-right")


def bandai_data_folder(root_dir: str | os.PathLike) -> Path:
    """The folder of the Bandai BVH files: ``<root_dir>/data`` if it exists, else ``root_dir``."""
    root = Path(root_dir)
    data = root / "data" if (root / "data").is_dir() else root
    if not data.is_dir():
        raise FileNotFoundError(f"Bandai dataset folder not found: {root}")
    return data


def load_bandai_emotion_walks(root_dir: str | os.PathLike, target_fps: float = 30,
                              root_relative: bool = False,
                              contents: Sequence[str] = BANDAI_WALK_CONTENTS, heading: str = "auto",
                              ) -> list[tuple[str, int, np.ndarray]]:
    """Loads the emotion-styled walks of the Bandai Namco Research Motion Dataset (dataset-1).

    Args:
      root_dir: the dataset folder holding ``data/dataset-1_{content}_{style}_{take}.bvh`` (or the
        ``data`` folder itself).
      contents: which contents to load (``walk`` is forward, ``walk-back`` backward; all by default).
      heading: how the heading is estimated (:func:`estimate_heading`; ``'hips'`` is the convention of the golden
        Bandai clips).

    Returns:
      ``(file stem, label, gait (T, 16, 3) float32 metres)`` sorted by stem, for the styles angry (0),
      normal (1, Neutral), happy (2) and sad (3); gaits from :func:`bvh_to_step16` with the
      Bandai map, facing -Z.
    """
    data = bandai_data_folder(root_dir)
    walks = []
    for path in sorted(data.glob("dataset-1_*_*_*.bvh")):
        parts = path.stem.split("_")
        if len(parts) != 4:  # not a file of the release (e.g. a copy "..._001_copy.bvh"): named, not guessed at
            raise ValueError(f"{path}: not a Bandai file name (dataset-1_<content>_<style>_<take>.bvh); move it out "
                             f"of {data}")
        _, content, style, _take = parts
        if content in contents and style in BANDAI_EMOTION_STYLES:
            gait = bvh_to_step16(path, BANDAI_MAP, target_fps=target_fps, root_relative=root_relative,
                                 heading=heading)
            walks.append((path.stem, EMOTION_LABELS[style], gait))
    if not walks:
        raise FileNotFoundError(f"no emotion walks (dataset-1_<content>_<style>_<take>.bvh) in {data}")
    return walks


# ----------------------------------------------------------------------------------------------
# Command line: folder of BVH files -> E-Gait HDF5
# ----------------------------------------------------------------------------------------------

def emotion_label(word: str) -> int | None:
    """STEP label of an emotion word or integer string (``'Sad'`` -> 3, ``'2'`` -> 2), else ``None``."""
    word = word.strip().lower()
    if word in EMOTION_LABELS:
        return EMOTION_LABELS[word]
    if re.fullmatch(r"\d+", word) and int(word) < len(LABEL_NAMES):
        return int(word)
    return None


def labels_from_regex(paths: Sequence[Path], regex: str) -> dict[Path, int]:
    """Labels from the file names: ``regex`` (searched case-insensitively in the file name) has one
    group that captures the emotion word. Files that do not match, or whose word is not an emotion,
    are skipped with a printed note."""
    try:
        pattern = re.compile(regex, re.IGNORECASE)
    except re.error as e:
        raise ValueError(f"--label-regex {regex!r} is not a regular expression: {e}") from None
    if pattern.groups != 1:
        raise ValueError(f"--label-regex needs exactly one group (the emotion word), {regex!r} has {pattern.groups}")
    labels = {}
    for path in paths:
        match = pattern.search(path.name)
        if match is None:
            print(f"skip {path.name}: does not match the label regex {regex!r}")
            continue
        label = EMOTION_LABELS.get(match.group(1).lower())
        if label is None:
            print(f"skip {path.name}: {match.group(1)!r} is not an emotion ({sorted(EMOTION_LABELS)})")
            continue
        labels[path] = label
    return labels


def labels_from_csv(paths: Sequence[Path], csv_path: str | os.PathLike) -> dict[Path, int]:
    """Labels from a CSV of ``filename,label`` rows (file name with or without ``.bvh``; label an
    integer 0..3 or an emotion name; an unparseable first row is taken as a header). Files absent
    from the CSV are skipped with a printed note."""
    table: dict[str, int] = {}
    with open(csv_path, newline="", encoding="utf-8") as f:
        for row_number, row in enumerate(csv.reader(f), start=1):
            if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                continue
            if len(row) < 2:
                raise ValueError(f"{csv_path}: row {row_number}: expected 'filename,label', got {row}")
            label = emotion_label(row[1])
            if label is None:
                if row_number == 1:
                    continue  # header
                raise ValueError(f"{csv_path}: row {row_number}: label {row[1]!r} is not 0..3 or an emotion name")
            table[Path(row[0].strip()).name] = label
    labels = {}
    for path in paths:
        label = table.get(path.name, table.get(path.stem))
        if label is None:
            print(f"skip {path.name}: not listed in {csv_path}")
        else:
            labels[path] = label
    return labels


def window_stem(key: str) -> str:
    """The clip a window key ``'<stem>_f<first frame>'`` (:func:`window_clip`) was cut from: ``'<stem>'``; any
    other key is returned as it is (a whole clip, an E-Gait gait)."""
    match = re.fullmatch(r"(.+)_f\d+", key)
    return match.group(1) if match else key


def window_clip(stem: str, gait: np.ndarray, window: int | None, hop: int | None) -> dict[str, np.ndarray]:
    """Cuts a gait ``(T, 16, 3)`` into windows ``{'<stem>_f<first frame>': (window, 16, 3)}``.

    ``window=None``: the whole clip under key ``stem``. A clip shorter than ``window`` becomes one
    shorter window ``<stem>_f0`` (E-Gait gaits have variable length); trailing frames that do not
    fill a window are dropped.
    """
    if window is None:
        return {stem: gait}
    hop = window if hop is None else hop
    if window < 1 or hop < 1:
        raise ValueError(f"window and hop must be >= 1, got {window}, {hop}")
    starts = range(0, max(gait.shape[0] - window, 0) + 1, hop)
    return {f"{stem}_f{s}": gait[s:s + window] for s in starts}


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stepjax-bvh2egait",
        description="Convert a folder of BVH files into E-Gait features/labels HDF5 files "
                    "(16 STEP joints, metres, Y up, facing -Z, root-relative).")
    parser.add_argument("src_dir", help="folder with .bvh files (not recursive; when it has none, its data/ "
                                        "subfolder, as in the Bandai release)")
    parser.add_argument("--out-features", required=True, help="output features HDF5 (one (T, 48) dataset per key)")
    parser.add_argument("--out-labels", required=True, help="output labels HDF5 (one int per key)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--label-regex", help="regex with one group capturing the emotion word in the file name "
                        "(angry, neutral|normal, happy, sad; case-insensitive)")
    source.add_argument("--labels-csv", help="CSV of 'filename,label' rows (label 0..3 or an emotion name)")
    parser.add_argument("--fps", type=float, default=30.0, help="output frame rate (default 30)")
    parser.add_argument("--joint-map", choices=("auto",) + tuple(JOINT_MAPS), default="auto")
    parser.add_argument("--units", default="auto", help="auto, m, cm, mm, or metres per file unit")
    parser.add_argument("--heading", choices=HEADINGS, default="auto")
    parser.add_argument("--window", type=int, default=None, help="cut clips into windows of this many frames")
    parser.add_argument("--hop", type=int, default=None, help="frames between window starts (default: --window)")
    return parser


def _units_arg(text: str) -> str | float:
    try:
        return float(text)
    except ValueError:
        return text


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``stepjax-bvh2egait``); returns the exit status."""
    from stepjax.data.egait import write_egait  # deferred: h5py is only needed here

    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.hop is not None and args.window is None:
        parser.error("--hop needs --window")
    src = Path(args.src_dir)
    if not src.is_dir():
        print(f"{parser.prog}: error: {src} is not a folder", file=sys.stderr)
        return 2
    bvh_files = lambda folder: sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".bvh")  # noqa: E731
    paths = bvh_files(src)
    if not paths and (src / "data").is_dir():  # the Bandai release keeps its files in data/ (as configs/bandai.py)
        src = src / "data"
        paths = bvh_files(src)
    if not paths:
        print(f"{parser.prog}: error: no .bvh files in {src}", file=sys.stderr)
        return 2
    try:
        from stepjax.utils import check_output_dir

        for out in (args.out_features, args.out_labels):  # before the conversion, not after it
            check_output_dir(out)
        labels_by_path = (labels_from_regex(paths, args.label_regex) if args.label_regex is not None
                          else labels_from_csv(paths, args.labels_csv))
        joint_map = None if args.joint_map == "auto" else JOINT_MAPS[args.joint_map]
        gaits: dict[str, np.ndarray] = {}
        labels: dict[str, int] = {}
        for path, label in labels_by_path.items():
            gait = bvh_to_step16(path, joint_map, target_fps=args.fps, units=_units_arg(args.units),
                                 heading=args.heading)
            if args.window is not None and gait.shape[0] < args.window:
                print(f"note {path.name}: {gait.shape[0]} frames < window {args.window}, kept whole")
            for key, piece in window_clip(path.stem, gait, args.window, args.hop).items():
                gaits[key] = piece
                labels[key] = label
        if not gaits:
            print(f"{parser.prog}: error: no labelled BVH file to convert", file=sys.stderr)
            return 2
        write_egait(args.out_features, args.out_labels, gaits, labels)
    except (ValueError, OSError) as err:
        if os.environ.get("STEPJAX_TRACEBACK"):
            raise
        print(f"{parser.prog}: error: {err}\n(STEPJAX_TRACEBACK=1 shows the traceback)", file=sys.stderr)
        return 2
    counts = np.bincount(list(labels.values()), minlength=len(LABEL_NAMES))
    summary = ", ".join(f"{name} {c}" for name, c in zip(LABEL_NAMES, counts))
    print(f"wrote {len(gaits)} gaits from {len(labels_by_path)} files ({summary}) to "
          f"{args.out_features} and {args.out_labels}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
