"""SMPLify's loss terms, per sample, exactly as SPIN defines them (smplify/losses.py).

Every function returns per-sample (or per-joint) values; the solvers sum them. Convention:
keypoints are (B, 49, 3) pixels x, y, confidence in the frame of the camera that projected
``projected``; SPIN's joint order (``spinfits.fitting.body.joints``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from spinfits.errors import InputError
from spinfits.fitting.body.joints import GT_TORSO_JOINTS, OPENPOSE_TORSO_JOINTS, SMPLIFY_IGNORED_JOINTS
from spinfits.fitting.smplify.priors import GmmPosePrior, angle_prior

#: Geman-McClure scale of the reprojection term, pixels (SPIN's ``sigma=100``).
DEFAULT_SIGMA = 100.0


@dataclass(frozen=True)
class LossWeights:
    """SPIN's SMPLify weights (each is squared in the loss, as SPIN does)."""

    sigma: float = DEFAULT_SIGMA  # Geman-McClure scale, pixels
    pose_prior_weight: float = 4.78
    angle_prior_weight: float = 15.2
    shape_prior_weight: float = 5.0
    depth_loss_weight: float = 100.0

    def __post_init__(self) -> None:
        # Squared in the loss: a negative weight would silently act as its positive value.
        for name in ("pose_prior_weight", "angle_prior_weight", "shape_prior_weight", "depth_loss_weight"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise InputError(
                    f"LossWeights.{name} must be a finite number >= 0 (it is squared in the loss, "
                    f"so a negative weight would act as its positive value), got {value}"
                )
        if not math.isfinite(self.sigma) or self.sigma <= 0:
            raise InputError(f"LossWeights.sigma must be a finite number of pixels > 0, got {self.sigma}")


def gmof(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Geman-McClure: ``sigma^2 x^2 / (sigma^2 + x^2)``, elementwise."""
    x_squared = x**2
    sigma_squared = sigma**2
    return sigma_squared * x_squared / (sigma_squared + x_squared)


def fitting_confidence(keypoints: torch.Tensor) -> torch.Tensor:
    """(B, 49, 3) -> (B, 49) confidences with SMPLify's ignored joints set to 0 (a copy)."""
    confidence = keypoints[..., 2].clone()
    confidence[:, list(SMPLIFY_IGNORED_JOINTS)] = 0.0
    return confidence


def reprojection_loss(
    projected: torch.Tensor, keypoints: torch.Tensor, sigma: float = DEFAULT_SIGMA
) -> torch.Tensor:
    """Stage-2 data term per joint: (B, 49, 2), (B, 49, 3) -> (B, 49).

    ``conf^2 * sum_xy gmof(projected - keypoint)`` with the ignored joints' confidence 0: the
    per-joint values of SPIN's ``get_fitting_loss``.
    """
    confidence = fitting_confidence(keypoints)
    error = gmof(projected - keypoints[..., :2], sigma).sum(-1)
    return confidence**2 * error


def torso_joints_openpose_valid(keypoints: torch.Tensor) -> torch.Tensor:
    """(B, 49, 3) -> (B,) bool: all four OpenPose hips and shoulders have confidence > 0."""
    return (keypoints[:, list(OPENPOSE_TORSO_JOINTS), 2] > 0).all(dim=1)


def camera_fitting_loss(
    projected: torch.Tensor,
    cam_t: torch.Tensor,
    init_cam_t: torch.Tensor,
    keypoints: torch.Tensor,
    depth_loss_weight: float = 100.0,
) -> torch.Tensor:
    """Stage-1 loss per sample: (B, 49, 2) projected joints -> (B,).

    Squared pixel error of the four torso joints (not confidence weighted), taken from OpenPose
    when all four OpenPose torso keypoints are confident, else from the ground-truth hips and
    shoulders; plus ``depth_loss_weight^2 * (t_z - t_z_init)^2``.
    """
    op, gt = list(OPENPOSE_TORSO_JOINTS), list(GT_TORSO_JOINTS)
    error_op = ((keypoints[:, op, :2] - projected[:, op]) ** 2).sum(dim=(1, 2))
    error_gt = ((keypoints[:, gt, :2] - projected[:, gt]) ** 2).sum(dim=(1, 2))
    use_op = torso_joints_openpose_valid(keypoints)
    depth = depth_loss_weight**2 * (cam_t[:, 2] - init_cam_t[:, 2]) ** 2
    return torch.where(use_op, error_op, error_gt) + depth


def body_prior_loss(
    body_pose: torch.Tensor, betas: torch.Tensor, pose_prior: GmmPosePrior, weights: LossWeights
) -> torch.Tensor:
    """Stage-2 priors per sample: GMM pose + elbow/knee angle + shape, (B, 69), (B, 10) -> (B,)."""
    return (
        weights.pose_prior_weight**2 * pose_prior(body_pose)
        + weights.angle_prior_weight**2 * angle_prior(body_pose).sum(dim=-1)
        + weights.shape_prior_weight**2 * (betas**2).sum(dim=-1)
    )


def body_fitting_loss(
    projected: torch.Tensor,
    keypoints: torch.Tensor,
    body_pose: torch.Tensor,
    betas: torch.Tensor,
    pose_prior: GmmPosePrior,
    weights: LossWeights,
) -> torch.Tensor:
    """Stage-2 objective per sample (SPIN's ``body_fitting_loss`` before its batch sum): (B,)."""
    data = reprojection_loss(projected, keypoints, weights.sigma).sum(dim=-1)
    return data + body_prior_loss(body_pose, betas, pose_prior, weights)
