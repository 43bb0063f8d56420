"""Mocap clips to SMPL's joint slots (spinfits.fitting.mocap.joints) and `spinfits data from-bvh`."""

import numpy as np
import pytest

from spinfits.cli import main
from spinfits.errors import InputError
from spinfits.fitting.body.joints import SMPL_JOINT_NAMES
from spinfits.fitting.mocap.bvh import BvhError, read_bvh
from spinfits.fitting.mocap.joint_maps import CMU, SKELETON_MAPS
from spinfits.fitting.mocap.joints import (
    LEG_TO_HEIGHT,
    MocapConfig,
    clip_joints,
    load_mocap_joints,
    mocap_joints,
)

#: A small CMU-named rig (cm): joint, parent, offset.
RIG = (
    ("Hips", None, (0, 90, 0)),
    ("LeftUpLeg", "Hips", (10, -5, 0)),
    ("LeftLeg", "LeftUpLeg", (0, -40, 0)),
    ("LeftFoot", "LeftLeg", (0, -40, 0)),
    ("LeftToeBase", "LeftFoot", (0, -5, 12)),
    ("RightUpLeg", "Hips", (-10, -5, 0)),
    ("RightLeg", "RightUpLeg", (0, -40, 0)),
    ("RightFoot", "RightLeg", (0, -40, 0)),
    ("RightToeBase", "RightFoot", (0, -5, 12)),
    ("Spine", "Hips", (0, 10, 0)),
    ("Neck", "Spine", (0, 40, 0)),
    ("Head", "Neck", (0, 10, 0)),
    ("LeftShoulder", "Spine", (3, 38, 0)),
    ("LeftArm", "LeftShoulder", (15, 0, 0)),
    ("LeftForeArm", "LeftArm", (28, 0, 0)),
    ("LeftHand", "LeftForeArm", (25, 0, 0)),
    ("RightShoulder", "Spine", (-3, 38, 0)),
    ("RightArm", "RightShoulder", (-15, 0, 0)),
    ("RightForeArm", "RightArm", (-28, 0, 0)),
    ("RightHand", "RightForeArm", (-25, 0, 0)),
)


def rig_bvh(frames: list[list[float]], rig=RIG) -> str:
    """BVH text of ``rig``: the root with 6 channels, every joint ZXY rotations."""
    children: dict[str | None, list] = {}
    for name, parent, offset in rig:
        children.setdefault(parent, []).append((name, offset))
    lines = ["HIERARCHY"]

    def joint(name, offset, depth):
        pad = "  " * depth
        keyword = "ROOT" if depth == 0 else "JOINT"
        lines.extend([f"{pad}{keyword} {name}", f"{pad}{{", f"{pad}  OFFSET {' '.join(map(str, offset))}"])
        position = "Xposition Yposition Zposition " if depth == 0 else ""
        count = 6 if depth == 0 else 3
        lines.append(f"{pad}  CHANNELS {count} {position}Zrotation Xrotation Yrotation")
        for child, child_offset in children.get(name, []):
            joint(child, child_offset, depth + 1)
        if name not in children:
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET 0 1 0", f"{pad}  }}"])
        lines.append(f"{pad}}}")

    joint(rig[0][0], rig[0][2], 0)
    lines += ["MOTION", f"Frames: {len(frames)}", "Frame Time: 0.0666667"]
    lines += [" ".join(f"{v:g}" for v in frame) for frame in frames]
    return "\n".join(lines) + "\n"


def frame(root=(0, 0, 0), turn=(0, 0, 0), **joints) -> list[float]:
    values = [*root, *turn]
    for name, _, _ in RIG[1:]:
        values += list(joints.get(name, (0, 0, 0)))
    return values


def test_joints_land_in_smpl_slots_scaled_to_the_height(tmp_path):
    path = tmp_path / "rig" / "walk.bvh"
    path.parent.mkdir()
    # frame 0: a T-pose (dropped); frame 1: left knee bent 90 deg (ZXY: X first after Z)
    path.write_text(rig_bvh([frame(), frame(root=(0, 0, 5), LeftLeg=(0, 90, 0))]))
    joints = clip_joints(read_bvh(path), MocapConfig(height=1.6))
    assert joints.clip.tolist() == ["rig/walk"] and joints.frame.tolist() == [1]
    assert joints.skeleton.tolist() == [CMU.name]
    scale = LEG_TO_HEIGHT * 1.6 / 80.0  # leg: 40 + 40 cm
    assert joints.scale[0] == pytest.approx(scale)
    slot = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}
    got = joints.joints[0] / scale
    np.testing.assert_allclose(got[slot["pelvis"]], [0, 90, 5], atol=1e-9)
    np.testing.assert_allclose(got[slot["left_hip"]], [10, 85, 5], atol=1e-9)
    np.testing.assert_allclose(got[slot["left_knee"]], [10, 45, 5], atol=1e-9)
    # the shin turned 90 deg about x: (0, -40, 0) -> (0, 0, -40)
    np.testing.assert_allclose(got[slot["left_ankle"]], [10, 45, -35], atol=1e-9)
    np.testing.assert_allclose(got[slot["right_wrist"]], [-71, 138, 5], atol=1e-9)
    assert joints.present[0].sum() == len(CMU.joints) == 19
    assert not joints.present[0, [slot["spine1"], slot["left_hand"]]].any()
    # without dropping the T-pose, both frames come back
    assert clip_joints(read_bvh(path), MocapConfig(drop_tpose=False)).frame.tolist() == [0, 1]


def test_unknown_skeleton_names_file_line_and_the_known_rigs(tmp_path):
    rig = tuple(
        (name.replace("Hips", "Pelvis"), parent and parent.replace("Hips", "Pelvis"), o)
        for name, parent, o in RIG
    )
    path = tmp_path / "odd.bvh"
    path.write_text(rig_bvh([frame()], rig))
    with pytest.raises(BvhError) as caught:
        mocap_joints([path])
    message = str(caught.value)
    assert message.startswith(f"{path}:2: unknown skeleton (root 'Pelvis', 25 joints)")
    assert "cmu lacks Hips" in message
    for skeleton in SKELETON_MAPS:
        assert skeleton.description in message
    assert "Add a map to spinfits.fitting.mocap.joint_maps" in message


def test_a_clip_lying_down_is_refused(tmp_path):
    path = tmp_path / "z_up.bvh"
    path.write_text(rig_bvh([frame(turn=(0, 90, 0))] * 2))
    with pytest.raises(BvhError, match=r"z_up.bvh:\d+: the body's median up direction .* expected \+y"):
        mocap_joints([path])


def test_bad_config_and_paths():
    with pytest.raises(InputError, match="every must be a whole number >= 1, got 0"):
        MocapConfig(every=0)
    with pytest.raises(InputError, match="height must be a body height in metres"):
        MocapConfig(height=170)
    with pytest.raises(InputError, match="nowhere.bvh does not exist"):
        mocap_joints(["nowhere.bvh"])


@pytest.mark.parametrize("clip", ["cmu_iclone/002_01", "cmu_iclone/006_01", "cmu_aclstm/salsa_01"])
def test_handedness_on_real_clips(shared_data, clip):
    """The torso (left x up) faces the way the toes point; in walks, the walking direction too."""
    joints = mocap_joints([shared_data / "mocap" / f"{clip}.bvh"])
    j = joints.joints
    slot = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}
    left = j[:, slot["left_hip"]] - j[:, slot["right_hip"]]
    forward = np.cross(left, j[:, slot["neck"]] - j[:, slot["pelvis"]])
    forward[:, 1] = 0
    forward /= np.linalg.norm(forward, axis=1, keepdims=True)
    if joints.present[0, slot["left_foot"]]:
        toes = j[:, slot["left_foot"]] - j[:, slot["left_ankle"]]
        toes[:, 1] = 0
        toes /= np.linalg.norm(toes, axis=1, keepdims=True)
        assert np.median((forward * toes).sum(1)) > 0.8
    if "cmu_iclone/00" in clip:  # 002_01 and 006_01 are walks
        velocity = np.gradient(j[:, slot["pelvis"]], axis=0)
        velocity[:, 1] = 0
        velocity /= np.linalg.norm(velocity, axis=1, keepdims=True)
        assert np.median((forward * velocity).sum(1)) > 0.9
    else:  # a mirrored reader would put the left hip at the performer's right: the rest pose
        rest = clip_joints(read_bvh(shared_data / "mocap" / f"{clip}.bvh"), MocapConfig(drop_tpose=False))
        assert rest.present[0, slot["left_hip"]]
        skeleton = read_bvh(shared_data / "mocap" / f"{clip}.bvh").skeleton
        # the Daz rig's left thigh hangs off the hip at +x, its toes (End Site) point to +z
        assert skeleton.offsets[skeleton.index("lButtock")][0] > 0
        assert skeleton.offsets[skeleton.index("lFoot_end")][2] > 0


def run(capsys, *argv):
    status = main(["data", *map(str, argv)])
    out, err = capsys.readouterr()
    return status, out, err


def test_from_bvh_command(capsys, tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    bent = {"LeftForeArm": (45, 0, 0)}  # not a T-pose: every frame is kept
    (folder / "a.bvh").write_text(rig_bvh([frame(root=(0, 0, z), **bent) for z in range(1, 6)]))
    (folder / "b.bvh").write_text(rig_bvh([frame(root=(z, 0, 0), **bent) for z in range(1, 4)]))
    out_file = tmp_path / "joints.npz"
    status, out, _ = run(capsys, "from-bvh", folder, out_file, "--every", "2")
    assert status == 0, out
    assert f"wrote 5 frames of 2 clips to {out_file}" in out
    assert "cmu: 2 clips, 5 frames, 19 of 24 SMPL joints mapped" in out
    joints = load_mocap_joints(out_file)
    assert joints.clip.tolist() == ["clips/a"] * 3 + ["clips/b"] * 2
    assert joints.frame.tolist() == [0, 2, 4, 0, 2]
    assert joints.joints.shape == (5, 24, 3)

    status, _, err = run(capsys, "from-bvh", folder, out_file, "--every", "0")
    assert status == 2 and "--every must be a whole number >= 1, got 0" in err
    (folder / "c.bvh").write_text("HIERARCHY\nROOT x\n{\n  OFFSET 0 0\n")
    status, _, err = run(capsys, "from-bvh", folder, out_file)
    assert status == 2 and f"{folder / 'c.bvh'}:" in err and "MOTION" in err
