"""The fit loss of SPIN's fits dictionary: one definition for the store, precompute and training.

``loss = mean over the 49 joints of conf^2 * gmof(projection - keypoint, sigma)`` (ignored joints
count as zero: SPIN's ``get_fitting_loss(...).mean(-1)``), with the camera either given
(``fit_loss_at``) or, for a stored fit, estimated from the fit's joints and the keypoints by
SPIN's weighted least squares (``fit_loss``), exactly as SPIN's trainer scores stored fits. Unit: squared pixels of SPIN's 224-px
crop: each joint's Geman-McClure term is a squared reprojection error in crop pixels, bounded by
sigma² = 10⁴ px²; the loss is their mean over all 49 joints (joints without a keypoint count as 0),
weighted by confidence² (the store's ``schema.LOSS_UNIT``).
"""

from __future__ import annotations

import numpy as np
import torch

from spinfits.errors import InputError
from spinfits.fitting.body.body_joints import BodyModel, body_joints
from spinfits.fitting.body.model_files import BodyModelFiles
from spinfits.fitting.data.spin_crop import CROP_CENTER, FOCAL_LENGTH
from spinfits.fitting.smplify.camera import estimate_translation, perspective_projection
from spinfits.fitting.smplify.losses import DEFAULT_SIGMA, reprojection_loss


def _center(keypoints: torch.Tensor, camera_center: torch.Tensor | None) -> torch.Tensor:
    if camera_center is None:
        return torch.full(
            (keypoints.shape[0], 2), CROP_CENTER, dtype=keypoints.dtype, device=keypoints.device
        )
    if camera_center.shape != (keypoints.shape[0], 2):
        raise InputError(
            f"camera_center must be (B, 2) pixels, got {tuple(camera_center.shape)} for "
            f"B = {keypoints.shape[0]}; pass None for SPIN's crop centre (112, 112)"
        )
    return camera_center.to(keypoints)


def fit_loss_from_joints(
    joints: torch.Tensor,
    cam_t: torch.Tensor,
    keypoints: torch.Tensor,
    focal_length: float = FOCAL_LENGTH,
    camera_center: torch.Tensor | None = None,
    sigma: float = DEFAULT_SIGMA,
) -> torch.Tensor:
    """(B, 49, 3) joints, (B, 3) cam_t, (B, 49, 3) keypoints -> (B,) fit loss; NaN -> +inf."""
    projected = perspective_projection(joints, cam_t, focal_length, _center(keypoints, camera_center))
    loss = reprojection_loss(projected, keypoints, sigma).mean(dim=-1)
    bad = ~torch.isfinite(loss) | (cam_t[:, 2] <= 0)
    return torch.where(bad, torch.full_like(loss, float("inf")), loss)


def fit_loss_at(
    model: BodyModel,
    pose: torch.Tensor,
    betas: torch.Tensor,
    cam_t: torch.Tensor,
    keypoints: torch.Tensor,
    focal_length: float = FOCAL_LENGTH,
    camera_center: torch.Tensor | None = None,
    sigma: float = DEFAULT_SIGMA,
) -> torch.Tensor:
    """Fit loss (B,) of pose (B, 72), betas (B, 10) seen from a given cam_t (B, 3)."""
    with torch.no_grad():
        joints = body_joints(model, pose, betas)
        return fit_loss_from_joints(joints, cam_t, keypoints, focal_length, camera_center, sigma)


def fit_loss(
    model: BodyModel,
    pose: torch.Tensor,
    betas: torch.Tensor,
    keypoints: torch.Tensor,
    focal_length: float = FOCAL_LENGTH,
    camera_center: torch.Tensor | None = None,
    sigma: float = DEFAULT_SIGMA,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit loss of a stored fit: cam_t by SPIN's ``estimate_translation``, then ``fit_loss_at``.

    Args:
        pose: (B, 72), betas: (B, 10), keypoints: (B, 49, 3) crop pixels + confidence.

    Returns:
        loss (B,), +inf where the camera cannot be estimated (fewer than two confident
        ground-truth keypoints); cam_t (B, 3) the estimated camera.
    """
    with torch.no_grad():
        joints = body_joints(model, pose, betas)
        cam_t, solvable = estimate_translation(joints, keypoints, focal_length, camera_center)
        loss = fit_loss_from_joints(joints, cam_t, keypoints, focal_length, camera_center, sigma)
        return torch.where(solvable, loss, torch.full_like(loss, float("inf"))), cam_t


def score_fits(
    files: BodyModelFiles,
    pose: np.ndarray,
    betas: np.ndarray,
    keypoints: np.ndarray,
    device: torch.device | str = "cpu",
    batch_size: int = 4096,
) -> np.ndarray:
    """SPIN's loss of given fits (e.g. SPIN static fits) as SPIN's trainer scores stored fits.

    Args:
        pose: (N, 72), betas: (N, 10), keypoints: (N, 49, 3) crop pixels + confidence.

    Returns:
        (N,) float32 losses; +inf where the camera cannot be estimated.
    """
    from spinfits.fitting.body.joints_only import JointsOnlyBody

    if pose.shape[0] != keypoints.shape[0] or betas.shape[0] != keypoints.shape[0]:
        raise InputError(
            f"fits and keypoints must have one row per sample: pose {pose.shape}, betas "
            f"{betas.shape}, keypoints {keypoints.shape}; are they of the same dataset?"
        )
    model = JointsOnlyBody(files, torch.device(device), torch.float32)
    losses = []
    for start in range(0, pose.shape[0], batch_size):
        part = slice(start, start + batch_size)
        tensors = [
            torch.as_tensor(np.asarray(a[part]), dtype=torch.float32, device=device)
            for a in (pose, betas, keypoints)
        ]
        loss, _ = fit_loss(model, *tensors)
        losses.append(loss.cpu().numpy())
    return np.concatenate(losses).astype(np.float32)
