"""SPIN's evaluation metrics and joint selections: MPJPE, PA-MPJPE (batched Procrustes) and PCK.

The joint selections are SPIN's (``constants.py`` of nkolot/SPIN), as data:

- ``H36M_TO_J17`` / ``H36M_TO_J14``: the 17 (14) evaluation joints from the 17 joints that SPIN's
  ``J_regressor_h36m.npy`` regresses from the mesh (Human3.6M's order, pelvis first).
- ``J24_TO_J17`` / ``J24_TO_J14``: the same joints from SPIN's 24 ground-truth joints (the ``S``
  array of a dataset npz, and joints 25..48 of SPIN's 49). The first 14 are LSP's joints
  (``LSP14_JOINT_NAMES``; the 14th, the head, is Human3.6M's head).
- ``H36M_TO_GT24``: where SPIN's preprocessing puts each Human3.6M joint among the 24.

A ``JointProtocol`` says which joints are compared and which joint(s) both sides are centred on
(``LSP14``, ``H36M14``, ``H36M17``). Units: whatever the inputs are in (metres in spinfits);
reports multiply by ``M_TO_MM`` as SPIN's eval.py prints ``1000 * error``.

Convention: joint arrays are (B, J, 3), one person per row; a metric returns (B,) per person.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

import torch

from spinfits.errors import InputError
from spinfits.fitting.body.joints import NUM_OPENPOSE_JOINTS, NUM_SPIN_JOINTS, SPIN_GT_JOINT_NAMES

#: metres -> millimetres (SPIN prints ``1000 * mpjpe``).
M_TO_MM = 1000.0

#: Joints regressed by SPIN's ``J_regressor_h36m.npy`` (17, V), in its (Human3.6M's) order.
H36M_JOINT_NAMES: tuple[str, ...] = (
    "Pelvis",
    "Left Hip",
    "Left Knee",
    "Left Ankle",
    "Right Hip",
    "Right Knee",
    "Right Ankle",
    "Spine",
    "Neck",
    "Jaw",
    "Head",
    "Left Shoulder",
    "Left Elbow",
    "Left Wrist",
    "Right Shoulder",
    "Right Elbow",
    "Right Wrist",
)
NUM_H36M_JOINTS = 17
#: Root of the 17 Human3.6M joints (SPIN's ``pred_pelvis = pred_keypoints_3d[:, [0]]``).
H36M_PELVIS = 0

#: Where SPIN's preprocessing (datasets/preprocess/h36m.py, ``global_idx``) stores each of the 17
#: Human3.6M joints among its 24 ground-truth joints. Its names are SPIN's; SPIN files the first
#: three leg joints of Human3.6M as left (H36M_JOINT_NAMES above follows SPIN).
H36M_TO_GT24: tuple[int, ...] = (14, 3, 4, 5, 2, 1, 0, 16, 12, 17, 18, 9, 10, 11, 8, 7, 6)

#: SPIN's ``H36M_TO_J17``: the 17 evaluation joints from the 17 Human3.6M joints.
H36M_TO_J17: tuple[int, ...] = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10, 0, 7, 9)
#: SPIN's ``H36M_TO_J14``: the 14 LSP joints from the 17 Human3.6M joints.
H36M_TO_J14: tuple[int, ...] = H36M_TO_J17[:14]
#: SPIN's ``J24_TO_J17``: the 17 evaluation joints from the 24 ground-truth joints.
J24_TO_J17: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 18, 14, 16, 17)
#: SPIN's ``J24_TO_J14``: the 14 LSP joints from the 24 ground-truth joints.
J24_TO_J14: tuple[int, ...] = J24_TO_J17[:14]

#: Names of the 17 evaluation joints (the 14 LSP joints first).
J17_JOINT_NAMES: tuple[str, ...] = tuple(SPIN_GT_JOINT_NAMES[i] for i in J24_TO_J17)
LSP14_JOINT_NAMES: tuple[str, ...] = J17_JOINT_NAMES[:14]
#: The pelvis among the 24 ground-truth joints: where Human3.6M's root lands ("Pelvis (MPII)").
GT24_PELVIS = 14
#: The hips among the 24 ground-truth joints ("Right Hip", "Left Hip"): SPIN's training loss
#: centres 3D joints on their midpoint.
GT24_HIPS: tuple[int, int] = (2, 3)


@dataclass(frozen=True)
class JointProtocol:
    """Which joints are compared, and what both sides are centred on before comparing.

    Fields:
        name: short key ("lsp14"); title: one line for tables.
        joint_names: the K compared joints.
        predicted_from: "spin49" (the body model's 49 joints) or "h36m17" (the 17 joints of a
            ``J_regressor_h36m``-layout regressor applied to the mesh).
        predicted: (K,) indices into those joints; predicted_root: indices averaged into the
            root subtracted from every joint.
        gt24: (K,) indices into SPIN's 24 ground-truth joints (a dataset's ``S``); gt24_root: the
            same for the ground truth's root. Ground truth from SMPL parameters goes through
            the body model exactly as the prediction does (``predicted``, ``predicted_root``).
    """

    name: str
    title: str
    joint_names: tuple[str, ...]
    predicted_from: Literal["spin49", "h36m17"]
    predicted: tuple[int, ...]
    predicted_root: tuple[int, ...]
    gt24: tuple[int, ...]
    gt24_root: tuple[int, ...]


#: The 14 LSP joints from SPIN's 49 (no extra regressor needed), centred on the mid-hips, as
#: SPIN's 3D keypoint loss centres them.
LSP14 = JointProtocol(
    name="lsp14",
    title="LSP-14 (SPIN's 49 joints, mid-hip root)",
    joint_names=LSP14_JOINT_NAMES,
    predicted_from="spin49",
    predicted=tuple(NUM_OPENPOSE_JOINTS + i for i in J24_TO_J14),
    predicted_root=tuple(NUM_OPENPOSE_JOINTS + i for i in GT24_HIPS),
    gt24=J24_TO_J14,
    gt24_root=GT24_HIPS,
)
#: SPIN's eval.py on Human3.6M: the 14 joints of ``J_regressor_h36m`` (``H36M_TO_J14``), pelvis root.
H36M14 = JointProtocol(
    name="h36m14",
    title="H36M-14 (J_regressor_h36m, pelvis root; SPIN's eval.py)",
    joint_names=LSP14_JOINT_NAMES,
    predicted_from="h36m17",
    predicted=H36M_TO_J14,
    predicted_root=(H36M_PELVIS,),
    gt24=J24_TO_J14,
    gt24_root=(GT24_PELVIS,),
)
#: All 17 Human3.6M joints of ``J_regressor_h36m`` (SPIN's ``H36M_TO_J17``), pelvis root.
H36M17 = JointProtocol(
    name="h36m17",
    title="H36M-17 (J_regressor_h36m, pelvis root)",
    joint_names=J17_JOINT_NAMES,
    predicted_from="h36m17",
    predicted=H36M_TO_J17,
    predicted_root=(H36M_PELVIS,),
    gt24=J24_TO_J17,
    gt24_root=(GT24_PELVIS,),
)
PROTOCOLS: tuple[JointProtocol, ...] = (LSP14, H36M14, H36M17)


def _check_joints(name: str, joints: torch.Tensor, dims: int = 3) -> None:
    if not isinstance(joints, torch.Tensor) or joints.ndim != 3 or joints.shape[-1] != dims:
        got = tuple(joints.shape) if isinstance(joints, torch.Tensor) else type(joints).__name__
        raise InputError(
            f"{name} must be a (B, J, {dims}) tensor of joints, got {got}; for one person use {name}[None]"
        )


def _check_pair(pred: torch.Tensor, gt: torch.Tensor, dims: int = 3) -> None:
    _check_joints("pred", pred, dims)
    _check_joints("gt", gt, dims)
    if pred.shape != gt.shape:
        raise InputError(
            f"pred and gt must have the same shape (B, J, {dims}), got {tuple(pred.shape)} and "
            f"{tuple(gt.shape)}: select the same joints on both sides (see JointProtocol)"
        )


def root_relative(joints: torch.Tensor, root: tuple[int, ...]) -> torch.Tensor:
    """Joints (B, J, 3) minus the mean of the ``root`` joints of each row."""
    _check_joints("joints", joints)
    if not root or any(not 0 <= i < joints.shape[1] for i in root):
        raise InputError(f"root must name joints in [0, {joints.shape[1]}), got {root}")
    return joints - joints[:, list(root)].mean(dim=1, keepdim=True)


def select_predicted(protocol: JointProtocol, joints: torch.Tensor) -> torch.Tensor:
    """The protocol's joints, root-relative: (B, 49 or 17, 3) -> (B, K, 3).

    ``joints`` are the body model's 49 (``predicted_from == "spin49"``) or the 17 regressed
    Human3.6M joints (``"h36m17"``); ground truth from SMPL parameters is selected the same way.
    """
    expected = NUM_SPIN_JOINTS if protocol.predicted_from == "spin49" else NUM_H36M_JOINTS
    _check_joints("joints", joints)
    if joints.shape[1] != expected:
        raise InputError(
            f"protocol {protocol.name} selects from {expected} joints ({protocol.predicted_from}), "
            f"got {joints.shape[1]}"
        )
    return root_relative(joints, protocol.predicted_root)[:, list(protocol.predicted)]


def select_gt24(protocol: JointProtocol, joints_3d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The protocol's joints of SPIN's 24 ground-truth 3D joints, root-relative.

    Convention: SPIN's eval.py compares with ``S[:, J24_TO_J14, :3]`` as stored, which SPIN's
    preprocessing centred on Human3.6M's pelvis (S[14] = 0); here the root is subtracted
    explicitly, which changes nothing for SPIN's files and makes camera-frame ``S`` (synthetic
    sets, mmpose's files) comparable.

    Args:
        joints_3d: (B, 24, 4) metres x, y, z, confidence (a dataset's ``S``).

    Returns:
        joints (B, K, 3); valid (B,) bool: rows whose selected and root joints are all confident.
    """
    if not isinstance(joints_3d, torch.Tensor) or tuple(joints_3d.shape[1:]) != (24, 4):
        got = tuple(joints_3d.shape) if isinstance(joints_3d, torch.Tensor) else type(joints_3d).__name__
        raise InputError(f"joints_3d must be (B, 24, 4) x, y, z, confidence (a dataset's S), got {got}")
    used = list(protocol.gt24) + list(protocol.gt24_root)
    valid = (joints_3d[:, used, 3] > 0).all(dim=1)
    joints = root_relative(joints_3d[..., :3], protocol.gt24_root)[:, list(protocol.gt24)]
    return joints, valid


def mpjpe(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Mean per-joint position error: (B, J, 3), (B, J, 3) -> (B,) mean Euclidean distance.

    Compares the joints as given: centre both first (``select_predicted``, ``select_gt24``).
    """
    _check_pair(pred, gt)
    return (pred - gt).norm(dim=-1).mean(dim=-1)


def similarity_align(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """``pred`` moved by the similarity transform (scale, rotation, translation) that brings it
    closest to ``gt`` in the least-squares sense: SPIN's ``compute_similarity_transform``, batched.

    Convention: orthogonal Procrustes with scale (Umeyama): centre both, K = X_pred^T X_gt,
    K = U S V^T, R = V diag(1, 1, sign det(U V^T)) U^T (a rotation, never a reflection),
    scale = tr(R K) / |X_pred|^2, t = mean_gt - scale R mean_pred. Computed in float64 (float32
    on MPS), returned in ``pred``'s dtype. A row whose pred joints all coincide has no scale:
    it maps to the ground truth's mean.

    Args:
        pred, gt: (B, J, 3), J >= 3 for a meaningful rotation.

    Returns:
        (B, J, 3) aligned pred.
    """
    _check_pair(pred, gt)
    wide = torch.float32 if pred.device.type == "mps" else torch.float64
    p, g = pred.to(wide), gt.to(wide)
    mu_p, mu_g = p.mean(dim=1, keepdim=True), g.mean(dim=1, keepdim=True)
    x_p, x_g = p - mu_p, g - mu_g  # (B, J, 3)
    variance = x_p.square().sum(dim=(1, 2))  # (B,)
    k = x_p.transpose(1, 2) @ x_g  # (B, 3, 3): sum_j p_j g_j^T
    u, _, vh = torch.linalg.svd(k)
    v = vh.transpose(1, 2)
    z = torch.eye(3, dtype=wide, device=p.device).repeat(p.shape[0], 1, 1)
    z[:, 2, 2] = torch.sign(torch.linalg.det(u @ vh))
    rotation = v @ z @ u.transpose(1, 2)  # (B, 3, 3)
    trace = torch.diagonal(rotation @ k, dim1=1, dim2=2).sum(-1)
    scale = torch.where(variance > 0, trace / variance.clamp_min(torch.finfo(wide).tiny), 0.0)
    aligned = scale[:, None, None] * (x_p @ rotation.transpose(1, 2)) + mu_g
    return aligned.to(pred.dtype)


def pa_mpjpe(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Procrustes-aligned MPJPE, SPIN's "reconstruction error": (B, J, 3) x 2 -> (B,)."""
    return mpjpe(similarity_align(pred, gt), gt)


#: Right hip, left hip, right shoulder, left shoulder among the 14 LSP joints (``LSP14_JOINT_NAMES``).
LSP14_TORSO: tuple[int, int, int, int] = (2, 3, 8, 9)


def torso_normal(joints: torch.Tensor, torso: tuple[int, int, int, int] = LSP14_TORSO) -> torch.Tensor:
    """The direction the torso faces: (B, J, 3) joints -> (B, 3) unit vectors.

    Convention: ``torso`` indexes (right hip, left hip, right shoulder, left shoulder); across =
    right -> left (hips and shoulders averaged), up = mid-hips -> mid-shoulders, normal =
    across x up (the chest's side for a person upright in a right-handed frame), normalised. A
    collapsed torso (no area) gives a zero vector.
    """
    _check_joints("joints", joints)
    if len(torso) != 4 or any(not 0 <= i < joints.shape[1] for i in torso):
        raise InputError(
            f"torso must name 4 joints (right hip, left hip, right shoulder, left shoulder) in "
            f"[0, {joints.shape[1]}), got {torso}"
        )
    r_hip, l_hip, r_shoulder, l_shoulder = (joints[:, i] for i in torso)
    across = (l_hip - r_hip + l_shoulder - r_shoulder) / 2
    up = (r_shoulder + l_shoulder - r_hip - l_hip) / 2
    normal = torch.linalg.cross(across, up)
    length = normal.norm(dim=-1, keepdim=True)
    return torch.where(length > 0, normal / length.clamp_min(torch.finfo(normal.dtype).tiny), 0.0)


def facing_error(
    pred: torch.Tensor, gt: torch.Tensor, torso: tuple[int, int, int, int] = LSP14_TORSO
) -> torch.Tensor:
    """Angle (radians, in [0, pi]) between the torso normals of ``pred`` and ``gt`` (``torso_normal``).

    Compares joints in the same (camera) frame, never after Procrustes alignment: a fit that
    faces away from the camera while the person faces it has an error near pi. "Wrong-facing"
    is an error above pi / 2. A collapsed torso on either side gives pi / 2.

    Args:
        pred, gt: (B, J, 3) joints in one frame (e.g. the 14 LSP joints, ``select_predicted``).

    Returns:
        (B,) angles.
    """
    _check_pair(pred, gt)
    cosine = (torso_normal(pred, torso) * torso_normal(gt, torso)).sum(-1).clamp(-1.0, 1.0)
    return torch.arccos(cosine)


def pck(
    pred: torch.Tensor, gt: torch.Tensor, threshold: float | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Percentage of correct keypoints, per joint.

    Convention (mmpose's ``keypoint_pck_accuracy`` with a box-size normaliser): a visible joint
    is correct when its distance to the ground truth is below ``threshold``; spinfits passes
    alpha * box side, the box being SPIN's crop box (``crop_res`` px in the crop frame), with
    alpha = 0.05 by default. PCK over a set = correct / visible, pooled over all its joints.

    Args:
        pred: (B, J, 2) pixels x, y. gt: (B, J, 3) pixels x, y, visibility (> 0 = annotated).
        threshold: pixels, a float or (B,) per row.

    Returns:
        correct (B, J) bool (False where not visible); visible (B, J) bool.
    """
    _check_joints("pred", pred, 2)
    _check_joints("gt", gt, 3)
    if pred.shape[:2] != gt.shape[:2]:
        raise InputError(
            f"pred (B, J, 2) and gt (B, J, 3) must have the same B and J, got {tuple(pred.shape)} "
            f"and {tuple(gt.shape)}"
        )
    threshold = torch.as_tensor(threshold, dtype=pred.dtype, device=pred.device)
    if threshold.ndim not in (0, 1) or (threshold.ndim == 1 and threshold.shape[0] != pred.shape[0]):
        raise InputError(f"threshold must be a float or (B,) pixels, got shape {tuple(threshold.shape)}")
    visible = gt[..., 2] > 0
    limit = threshold if threshold.ndim == 0 else threshold[:, None]
    distance = (pred - gt[..., :2]).norm(dim=-1)
    return visible & (distance < limit), visible


#: The 15 Human3.6M actions, as SPIN's image names spell them; other spellings map here.
H36M_ACTIONS: tuple[str, ...] = (
    "Directions",
    "Discussion",
    "Eating",
    "Greeting",
    "Phoning",
    "Photo",
    "Posing",
    "Purchases",
    "Sitting",
    "SittingDown",
    "Smoking",
    "Waiting",
    "WalkDog",
    "Walking",
    "WalkTogether",
)
_ACTION_ALIASES = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog", "WalkingTogether": "WalkTogether"}
#: SPIN's Human3.6M image names: ``S9_Directions_1.54138969_000001.jpg`` (subject, action with an
#: optional sub-sequence number, camera, frame), possibly under a folder.
_H36M_NAME = re.compile(r"^S\d+_(?P<action>[A-Za-z]+)(?:[ _]\d+)?\.\d+_\d+\.\w+$")


def h36m_action(imgname: str) -> str | None:
    """The Human3.6M action of an image name in SPIN's naming, or None if it is not one.

    ``h36m_action("images/S9_Directions_1.54138969_000001.jpg") == "Directions"``;
    "TakingPhoto" and "WalkingDog" are reported as "Photo" and "WalkDog".
    """
    match = _H36M_NAME.match(PurePosixPath(str(imgname).replace("\\", "/")).name)
    if match is None:
        return None
    action = _ACTION_ALIASES.get(match.group("action"), match.group("action"))
    return action if action in H36M_ACTIONS else None
