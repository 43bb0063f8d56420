"""Outlier rejection after a fit: keypoints far off the fitted body are dropped, the row refit.

A confident keypoint whose reprojection error exceeds ``max(min_px, factor * s)`` (``s`` =
1.4826 x the row's median error over its confident joints, a robust standard deviation) is
treated as a wrong detection: its confidence is set to 0 and the row is refit from its fit.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import torch

from spinfits.fitting.body.body_joints import body_joints
from spinfits.fitting.smplify.camera import perspective_projection
from spinfits.fitting.smplify.config import FitResult
from spinfits.fitting.smplify.fitter import SMPLify
from spinfits.fitting.smplify.losses import fitting_confidence

logger = logging.getLogger(__name__)


def reject_outliers(
    result: FitResult,
    keypoints: torch.Tensor,
    center: torch.Tensor,
    smplify: SMPLify,
    refit: SMPLify,
    factor: float,
    min_px: float,
) -> FitResult:
    """``result`` (N rows fitted by ``smplify`` to ``keypoints`` (N, 49, 3), camera centres
    ``center`` (N, 2)) with rows that had outliers refit by ``refit`` without them; rows whose
    refit fails keep their fit. Threshold: ``max(min_px, factor * robust std)`` crop pixels."""
    with torch.no_grad():
        joints = body_joints(smplify.joints_model, result.pose, result.betas)
        pixels = perspective_projection(joints, result.cam_t, smplify.config.focal_length, center)
    error = (pixels - keypoints[..., :2]).norm(dim=-1)  # (N, 49)
    confident = fitting_confidence(keypoints) > 0
    masked = torch.where(confident, error, torch.full_like(error, float("nan")))
    scale = 1.4826 * masked.nanmedian(dim=1).values  # (N,)
    threshold = torch.clamp(factor * scale, min=min_px)
    outlier = confident & (error > threshold[:, None]) & result.fitted[:, None]
    rows = torch.nonzero(outlier.any(1))[:, 0]
    if not rows.numel():
        return result
    logger.info(
        "%d rows had keypoints far off their fit (%d keypoints): refit without them",
        int(rows.numel()),
        int(outlier.sum()),
    )
    cleaned = keypoints[rows].clone()
    cleaned[..., 2] = torch.where(outlier[rows], torch.zeros_like(cleaned[..., 2]), cleaned[..., 2])
    fit = refit.fit(result.pose[rows], result.betas[rows], result.cam_t[rows], cleaned, center[rows])
    keep = fit.fitted
    rows = rows[keep]
    pose, betas, cam_t = result.pose.clone(), result.betas.clone(), result.cam_t.clone()
    iterations = result.iterations.clone()
    pose[rows], betas[rows], cam_t[rows] = fit.pose[keep], fit.betas[keep], fit.cam_t[keep]
    iterations[rows] += fit.iterations[keep]
    return replace(result, pose=pose, betas=betas, cam_t=cam_t, iterations=iterations)
