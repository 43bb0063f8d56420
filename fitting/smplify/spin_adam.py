"""SPIN's SMPLify loop (Adam, fixed iteration counts): the reference the fast path is held to.

Stage 1 optimises [global orientation, cam_t] on ``camera_fitting_loss``, stage 2
[body pose, betas, global orientation] on ``body_fitting_loss`` with the camera fixed, each with
Adam (lr ``step_size``, betas (0.9, 0.999)) for a fixed number of iterations, the batch loss
being the sum of the per-sample losses (so a sample's gradient ignores its batch-mates).
Unlike SPIN, a sample whose parameters stop being finite keeps its last finite iterate.
"""

from __future__ import annotations

import torch

from spinfits.fitting.body.body_joints import BodyModel, body_joints
from spinfits.fitting.smplify.camera import perspective_projection
from spinfits.fitting.smplify.losses import LossWeights, body_fitting_loss, camera_fitting_loss
from spinfits.fitting.smplify.priors import GmmPosePrior


def _keep_finite(last_good: list[torch.Tensor], params: list[torch.Tensor]) -> None:
    with torch.no_grad():
        finite = torch.stack([torch.isfinite(p).all(-1) for p in params]).all(0)
        for good, param in zip(last_good, params):
            good.copy_(torch.where(finite[:, None], param, good))


def spin_adam_fit(
    model: BodyModel,
    prior: GmmPosePrior,
    pose: torch.Tensor,
    betas: torch.Tensor,
    cam_t: torch.Tensor,
    keypoints: torch.Tensor,
    camera_center: torch.Tensor,
    focal_length: float,
    weights: LossWeights,
    camera_iterations: int,
    body_iterations: int,
    step_size: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One batch: pose (B, 72), betas (B, 10), cam_t (B, 3), keypoints (B, 49, 3) pixels + conf,
    camera_center (B, 2) -> fitted (pose, betas, cam_t)."""
    init_cam_t = cam_t.detach().clone()
    camera_t = cam_t.detach().clone().requires_grad_(True)
    orient = pose[:, :3].detach().clone().requires_grad_(True)
    body_pose = pose[:, 3:].detach().clone()
    shape = betas.detach().clone()

    def project(
        current_orient: torch.Tensor,
        current_body: torch.Tensor,
        current_shape: torch.Tensor,
        translation: torch.Tensor,
    ) -> torch.Tensor:
        joints = body_joints(model, torch.cat([current_orient, current_body], 1), current_shape)
        return perspective_projection(joints, translation, focal_length, camera_center)

    params = [orient, camera_t]
    last_good = [p.detach().clone() for p in params]
    optimizer = torch.optim.Adam(params, lr=step_size, betas=(0.9, 0.999))
    for _ in range(camera_iterations):
        loss = camera_fitting_loss(
            project(orient, body_pose, shape, camera_t),
            camera_t,
            init_cam_t,
            keypoints,
            weights.depth_loss_weight,
        )
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
        _keep_finite(last_good, params)
    orient, camera_t = (p.detach().clone() for p in last_good)

    body_pose.requires_grad_(True)
    shape.requires_grad_(True)
    orient.requires_grad_(True)
    params = [body_pose, shape, orient]
    last_good = [p.detach().clone() for p in params]
    optimizer = torch.optim.Adam(params, lr=step_size, betas=(0.9, 0.999))
    for _ in range(body_iterations):
        loss = body_fitting_loss(
            project(orient, body_pose, shape, camera_t), keypoints, body_pose, shape, prior, weights
        )
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
        _keep_finite(last_good, params)
    body_pose, shape, orient = last_good
    return torch.cat([orient, body_pose], 1), shape, camera_t
