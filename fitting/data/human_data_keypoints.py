"""mmhuman3d's ``human_data`` keypoint convention (HumanData files' ``keypoints2d``/``keypoints3d``)
and its keypoints in SPIN's 24 ground-truth joints and 25 OpenPose joints, as data.

The 190 names are mmhuman3d's ``HUMAN_DATA`` (``mmhuman3d/core/conventions/keypoints_mapping/
human_data.py``), in order: SMPL's 22 body joints, hands, face, SPIN's 9 ``J_regressor_extra``
joints (``*_extra``, ``headtop``), OpenPose's BODY_25 (``*_openpose``), 3DHP's and others.
"""

from __future__ import annotations

#: mmhuman3d's ``HUMAN_DATA`` keypoint names, in the order of a HumanData file's keypoints.
HUMAN_DATA_KEYPOINTS: tuple[str, ...] = tuple(
    """
    pelvis left_hip right_hip spine_1 left_knee right_knee spine_2 left_ankle right_ankle spine_3
    left_foot right_foot neck left_collar right_collar head left_shoulder right_shoulder left_elbow
    right_elbow left_wrist right_wrist jaw left_eyeball right_eyeball left_index_1 left_index_2
    left_index_3 left_middle_1 left_middle_2 left_middle_3 left_pinky_1 left_pinky_2 left_pinky_3
    left_ring_1 left_ring_2 left_ring_3 left_thumb_1 left_thumb_2 left_thumb_3 right_index_1
    right_index_2 right_index_3 right_middle_1 right_middle_2 right_middle_3 right_pinky_1
    right_pinky_2 right_pinky_3 right_ring_1 right_ring_2 right_ring_3 right_thumb_1 right_thumb_2
    right_thumb_3 nose right_eye left_eye right_ear left_ear left_bigtoe left_smalltoe left_heel
    right_bigtoe right_smalltoe right_heel left_thumb left_index left_middle left_ring left_pinky
    right_thumb right_index right_middle right_ring right_pinky right_eyebrow_1 right_eyebrow_2
    right_eyebrow_3 right_eyebrow_4 right_eyebrow_5 left_eyebrow_5 left_eyebrow_4 left_eyebrow_3
    left_eyebrow_2 left_eyebrow_1 nosebridge_1 nosebridge_2 nosebridge_3 nosebridge_4 right_nose_2
    right_nose_1 nose_middle left_nose_1 left_nose_2 right_eye_1 right_eye_2 right_eye_3 right_eye_4
    right_eye_5 right_eye_6 left_eye_4 left_eye_3 left_eye_2 left_eye_1 left_eye_6 left_eye_5
    right_mouth_1 right_mouth_2 right_mouth_3 mouth_top left_mouth_3 left_mouth_2 left_mouth_1
    left_mouth_5 left_mouth_4 mouth_bottom right_mouth_4 right_mouth_5 right_lip_1 right_lip_2
    lip_top left_lip_2 left_lip_1 left_lip_3 lip_bottom right_lip_3 right_contour_1 right_contour_2
    right_contour_3 right_contour_4 right_contour_5 right_contour_6 right_contour_7 right_contour_8
    contour_middle left_contour_8 left_contour_7 left_contour_6 left_contour_5 left_contour_4
    left_contour_3 left_contour_2 left_contour_1 right_hip_extra left_hip_extra neck_extra headtop
    pelvis_extra thorax_extra spine_extra jaw_extra head_extra nose_openpose neck_openpose
    right_shoulder_openpose right_elbow_openpose right_wrist_openpose left_shoulder_openpose
    left_elbow_openpose left_wrist_openpose pelvis_openpose right_hip_openpose right_knee_openpose
    right_ankle_openpose left_hip_openpose left_knee_openpose left_ankle_openpose right_eye_openpose
    left_eye_openpose right_ear_openpose left_ear_openpose left_bigtoe_openpose
    left_smalltoe_openpose left_heel_openpose right_bigtoe_openpose right_smalltoe_openpose
    right_heel_openpose spine_4_3dhp left_clavicle_3dhp right_clavicle_3dhp left_hand_3dhp
    right_hand_3dhp left_toe_3dhp right_toe_3dhp head_h36m headtop_h36m head_bottom_pt left_hand
    right_hand
    """.split()  # noqa: SIM905 (190 names, one list of words reads better than 190 lines)
)

#: For each of SPIN's 24 ground-truth joints, its ``human_data`` name (mmhuman3d's
#: ``SMPL_24_KEYPOINTS``: the LSP hips, neck and head top are SPIN's regressed ``*_extra`` joints).
SPIN_GT_HUMAN_DATA_NAMES: tuple[str, ...] = (
    "right_ankle",
    "right_knee",
    "right_hip_extra",
    "left_hip_extra",
    "left_knee",
    "left_ankle",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "neck_extra",
    "headtop",
    "pelvis_extra",
    "thorax_extra",
    "spine_extra",
    "jaw_extra",
    "head_extra",
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
)

#: For each of OpenPose's 25 BODY_25 joints, its ``human_data`` name.
OPENPOSE_HUMAN_DATA_NAMES: tuple[str, ...] = (
    "nose_openpose",
    "neck_openpose",
    "right_shoulder_openpose",
    "right_elbow_openpose",
    "right_wrist_openpose",
    "left_shoulder_openpose",
    "left_elbow_openpose",
    "left_wrist_openpose",
    "pelvis_openpose",
    "right_hip_openpose",
    "right_knee_openpose",
    "right_ankle_openpose",
    "left_hip_openpose",
    "left_knee_openpose",
    "left_ankle_openpose",
    "right_eye_openpose",
    "left_eye_openpose",
    "right_ear_openpose",
    "left_ear_openpose",
    "left_bigtoe_openpose",
    "left_smalltoe_openpose",
    "left_heel_openpose",
    "right_bigtoe_openpose",
    "right_smalltoe_openpose",
    "right_heel_openpose",
)
