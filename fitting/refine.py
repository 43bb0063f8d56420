"""Refine given fits (SPIN static fits, or the store's current ones) with SMPLify."""

from __future__ import annotations

import numpy as np
import torch

from spinfits.fitting.offline_init import mean_initialisation
from spinfits.fitting.smplify import Progress, SMPLify
from spinfits.fitting.smplify_config import FitResult
from spinfits.fitting.body_joints import body_joints
from spinfits.fitting.camera import estimate_translation


def refine_fits(smplify: SMPLify, pose: np.ndarray | torch.Tensor, betas: np.ndarray | torch.Tensor,
                keypoints: np.ndarray | torch.Tensor, progress: Progress | None = None) -> FitResult:
    """SMPLify from given fits: pose (N, 72), betas (N, 10), keypoints (N, 49, 3) crop pixels.

    The camera is SPIN's weighted least-squares estimate for the given body (as SPIN's trainer
    scores a stored fit); rows where it cannot be estimated take the mean initialisation's.
    """
    options = dict(device=smplify.device, dtype=smplify.dtype)
    pose = torch.as_tensor(pose, **options)
    betas = torch.as_tensor(betas, **options)
    keypoints = torch.as_tensor(keypoints, **options)
    _, _, fallback = mean_initialisation(smplify, keypoints)
    with torch.no_grad():
        joints = body_joints(smplify.joints_model, pose, betas)
        cam_t, solvable = estimate_translation(joints, keypoints, smplify.config.focal_length)
    usable = solvable & (cam_t[:, 2] > 0)
    cam_t = torch.where(usable[:, None], cam_t, fallback)
    return smplify.fit(pose, betas, cam_t, keypoints, progress=progress)
