"""Fits from keypoints alone (offline dictionary initialisation, precompute's default).

With no regressor prediction to start from, SMPLify starts from SPIN's mean pose and shape
(``spin_mean_params.npz``, SPIN's file: 24 rotations in 6D, 10 betas) and a camera translation
estimated from the mean body's joints and every confident keypoint (SPIN's weighted least
squares over all non-ignored joints, not only the ground-truth ones, so OpenPose-only rows get a
camera too). Rows where even that is impossible start at SPIN's mean camera depth.

``OfflineFitter`` adds, per row and independently of its batch-mates:

1. **Left/right swap check** (``OfflineConfig.swap_check``): where both annotation sources
   (OpenPose's 25 and the 24 ground-truth joints) mark a limb, and OpenPose's joints lie much
   closer to the *other* side's ground-truth joints than to their own, OpenPose's left and
   right are swapped back before fitting (the ground-truth annotation is trusted).
2. **Orientation hypotheses** (SMPLify, ECCV 2016): every row is fitted from the mean pose
   facing the camera and facing away (the mean orientation composed with a half turn about
   the body's vertical axis); rows whose shoulders are narrow in the image relative to the
   torso's height are also fitted from both side views (a quarter turn each way). The
   hypotheses are extra rows of one engine batch; each row keeps the hypothesis with the
   lowest SMPLify objective at SPIN's weights (data + priors, as SMPLify chooses), so a
   contorted body that reprojects marginally better does not win.
3. **Staged optimisation** (SMPLify 2016): the body stage runs a schedule of decreasing
   pose/shape prior weights (``OfflineConfig.stages``) ending at SPIN's weights.
4. **Outlier rejection** (``OfflineConfig.outlier_factor``): after the fit, a confident
   keypoint whose reprojection error exceeds ``max(outlier_min_px, outlier_factor * s)``
   (``s`` = 1.4826 x the row's median error over its confident joints, a robust standard
   deviation) is treated as a wrong detection: its confidence is set to 0 and the row is refit
   from its fit at SPIN's weights (``refit_iterations``).

Whatever was fitted to, ``FitResult.loss`` is SPIN's fit loss (``fit_loss_at``, SPIN's sigma)
at the returned pose, betas and camera against the keypoints **as given** (unswapped, outliers
included), so it compares with every other fit of the row (store merge rule).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from spinfits.errors import InputError
from spinfits.fitting.body_joints import body_joints
from spinfits.fitting.camera import estimate_translation, perspective_projection
from spinfits.fitting.fit_loss import fit_loss_at
from spinfits.fitting.joints import (
    NUM_OPENPOSE_JOINTS,
    NUM_SPIN_JOINTS,
    SMPLIFY_IGNORED_JOINTS,
    SPIN_JOINTS_FLIP_PERM,
    spin_index,
)
from spinfits.fitting.losses import body_prior_loss, fitting_confidence
from spinfits.fitting.keypoint_regressor import has_keypoint_regressor, load_keypoint_regressor
from spinfits.fitting.model_files import BodyModelFiles
from spinfits.fitting.rotations import rot6d_to_rotmat
from spinfits.fitting.smplify import SMPLify, Progress
from spinfits.fitting.smplify_config import FitResult, PriorStage, SmplifyConfig

logger = logging.getLogger(__name__)

MEAN_PARAMS = "spin_mean_params.npz"
#: SPIN's mean weak-perspective scale (its regressor starts from cam = [0.9, 0, 0]).
MEAN_CAMERA_SCALE = 0.9
_CAMERA_JOINTS = tuple(i for i in range(NUM_SPIN_JOINTS) if i not in SMPLIFY_IGNORED_JOINTS)

#: SMPLify 2016's schedule of prior weights (pose, shape; its code's ``opt_weights``), the last
#: stage at SPIN's weights (4.78, 5.0; angle prior 15.2). Iterations are LM caps per stage.
SMPLIFY_2016_STAGES: tuple[PriorStage, ...] = (
    PriorStage(404.0, 100.0, 10),
    PriorStage(404.0, 50.0, 10),
    PriorStage(57.4, 10.0, 10),
    PriorStage(4.78, 5.0, 30),
)

#: Yaw (radians, about the body's vertical axis) of each orientation hypothesis.
FRONT, BACK, SIDE_LEFT, SIDE_RIGHT = 0.0, math.pi, math.pi / 2, -math.pi / 2

# (OpenPose joint, ground-truth joint) pairs on the right and on the left, for the swap check.
_LIMBS = ("Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")
_RIGHT_PAIRS = tuple((spin_index(f"OP R{limb}"), spin_index(f"Right {limb}")) for limb in _LIMBS)
_LEFT_PAIRS = tuple((spin_index(f"OP L{limb}"), spin_index(f"Left {limb}")) for limb in _LIMBS)
_SHOULDERS = ((spin_index("OP RShoulder"), spin_index("OP LShoulder")),
              (spin_index("Right Shoulder"), spin_index("Left Shoulder")))
_HIPS = ((spin_index("OP RHip"), spin_index("OP LHip")),
         (spin_index("Right Hip"), spin_index("Left Hip")))


def rot6d_to_axis_angle(rot6d: np.ndarray) -> np.ndarray:
    """(J, 6) SPIN/HMR 6D rotations (first two matrix columns, interleaved) -> (J, 3) axis-angle."""
    matrices = rot6d_to_rotmat(torch.as_tensor(rot6d, dtype=torch.float64).reshape(1, -1))[0]
    return Rotation.from_matrix(matrices.numpy()).as_rotvec()


def spin_mean_params_path() -> Path:
    """The shipped copy of SPIN's ``smpl_mean_params.npz``."""
    return Path(str(resources.files("spinfits.fitting") / MEAN_PARAMS))


def spin_mean_params(path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """SPIN's mean parameters: pose (72,) axis-angle and betas (10,), float64."""
    path = Path(path) if path else spin_mean_params_path()
    with np.load(path) as params:
        pose = rot6d_to_axis_angle(params["pose"].astype(np.float64)).reshape(72)
        betas = params["shape"].astype(np.float64)
    return pose, betas


def turned_mean_orient(yaw: np.ndarray) -> np.ndarray:
    """(H,) yaw radians -> (H, 3) axis-angle: SPIN's mean global orientation composed with a
    turn of ``yaw`` about the body's own vertical (y) axis (``R_mean @ R_y(yaw)``): 0 faces the
    camera, pi faces away, +-pi/2 are side views."""
    mean_pose, _ = spin_mean_params()
    turn = Rotation.from_rotvec(np.outer(np.asarray(yaw, dtype=np.float64), [0.0, 1.0, 0.0]))
    return (Rotation.from_rotvec(mean_pose[:3]) * turn).as_rotvec()


def mean_initialisation(smplify: SMPLify, keypoints: torch.Tensor,
                        camera_center: torch.Tensor | None = None,
                        yaw: torch.Tensor | np.ndarray | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Start values for N rows: SPIN's mean pose/betas, camera from the keypoints.

    Args:
        keypoints: (N, 49, 3) crop pixels x, y, confidence.
        camera_center: (N, 2) pixels or None (SPIN's crop centre).
        yaw: (N,) radians, a turn of the mean body about its vertical axis per row
            (``turned_mean_orient``); None: SPIN's mean orientation (facing the camera).

    Returns:
        pose (N, 72), betas (N, 10), cam_t (N, 3) on the engine's device and dtype.
    """
    count = keypoints.shape[0]
    mean_pose, mean_betas = spin_mean_params()
    options = dict(device=smplify.device, dtype=smplify.dtype)
    pose = torch.as_tensor(mean_pose, **options).expand(count, 72).clone()
    if yaw is not None:
        yaw = np.asarray(torch.as_tensor(yaw).detach().cpu(), dtype=np.float64).reshape(count)
        pose[:, :3] = torch.as_tensor(turned_mean_orient(yaw), **options)
    betas = torch.as_tensor(mean_betas, **options).expand(count, 10).clone()
    return pose, betas, initial_camera(smplify, pose, betas, keypoints, camera_center)


def initial_camera(smplify: SMPLify, pose: torch.Tensor, betas: torch.Tensor,
                   keypoints: torch.Tensor, camera_center: torch.Tensor | None = None
                   ) -> torch.Tensor:
    """(N, 3) camera for a body (pose (N, 72), betas (N, 10)): least squares against every
    confident keypoint, or SPIN's mean camera depth where that is impossible."""
    options = dict(device=smplify.device, dtype=smplify.dtype)
    keypoints = keypoints.to(**options)
    with torch.no_grad():
        joints = body_joints(smplify.joints_model, pose, betas)
        cam_t, solvable = estimate_translation(joints, keypoints, smplify.config.focal_length,
                                               camera_center, joint_indices=_CAMERA_JOINTS)
    depth = 2 * smplify.config.focal_length / (224.0 * MEAN_CAMERA_SCALE)
    fallback = torch.tensor([0.0, 0.0, depth], **options).expand_as(cam_t)
    usable = solvable & (cam_t[:, 2] > 0)
    return torch.where(usable[:, None], cam_t, fallback)


def openpose_swapped(keypoints: torch.Tensor, ratio: float = 0.5,
                     min_pairs: int = 3) -> torch.Tensor:
    """(N, 49, 3) -> (N,) bool: OpenPose's left/right look swapped against the ground truth.

    Over the limb joints (shoulders, elbows, wrists, hips, knees, ankles) confident in both
    sources, the mean distance between an OpenPose joint and the *opposite* side's
    ground-truth joint is below ``ratio`` times its distance to the same side's; needs at
    least ``min_pairs`` such (left or right) joints.
    """
    right, left = torch.tensor(_RIGHT_PAIRS), torch.tensor(_LEFT_PAIRS)
    op = torch.cat([right[:, 0], left[:, 0]]).to(keypoints.device)
    same = torch.cat([right[:, 1], left[:, 1]]).to(keypoints.device)
    cross = torch.cat([left[:, 1], right[:, 1]]).to(keypoints.device)
    conf = keypoints[..., 2] > 0
    both = conf[:, op] & conf[:, same] & conf[:, cross]  # (N, 12)
    d_same = (keypoints[:, op, :2] - keypoints[:, same, :2]).norm(dim=-1)
    d_cross = (keypoints[:, op, :2] - keypoints[:, cross, :2]).norm(dim=-1)
    count = both.sum(1)
    mean_same = (d_same * both).sum(1) / count.clamp_min(1)
    mean_cross = (d_cross * both).sum(1) / count.clamp_min(1)
    return (count >= min_pairs) & (mean_cross < ratio * mean_same)


def shoulder_to_torso_ratio(keypoints: torch.Tensor) -> torch.Tensor:
    """(N, 49, 3) -> (N,) shoulder width / torso height in the image (NaN where unknown).

    Shoulders and hips from OpenPose where both of a pair are confident, else the ground truth;
    torso height = distance between the shoulders' and the hips' midpoints. About 0.7 for a
    person facing the camera (or away), near 0 side-on.
    """
    def pair(pairs):
        points = torch.full_like(keypoints[:, :2, :2], float("nan"))
        for right, left in reversed(pairs):  # OpenPose last, so it wins where confident
            ok = (keypoints[:, [right, left], 2] > 0).all(1)
            points = torch.where(ok[:, None, None], keypoints[:, [right, left], :2], points)
        return points

    shoulders, hips = pair(_SHOULDERS), pair(_HIPS)
    width = (shoulders[:, 0] - shoulders[:, 1]).norm(dim=-1)
    height = (shoulders.mean(1) - hips.mean(1)).norm(dim=-1)
    return width / height


@dataclass(frozen=True)
class OfflineConfig:
    """How fits are made from keypoints alone (see the module docstring for each step).

    smplify: the engine (solver, caps, batch size, sigma). Its ``body_stages`` are replaced by
        ``stages`` and ``confident_torso`` by this config's.
    stages: body-stage schedule of prior weights; () means SPIN's single stage.
    back_hypothesis: also fit every row from facing away.
    side_hypotheses: also fit from both side views where shoulder width / torso height in the
        image is below ``side_ratio`` (or cannot be measured).
    select_by: "objective" (SMPLify's: data + priors at SPIN's weights) or "fit_loss" (data
        only) picks a row's hypothesis.
    confident_torso: the camera stage leaves missing torso keypoints out (SPIN's pulls them
        towards pixel (0, 0)).
    swap_check / swap_ratio: undo OpenPose left/right swaps against the ground-truth joints.
    outlier_factor: None disables outlier rejection; else the threshold in robust standard
        deviations, with a floor of ``outlier_min_px`` (crop pixels); ``refit_iterations`` caps
        the refit of rows that had outliers.
    learned_hypothesis: also fit every row from the keypoint regressor's prediction
        (``spinfits init train-regressor``; its file must sit beside the model files).
    """

    smplify: SmplifyConfig = field(default_factory=SmplifyConfig)
    stages: tuple[PriorStage, ...] = SMPLIFY_2016_STAGES
    back_hypothesis: bool = True
    side_hypotheses: bool = True
    side_ratio: float = 0.45
    select_by: Literal["objective", "fit_loss"] = "objective"
    confident_torso: bool = True
    swap_check: bool = True
    swap_ratio: float = 0.5
    outlier_factor: float | None = 5.0
    outlier_min_px: float = 12.0
    refit_iterations: int = 20
    learned_hypothesis: bool = False

    def __post_init__(self) -> None:
        if self.select_by not in ("objective", "fit_loss"):
            raise InputError(f"select_by must be 'objective' or 'fit_loss', got "
                             f"{self.select_by!r}")
        if self.outlier_factor is not None and not self.outlier_factor > 0:
            raise InputError(f"outlier_factor must be > 0 or None (no outlier rejection), got "
                             f"{self.outlier_factor}")
        if self.refit_iterations < 1:
            raise InputError(f"refit_iterations must be >= 1, got {self.refit_iterations}")
        if not 0 < self.swap_ratio < 1:
            raise InputError(f"swap_ratio must be within (0, 1), got {self.swap_ratio}")
        if self.confident_torso and self.smplify.solver != "lm":
            raise InputError("confident_torso needs the LM solver; set "
                             "OfflineConfig(confident_torso=False) for solver='adam'")

    @classmethod
    def spin_from_mean(cls, **overrides: object) -> "OfflineConfig":
        """SPIN's own configuration from the mean pose: its Adam loop (2 x 100, full forward),
        one stage, one hypothesis, no swap check or outlier rejection (the bench's baseline)."""
        base = cls(smplify=SmplifyConfig.spin_reference(), stages=(), back_hypothesis=False,
                   side_hypotheses=False, confident_torso=False, swap_check=False,
                   outlier_factor=None)
        return replace(base, **overrides)

    @classmethod
    def with_learned(cls, **overrides: object) -> "OfflineConfig":
        """Two hypotheses per row: the keypoint regressor's prediction and the mean pose facing
        the camera (best quality per second in ``bench/fit_quality.py --mode offline
        --learned``); needs the regressor beside the model files."""
        base = cls(learned_hypothesis=True, back_hypothesis=False, side_hypotheses=False)
        return replace(base, **overrides)

    def engine_config(self) -> SmplifyConfig:
        return replace(self.smplify, body_stages=self.stages,
                       confident_torso=self.confident_torso)


def default_offline_config(files: BodyModelFiles) -> OfflineConfig:
    """Precompute's default: ``with_learned()`` when a keypoint regressor trained for these
    model files sits beside them, else mean-pose orientation hypotheses (``OfflineConfig()``)."""
    if has_keypoint_regressor(files):
        return OfflineConfig.with_learned()
    logger.info("no keypoint regressor beside %s: fitting from the mean pose with orientation "
                "hypotheses; `spinfits init train-regressor --model-dir %s` makes fits better "
                "and faster", files.directory, files.directory)
    return OfflineConfig()


class OfflineFitter:
    """Fits rows from their keypoints alone: hypotheses from the mean, staged SMPLify, pick."""

    def __init__(self, files: BodyModelFiles, config: OfflineConfig | None = None,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        self.config = config or OfflineConfig()
        self.smplify = SMPLify(files, self.config.engine_config(), device, dtype)
        final = self.config.engine_config().body_schedule()[-1][0]
        self._final_weights = final
        refit = replace(self.config.engine_config(), camera_iterations=0,
                        body_stages=(PriorStage(final.pose_prior_weight,
                                                final.shape_prior_weight,
                                                self.config.refit_iterations,
                                                final.angle_prior_weight),))
        self._refit = SMPLify(files, refit, device, dtype) if self.config.smplify.solver == "lm" \
            else None
        self._regressor = (load_keypoint_regressor(files, device=device)
                           if self.config.learned_hypothesis else None)

    def fit(self, keypoints: torch.Tensor | np.ndarray, camera_center: torch.Tensor | None = None,
            progress: Progress | None = None) -> FitResult:
        """Fit N rows: keypoints (N, 49, 3) crop pixels + confidence -> FitResult (N, ...).

        camera_center: (N, 2) pixels or None (SPIN's crop centre). The result's ``loss`` is
        SPIN's fit loss against ``keypoints`` as given.
        """
        config = self.config
        given, center = self.smplify.checked_keypoints(keypoints, camera_center)
        count = given.shape[0]
        fitted_to = given
        if config.swap_check:
            swapped = openpose_swapped(given, config.swap_ratio)
            if bool(swapped.any()):
                logger.info("%d of %d rows: OpenPose's left/right swapped back against the "
                            "ground-truth joints", int(swapped.sum()), count)
                flip = list(SPIN_JOINTS_FLIP_PERM[:NUM_OPENPOSE_JOINTS])
                flipped = given.clone()
                flipped[:, :NUM_OPENPOSE_JOINTS] = given[:, flip]
                fitted_to = torch.where(swapped[:, None, None], flipped, given)

        owner, slots, yaw = self._hypotheses(fitted_to)
        pose, betas, cam_t = mean_initialisation(self.smplify, fitted_to[owner], center[owner],
                                                 yaw)
        if self._regressor is not None:  # one more hypothesis row per row: the network's guess
            with torch.no_grad():
                learned_pose, learned_betas = self._regressor(fitted_to.float())
            learned_pose = learned_pose.to(pose)
            learned_betas = learned_betas.to(betas)
            learned_cam = initial_camera(self.smplify, learned_pose, learned_betas, fitted_to,
                                         center)
            rows = torch.arange(count, device=owner.device)
            owner = torch.cat([owner, rows])
            slots = torch.cat([slots, torch.full_like(rows, int(slots.max()) + 1)])
            pose = torch.cat([pose, learned_pose])
            betas = torch.cat([betas, learned_betas])
            cam_t = torch.cat([cam_t, learned_cam])

        def report(done: int, rows: int) -> None:  # hypothesis rows -> the caller's rows
            progress(done * count // max(rows, 1), count)

        result = self.smplify.fit(pose, betas, cam_t, fitted_to[owner], center[owner],
                                  report if progress is not None else None)
        best = self._select(result, owner, slots, count)
        result = _take(result, best)
        if config.outlier_factor is not None and self._refit is not None:
            result = self._reject_outliers(result, fitted_to, center)
        loss = fit_loss_at(self.smplify.joints_model, result.pose, result.betas, result.cam_t,
                           given, self.smplify.config.focal_length, center,
                           self.smplify.config.weights.sigma)
        loss = torch.where(result.fitted, loss, torch.full_like(loss, float("inf")))
        return replace(result, loss=loss)

    # ------------------------------------------------------------------ steps

    def _hypotheses(self, keypoints: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, 49, 3) -> per hypothesis (H,): owner row, slot (its hypothesis kind), yaw."""
        config = self.config
        count = keypoints.shape[0]
        device = keypoints.device
        yaws = [torch.full((count,), FRONT, dtype=torch.float64, device=device)]
        keep = [torch.ones(count, dtype=torch.bool, device=device)]
        if config.back_hypothesis:
            yaws.append(torch.full_like(yaws[0], BACK))
            keep.append(keep[0])
        if config.side_hypotheses:
            ratio = shoulder_to_torso_ratio(keypoints)
            narrow = ~(ratio >= config.side_ratio)  # NaN (unknown): narrow
            for side in (SIDE_LEFT, SIDE_RIGHT):
                yaws.append(torch.full_like(yaws[0], side))
                keep.append(narrow)
        yaw = torch.stack(yaws, 1)  # (N, K)
        mask = torch.stack(keep, 1)
        rows = torch.arange(count, device=device)[:, None].expand_as(yaw)
        slots = torch.arange(yaw.shape[1], device=device).expand_as(yaw)
        return rows[mask], slots[mask], yaw[mask]

    def _select(self, result: FitResult, owner: torch.Tensor, slots: torch.Tensor,
                count: int) -> torch.Tensor:
        """Index (N,) into the hypotheses rows of each row's best one (lowest criterion)."""
        criterion = result.loss
        if self.config.select_by == "objective":
            with torch.no_grad():
                prior = body_prior_loss(result.pose[:, 3:], result.betas, self.smplify.prior,
                                        self._final_weights)
            # SMPLify's objective: the data term summed over the 49 joints, plus the priors
            criterion = NUM_SPIN_JOINTS * result.loss + prior
        criterion = torch.where(torch.isfinite(criterion), criterion,
                                torch.full_like(criterion, float("inf")))
        table = torch.full((count, int(slots.max()) + 1), float("inf"), dtype=criterion.dtype,
                           device=criterion.device)
        index = torch.full(table.shape, -1, dtype=torch.long, device=criterion.device)
        table[owner, slots] = criterion
        index[owner, slots] = torch.arange(owner.shape[0], device=owner.device)
        choice = index.gather(1, table.argmin(1, keepdim=True))[:, 0]
        # rows where nothing is finite keep their first hypothesis (facing the camera)
        return torch.where(choice >= 0, choice, index[:, 0])

    def _reject_outliers(self, result: FitResult, keypoints: torch.Tensor,
                         center: torch.Tensor) -> FitResult:
        config = self.config
        with torch.no_grad():
            joints = body_joints(self.smplify.joints_model, result.pose, result.betas)
            pixels = perspective_projection(joints, result.cam_t, self.smplify.config.focal_length,
                                            center)
        error = (pixels - keypoints[..., :2]).norm(dim=-1)  # (N, 49)
        confident = fitting_confidence(keypoints) > 0
        masked = torch.where(confident, error, torch.full_like(error, float("nan")))
        scale = 1.4826 * masked.nanmedian(dim=1).values  # (N,)
        threshold = torch.clamp(config.outlier_factor * scale, min=config.outlier_min_px)
        outlier = confident & (error > threshold[:, None]) & result.fitted[:, None]
        rows = torch.nonzero(outlier.any(1))[:, 0]
        if not rows.numel():
            return result
        logger.info("%d rows had keypoints far off their fit (%d keypoints): refit without them",
                    int(rows.numel()), int(outlier.sum()))
        cleaned = keypoints[rows].clone()
        cleaned[..., 2] = torch.where(outlier[rows], torch.zeros_like(cleaned[..., 2]),
                                      cleaned[..., 2])
        refit = self._refit.fit(result.pose[rows], result.betas[rows], result.cam_t[rows],
                                cleaned, center[rows])
        keep = refit.fitted
        rows = rows[keep]
        pose, betas, cam_t = result.pose.clone(), result.betas.clone(), result.cam_t.clone()
        iterations = result.iterations.clone()
        pose[rows], betas[rows], cam_t[rows] = refit.pose[keep], refit.betas[keep], \
            refit.cam_t[keep]
        iterations[rows] += refit.iterations[keep]
        return replace(result, pose=pose, betas=betas, cam_t=cam_t, iterations=iterations)


def _take(result: FitResult, index: torch.Tensor) -> FitResult:
    return FitResult(*(getattr(result, name)[index] for name in (
        "pose", "betas", "cam_t", "loss", "iterations", "converged", "fitted")))
