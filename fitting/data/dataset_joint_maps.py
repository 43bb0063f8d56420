"""Dataset joint orders and their maps into SPIN's 24 ground-truth joints, as data.

Each ``*_TO_SPIN_GT`` tuple gives, for joint j of the dataset's order, its slot among SPIN's 24
ground-truth joints (``spinfits.fitting.body.joints.SPIN_GT_JOINT_NAMES``, the ``part`` array of
SPIN's dataset npz): ``part[:, MAP] = dataset_joints``. Slots no dataset joint maps to stay
missing (confidence 0). The maps are SPIN's own (``datasets/preprocess/*.py`` of nkolot/SPIN).
"""

from __future__ import annotations

#: COCO's 17 person keypoints, in the annotation files' order.
COCO_KEYPOINT_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

#: COCO joint j -> SPIN ground-truth slot (SPIN's ``coco.py`` ``joints_idx``).
COCO_TO_SPIN_GT: tuple[int, ...] = (19, 20, 21, 22, 23, 9, 8, 10, 7, 11, 6, 3, 2, 4, 1, 5, 0)

#: COCO's body joints (shoulders to ankles): SPIN keeps an annotation only when all 12 are
#: labelled (``sum(keypoints[5:, 2] > 0) < 12: continue``).
COCO_BODY_JOINTS: tuple[int, ...] = tuple(range(5, 17))

#: mmpose's 17 MPI-INF-3DHP joints (``configs/_base_/datasets/mpi_inf_3dhp.py``; the order of
#: the 3DHP test set's ``annot_data.mat``, which mmpose's converter also picks from the training
#: set's 28 joints).
MMPOSE_3DHP_JOINT_NAMES: tuple[str, ...] = (
    "head_top",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "root",
    "spine",
    "head",
)

#: mmpose 3DHP joint j -> SPIN ground-truth slot: SPIN's ``mpi_inf_3dhp.py`` (``joints_idx``
#: after its test-set ``joints17_idx``), so head_top -> "Head (H36M)", head -> "Jaw (H36M)",
#: root (the pelvis) -> "Pelvis (MPII)", spine -> "Spine (H36M)", neck -> "Neck (LSP)".
MMPOSE_3DHP_TO_SPIN_GT: tuple[int, ...] = (18, 12, 8, 7, 6, 9, 10, 11, 2, 1, 0, 3, 4, 5, 14, 16, 17)

#: The pelvis in mmpose's 3DHP order: SPIN stores 3DHP's 3D joints relative to it.
MMPOSE_3DHP_ROOT: int = 14

#: LSP's 14 joints (``joints.mat`` of LSP and LSP-extended), in the file's order.
LSP_JOINT_NAMES: tuple[str, ...] = (
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "neck",
    "head_top",
)

#: LSP joint j -> SPIN ground-truth slot: SPIN's first 14 slots are LSP's joints
#: (``lsp_dataset_original.py``: ``part[:14] = part14``).
LSP_TO_SPIN_GT: tuple[int, ...] = tuple(range(14))

#: MPII's 16 joints, by their annotation ``id`` (0..15) in ``mpii_human_pose_v1_u12_1.mat``.
MPII_JOINT_NAMES: tuple[str, ...] = (
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "pelvis",
    "thorax",
    "upper_neck",
    "head_top",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
)

#: MPII joint id j -> SPIN ground-truth slot (SPIN's ``mpii.py`` ``joints_idx``): pelvis ->
#: "Pelvis (MPII)", thorax -> "Thorax (MPII)", upper neck -> "Neck (LSP)", head top -> "Top of
#: Head (LSP)".
MPII_TO_SPIN_GT: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 14, 15, 12, 13, 6, 7, 8, 9, 10, 11)

#: OpenPose's COCO-18 joints (3DPW's ``poses2d``) -> OpenPose BODY_25 slot: BODY_25 is COCO-18
#: with the mid hip inserted at 8 and six foot joints appended.
OPENPOSE_COCO18_TO_BODY25: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)

#: For SPIN's first 12 ground-truth slots (the limbs, ankles to wrists), the OpenPose BODY_25
#: joint at the same place (SPIN's ``read_openpose.py`` ``op_to_12``): how a detection is
#: matched to an annotated person.
OPENPOSE_FOR_SPIN_GT_LIMBS: tuple[int, ...] = (11, 10, 9, 12, 13, 14, 4, 3, 2, 5, 6, 7)
