"""SMPLify's two stages as per-sample least-squares problems (residuals + analytic Jacobians).

Both are exact rewrites of SPIN's losses as sums of squares, ``loss = |r|^2 + const``:
- camera stage, x = [global orientation (3), cam_t (3)]: r = torso pixel errors (8) and
  ``w_depth (t_z - t_z_init)`` (1), equal to ``losses.camera_fitting_loss``;
- body stage, x = [pose (72), betas (10)], camera fixed: r = ``conf sigma e / sqrt(sigma^2 + e^2)``
  per pixel error e (98; its square is conf^2 gmof(e)), ``w_pose U_k (theta - mu_k) / sqrt 2``
  for the best mixture component k (69, const ``w_pose^2 * constant_k``), ``w_angle exp(s theta)``
  (4), ``w_shape betas`` (10); equal to ``losses.body_fitting_loss``.
The Gauss-Newton model treats the component k as fixed within a step; the loss that accepts
or rejects a step is the exact one (min over components).
"""

from __future__ import annotations

import math

import torch

from spinfits.fitting.body.joints import GT_TORSO_JOINTS, NUM_SPIN_JOINTS, OPENPOSE_TORSO_JOINTS
from spinfits.fitting.body.joints_only import NUM_PARAMS, JointsOnlyBody
from spinfits.fitting.body.rotations import axis_angle_to_matrix_and_right_jacobian
from spinfits.fitting.smplify.losses import LossWeights, fitting_confidence, torso_joints_openpose_valid
from spinfits.fitting.smplify.priors import ANGLE_PRIOR_INDICES, ANGLE_PRIOR_SIGNS, GmmPosePrior


def projection_jacobian(camera_points: torch.Tensor, focal_length: float) -> torch.Tensor:
    """(..., 3) camera-frame points -> (..., 2, 3) d pixel / d point (``f X / Z``, ``f Y / Z``)."""
    inverse_z = 1.0 / camera_points[..., 2]
    zero = torch.zeros_like(inverse_z)
    fx = focal_length * inverse_z
    return torch.stack(
        [
            torch.stack([fx, zero, -fx * camera_points[..., 0] * inverse_z], -1),
            torch.stack([zero, fx, -fx * camera_points[..., 1] * inverse_z], -1),
        ],
        -2,
    )


class CameraStage:
    """Stage 1 for rows of a batch: pose and betas fixed, optimise [global orient, cam_t].

    Per row (N rows): torso (N, 4, 3) the four torso joints with zero global orientation,
    root (N, 3) the root joint (the centre of the global rotation), keypoints (N, 4, 2) their
    targets (OpenPose torso if all four are confident, else ground truth), init_cam_t (N, 3),
    init_orient (N, 3), camera_center (N, 2). ``confident_torso``: per joint, the OpenPose
    torso keypoint if confident, else the ground-truth one, else no residual (SPIN's stage
    uses all four of one source, whatever their confidence).
    """

    def __init__(
        self,
        model: JointsOnlyBody,
        pose: torch.Tensor,
        betas: torch.Tensor,
        init_cam_t: torch.Tensor,
        keypoints: torch.Tensor,
        camera_center: torch.Tensor,
        focal_length: float,
        weights: LossWeights,
        confident_torso: bool = False,
    ) -> None:
        unrotated = torch.cat([torch.zeros_like(pose[:, :3]), pose[:, 3:]], dim=1)
        joints = model(unrotated, betas)  # (N, 49, 3)
        use_op = torso_joints_openpose_valid(keypoints)[:, None]
        op, gt = list(OPENPOSE_TORSO_JOINTS), list(GT_TORSO_JOINTS)
        self.torso = torch.where(use_op[..., None], joints[:, op], joints[:, gt])
        self.targets = torch.where(use_op[..., None], keypoints[:, op, :2], keypoints[:, gt, :2])
        # (N, 4, 1) residual weight per torso joint: 1 (SPIN), or, with confident_torso, the
        # OpenPose joint where confident, else the ground-truth one, else none (weight 0)
        self.torso_weight = torch.ones_like(self.targets[..., :1])
        if confident_torso:
            op_ok = keypoints[:, op, 2:3] > 0
            gt_ok = keypoints[:, gt, 2:3] > 0
            self.torso = torch.where(op_ok, joints[:, op], joints[:, gt])
            self.targets = torch.where(op_ok, keypoints[:, op, :2], keypoints[:, gt, :2])
            self.torso_weight = (op_ok | gt_ok).to(keypoints.dtype)
        self.root = model.joint_template[0] + betas @ model.joint_shape[0].T  # (N, 3)
        self.init_cam_t = init_cam_t
        self.init_orient = pose[:, :3]
        self.camera_center = camera_center
        self.focal_length = focal_length
        self.depth_weight = weights.depth_loss_weight

    def initial(self, rows: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.init_orient[rows], self.init_cam_t[rows]], dim=1)

    def residuals(
        self, x: torch.Tensor, rows: torch.Tensor, with_jacobian: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        rot, right_jac = axis_angle_to_matrix_and_right_jacobian(x[:, :3])
        root = self.root[rows][:, None]
        lever = (rot[:, None] @ (self.torso[rows] - root)[..., None])[..., 0]  # (S, 4, 3)
        camera_points = lever + root + x[:, None, 3:]
        pixels = (
            self.focal_length * camera_points[..., :2] / camera_points[..., 2:3]
            + self.camera_center[rows][:, None]
        )
        axes = (rot @ right_jac).transpose(-1, -2)  # (S, 3 i, 3): world axis of parameter i
        d_orient = torch.linalg.cross(
            axes[:, None], lever[:, :, None].expand(-1, -1, 3, -1), dim=-1
        ).transpose(-1, -2)  # (S, 4, 3 c, 3 i)
        d_point = torch.cat(
            [d_orient, torch.eye(3, dtype=x.dtype, device=x.device).expand(x.shape[0], 4, 3, 3)], dim=-1
        )  # (S, 4, 3, 6)
        d_pixel = projection_jacobian(camera_points, self.focal_length) @ d_point  # (S, 4, 2, 6)
        depth = self.depth_weight * (x[:, 5] - self.init_cam_t[rows, 2])
        weight = self.torso_weight[rows]  # (S, 4, 1)
        r = torch.cat([(weight * (pixels - self.targets[rows])).reshape(-1, 8), depth[:, None]], dim=1)
        d_depth = torch.zeros_like(x)
        d_depth[:, 5] = self.depth_weight
        jac = torch.cat([(weight[..., None] * d_pixel).reshape(-1, 8, 6), d_depth[:, None]], dim=1)
        return r, jac, torch.zeros_like(depth)


class BodyStage:
    """Stage 2 for rows of a batch: camera fixed, optimise [pose (72), betas (10)].

    Per row (N rows): init_pose (N, 72), init_betas (N, 10), cam_t (N, 3), keypoints (N, 49, 3)
    pixels + confidence, camera_center (N, 2).
    """

    def __init__(
        self,
        model: JointsOnlyBody,
        pose_prior: GmmPosePrior,
        init_pose: torch.Tensor,
        init_betas: torch.Tensor,
        cam_t: torch.Tensor,
        keypoints: torch.Tensor,
        camera_center: torch.Tensor,
        focal_length: float,
        weights: LossWeights,
        corrective_jacobian: bool = True,
        reuse_corrective_jacobian: bool = False,
    ) -> None:
        self.model = model
        self.corrective_jacobian = corrective_jacobian
        # (N, 49, 3, 69) each row's correctives' share, from its first Jacobian evaluation here
        self._corrective = None
        if reuse_corrective_jacobian and corrective_jacobian and model.has_pose_correctives:
            self._corrective = init_pose.new_zeros(init_pose.shape[0], NUM_SPIN_JOINTS, 3, 69)
        # host-side: the next Jacobian evaluation is the first of the rows just started (the
        # solver evaluates rows right after ``initial``), so no device flag is read back per call
        self._first_evaluation = True
        self.prior = pose_prior
        self.init = torch.cat([init_pose, init_betas], dim=1)
        self.cam_t = cam_t
        self.targets = keypoints[..., :2]
        self.confidence = fitting_confidence(keypoints)
        self.camera_center = camera_center
        self.focal_length = focal_length
        self.weights = weights
        self._angles = list(ANGLE_PRIOR_INDICES)  # body-pose indices of the angle prior
        self._signs = torch.tensor(ANGLE_PRIOR_SIGNS, dtype=init_pose.dtype, device=init_pose.device)
        self._angle_columns = 3 + torch.tensor(self._angles, device=init_pose.device)

    def initial(self, rows: torch.Tensor) -> torch.Tensor:
        """(S,) rows -> (S, 82) starting parameters; the next Jacobian evaluation (of these
        rows) computes their correctives' share afresh."""
        self._first_evaluation = True
        return self.init[rows]

    def residuals(
        self, x: torch.Tensor, rows: torch.Tensor, with_jacobian: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """r (S, 181) = [data (98), pose prior (69), angle prior (4), shape prior (10)] and the
        Jacobian of the data residuals only, (S, 98, 82): ``normal_equations`` adds the priors'
        share, whose Jacobian is constant (pose prior, per mixture component) or diagonal."""
        w = self.weights
        count = x.shape[0]
        pose, betas = x[:, :72], x[:, 72:]
        terms = {}

        def data_jacobian_rows(joints: torch.Tensor) -> torch.Tensor:
            """(S, 49, 3) joints -> (S, 49, 2, 3): d r_data / d joint, per joint (and the data
            residuals, kept in ``terms``)."""
            camera_points = joints + self.cam_t[rows][:, None]  # (S, 49, 3)
            pixels = (
                self.focal_length * camera_points[..., :2] / camera_points[..., 2:3]
                + self.camera_center[rows][:, None]
            )
            error = pixels - self.targets[rows]  # (S, 49, 2)
            confidence = self.confidence[rows][..., None]
            scale = torch.rsqrt(w.sigma**2 + error**2)
            terms["data"] = confidence * w.sigma * error * scale
            d_data = confidence * w.sigma**3 * scale**3  # d r / d error
            return d_data[..., None] * projection_jacobian(camera_points, self.focal_length)

        corrective = self.corrective_jacobian
        reuse = with_jacobian and self._corrective is not None and not self._first_evaluation
        if reuse:
            corrective = self._corrective[rows]
        evaluation = self.model.evaluate(
            pose,
            betas,
            with_jacobian=with_jacobian,
            corrective_jacobian=corrective,
            left=data_jacobian_rows if with_jacobian else None,
        )
        if with_jacobian and self._corrective is not None and not reuse:
            self._corrective[rows] = evaluation.corrective
        if with_jacobian:
            self._first_evaluation = False
        if not with_jacobian:
            data_jacobian_rows(evaluation.joints)
        body = pose[:, 3:]
        component = self.prior.component_nll(body).argmin(dim=1)  # (S,)
        factor = self.prior.precision_factors[component]  # (S, 69, 69)
        prior_scale = w.pose_prior_weight / math.sqrt(2.0)
        r_prior = prior_scale * (factor @ (body - self.prior.means[component])[..., None])[..., 0]
        r_angle = w.angle_prior_weight * torch.exp(body[:, self._angles] * self._signs)
        r_shape = w.shape_prior_weight * betas
        r = torch.cat([terms["data"].reshape(count, -1), r_prior, r_angle, r_shape], dim=1)
        const = w.pose_prior_weight**2 * self.prior.constants[component]
        if not with_jacobian:
            return r, None, const
        return r, evaluation.jacobian.reshape(count, -1, NUM_PARAMS), const

    def normal_equations(
        self, x: torch.Tensor, r: torch.Tensor, jac: torch.Tensor, rows: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """J^T J (S, 82, 82) and J^T r (S, 82) of the full residual vector, from the data
        Jacobian ``jac`` (S, 98, 82) and the priors' known structure: the pose prior's Jacobian
        is ``w / sqrt 2 * U_k`` (so its J^T J is ``w^2 / 2 * P_k``, the component's precision),
        the angle and shape priors' are diagonal."""
        w = self.weights
        data_rows = jac.shape[1]
        r_data = r[:, :data_rows]
        r_prior = r[:, data_rows : data_rows + 69]
        r_angle = r[:, data_rows + 69 : data_rows + 73]
        r_shape = r[:, data_rows + 73 :]
        component = self.prior.component_nll(x[:, 3:72]).argmin(dim=1)
        prior_scale = w.pose_prior_weight / math.sqrt(2.0)
        jac_t = jac.transpose(1, 2)
        hessian = jac_t @ jac
        gradient = (jac_t @ r_data[..., None])[..., 0]
        hessian[:, 3:72, 3:72] += prior_scale**2 * self.prior.precisions[component]
        gradient[:, 3:72] += (
            prior_scale
            * (self.prior.precision_factors[component].transpose(1, 2) @ r_prior[..., None])[..., 0]
        )
        d_angle = r_angle * self._signs  # d r_angle / d its pose parameter
        columns = self._angle_columns
        hessian[:, columns, columns] += d_angle**2
        gradient[:, columns] += d_angle * r_angle
        shape = torch.arange(72, NUM_PARAMS, device=x.device)
        hessian[:, shape, shape] += w.shape_prior_weight**2
        gradient[:, 72:] += w.shape_prior_weight * r_shape
        return hessian, gradient
