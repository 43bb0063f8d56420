"""Dataset joint maps into SPIN's 24 ground-truth joints: names agree, left stays left."""

import pytest

from spinfits.fitting.body.joints import GT_JOINTS_FLIP_PERM, SPIN_GT_JOINT_NAMES
from spinfits.fitting.data.dataset_joint_maps import (
    COCO_BODY_JOINTS,
    COCO_KEYPOINT_NAMES,
    COCO_TO_SPIN_GT,
    MMPOSE_3DHP_JOINT_NAMES,
    MMPOSE_3DHP_ROOT,
    MMPOSE_3DHP_TO_SPIN_GT,
)

#: Each dataset joint name -> the SPIN ground-truth joint it is, written out by hand.
COCO_EXPECTED = {
    "nose": "Nose",
    "left_eye": "Left Eye",
    "right_eye": "Right Eye",
    "left_ear": "Left Ear",
    "right_ear": "Right Ear",
    "left_shoulder": "Left Shoulder",
    "right_shoulder": "Right Shoulder",
    "left_elbow": "Left Elbow",
    "right_elbow": "Right Elbow",
    "left_wrist": "Left Wrist",
    "right_wrist": "Right Wrist",
    "left_hip": "Left Hip",
    "right_hip": "Right Hip",
    "left_knee": "Left Knee",
    "right_knee": "Right Knee",
    "left_ankle": "Left Ankle",
    "right_ankle": "Right Ankle",
}
MMPOSE_3DHP_EXPECTED = {
    "head_top": "Head (H36M)",
    "neck": "Neck (LSP)",
    "right_shoulder": "Right Shoulder",
    "right_elbow": "Right Elbow",
    "right_wrist": "Right Wrist",
    "left_shoulder": "Left Shoulder",
    "left_elbow": "Left Elbow",
    "left_wrist": "Left Wrist",
    "right_hip": "Right Hip",
    "right_knee": "Right Knee",
    "right_ankle": "Right Ankle",
    "left_hip": "Left Hip",
    "left_knee": "Left Knee",
    "left_ankle": "Left Ankle",
    "root": "Pelvis (MPII)",
    "spine": "Spine (H36M)",
    "head": "Jaw (H36M)",
}


@pytest.mark.parametrize(
    "names, mapping, expected",
    [
        (COCO_KEYPOINT_NAMES, COCO_TO_SPIN_GT, COCO_EXPECTED),
        (MMPOSE_3DHP_JOINT_NAMES, MMPOSE_3DHP_TO_SPIN_GT, MMPOSE_3DHP_EXPECTED),
    ],
)
def test_each_dataset_joint_lands_on_the_spin_joint_of_its_name(names, mapping, expected):
    assert len(mapping) == len(names) == len(set(mapping))
    assert {name: SPIN_GT_JOINT_NAMES[slot] for name, slot in zip(names, mapping)} == expected


def _swap_sides(name: str) -> str:
    if name.startswith("left_"):
        return "right_" + name[5:]
    if name.startswith("right_"):
        return "left_" + name[6:]
    return name


@pytest.mark.parametrize(
    "names, mapping",
    [(COCO_KEYPOINT_NAMES, COCO_TO_SPIN_GT), (MMPOSE_3DHP_JOINT_NAMES, MMPOSE_3DHP_TO_SPIN_GT)],
)
def test_mapping_commutes_with_flipping(names, mapping):
    """Flip in the dataset's order then map == map then flip with SPIN's permutation."""
    for joint, name in enumerate(names):
        mirrored = names.index(_swap_sides(name))
        assert GT_JOINTS_FLIP_PERM[mapping[joint]] == mapping[mirrored], name


def test_coco_body_joints_are_shoulders_to_ankles_and_root_is_the_pelvis():
    body = [COCO_KEYPOINT_NAMES[j] for j in COCO_BODY_JOINTS]
    assert body[0] == "left_shoulder" and body[-1] == "right_ankle" and len(body) == 12
    assert not any(name in body for name in ("nose", "left_eye", "right_ear"))
    assert MMPOSE_3DHP_JOINT_NAMES[MMPOSE_3DHP_ROOT] == "root"
