"""The camera a fit starts from: least squares of a body's joints against the keypoints.

SPIN's weighted least squares over all non-ignored joints (not only the ground-truth ones, so
OpenPose-only rows get a camera too). Rows where even that is impossible (too few confident
keypoints, or a solution behind the camera) start at SPIN's mean camera depth.
"""

from __future__ import annotations

import torch

from spinfits.fitting.body.body_joints import body_joints
from spinfits.fitting.body.joints import NUM_SPIN_JOINTS, SMPLIFY_IGNORED_JOINTS
from spinfits.fitting.data.spin_crop import CROP_RES
from spinfits.fitting.smplify.camera import estimate_translation
from spinfits.fitting.smplify.fitter import SMPLify

#: SPIN's mean weak-perspective scale (its regressor starts from cam = [0.9, 0, 0]).
MEAN_CAMERA_SCALE = 0.9
_CAMERA_JOINTS = tuple(i for i in range(NUM_SPIN_JOINTS) if i not in SMPLIFY_IGNORED_JOINTS)


def initial_camera(
    smplify: SMPLify,
    pose: torch.Tensor,
    betas: torch.Tensor,
    keypoints: torch.Tensor,
    camera_center: torch.Tensor | None = None,
) -> torch.Tensor:
    """(N, 3) camera for a body (pose (N, 72), betas (N, 10)): least squares against every
    confident keypoint, or SPIN's mean camera depth where that is impossible."""
    options = dict(device=smplify.device, dtype=smplify.dtype)
    keypoints = keypoints.to(**options)
    with torch.no_grad():
        joints = body_joints(smplify.joints_model, pose, betas)
        cam_t, solvable = estimate_translation(
            joints, keypoints, smplify.config.focal_length, camera_center, joint_indices=_CAMERA_JOINTS
        )
    depth = 2 * smplify.config.focal_length / (CROP_RES * MEAN_CAMERA_SCALE)
    fallback = torch.tensor([0.0, 0.0, depth], **options).expand_as(cam_t)
    usable = solvable & (cam_t[:, 2] > 0)
    return torch.where(usable[:, None], cam_t, fallback)
