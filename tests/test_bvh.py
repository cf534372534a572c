"""BVH import: parser, forward kinematics, 16-joint conversion, mirror/yaw properties, CLI.

Synthetic clips are written by the tests themselves; the real-data tests read the Bandai Namco walks
from ``../shared/data/bandai-walk`` and skip when it is absent.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
from pathlib import Path

import numpy as np
import pytest

from stepjax import skeleton as sk
from stepjax.data import bvh as B

SHARED = (Path(__file__).resolve().parents[1] / ".." / "shared").resolve()
BANDAI_DATA = SHARED / "data" / "bandai-walk" / "data"
HAS_EGAIT = importlib.util.find_spec("stepjax.data.egait") is not None

#: STEP bones whose two ends are parent and child joints in the Bandai-style skeleton (rigid); the
#: others pass through the spine mean point or the clavicle and may stretch a little.
RIGID_BONES = [i for i, (p, c) in enumerate(sk.BONES) if sk.SPINE not in (p, c)
               and not (p == sk.NECK and c in (sk.LEFT_SHOULDER, sk.RIGHT_SHOULDER))]


def bandai_clip(name: str) -> Path:
    path = BANDAI_DATA / f"dataset-1_{name}.bvh"
    if not path.exists():
        pytest.skip(f"Bandai walk data not available: {path} (the ../shared folder sits beside the "
                    f"project only in the development checkout)")
    return path


# ----------------------------------------------------------------------------------------------
# A 3-joint chain with hand-computed forward kinematics
# ----------------------------------------------------------------------------------------------

CHAIN = """HIERARCHY
ROOT Top
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT A
  {
    OFFSET 0 1 0
    CHANNELS 6 Xposition Yposition Zposition Xrotation Yrotation Zrotation
    JOINT B
    {
      OFFSET 2 0 0
      CHANNELS 3 Xrotation Yrotation Zrotation
      End Site
      {
        OFFSET 0 0 3
      }
    }
  }
}
MOTION
Frames: 4
Frame Time: 0.5
0 0 0 0 0 0   0 1 0 0 0 0    0 0 0
10 0 0 90 0 0   0 1 0 0 0 0    45 45 45
0 0 0 90 90 0   0 2 0 0 90 0    0 0 0
0 0 0 0 0 0   0 1 0 90 90 0    0 0 0
"""

# Hand-computed with Rx, Ry, Rz right-handed (Rz90: x->y, Rx90: y->z, Ry90: z->x):
CHAIN_EXPECTED = np.array([
    [[0, 0, 0], [0, 1, 0], [2, 1, 0]],      # rest pose
    [[10, 0, 0], [9, 0, 0], [9, 2, 0]],     # top translated and turned 90 deg about Z (animated top root)
    [[0, 0, 0], [0, 0, 2], [-2, 0, 2]],     # top Z90 then X90 (order ZXY); A's position channel (0 2 0) replaces its offset; A Y90
    [[0, 0, 0], [0, 1, 0], [0, 3, 0]],      # A: X90 then Y90 (order XYZ): (2,0,0) -> (0,0,-2) -> (0,2,0)
], dtype=float)


def test_parse_chain_structure():
    bvh = B.parse_bvh(CHAIN)
    assert bvh.joint_names == ("Top", "A", "B")
    np.testing.assert_array_equal(bvh.parents, [-1, 0, 1])
    np.testing.assert_array_equal(bvh.offsets, [[0, 0, 0], [0, 1, 0], [2, 0, 0]])
    assert bvh.channels[0] == ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation")
    assert bvh.channels[2] == ("Xrotation", "Yrotation", "Zrotation")
    assert bvh.motion.shape == (4, 15) and bvh.frame_time == 0.5 and bvh.fps == 2.0
    assert len(bvh.end_sites) == 1 and bvh.end_sites[0][0] == 2
    np.testing.assert_array_equal(bvh.end_sites[0][1], [0, 0, 3])


def test_forward_kinematics_matches_hand_computed_positions():
    np.testing.assert_allclose(B.forward_kinematics(B.parse_bvh(CHAIN)), CHAIN_EXPECTED, atol=1e-12)


def test_format_bvh_round_trips():
    bvh = B.parse_bvh(CHAIN)
    again = B.parse_bvh(B.format_bvh(bvh))
    assert again.joint_names == bvh.joint_names and again.channels == bvh.channels
    np.testing.assert_array_equal(again.motion, bvh.motion)
    np.testing.assert_array_equal(again.offsets, bvh.offsets)
    np.testing.assert_array_equal(again.end_sites[0][1], bvh.end_sites[0][1])


def test_axis_rotation_is_right_handed():
    np.testing.assert_allclose(B.axis_rotation(2, 90.0) @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(B.axis_rotation(0, 90.0) @ [0, 1, 0], [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(B.axis_rotation(1, 90.0) @ [0, 0, 1], [1, 0, 0], atol=1e-12)


# ----------------------------------------------------------------------------------------------
# A synthetic walker in Bandai naming (cm, 6 channels per joint like Bandai, faces +Z, left at +X)
# ----------------------------------------------------------------------------------------------

# name, parent, offset (cm)
WALKER = [
    ("joint_Root", None, (0, 0, 0)),
    ("Hips", "joint_Root", (0, 90, 0)),
    ("Spine", "Hips", (0, 10, 0)), ("Chest", "Spine", (0, 15, 0)),
    ("Neck", "Chest", (0, 20, 0)), ("Head", "Neck", (0, 10, 2)),
]
for _side, _sx in (("L", 1), ("R", -1)):
    WALKER += [
        (f"Shoulder_{_side}", "Chest", (4 * _sx, 16, 0)), (f"UpperArm_{_side}", f"Shoulder_{_side}", (13 * _sx, 0, 0)),
        (f"LowerArm_{_side}", f"UpperArm_{_side}", (0, -28, 0)), (f"Hand_{_side}", f"LowerArm_{_side}", (0, -25, 0)),
        (f"UpperLeg_{_side}", "Hips", (9 * _sx, -5, 0)), (f"LowerLeg_{_side}", f"UpperLeg_{_side}", (0, -42, 0)),
        (f"Foot_{_side}", f"LowerLeg_{_side}", (0, -40, 0)), (f"Toes_{_side}", f"Foot_{_side}", (0, -6, 12)),
    ]
ROT_ZXY = ("Zrotation", "Xrotation", "Yrotation")
TOP_CHANNELS = B.POSITION_CHANNELS + ("Yrotation", "Xrotation", "Zrotation")  # yaw first: easy to turn


def walker_angles(t: np.ndarray, name: str) -> np.ndarray:
    """Euler angles (Z, X, Y) in degrees ``(F, 3)`` of a walking-like motion at times ``t``."""
    phase = 2 * np.pi * t  # one stride per second
    side = -1.0 if name.endswith("_R") else 1.0
    swing = np.sin(phase) * side
    zxy = {
        "Hips": (2 * np.sin(phase), 3 * np.sin(2 * phase), 6 * np.sin(phase)),
        "Spine": (0 * t, 4 * np.sin(2 * phase), -3 * np.sin(phase)),
        "Neck": (0 * t, 5 + 2 * np.sin(2 * phase), 0 * t),
        "Shoulder_L": (3 * swing, 0 * t, 0 * t), "Shoulder_R": (3 * swing, 0 * t, 0 * t),
        "UpperArm_L": (-8 + 0 * t, -25 * swing, 0 * t), "UpperArm_R": (8 + 0 * t, -25 * swing, 0 * t),
        "LowerArm_L": (0 * t, -20 - 10 * swing, 0 * t), "LowerArm_R": (0 * t, -20 - 10 * swing, 0 * t),
        "UpperLeg_L": (0 * t, 25 * swing, 2 * swing), "UpperLeg_R": (0 * t, 25 * swing, 2 * swing),
        "LowerLeg_L": (0 * t, 30 * (1 - swing), 0 * t), "LowerLeg_R": (0 * t, 30 * (1 - swing), 0 * t),
        "Foot_L": (0 * t, -10 * swing, 0 * t), "Foot_R": (0 * t, -10 * swing, 0 * t),
    }.get(name, (0 * t, 0 * t, 0 * t))
    return np.stack(zxy, axis=-1)


def make_walker(fps: float = 30.0, num_frames: int = 90, speed: float = 110.0, yaw: float = 0.0,
                shift=(0.0, 0.0), scale: float = 1.0, lateral_speed: float = 0.0) -> B.BVH:
    """Synthetic Bandai-named walker: travels +Z (``speed`` cm/s), faces +Z, left side at +X.

    ``yaw`` (degrees) and ``shift`` (x, z in cm) are applied on the top joint ``joint_Root``, which
    moves the whole clip; ``scale`` multiplies every length (0.01: a file in metres).
    """
    t = np.arange(num_frames) / fps
    names = [n for n, _, _ in WALKER]
    columns, channels = [], []
    for name, _, offset in WALKER:
        if name == "joint_Root":
            top = [np.full_like(t, shift[0]), 0 * t, np.full_like(t, shift[1]), np.full_like(t, yaw), 0 * t, 0 * t]
            columns += [np.asarray(c) * (scale if k < 3 else 1.0) for k, c in enumerate(top)]
            channels.append(TOP_CHANNELS)
            continue
        if name == "Hips":
            pos = np.stack([lateral_speed * t + 1.5 * np.sin(2 * np.pi * t), offset[1] + 2 * np.sin(4 * np.pi * t),
                            speed * t], axis=-1)
        else:
            pos = np.broadcast_to(np.asarray(offset, float), (num_frames, 3))
        columns += list((pos * scale).T) + list(walker_angles(t, name).T)
        channels.append(B.POSITION_CHANNELS + ROT_ZXY)
    parents = np.array([-1 if p is None else names.index(p) for _, p, _ in WALKER])
    offsets = np.array([o for _, _, o in WALKER], dtype=float) * scale
    end_sites = tuple((names.index(n), np.array([0.0, 3.0 * scale, 0.0])) for n in ("Head", "Hand_L", "Hand_R"))
    return B.BVH(source="<walker>", joint_names=tuple(names), parents=parents, offsets=offsets,
                 channels=tuple(channels), frame_time=1.0 / fps, motion=np.stack(columns, axis=-1),
                 end_sites=end_sites)


def mirror_bvh(bvh: B.BVH) -> B.BVH:
    """Mirrors a clip through the world YZ plane and swaps ``_L`` / ``_R`` names.

    With M = diag(-1, 1, 1): M Rx(a) M = Rx(a), M Ry(b) M = Ry(-b), M Rz(c) M = Rz(-c), so negating
    the X offsets, X positions and the Y / Z angles negates the world X of every joint.
    """
    motion = bvh.motion.copy()
    for start, names in zip(bvh.channel_starts, bvh.channels):
        for k, name in enumerate(names):
            if name in ("Xposition", "Yrotation", "Zrotation"):
                motion[:, start + k] *= -1
    flip = np.array([-1.0, 1.0, 1.0])
    swap = {"_L": "_R", "_R": "_L"}
    names = tuple(re.sub(r"_(L|R)$", lambda m: swap[m.group(0)], n) for n in bvh.joint_names)
    return dataclasses.replace(bvh, joint_names=names, offsets=bvh.offsets * flip, motion=motion,
                               end_sites=tuple((j, o * flip) for j, o in bvh.end_sites))


def test_mirror_helper_negates_world_x():
    bvh = make_walker(yaw=30.0, shift=(20.0, -40.0))
    world, mirrored = B.forward_kinematics(bvh), B.forward_kinematics(mirror_bvh(bvh))
    np.testing.assert_allclose(mirrored, world * [-1, 1, 1], atol=1e-9)


def test_walker_bone_lengths_are_the_offsets_in_metres():
    with pytest.raises(TypeError, match=r"joint_map must map.*keyword-only.*bvh_to_step16\(path, target_fps=30\)"):
        B.bvh_to_step16(make_walker(), 30)  # the frame rate in joint_map's place
    with pytest.raises(TypeError, match="positional argument"):
        B.bvh_to_step16(make_walker(), None, 30)
    gait = B.bvh_to_step16(make_walker())
    assert gait.shape == (90, 16, 3) and gait.dtype == np.float32
    offsets = {n: np.linalg.norm(o) / 100 for n, _, o in WALKER}
    step_names = {k: v[0] for k, v in B.BANDAI_MAP.items()}
    lengths = sk.bone_lengths(gait)
    for i in RIGID_BONES:
        expected = offsets[step_names[sk.BONES[i][1]]]
        np.testing.assert_allclose(lengths[:, i], expected, atol=1e-5, err_msg=f"bone {sk.BONES[i]}")
    assert lengths.std(axis=0).max() < 5e-3  # the spine / clavicle bones stretch only a little


def test_root_relative_root_is_exactly_zero():
    gait = B.bvh_to_step16(make_walker(yaw=17.0))
    assert np.all(gait[:, sk.ROOT] == 0.0)
    world = B.bvh_to_step16(make_walker(yaw=17.0), root_relative=False)
    np.testing.assert_allclose(world - world[:, :1], gait, atol=1e-5)
    np.testing.assert_allclose(world[0, sk.ROOT, [0, 2]], 0.0, atol=1e-6)  # starts at x = z = 0
    np.testing.assert_allclose(world[:, sk.ROOT, 1].mean(), 0.90, atol=0.01)  # heights are kept


def assert_faces_minus_z(gait: np.ndarray, travels: float | None = -1.0) -> None:
    """The left hip and shoulder are at -X of the right ones and, if given, the root travels along
    ``travels`` * Z."""
    for left, right in ((sk.LEFT_HIP, sk.RIGHT_HIP), (sk.LEFT_SHOULDER, sk.RIGHT_SHOULDER)):
        lateral = (gait[:, right] - gait[:, left]).mean(axis=0)
        assert lateral[0] > 0.9 * np.linalg.norm(lateral), f"joints {left}/{right}: right - left = {lateral}"
    if travels is not None:
        direction, speed = B.travel_direction(gait[:, sk.ROOT], 30.0)
        assert speed > 0.2
        np.testing.assert_allclose(direction, [0, 0, travels], atol=0.05)


@pytest.mark.parametrize("yaw", [0.0, 180.0, 137.0, -61.0])
def test_heading_canonical_whatever_the_yaw(yaw):
    reference = B.bvh_to_step16(make_walker(), root_relative=False)
    turned = B.bvh_to_step16(make_walker(yaw=yaw, shift=(123.0, -45.0)), root_relative=False)
    assert_faces_minus_z(turned, travels=-1.0)
    np.testing.assert_allclose(turned, reference, atol=1e-4)


def test_heading_of_a_walker_that_does_not_travel_uses_the_body():
    for yaw in (0.0, 75.0, -150.0):
        gait = B.bvh_to_step16(make_walker(speed=0.0, yaw=yaw), root_relative=False)
        assert_faces_minus_z(gait, travels=None)
        np.testing.assert_allclose(gait, B.bvh_to_step16(make_walker(speed=0.0), root_relative=False), atol=1e-4)


def test_backward_and_sideways_walks_keep_the_body_facing():
    backward = B.bvh_to_step16(make_walker(speed=-80.0, yaw=40.0), root_relative=False)
    assert_faces_minus_z(backward, travels=+1.0)
    sideways = B.bvh_to_step16(make_walker(speed=0.0, lateral_speed=90.0, yaw=-20.0), root_relative=False)
    assert_faces_minus_z(sideways, travels=None)  # the walker's left is +X in the file: it travels to -X
    np.testing.assert_allclose(B.travel_direction(sideways[:, 0], 30.0)[0], [-1, 0, 0], atol=0.05)
    # Forcing the travel direction turns the backward walker around.
    forced = B.bvh_to_step16(make_walker(speed=-80.0, yaw=40.0), root_relative=False, heading="travel")
    assert (forced[:, sk.RIGHT_HIP, 0] - forced[:, sk.LEFT_HIP, 0]).mean() < 0


def test_resampling_60_to_30_fps_matches_direct_sampling():
    at60 = make_walker(fps=60.0, num_frames=120)
    at30 = make_walker(fps=30.0, num_frames=60)
    for root_relative in (True, False):
        down = B.bvh_to_step16(at60, target_fps=30.0, root_relative=root_relative)
        direct = B.bvh_to_step16(at30, target_fps=30.0, root_relative=root_relative)
        assert down.shape == (60, 16, 3)
        np.testing.assert_allclose(down, direct, atol=1e-5)
    assert B.bvh_to_step16(at30, target_fps=60.0).shape == (119, 16, 3)  # duration kept: 59 / 30 s


def test_resample_is_linear_interpolation_in_time():
    rng = np.random.default_rng(0)
    frames = rng.normal(size=(41, 4, 3))
    out = B.resample(frames, source_fps=50.0, target_fps=30.0)
    t_src, t_out = np.arange(41) / 50.0, np.arange(out.shape[0]) / 30.0
    assert out.shape[0] == 25 and t_out[-1] <= t_src[-1] + 1e-12
    expected = np.stack([np.interp(t_out, t_src, col) for col in frames.reshape(41, -1).T], axis=-1)
    np.testing.assert_allclose(out.reshape(out.shape[0], -1), expected, atol=1e-12)
    np.testing.assert_array_equal(B.resample(frames, 30.0, 30.0), frames)
    for rates in ((30.0, np.inf), (np.inf, 30.0), (30.0, np.nan), (0.0, 30.0)):  # inf once a ZeroDivisionError
        with pytest.raises(ValueError, match="frame rates must be finite and > 0"):
            B.resample(frames, *rates)
    assert list(B.window_clip("c", frames, 10, None)) == ["c_f0", "c_f10", "c_f20", "c_f30"]
    with pytest.raises(ValueError, match="window and hop must be >= 1, got 10, 0"):  # hop 0 once meant hop 10
        B.window_clip("c", frames, 10, 0)


def test_units_auto_and_explicit_agree():
    in_cm = B.bvh_to_step16(make_walker(yaw=20.0))
    in_m = B.bvh_to_step16(make_walker(yaw=20.0, scale=0.01))
    np.testing.assert_allclose(in_m, in_cm, atol=1e-5)
    np.testing.assert_allclose(B.bvh_to_step16(make_walker(yaw=20.0), units="cm"), in_cm, atol=1e-6)
    np.testing.assert_allclose(B.bvh_to_step16(make_walker(yaw=20.0), units=0.01), in_cm, atol=1e-6)
    in_mm = B.bvh_to_step16(make_walker(yaw=20.0, scale=10.0), units="mm")  # the same walker in millimetres
    np.testing.assert_allclose(in_mm, in_cm, atol=1e-5)
    with pytest.raises(ValueError, match="units"):
        B.bvh_to_step16(make_walker(), units="furlong")
    for scale in (0.0, -1.0, float("nan"), float("inf")):  # not an all-NaN gait
        with pytest.raises(ValueError, match="units scale must be finite and > 0"):
            B.bvh_to_step16(make_walker(), units=scale)


@pytest.mark.parametrize("root_relative", [True, False])
@pytest.mark.parametrize("speed,yaw", [(110.0, 33.0), (0.0, -70.0), (-80.0, 120.0)])
def test_mirrored_walker_gives_mirrored_gait(speed, yaw, root_relative):
    bvh = make_walker(speed=speed, yaw=yaw, shift=(50.0, 10.0))
    out = B.bvh_to_step16(bvh, root_relative=root_relative)
    out_mirrored = B.bvh_to_step16(mirror_bvh(bvh), root_relative=root_relative)
    np.testing.assert_allclose(out_mirrored, sk.mirror(out), atol=1e-4)


def test_file_path_and_cmu_names(tmp_path):
    rename = {"Hips": "Hips", "Spine": "Spine", "Chest": "Spine1", "Neck": "Neck", "Head": "Head"}
    for side, word in (("L", "Left"), ("R", "Right")):
        rename.update({f"UpperArm_{side}": f"{word}Arm", f"LowerArm_{side}": f"{word}ForeArm",
                       f"Hand_{side}": f"{word}Hand", f"UpperLeg_{side}": f"{word}UpLeg",
                       f"LowerLeg_{side}": f"{word}Leg", f"Foot_{side}": f"{word}Foot"})
    bvh = make_walker(yaw=10.0)
    cmu = dataclasses.replace(bvh, joint_names=tuple(rename.get(n, n) for n in bvh.joint_names))
    path = tmp_path / "cmu.bvh"
    path.write_text(B.format_bvh(cmu, precision=10))
    assert B.detect_joint_map(cmu.joint_names) is B.CMU_MAP
    np.testing.assert_allclose(B.bvh_to_step16(path), B.bvh_to_step16(bvh), atol=1e-5)
    mixamo = dataclasses.replace(cmu, joint_names=tuple(f"mixamorig:{n}" for n in cmu.joint_names))
    assert B.detect_joint_map(mixamo.joint_names) is B.MIXAMO_MAP


# ----------------------------------------------------------------------------------------------
# Bad inputs
# ----------------------------------------------------------------------------------------------

def _bad_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "broken_clip.bvh"
    path.write_text(text)
    return path


@pytest.mark.parametrize("edit,message", [
    (lambda s: s.rsplit("\n", 3)[0] + "\n", "frame count mismatch"),               # last two frames cut
    (lambda s: s[: s.rindex("0 0 0 0 0")], "wrong number of values per frame"),   # cut inside a frame
    (lambda s: s.replace("10 0 0 90 0 0", "10 0 90 0 0"), "wrong number of values per frame"),
    (lambda s: s[: s.index("MOTION")], "missing MOTION"),
    (lambda s: s.replace("Frames: 4", "Frames: 5"), "frame count mismatch"),
    (lambda s: s.replace("CHANNELS 3 Xrotation", "CHANNELS 3 Wrotation"), "unknown channel name 'Wrotation'"),
    (lambda s: s.replace("Frame Time: 0.5", ""), "Frame Time"),
    (lambda s: s.replace("Frame Time: 0.5", "Frame Time: 33.3333"), "is 0.03 fps, outside 1-10000 fps"),  # in ms
    (lambda s: s.replace("Frame Time: 0.5", "Frame Time: 1e-9"), "is 1e+09 fps, outside 1-10000 fps"),
    (lambda s: s.replace("0 1 0 0 0 0    45", "0 1 0 0 nan 0    45"), "NaN"),
])
def test_bad_files_raise_value_error_naming_file_and_problem(tmp_path, edit, message):
    path = _bad_file(tmp_path, edit(CHAIN))
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        B.parse_bvh(path)
    assert "broken_clip.bvh" in str(info.value)


def test_missing_joints_for_a_map_are_listed(tmp_path):
    bvh = make_walker()
    renamed = dataclasses.replace(bvh, joint_names=tuple("Skull" if n == "Head" else n for n in bvh.joint_names))
    with pytest.raises(ValueError, match=r"bandai misses \['Head'\]"):
        B.detect_joint_map(renamed.joint_names)
    path = _bad_file(tmp_path, B.format_bvh(renamed))
    with pytest.raises(ValueError, match=r"broken_clip\.bvh: joints \['Head'\]"):
        B.bvh_to_step16(path, joint_map=B.BANDAI_MAP)
    with pytest.raises(ValueError, match="no joint map fits"):
        B.bvh_to_step16(path)
    strings = {k: v[0] for k, v in B.BANDAI_MAP.items()}  # once 'missing joints' ['H', 'i', 'p', 's']
    with pytest.raises(ValueError, match=r"joint 0 has the string 'Hips'"):
        B.bvh_to_step16(make_walker(), joint_map=strings)
    with pytest.raises(ValueError, match=r"is not a BVH file \(a directory\?"):  # once pathlib's IsADirectoryError
        B.bvh_to_step16(tmp_path)
    assert B.parse_bvh(bvh) is bvh  # what the message below offers is accepted by parse_bvh too
    with pytest.raises(TypeError, match="expected a BVH path, BVH text or a parsed BVH, got int"):
        B.bvh_to_step16(3)
    with pytest.raises(TypeError, match="expected a BVH path, BVH text or a parsed BVH, got int"):
        B.parse_bvh(3)
    good = _bad_file(tmp_path, B.format_bvh(make_walker()))
    np.testing.assert_array_equal(B.bvh_to_step16(os.fsencode(good)), B.bvh_to_step16(good))  # a bytes path


# ----------------------------------------------------------------------------------------------
# Real data: Bandai Namco Research Motion Dataset walks (cm, 30 fps)
# ----------------------------------------------------------------------------------------------

def test_bandai_every_clip_parses():
    bandai_clip("walk_sad_001")
    paths = sorted(BANDAI_DATA.glob("*.bvh"))
    assert len(paths) == 75
    for path in paths:
        bvh = B.parse_bvh(path)
        assert bvh.num_joints == 22 and bvh.joint_names[:2] == ("joint_Root", "Hips")
        assert bvh.fps == 30.0 and bvh.num_frames >= 31
        assert all(len(c) == 6 for c in bvh.channels)
        assert B.detect_joint_map(bvh.joint_names) is B.BANDAI_MAP


def test_bandai_import_reproduces_the_golden_converter():
    """The 21 Bandai windows of the golden inputs (``classifier_io.npz``'s ``gaits_raw``, ``inputs.csv``) were
    converted by a reference converter: BVH forward kinematics, the joint map, centimetres to metres, 30 fps, the
    heading from the hip line over the whole clip. ``bvh_to_step16(..., heading='hips')`` gives the same frames:
    bit for bit where the golden window is root-relative, up to the constant horizontal origin of the world
    trajectory otherwise (float32 rounding at 4 m: 2.3e-6). The default heading (the travel direction, or hips
    and shoulders) turns the clips by 0.2-5.5 degrees (forward walks) to 46 (sideways walks)."""
    import csv

    golden_dir = SHARED / "golden" / "official-step"
    if not (golden_dir / "classifier_io.npz").exists():
        pytest.skip(f"golden data not available: {golden_dir}")
    gaits_raw = np.load(golden_dir / "classifier_io.npz")["gaits_raw"].reshape(-1, 75, 16, 3)
    rows = [r for r in csv.DictReader(open(golden_dir / "inputs.csv")) if r["name"].startswith("bandai1_")]
    assert len(rows) == 21
    for row in rows:
        stem, first = row["name"][len("bandai1_"):].rsplit("_f", 1)
        world = row["has_translation"] == "1"
        ours = B.bvh_to_step16(bandai_clip(stem), target_fps=30, root_relative=not world, heading="hips")
        ours, golden = ours[int(first):int(first) + 75], gaits_raw[int(row["index"])]
        if world:
            offset = (golden - ours)[:, 0].mean(0)
            assert offset[1] == 0.0  # heights as in the file
            np.testing.assert_allclose(ours + offset, golden, atol=1e-5, rtol=0, err_msg=row["name"])  # 2.3e-6
        else:
            np.testing.assert_array_equal(ours, golden, err_msg=row["name"])
    default = B.bvh_to_step16(bandai_clip("walk-left_sad_001"), target_fps=30)
    assert np.abs(default[129:204] - gaits_raw[13]).max() > 0.05  # the default heading is another convention
    walks = dict((stem, gait) for stem, _, gait in B.load_bandai_emotion_walks(
        BANDAI_DATA.parent, root_relative=True, contents=("walk-left",), heading="hips"))
    np.testing.assert_array_equal(walks["dataset-1_walk-left_sad_001"][129:204], gaits_raw[13])


@pytest.fixture(scope="module")
def bandai_forward_walks():
    bandai_clip("walk_sad_001")
    return B.load_bandai_emotion_walks(BANDAI_DATA.parent, contents=("walk",))


def test_bandai_forward_walks_geometry(bandai_forward_walks):
    assert sorted(label for _, label, _ in bandai_forward_walks) == [0, 0, 1, 1, 2, 2, 3, 3]
    for name, _, gait in bandai_forward_walks:
        lengths = sk.bone_lengths(gait)
        assert lengths[:, RIGID_BONES].std(axis=0).max() < 1e-3, name
        assert lengths.std(axis=0).max() < 3e-3, name
        # World heights are kept (floor at y = 0): head joint (skull base) 1.2-2.0 m up, ankles just above.
        assert 1.2 < np.median(gait[:, sk.HEAD, 1]) < 2.0, name
        assert 0.03 < gait[:, [sk.LEFT_FOOT, sk.RIGHT_FOOT], 1].min() < 0.25, name
        assert_faces_minus_z(gait, travels=-1.0)


def test_bandai_toes_point_to_minus_z():
    # Bandai's Head joint sits straight above the neck (End Site offset 0): no face point. The feet
    # show where the body points: with the toes as feet, the toes must lie ahead (-Z) of the ankles.
    path = bandai_clip("walk_happy_001")
    toes_map = {**B.BANDAI_MAP, sk.LEFT_FOOT: ("Toes_L",), sk.RIGHT_FOOT: ("Toes_R",)}
    ankles = B.bvh_to_step16(path)
    toes = B.bvh_to_step16(path, joint_map=toes_map)
    np.testing.assert_allclose(toes[:, :sk.LEFT_FOOT], ankles[:, :sk.LEFT_FOOT], atol=1e-6)  # same heading
    for foot in (sk.LEFT_FOOT, sk.RIGHT_FOOT):
        ahead = toes[:, foot] - ankles[:, foot]
        assert np.mean(ahead[:, 2]) < -0.03 and np.mean(ahead[:, 2] < 0) > 0.7
        assert abs(np.mean(ahead[:, 0])) < 0.6 * abs(np.mean(ahead[:, 2]))  # toe-out < 31 deg


def test_bandai_sad_walks_are_slower(bandai_forward_walks):
    speeds = {name: B.travel_direction(gait[:, sk.ROOT], 30.0)[1] for name, _, gait in bandai_forward_walks}
    sad = [s for n, s in speeds.items() if "_sad_" in n]
    other = [s for n, s in speeds.items() if "_sad_" not in n]
    assert max(sad) < 0.7 and min(other) > 0.9, speeds
    assert np.mean(sad) < 0.6 * np.mean(other), speeds


def test_bandai_animated_top_root_and_backward_walk():
    # joint_Root (not Hips) carries the travel of this 31-frame loop: FK must start at the top joint.
    loop = B.bvh_to_step16(bandai_clip("walk_normal_002"), root_relative=False)
    assert loop.shape == (31, 16, 3)
    assert_faces_minus_z(loop, travels=-1.0)
    assert B.travel_direction(loop[:, sk.ROOT], 30.0)[1] > 0.8
    backward = B.bvh_to_step16(bandai_clip("walk-back_normal_001"), root_relative=False)
    assert_faces_minus_z(backward, travels=+1.0)


@pytest.mark.parametrize("name", ["walk-back_normal_001", "walk-left_sad_001"])
def test_bandai_mirrored_clip_gives_mirrored_gait(name):
    bvh = B.parse_bvh(bandai_clip(name))
    for root_relative in (True, False):
        out = B.bvh_to_step16(bvh, root_relative=root_relative)
        out_mirrored = B.bvh_to_step16(mirror_bvh(bvh), root_relative=root_relative)
        np.testing.assert_allclose(out_mirrored, sk.mirror(out), atol=1e-4)


def test_bandai_yaw_of_the_whole_clip_changes_nothing():
    bvh = B.parse_bvh(bandai_clip("walk-right_angry_001"))
    # Wrap the clip in a new top joint turned by a constant yaw and shifted.
    turned = dataclasses.replace(
        bvh, joint_names=("World",) + bvh.joint_names, parents=np.concatenate([[-1], bvh.parents + 1]),
        offsets=np.concatenate([[[0.0, 0.0, 0.0]], bvh.offsets]),
        channels=(("Xposition", "Zposition", "Yrotation"),) + bvh.channels,
        motion=np.concatenate([np.tile([[250.0, -80.0, 71.0]], (bvh.num_frames, 1)), bvh.motion], axis=1),
        end_sites=tuple((j + 1, o) for j, o in bvh.end_sites))
    for root_relative in (True, False):
        np.testing.assert_allclose(B.bvh_to_step16(turned, root_relative=root_relative),
                                   B.bvh_to_step16(bvh, root_relative=root_relative), atol=1e-4)


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------

needs_egait = pytest.mark.skipif(not HAS_EGAIT, reason="stepjax.data.egait (HDF5 writer) not available yet")


@needs_egait
def test_cli_converts_the_bandai_folder(tmp_path, capsys):
    from stepjax.data.egait import read_egait

    bandai_clip("walk_sad_001")
    features, labels = tmp_path / "features_bandai.h5", tmp_path / "labels_bandai.h5"
    status = B.main([str(BANDAI_DATA.parent),  # the release folder: its data/ subfolder is used, as in configs
                     "--out-features", str(features), "--out-labels", str(labels),
                     "--label-regex", r"^dataset-1_walk_([a-z-]+)_\d+\.bvh$", "--window", "75", "--hop", "75"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "skip dataset-1_walk_proud_001.bvh" in out and "not an emotion" in out
    data = read_egait(features, labels)
    expected = {"angry": 0, "normal": 1, "happy": 2, "sad": 3}
    assert {k.split("_")[2] for k in data.keys} == set(expected)
    for key, label, gait in zip(data.keys, data.labels, data.gaits):
        assert re.fullmatch(r"dataset-1_walk_[a-z]+_00\d_f\d+", key)
        assert label == expected[key.split("_")[2]], key
        assert gait.shape[1:] == (16, 3) and gait.shape[0] == (31 if "normal_002" in key else 75)
        assert np.all(gait[:, sk.ROOT] == 0)
    assert "dataset-1_walk_sad_002_f75" in data.keys


@needs_egait
def test_cli_labels_from_csv_without_windows(tmp_path, capsys):
    from stepjax.data.egait import read_egait

    src = tmp_path / "clips"
    src.mkdir()
    for stem, yaw in (("a", 0.0), ("b", 45.0), ("c", 90.0)):
        (src / f"{stem}.bvh").write_text(B.format_bvh(make_walker(num_frames=60, yaw=yaw)))
    (tmp_path / "labels.csv").write_text("filename,label\na.bvh,Sad\nb,2\n")
    features, labels = tmp_path / "f.h5", tmp_path / "l.h5"
    status = B.main([str(src), "--out-features", str(features), "--out-labels", str(labels),
                     "--labels-csv", str(tmp_path / "labels.csv"), "--fps", "15"])
    assert status == 0
    assert "skip c.bvh: not listed" in capsys.readouterr().out
    data = read_egait(features, labels)
    assert data.keys == ("a", "b") and list(data.labels) == [3, 2]
    assert [g.shape[0] for g in data.gaits] == [30, 30]
    np.testing.assert_allclose(data.gaits[0], data.gaits[1], atol=1e-4)  # yaw removed


def test_cli_rejects_a_regex_without_group(tmp_path, capsys):
    (tmp_path / "x_sad.bvh").write_text(B.format_bvh(make_walker(num_frames=10)))
    with pytest.raises(ValueError, match="exactly one group"):
        B.labels_from_regex(sorted(tmp_path.glob("*.bvh")), r"_sad")
    status = B.main([str(tmp_path), "--out-features", str(tmp_path / "f.h5"), "--out-labels", str(tmp_path / "l.h5"),
                     "--label-regex", "_sad"])
    assert status == 2
    assert re.match(r"stepjax-bvh2egait: error: .*exactly one group", capsys.readouterr().err)
    status = B.main([str(tmp_path), "--out-features", str(tmp_path / "f.h5"), "--out-labels", str(tmp_path / "l.h5"),
                     "--label-regex", "_(sad"])  # not a regular expression: a user mistake, not a traceback
    assert status == 2
    assert re.match(r"stepjax-bvh2egait: error: --label-regex '_\(sad' is not a regular expression: missing \)",
                    capsys.readouterr().err)


def test_bandai_loader_names_a_file_that_is_not_of_the_release(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dataset-1_walk_angry_001_copy.bvh").write_text(B.format_bvh(make_walker(num_frames=10)))
    with pytest.raises(ValueError, match=r"dataset-1_walk_angry_001_copy.bvh: not a Bandai file name"):
        B.load_bandai_emotion_walks(tmp_path)


# ----------------------------------------------------------------------------------------------
# data.source = 'bandai': windows of the real walks as a training data source
# ----------------------------------------------------------------------------------------------

def test_bandai_data_source_windows_labels_and_clip_grouped_split():
    """configs/bandai.py's data: every window is a slice of its clip (root-relative, 30 fps), labels follow the
    style, subjects are clip ids, and the grouped split never puts windows of one clip into two parts."""
    import ml_collections

    from stepjax.data import pipeline

    bandai_clip("walk_sad_001")  # skip without the data
    cfg = ml_collections.ConfigDict(dict(source="bandai", path=str(BANDAI_DATA.parent), num_frames=32, hop=16,
                                         length_policy="tile", split=(0.6, 0.2, 0.2), split_seed=0,
                                         group_by_subject=True))
    raw = pipeline.load_source(cfg)
    walks = B.load_bandai_emotion_walks(BANDAI_DATA.parent, root_relative=True)
    assert raw.gaits.shape[1:] == (32, 16, 3) and len(raw.gaits) == len(raw.labels) == len(raw.subjects)
    assert sorted(set(raw.subjects.tolist())) == list(range(len(walks)))
    for i in (0, len(raw.gaits) // 2, len(raw.gaits) - 1):
        stem, label, gait = walks[raw.subjects[i]]
        start = int(raw.keys[i].rsplit("_f", 1)[1])
        assert raw.keys[i].startswith(stem) and raw.labels[i] == label
        window = gait[start:start + 32]  # a 31-frame loop is one shorter window, tiled to 32 frames
        np.testing.assert_array_equal(raw.gaits[i][:len(window)], window)
    np.testing.assert_allclose(raw.gaits[:, :, 0], 0.0, atol=1e-6)  # root-relative like E-Gait
    split = pipeline.split_dataset(raw, cfg)
    parts = [set(raw.subjects[getattr(split, n)].tolist()) for n in ("train", "val", "test")]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    for n in ("train", "val", "test"):  # 5 clips per class -> 3 / 1 / 1
        assert set(raw.labels[getattr(split, n)].tolist()) == {0, 1, 2, 3}
    # the fingerprint recorded with a run's split covers the BVH files read, one per clip (not the parsed arrays,
    # which round differently on other CPUs)
    assert [os.path.basename(f) for f in raw.files] == [f"{stem}.bvh" for stem, _, _ in walks]
    assert all(os.path.isfile(f) for f in raw.files) and len(raw.fingerprint()) == 64
    with pytest.raises(ValueError, match="data.path"):
        pipeline.load_source(ml_collections.ConfigDict(dict(source="bandai", path="", num_frames=32)))
