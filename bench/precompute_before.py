"""The offline path's engine as it was before issue 15's cuts, kept to measure them against in one run.

``engine_before()`` swaps into the current code, for the length of a ``with`` block:
``JointsOnlyBody.evaluate`` (the dense Jacobian: a cross product for every (joint, bone) pair,
the correctives' share padded to 72 columns, everything concatenated), ``BodyStage.residuals``
(the full (S, 181, 82) Jacobian, J^T J formed from all of it) and the LM solver's trial step
without its Jacobian. The code below is the old code, unchanged but for names.
"""

from __future__ import annotations

import contextlib
import functools
import math

import torch

import spinfits.fitting.smplify.fitter as smplify_module
from spinfits.fitting.body.joints_only import (
    NUM_BETAS,
    NUM_BONES,
    NUM_PARAMS,
    NUM_POSE_PARAMS,
    JointsEvaluation,
    JointsOnlyBody,
)
from spinfits.fitting.body.rotations import axis_angle_to_matrix_and_right_jacobian, skew
from spinfits.fitting.smplify.levenberg_marquardt import solve_pool
from spinfits.fitting.smplify.priors import ANGLE_PRIOR_INDICES, ANGLE_PRIOR_SIGNS
from spinfits.fitting.smplify.stages import BodyStage, projection_jacobian


def _below_weight(self) -> torch.Tensor:
    """(54, 24) sum of skinning weights of each point below each bone (the old buffer)."""
    table = self.block_weight.new_zeros(self.num_points, NUM_BONES)
    table[self.block_point, self.block_bone] = self.block_weight
    return table


def _evaluate_before(
    self,
    pose: torch.Tensor,
    betas: torch.Tensor,
    with_jacobian: bool = True,
    corrective_jacobian: bool = True,
) -> JointsEvaluation:
    """Joints (B, 49, 3) and, if asked, their Jacobian (B, 49, 3, 82) w.r.t. [pose, betas].

    ``corrective_jacobian=False`` leaves the pose correctives' (small, costly) share out of
    the Jacobian, which is then approximate; the joints are exact either way.
    """
    batch = pose.shape[0]
    rot, right_jac = axis_angle_to_matrix_and_right_jacobian(pose.reshape(batch, NUM_BONES, 3))
    rest = self.joint_template + torch.einsum("jcs,bs->bjc", self.joint_shape, betas)
    relative = torch.cat([rest[:, :1], (rest - rest[:, self.parent_of])[:, 1:]], dim=1)
    rel_shape = self.joint_shape - self.joint_shape[self.parent_of]
    rel_shape = torch.cat([self.joint_shape[:1], rel_shape[1:]], dim=0)  # (24, 3, 10)

    # World rotation Rw (B, 24, 3, 3), world joint o (B, 24, 3), do/dbetas (B, 24, 3, 10).
    world_rot = [rot[:, 0]] + [None] * (NUM_BONES - 1)
    world_pos = [relative[:, 0]] + [None] * (NUM_BONES - 1)
    world_pos_shape = [rel_shape[0].expand(batch, 3, NUM_BETAS)] + [None] * (NUM_BONES - 1)
    for level in self.levels:
        parent = self.parents[level]
        parent_rot = torch.stack([world_rot[p] for p in parent], 1)  # (B, L, 3, 3)
        new_rot = parent_rot @ rot[:, level]
        new_pos = (
            torch.stack([world_pos[p] for p in parent], 1)
            + (parent_rot @ relative[:, level, :, None])[..., 0]
        )
        new_shape = torch.stack([world_pos_shape[p] for p in parent], 1) + (parent_rot @ rel_shape[level])
        for index, joint in enumerate(level):
            world_rot[joint] = new_rot[:, index]
            world_pos[joint] = new_pos[:, index]
            world_pos_shape[joint] = new_shape[:, index]
    world_rot_t = torch.stack(world_rot, 1)
    world_pos_t = torch.stack(world_pos, 1)

    bone_rot = world_rot_t[:, self.pair_bone]  # (B, P, 3, 3)
    weight = self.pair_weight[:, None]  # (P, 1)
    moment = self.pair_moment + torch.einsum("pcs,bs->bpc", self.pair_shape, betas)
    if self.has_pose_correctives:
        eye = torch.eye(3, dtype=pose.dtype, device=pose.device)
        feature = (rot[:, 1:] - eye).reshape(batch, 9 * (NUM_BONES - 1))  # (B, 207)
        moment = moment + torch.einsum("pcf,bf->bpc", self.pair_pose, feature)
    local = moment - rest[:, self.pair_bone] * weight
    pair_points = (bone_rot @ local[..., None])[..., 0] + world_pos_t[:, self.pair_bone] * weight
    grid = pair_points.new_zeros(batch, self.num_points * NUM_BONES, 3)
    grid = grid.index_add(1, self.pair_slot, pair_points)
    grid = grid.reshape(batch, self.num_points, NUM_BONES, 3)  # q summed per (point, bone)
    points = grid.sum(2)  # (B, 54, 3)
    joints = points[:, self.spin_source]
    if not with_jacobian:
        return JointsEvaluation(joints, None)

    # Rotation part: d p_j / d w_k,i = a_k,i x (sum_{pairs below k} q - o_k s).
    axes = (world_rot_t @ right_jac).transpose(-1, -2)  # (B, 24, 3 i, 3 c): a_k,i
    below = torch.einsum("kb,njbc->njkc", self.descendant, grid)  # q summed below bone k
    lever = below - world_pos_t[:, None] * _below_weight(self)[None, :, :, None]  # (B,54,24,3)
    lever = lever[:, self.spin_source]  # (B, 49, 24, 3)
    d_rot = torch.linalg.cross(
        axes[:, None], lever[:, :, :, None, :].expand(-1, -1, -1, 3, -1), dim=-1
    )  # (B, 49, 24, 3 i, 3 c)
    d_pose = d_rot.permute(0, 1, 4, 2, 3).reshape(batch, joints.shape[1], 3, NUM_POSE_PARAMS)
    if self.has_pose_correctives and corrective_jacobian:
        d_pose = d_pose + _pose_corrective_jacobian_before(self, rot, right_jac, bone_rot)
    # Shape part: Rw_b (dm - dJ_b s) + do_b s.
    d_pair_shape = (
        bone_rot @ self.pair_local_shape
        + torch.stack(world_pos_shape, 1)[:, self.pair_bone] * weight[..., None]
    )  # (B, P, 3, 10)
    d_shape = self._sum_pairs(d_pair_shape)[:, self.spin_source]
    return JointsEvaluation(joints, torch.cat([d_pose, d_shape], dim=-1))


def _pose_corrective_jacobian_before(
    self, rot: torch.Tensor, right_jac: torch.Tensor, bone_rot: torch.Tensor
) -> torch.Tensor:
    """(B, 49, 3, 72): the pose correctives' share, through d R_k / d w_k,i = R_k [Jr e_i]x."""
    batch = rot.shape[0]
    generators = skew(right_jac[:, 1:].transpose(-1, -2))  # (B, 23, 3 i, 3, 3)
    d_rot = (rot[:, 1:, None] @ generators).reshape(batch, NUM_BONES - 1, 3, 9)
    # (B, C, 3 c, 23 k, 3 i): d moment / d w_k,i per corrective pair, then to world axes.
    local = torch.einsum("pckn,bkin->bpcki", self.corrective_pose, d_rot)
    world = bone_rot[:, self.corrective_pairs] @ local.reshape(batch, -1, 3, 69)
    total = world.new_zeros(batch, self.num_points, 3, 69)
    total = total.index_add(1, self.pair_point[self.corrective_pairs], world)
    points = total[:, self.spin_source]  # (B, 49, 3, 69)
    return torch.cat([torch.zeros_like(points[..., :3]), points], dim=-1)


def _body_residuals_before(
    self, x: torch.Tensor, rows: torch.Tensor, with_jacobian: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    w = self.weights
    count = x.shape[0]
    pose, betas = x[:, :72], x[:, 72:]
    evaluation = self.model.evaluate(
        pose, betas, with_jacobian=with_jacobian, corrective_jacobian=self.corrective_jacobian
    )
    camera_points = evaluation.joints + self.cam_t[rows][:, None]  # (S, 49, 3)
    pixels = (
        self.focal_length * camera_points[..., :2] / camera_points[..., 2:3]
        + self.camera_center[rows][:, None]
    )
    error = pixels - self.targets[rows]  # (S, 49, 2)
    confidence = self.confidence[rows][..., None]
    scale = torch.rsqrt(w.sigma**2 + error**2)
    r_data = confidence * w.sigma * error * scale
    body = pose[:, 3:]
    component = self.prior.component_nll(body).argmin(dim=1)  # (S,)
    factor = self.prior.precision_factors[component]  # (S, 69, 69)
    prior_scale = w.pose_prior_weight / math.sqrt(2.0)
    r_prior = prior_scale * (factor @ (body - self.prior.means[component])[..., None])[..., 0]
    signs = torch.tensor(ANGLE_PRIOR_SIGNS, dtype=x.dtype, device=x.device)
    angles = list(ANGLE_PRIOR_INDICES)
    r_angle = w.angle_prior_weight * torch.exp(body[:, angles] * signs)
    r_shape = w.shape_prior_weight * betas
    r = torch.cat([r_data.reshape(count, -1), r_prior, r_angle, r_shape], dim=1)
    const = w.pose_prior_weight**2 * self.prior.constants[component]
    if not with_jacobian:
        return r, None, const

    d_data = confidence * w.sigma**3 * scale**3  # d r / d error
    d_pixel = projection_jacobian(camera_points, self.focal_length) @ evaluation.jacobian
    j_data = (d_data[..., None] * d_pixel).reshape(count, -1, NUM_PARAMS)
    j_prior = x.new_zeros(count, 69, NUM_PARAMS)
    j_prior[:, :, 3:72] = prior_scale * factor
    j_angle = x.new_zeros(count, 4, NUM_PARAMS)
    columns = 3 + torch.tensor(angles, device=x.device)
    j_angle[:, torch.arange(4, device=x.device), columns] = r_angle * signs
    j_shape = x.new_zeros(count, 10, NUM_PARAMS)
    j_shape[:, :, 72:] = w.shape_prior_weight * torch.eye(10, dtype=x.dtype, device=x.device)
    jac = torch.cat([j_data, j_prior, j_angle, j_shape], dim=1)
    return r, jac, const


@contextlib.contextmanager
def engine_before():
    """The engine as it was (see module doc) inside the block."""
    saved = (
        JointsOnlyBody.evaluate,
        BodyStage.residuals,
        BodyStage.normal_equations,
        smplify_module.solve_pool,
    )
    JointsOnlyBody.evaluate = _evaluate_before
    BodyStage.residuals = _body_residuals_before
    BodyStage.normal_equations = None  # the solver forms J^T J from the full Jacobian
    smplify_module.solve_pool = functools.partial(solve_pool, trial_jacobian=False)
    try:
        yield
    finally:
        (
            JointsOnlyBody.evaluate,
            BodyStage.residuals,
            BodyStage.normal_equations,
            smplify_module.solve_pool,
        ) = saved
