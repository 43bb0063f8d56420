"""Refine given fits (SPIN static fits, or the store's current ones) with SMPLify."""

from __future__ import annotations

import numpy as np
import torch

from spinfits.fitting.offline.initial_camera import initial_camera
from spinfits.fitting.smplify.config import FitResult
from spinfits.fitting.smplify.fitter import Progress, SMPLify


def refine_fits(
    smplify: SMPLify,
    pose: np.ndarray | torch.Tensor,
    betas: np.ndarray | torch.Tensor,
    keypoints: np.ndarray | torch.Tensor,
    progress: Progress | None = None,
) -> FitResult:
    """SMPLify from given fits: pose (N, 72), betas (N, 10), keypoints (N, 49, 3) crop pixels.

    The camera is the least-squares estimate for the given body against every confident
    keypoint (``initial_camera``, as for fits from scratch).
    """
    options = dict(device=smplify.device, dtype=smplify.dtype)
    pose = torch.as_tensor(pose, **options)
    betas = torch.as_tensor(betas, **options)
    keypoints = torch.as_tensor(keypoints, **options)
    cam_t = initial_camera(smplify, pose, betas, keypoints)
    return smplify.fit(pose, betas, cam_t, keypoints, progress=progress)
