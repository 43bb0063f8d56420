from spinfits.fitting.body import joints as J


def test_spin_joint_tables_have_49_entries():
    assert len(J.SPIN_JOINT_NAMES) == J.NUM_SPIN_JOINTS == 49
    assert len(J.SPIN_JOINT_SOURCE) == 49
    assert len(set(J.SPIN_JOINT_NAMES)) == 49
    assert max(J.SPIN_JOINT_SOURCE) == 24 + 21 + 9 - 1


def test_flip_permutations_are_involutions():
    for perm in (
        J.SPIN_JOINTS_FLIP_PERM,
        J.SMPL_JOINTS_FLIP_PERM,
        J.GT_JOINTS_FLIP_PERM,
        J.SMPL_POSE_FLIP_PERM,
    ):
        assert sorted(perm) == list(range(len(perm)))
        assert [perm[p] for p in perm] == list(range(len(perm)))


def _side_swapped(name: str) -> str:
    swaps = [("Right", "Left"), ("OP R", "OP L"), ("right_", "left_")]
    for a, b in swaps:
        if name.startswith(a):
            return b + name[len(a) :]
        if name.startswith(b):
            return a + name[len(b) :]
    return name


def test_spin_flip_maps_each_joint_to_its_mirror_name():
    names = J.SPIN_JOINT_NAMES
    for index, target in enumerate(J.SPIN_JOINTS_FLIP_PERM):
        assert names[target] == _side_swapped(names[index]), names[index]
    smpl = J.SMPL_JOINT_NAMES
    for index, target in enumerate(J.SMPL_JOINTS_FLIP_PERM):
        assert smpl[target] == _side_swapped(smpl[index])


def test_openpose_and_gt_limb_joints_share_their_body_model_source():
    for limb in ("Ankle", "Knee", "Wrist", "Elbow", "Shoulder"):
        for op_side, gt_side in (("R", "Right"), ("L", "Left")):
            op = J.SPIN_JOINT_SOURCE[J.spin_index(f"OP {op_side}{limb}")]
            gt = J.SPIN_JOINT_SOURCE[J.spin_index(f"{gt_side} {limb}")]
            assert op == gt
            # and that source is the SMPL joint of the same name
            smpl_name = {
                "Ankle": "ankle",
                "Knee": "knee",
                "Wrist": "wrist",
                "Elbow": "elbow",
                "Shoulder": "shoulder",
            }[limb]
            assert J.SMPL_JOINT_NAMES[op] == f"{gt_side.lower()}_{smpl_name}"


def test_smplify_ignored_and_torso_joints():
    names = [J.SPIN_JOINT_NAMES[i] for i in J.SMPLIFY_IGNORED_JOINTS]
    assert names == ["OP Neck", "OP RHip", "OP LHip", "Right Hip", "Left Hip"]
    assert [J.SPIN_JOINT_NAMES[i] for i in J.GT_TORSO_JOINTS] == [
        "Right Shoulder",
        "Left Shoulder",
        "Right Hip",
        "Left Hip",
    ]


def test_unknown_joint_name_is_a_clear_error():
    import pytest

    with pytest.raises(KeyError, match="unknown joint 'OP Tail'.*SPIN_JOINT_NAMES"):
        J.spin_index("OP Tail")
