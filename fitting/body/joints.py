"""Joint names, orders, maps and flip permutations, as data (SPIN's conventions).

SPIN fits to 49 keypoints: the 25 OpenPose BODY_25 joints followed by 24 "ground truth"
joints (a superset of the joints of every dataset SPIN trains on). The body model produces
the same 49 joints from SMPL's 24 skeleton joints, 21 joints read at fixed mesh vertices
(smplx's vertex joint selector) and 9 joints regressed by ``J_regressor_extra``.
Everything here is plain data; nothing is computed at import beyond list comprehensions.
"""

from __future__ import annotations

#: SMPL's 24 skeleton joints, in the model's order.
SMPL_JOINT_NAMES: tuple[str, ...] = (
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hand",
    "right_hand",
)

#: SMPL's kinematic tree: parent of each of the 24 joints (-1 for the root).
SMPL_PARENTS: tuple[int, ...] = (
    -1,
    0,
    0,
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    9,
    9,
    12,
    13,
    14,
    16,
    17,
    18,
    19,
    20,
    21,
)

#: OpenPose BODY_25 keypoints, in OpenPose's output order.
OPENPOSE_BODY25_NAMES: tuple[str, ...] = (
    "Nose",
    "Neck",
    "RShoulder",
    "RElbow",
    "RWrist",
    "LShoulder",
    "LElbow",
    "LWrist",
    "MidHip",
    "RHip",
    "RKnee",
    "RAnkle",
    "LHip",
    "LKnee",
    "LAnkle",
    "REye",
    "LEye",
    "REar",
    "LEar",
    "LBigToe",
    "LSmallToe",
    "LHeel",
    "RBigToe",
    "RSmallToe",
    "RHeel",
)

#: SPIN's 24 ground-truth joints (the ``part`` array of SPIN's dataset npz files).
SPIN_GT_JOINT_NAMES: tuple[str, ...] = (
    "Right Ankle",
    "Right Knee",
    "Right Hip",
    "Left Hip",
    "Left Knee",
    "Left Ankle",
    "Right Wrist",
    "Right Elbow",
    "Right Shoulder",
    "Left Shoulder",
    "Left Elbow",
    "Left Wrist",
    "Neck (LSP)",
    "Top of Head (LSP)",
    "Pelvis (MPII)",
    "Thorax (MPII)",
    "Spine (H36M)",
    "Jaw (H36M)",
    "Head (H36M)",
    "Nose",
    "Left Eye",
    "Right Eye",
    "Left Ear",
    "Right Ear",
)

#: SPIN's 49 joints: 25 OpenPose joints ("OP " prefix) then the 24 ground-truth joints.
SPIN_JOINT_NAMES: tuple[str, ...] = (
    tuple("OP " + name for name in OPENPOSE_BODY25_NAMES) + SPIN_GT_JOINT_NAMES
)

NUM_SPIN_JOINTS = 49
NUM_OPENPOSE_JOINTS = 25
NUM_GT_JOINTS = 24
#: SMPL's skeleton: 24 joints (bones) in its kinematic tree.
NUM_SMPL_JOINTS = 24

#: Mesh vertices read as keypoints by smplx's SMPL (its ``vertex_ids['smplh']``), in the order
#: smplx appends them after the 24 skeleton joints (joints 24..44 of smplx's output).
SMPL_VERTEX_KEYPOINTS: tuple[tuple[str, int], ...] = (
    ("nose", 332),
    ("reye", 6260),
    ("leye", 2800),
    ("rear", 4071),
    ("lear", 583),
    ("LBigToe", 3216),
    ("LSmallToe", 3226),
    ("LHeel", 3387),
    ("RBigToe", 6617),
    ("RSmallToe", 6624),
    ("RHeel", 6787),
    ("lthumb", 2746),
    ("lindex", 2319),
    ("lmiddle", 2445),
    ("lring", 2556),
    ("lpinky", 2673),
    ("rthumb", 6191),
    ("rindex", 5782),
    ("rmiddle", 5905),
    ("rring", 6016),
    ("rpinky", 6133),
)

#: SPIN's 9 joints regressed from vertices by ``J_regressor_extra.npy`` (its rows, in order).
EXTRA_REGRESSED_JOINT_NAMES: tuple[str, ...] = (
    "Right Hip",
    "Left Hip",
    "Neck (LSP)",
    "Top of Head (LSP)",
    "Pelvis (MPII)",
    "Thorax (MPII)",
    "Spine (H36M)",
    "Jaw (H36M)",
    "Head (H36M)",
)

#: For each of SPIN's 49 joints, its index among the 54 body-model joints
#: (24 skeleton + 21 vertex keypoints + 9 regressed extra joints). SPIN's ``JOINT_MAP``.
SPIN_JOINT_SOURCE: tuple[int, ...] = (
    # OpenPose joints
    24,
    12,
    17,
    19,
    21,
    16,
    18,
    20,
    0,
    2,
    5,
    8,
    1,
    4,
    7,
    25,
    26,
    27,
    28,
    29,
    30,
    31,
    32,
    33,
    34,
    # ground-truth joints
    8,
    5,
    45,
    46,
    4,
    7,
    21,
    19,
    17,
    16,
    18,
    20,
    47,
    48,
    49,
    50,
    51,
    52,
    53,
    24,
    26,
    25,
    28,
    27,
)

#: Left/right permutation of SMPL's 24 joints (used to flip a pose).
SMPL_JOINTS_FLIP_PERM: tuple[int, ...] = (
    0,
    2,
    1,
    3,
    5,
    4,
    6,
    8,
    7,
    9,
    11,
    10,
    12,
    14,
    13,
    15,
    17,
    16,
    19,
    18,
    21,
    20,
    23,
    22,
)

#: Left/right permutation of the 72 axis-angle pose parameters.
SMPL_POSE_FLIP_PERM: tuple[int, ...] = tuple(
    3 * joint + axis for joint in SMPL_JOINTS_FLIP_PERM for axis in range(3)
)

#: Left/right permutation of the 24 ground-truth joints.
GT_JOINTS_FLIP_PERM: tuple[int, ...] = (
    5,
    4,
    3,
    2,
    1,
    0,
    11,
    10,
    9,
    8,
    7,
    6,
    12,
    13,
    14,
    15,
    16,
    17,
    18,
    19,
    21,
    20,
    23,
    22,
)

#: Left/right permutation of SPIN's 49 joints.
SPIN_JOINTS_FLIP_PERM: tuple[int, ...] = (
    0,
    1,
    5,
    6,
    7,
    2,
    3,
    4,
    8,
    12,
    13,
    14,
    9,
    10,
    11,
    16,
    15,
    18,
    17,
    22,
    23,
    24,
    19,
    20,
    21,
) + tuple(NUM_OPENPOSE_JOINTS + i for i in GT_JOINTS_FLIP_PERM)


def spin_index(name: str) -> int:
    """Index of a joint in SPIN's 49-joint order, e.g. ``spin_index("OP RHip") == 9``."""
    try:
        return SPIN_JOINT_NAMES.index(name)
    except ValueError:
        raise KeyError(
            f"unknown joint {name!r}: expected one of SPIN's 49 joint names "
            f"(spinfits.fitting.body.joints.SPIN_JOINT_NAMES)"
        ) from None


#: Joints SMPLify ignores in its reprojection term (set to confidence 0), as SPIN does:
#: OpenPose's neck and hips and the ground-truth hips sit elsewhere than SMPL's joints.
SMPLIFY_IGNORED_JOINTS: tuple[int, ...] = tuple(
    spin_index(n) for n in ("OP Neck", "OP RHip", "OP LHip", "Right Hip", "Left Hip")
)

#: Torso joints of SMPLify's camera stage: OpenPose shoulders and hips ...
OPENPOSE_TORSO_JOINTS: tuple[int, ...] = tuple(
    spin_index(n) for n in ("OP RShoulder", "OP LShoulder", "OP RHip", "OP LHip")
)
#: ... or, when those are not all confident, the ground-truth shoulders and hips.
GT_TORSO_JOINTS: tuple[int, ...] = tuple(
    spin_index(n) for n in ("Right Shoulder", "Left Shoulder", "Right Hip", "Left Hip")
)

#: Joints that make a fit meaningful: torso and limbs (not face or feet).
TORSO_LIMB_JOINTS: tuple[int, ...] = tuple(
    spin_index(n)
    for n in (
        "OP RShoulder",
        "OP RElbow",
        "OP RWrist",
        "OP LShoulder",
        "OP LElbow",
        "OP LWrist",
        "OP MidHip",
        "OP RHip",
        "OP RKnee",
        "OP RAnkle",
        "OP LHip",
        "OP LKnee",
        "OP LAnkle",
        "Right Ankle",
        "Right Knee",
        "Right Hip",
        "Left Hip",
        "Left Knee",
        "Left Ankle",
        "Right Wrist",
        "Right Elbow",
        "Right Shoulder",
        "Left Shoulder",
        "Left Elbow",
        "Left Wrist",
        "Neck (LSP)",
        "Pelvis (MPII)",
        "Thorax (MPII)",
    )
)
