"""SPIN's training losses (its trainer's defaults), in one function.

    loss = 60 * (keypoint * L2d + keypoint_3d * L3d + pose * Lpose + betas * Lbetas
                 + shape * Lshape + mean(exp(-10 s)^2))

L2d: confidence-weighted MSE between the predicted joints projected with the predicted camera and
the keypoints, both normalised to [-1, 1] over the crop (OpenPose joints weighted ``openpose``,
ground-truth joints ``gt``). L3d: MSE of pelvis-centred 3D joints where the dataset has them.
Lpose / Lbetas: MSE of rotation matrices / betas against the best fit, over valid fits only;
Lshape: L1 of vertices against the best fit's (weight 0 in SPIN). The last term keeps the
weak-perspective scale s positive.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spinfits.errors import InputError
from spinfits.fitting.body.joints import NUM_OPENPOSE_JOINTS
from spinfits.fitting.data.spin_crop import CROP_RES, FOCAL_LENGTH
from spinfits.fitting.smplify.camera import perspective_projection


@dataclass(frozen=True)
class SpinLossWeights:
    """SPIN's defaults (``train_options.py``)."""

    keypoint: float = 5.0
    keypoint_3d: float = 5.0
    pose: float = 1.0
    betas: float = 0.001
    shape: float = 0.0
    openpose: float = 0.0
    gt: float = 1.0
    scale: float = 60.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not value >= 0:
                raise InputError(f"SpinLossWeights.{name} must be >= 0, got {value}")


@dataclass(frozen=True)
class SupervisionTargets:
    """What a batch is supervised with (augmented frame).

    keypoints: (B, 49, 3) crop pixels x, y, confidence; opt_rotmat: (B, 24, 3, 3) best fit;
    opt_betas: (B, 10); opt_vertices: (B, V, 3) metres, no translation; valid_fit: (B,) bool;
    joints_3d: (B, 24, 4) x, y, z metres + confidence, or None; has_joints_3d: (B,) bool or None.
    """

    keypoints: torch.Tensor
    opt_rotmat: torch.Tensor
    opt_betas: torch.Tensor
    opt_vertices: torch.Tensor
    valid_fit: torch.Tensor
    joints_3d: torch.Tensor | None = None
    has_joints_3d: torch.Tensor | None = None


def spin_losses(
    pred_rotmat: torch.Tensor,
    pred_betas: torch.Tensor,
    pred_camera: torch.Tensor,
    pred_cam_t: torch.Tensor,
    pred_joints: torch.Tensor,
    pred_vertices: torch.Tensor,
    targets: SupervisionTargets,
    weights: SpinLossWeights = SpinLossWeights(),  # noqa: B008 (a frozen dataclass: immutable)
    focal_length: float = FOCAL_LENGTH,
    crop_res: int = CROP_RES,
) -> dict[str, torch.Tensor]:
    """SPIN's loss terms and ``total`` (scalars).

    pred_rotmat (B, 24, 3, 3), pred_betas (B, 10), pred_camera (B, 3) weak perspective,
    pred_cam_t (B, 3) metres, pred_joints (B, 49, 3), pred_vertices (B, V, 3).
    """
    batch = pred_joints.shape[0]
    half = crop_res / 2.0
    center = torch.zeros(batch, 2, dtype=pred_joints.dtype, device=pred_joints.device)
    projected = perspective_projection(pred_joints, pred_cam_t, focal_length, center) / half
    target = targets.keypoints[..., :2] / half - 1.0
    confidence = targets.keypoints[..., 2:].clone()
    confidence[:, :NUM_OPENPOSE_JOINTS] *= weights.openpose
    confidence[:, NUM_OPENPOSE_JOINTS:] *= weights.gt
    keypoint = (confidence * (projected - target) ** 2).mean()

    valid = targets.valid_fit.to(pred_rotmat.dtype)
    n_valid = valid.sum()
    if n_valid > 0:
        pose = (((pred_rotmat - targets.opt_rotmat) ** 2).flatten(1).mean(1) * valid).sum() / n_valid
        betas = (((pred_betas - targets.opt_betas) ** 2).mean(1) * valid).sum() / n_valid
        shape = ((pred_vertices - targets.opt_vertices).abs().flatten(1).mean(1) * valid).sum() / n_valid
    else:
        pose = betas = shape = pred_rotmat.sum() * 0
    keypoint_3d = _keypoint_3d_loss(pred_joints, targets)
    camera = (torch.exp(-10 * pred_camera[:, 0]) ** 2).mean()
    total = weights.scale * (
        weights.keypoint * keypoint
        + weights.keypoint_3d * keypoint_3d
        + weights.pose * pose
        + weights.betas * betas
        + weights.shape * shape
        + camera
    )
    return {
        "total": total,
        "keypoint": keypoint,
        "keypoint_3d": keypoint_3d,
        "pose": pose,
        "betas": betas,
        "shape": shape,
        "camera": camera,
    }


def _keypoint_3d_loss(pred_joints: torch.Tensor, targets: SupervisionTargets) -> torch.Tensor:
    """SPIN's pelvis-centred 3D loss on the 24 ground-truth joints (pelvis = mid-hips)."""
    if targets.joints_3d is None or targets.has_joints_3d is None or not targets.has_joints_3d.any():
        return pred_joints.sum() * 0
    rows = targets.has_joints_3d
    pred = pred_joints[rows, NUM_OPENPOSE_JOINTS:]
    gt, confidence = targets.joints_3d[rows, :, :3], targets.joints_3d[rows, :, 3:]
    pred = pred - (pred[:, 2] + pred[:, 3])[:, None] / 2
    gt = gt - (gt[:, 2] + gt[:, 3])[:, None] / 2
    return (confidence * (pred - gt) ** 2).mean()
