"""Batched SMPLify (SPIN's objective) on any torch device.

``SMPLify(files, config, device).fit(init_pose, init_betas, init_cam_t, keypoints)`` fits any
number of samples: stage 1 (camera) then stage 2 (body), each with the configured solver, and
returns a ``FitResult`` whose ``loss`` is SPIN's fit loss (``fit_loss``).
``config.body_stages`` replaces the body stage by a schedule of prior weights (SMPLify 2016);
the loss is the same. Inputs are checked once here; the solvers assume clean tensors.

Sample handling: keypoints that are NaN/inf where confidence > 0 (or negative or NaN
confidences, or non-finite initial parameters) raise ``InputError``; samples with fewer than
``config.min_keypoints`` confident keypoints (ignored joints excluded) or an initial camera not
in front of the image plane (t_z <= 0) are not fitted: ``fitted`` False, loss +inf.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable

import numpy as np
import torch

from spinfits.errors import InputError
from spinfits.fitting.body.body_model import SpinBodyModel
from spinfits.fitting.body.joints import NUM_SPIN_JOINTS
from spinfits.fitting.body.joints_only import NUM_PARAMS, JointsOnlyBody
from spinfits.fitting.body.model_files import BodyModelFiles
from spinfits.fitting.body.rotations import wrap_axis_angle
from spinfits.fitting.data.spin_crop import CROP_CENTER
from spinfits.fitting.smplify.config import FitResult, SmplifyConfig
from spinfits.fitting.smplify.fit_loss import fit_loss_at
from spinfits.fitting.smplify.levenberg_marquardt import solve_pool
from spinfits.fitting.smplify.losses import fitting_confidence
from spinfits.fitting.smplify.priors import GmmPosePrior
from spinfits.fitting.smplify.spin_adam import spin_adam_fit
from spinfits.fitting.smplify.stages import BodyStage, CameraStage

logger = logging.getLogger(__name__)

#: progress(done, total): called as samples finish, for a progress bar.
Progress = Callable[[int, int], None]


class SMPLify:
    """SPIN's SMPLify, batched. Holds the body model and priors on ``device``."""

    def __init__(
        self,
        files: BodyModelFiles,
        config: SmplifyConfig | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.config = config or SmplifyConfig()
        self.device = torch.device(device)
        self.dtype = dtype
        self.files = files
        self.joints_model = JointsOnlyBody(files, self.device, dtype)
        self.full_model = (
            SpinBodyModel(files, self.device, dtype) if self.config.body_evaluation == "full" else None
        )
        self.prior = GmmPosePrior(files.gmm, self.device, dtype)

    def with_config(self, config: SmplifyConfig) -> "SMPLify":
        """This engine (the same body model, prior and device, nothing copied) fitting with
        ``config``, e.g. another stage schedule; ``config.body_evaluation`` must be this one's."""
        if (config.body_evaluation == "full") != (self.full_model is not None):
            raise InputError(
                f"with_config: this engine evaluates the body {self.config.body_evaluation!r}, the "
                f"config asks for {config.body_evaluation!r}; make a new SMPLify for it"
            )
        other = copy.copy(self)
        other.config = config
        return other

    @property
    def body_model(self) -> SpinBodyModel | JointsOnlyBody:
        """The model the configured solver evaluates (joints-only unless "full")."""
        return self.full_model if self.full_model is not None else self.joints_model

    def fit(
        self,
        init_pose: torch.Tensor,
        init_betas: torch.Tensor,
        init_cam_t: torch.Tensor,
        keypoints: torch.Tensor,
        camera_center: torch.Tensor | None = None,
        progress: Progress | None = None,
    ) -> FitResult:
        """Fit N samples.

        Args:
            init_pose: (N, 72) axis-angle radians; init_betas: (N, 10); init_cam_t: (N, 3) metres.
            keypoints: (N, 49, 3) pixels x, y, confidence (SPIN's joint order, crop frame).
            camera_center: (N, 2) pixels, or None for SPIN's crop centre (112, 112).
            progress: optional ``progress(done, total)`` callback.

        Returns:
            FitResult with (N, ...) tensors on this engine's device.
        """
        pose, betas, cam_t, keypoints, center = self._checked(
            init_pose, init_betas, init_cam_t, keypoints, camera_center
        )
        total = pose.shape[0]
        enough = (fitting_confidence(keypoints) > 0).sum(1) >= self.config.min_keypoints
        fitted = enough & (cam_t[:, 2] > 0)
        if not bool(fitted.all()):
            logger.warning(
                "%d of %d samples not fitted (fewer than %d confident keypoints or "
                "initial t_z <= 0); their loss is +inf",
                int((~fitted).sum()),
                total,
                self.config.min_keypoints,
            )
        rows = torch.nonzero(fitted)[:, 0]
        out_pose, out_betas, out_cam_t = pose.clone(), betas.clone(), cam_t.clone()
        iterations = torch.zeros(total, dtype=torch.long, device=self.device)
        converged = torch.zeros(total, dtype=torch.bool, device=self.device)
        done = [int(total - rows.numel())]

        def report(count: int) -> None:
            done[0] += count
            if progress is not None:
                progress(done[0], total)

        if rows.numel():
            if self.config.solver == "adam":
                solved = self._fit_adam(
                    pose[rows], betas[rows], cam_t[rows], keypoints[rows], center[rows], report
                )
                iterations[rows] = self.config.camera_iterations + sum(
                    count for _, count in self.config.body_schedule()
                )
            else:
                solved = self._fit_lm(
                    pose[rows], betas[rows], cam_t[rows], keypoints[rows], center[rows], report
                )
                iterations[rows] = solved[3]
                converged[rows] = solved[4]
            out_pose[rows], out_betas[rows], out_cam_t[rows] = solved[:3]
        # the same rotations, every joint's angle below 2 pi (the store refuses beyond 4 pi)
        out_pose = wrap_axis_angle(out_pose.reshape(-1, 24, 3)).reshape(out_pose.shape)
        loss = fit_loss_at(
            self.joints_model,
            out_pose,
            out_betas,
            out_cam_t,
            keypoints,
            self.config.focal_length,
            center,
            self.config.weights.sigma,
        )
        loss = torch.where(fitted, loss, torch.full_like(loss, float("inf")))
        return FitResult(
            pose=out_pose,
            betas=out_betas,
            cam_t=out_cam_t,
            loss=loss,
            iterations=iterations,
            converged=converged & fitted,
            fitted=fitted,
        )

    # ------------------------------------------------------------------ solvers

    def _fit_adam(self, pose, betas, cam_t, keypoints, center, report):
        config = self.config
        outputs = []
        for start in range(0, pose.shape[0], config.batch_size):
            part = slice(start, start + config.batch_size)
            solved = (pose[part], betas[part], cam_t[part])
            for stage, (weights, count) in enumerate(config.body_schedule()):
                solved = spin_adam_fit(
                    self.body_model,
                    self.prior,
                    *solved,
                    keypoints[part],
                    center[part],
                    config.focal_length,
                    weights,
                    config.camera_iterations if stage == 0 else 0,
                    count,
                    config.step_size,
                )
            outputs.append(solved)
            report(outputs[-1][0].shape[0])
        return tuple(torch.cat(parts) for parts in zip(*outputs))

    def _fit_lm(self, pose, betas, cam_t, keypoints, center, report):
        config = self.config
        rows = torch.arange(pose.shape[0], device=self.device)
        with torch.no_grad():
            camera = CameraStage(
                self.joints_model,
                pose,
                betas,
                cam_t,
                keypoints,
                center,
                config.focal_length,
                config.weights,
                config.confident_torso,
            )
            first = solve_pool(camera, rows, 6, config.batch_size, config.camera_iterations, config.tolerance)
            orient, cam_t = first.x[:, :3], first.x[:, 3:]
            pose = torch.cat([orient, pose[:, 3:]], dim=1)
            iterations = first.iterations
            schedule = config.body_schedule()
            for stage, (weights, count) in enumerate(schedule):
                body = BodyStage(
                    self.joints_model,
                    self.prior,
                    pose,
                    betas,
                    cam_t,
                    keypoints,
                    center,
                    config.focal_length,
                    weights,
                    config.corrective_jacobian,
                    config.reuse_corrective_jacobian,
                )
                last = stage == len(schedule) - 1
                second = solve_pool(
                    body,
                    rows,
                    NUM_PARAMS,
                    config.batch_size,
                    count,
                    config.tolerance,
                    on_done=report if last else None,
                )
                pose, betas = second.x[:, :72], second.x[:, 72:]
                iterations = iterations + second.iterations
        return pose, betas, cam_t, iterations, second.converged

    # ------------------------------------------------------------------ input checks

    def _checked(self, pose, betas, cam_t, keypoints, camera_center):
        pose = self._tensor("init_pose", pose, (72,))
        count = pose.shape[0]
        betas = self._tensor("init_betas", betas, (10,), count)
        cam_t = self._tensor("init_cam_t", cam_t, (3,), count)
        keypoints, center = self.checked_keypoints(keypoints, camera_center, count)
        return pose, betas, cam_t, keypoints, center

    def checked_keypoints(
        self, keypoints, camera_center=None, count=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Validate keypoints (N, 49, 3) and camera_center (N, 2) or None; returns them on this
        engine's device and dtype, keypoints without confidence zeroed, centre filled in."""
        keypoints = self._tensor("keypoints", keypoints, (NUM_SPIN_JOINTS, 3), count, check_finite=False)
        count = keypoints.shape[0]
        if camera_center is None:
            center = torch.full((count, 2), CROP_CENTER, dtype=self.dtype, device=self.device)
        else:
            center = self._tensor("camera_center", camera_center, (2,), count)
        confidence = keypoints[..., 2]
        bad_conf = ~torch.isfinite(confidence) | (confidence < 0)
        if bool(bad_conf.any()):
            raise InputError(
                f"keypoints: confidences must be finite and >= 0; rows "
                f"{_rows(bad_conf.any(1))} are not. Set a missing keypoint's confidence to 0"
            )
        bad_xy = ~torch.isfinite(keypoints[..., :2]).all(-1) & (confidence > 0)
        if bool(bad_xy.any()):
            raise InputError(
                f"keypoints: {int(bad_xy.sum())} keypoints are NaN or infinite but have "
                f"confidence > 0 (rows {_rows(bad_xy.any(1))}); expected finite x, y wherever "
                f"confidence > 0: set those confidences to 0 or fix the coordinates"
            )
        keypoints = torch.where((confidence > 0)[..., None], keypoints, torch.zeros_like(keypoints))
        return keypoints, center

    def _tensor(self, name, value, trailing, count=None, check_finite=True) -> torch.Tensor:
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(value)
        if not isinstance(value, torch.Tensor):
            raise InputError(f"{name} must be a tensor or numpy array, got {type(value).__name__}")
        shape = ("N",) + trailing
        if value.ndim != len(shape) or tuple(value.shape[1:]) != trailing:
            hint = f"; for one sample use {name}[None]" if value.ndim == len(trailing) else ""
            raise InputError(
                f"{name} must have shape ({', '.join(map(str, shape))}), got {tuple(value.shape)}{hint}"
            )
        if count is not None and value.shape[0] != count:
            raise InputError(
                f"{name} has {value.shape[0]} rows but init_pose has {count}; every input needs "
                f"one row per sample"
            )
        value = value.to(device=self.device, dtype=self.dtype)
        if check_finite and not bool(torch.isfinite(value).all()):
            raise InputError(
                f"{name} contains NaN or infinite values (rows "
                f"{_rows(~torch.isfinite(value).reshape(value.shape[0], -1).all(1))}); "
                f"initial parameters must be finite, e.g. start from SPIN's mean pose"
            )
        return value


def _rows(mask: torch.Tensor) -> str:
    rows = torch.nonzero(mask)[:, 0].tolist()
    shown = ", ".join(str(r) for r in rows[:10])
    return shown + (f", ... ({len(rows)} rows)" if len(rows) > 10 else "")
