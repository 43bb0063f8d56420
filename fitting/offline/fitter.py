"""Fits from keypoints alone (offline dictionary initialisation, precompute's default).

With no regressor prediction to start from, SMPLify starts from SPIN's mean pose and shape
(``mean_params``: SPIN's file, 24 rotations in 6D, 10 betas) and a camera translation
estimated from the mean body's joints and every confident keypoint (``initial_camera``: SPIN's
weighted least squares over all non-ignored joints, not only the ground-truth ones, so
OpenPose-only rows get a camera too). Rows where even that is impossible start at SPIN's mean
camera depth.

``OfflineFitter`` adds, per row and independently of its batch-mates (``OfflineConfig``,
``offline_config``, switches each step):

1. **Left/right swap check** (``swap_check``; ``OfflineConfig.swap_check``): where both
   annotation sources (OpenPose's 25 and the 24 ground-truth joints) mark a limb, and
   OpenPose's joints lie much closer to the *other* side's ground-truth joints than to their
   own, OpenPose's left and right are swapped back before fitting (the ground-truth
   annotation is trusted).
2. **Orientation hypotheses** (``hypotheses``; SMPLify, ECCV 2016): every row is fitted from
   the mean pose facing the camera and facing away (the mean orientation composed with a half
   turn about the body's vertical axis); rows whose shoulders are narrow in the image relative
   to the torso's height are also fitted from both side views (a quarter turn each way). The
   hypotheses are extra rows of one engine batch; each row keeps the hypothesis with the
   lowest SMPLify objective at SPIN's weights (data + priors, as SMPLify chooses), so a
   contorted body that reprojects marginally better does not win. With
   ``OfflineConfig.learned_hypothesis`` the keypoint regressor's prediction
   (``keypoint_regressor``) is one more hypothesis.
3. **Body stage**: SPIN's, or a schedule of decreasing pose/shape prior weights ending at
   SPIN's (``OfflineConfig.stages``; SMPLify 2016's). With ``OfflineConfig.prune_after_stage``
   every hypothesis runs only the camera stage and the first stages, and each row's best one
   alone runs the rest.
4. **Outlier rejection** (``outliers``; ``OfflineConfig.outlier_factor``): after the fit, a
   confident keypoint whose reprojection error exceeds ``max(outlier_min_px, outlier_factor *
   s)`` (``s`` = 1.4826 x the row's median error over its confident joints, a robust standard
   deviation) is treated as a wrong detection: its confidence is set to 0 and the row is refit
   from its fit at SPIN's weights (``refit_iterations``).

Whatever was fitted to, ``FitResult.loss`` is SPIN's fit loss (``fit_loss_at``, SPIN's sigma)
at the returned pose, betas and camera against the keypoints **as given** (unswapped, outliers
included), so it compares with every other fit of the row (store merge rule).
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import torch

from spinfits.fitting.body.joints import NUM_SPIN_JOINTS
from spinfits.fitting.body.model_files import BodyModelFiles
from spinfits.fitting.offline.config import OfflineConfig
from spinfits.fitting.offline.hypotheses import best_hypothesis, mean_initialisation, orientation_hypotheses
from spinfits.fitting.offline.initial_camera import initial_camera
from spinfits.fitting.offline.keypoint_regressor import load_keypoint_regressor
from spinfits.fitting.offline.outliers import reject_outliers
from spinfits.fitting.offline.swap_check import openpose_swapped, swap_openpose_back
from spinfits.fitting.smplify.config import FitResult, PriorStage
from spinfits.fitting.smplify.fit_loss import fit_loss_at
from spinfits.fitting.smplify.fitter import Progress, SMPLify
from spinfits.fitting.smplify.losses import body_prior_loss

logger = logging.getLogger(__name__)


class OfflineFitter:
    """Fits rows from their keypoints alone: hypotheses from the mean, staged SMPLify, pick."""

    def __init__(
        self,
        files: BodyModelFiles,
        config: OfflineConfig | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.config = config or OfflineConfig()
        engine = self.config.engine_config()
        self.smplify = SMPLify(files, engine, device, dtype)
        final = engine.body_schedule()[-1][0]
        self._final_weights = final
        refit = replace(
            engine,
            camera_iterations=0,
            body_stages=(
                PriorStage(
                    final.pose_prior_weight,
                    final.shape_prior_weight,
                    self.config.refit_iterations,
                    final.angle_prior_weight,
                ),
            ),
        )
        self._refit = self.smplify.with_config(refit) if self.config.smplify.solver == "lm" else None
        # Pruned hypotheses: the camera stage and the first k prior stages for every hypothesis
        # (k = 0: no body iteration), then the remaining stages for each row's best one.
        self._pruned = None
        prune = self.config.prune_after_stage
        if prune is not None:
            schedule = self.config.stages
            early = (
                replace(engine, body_stages=schedule[:prune])
                if prune
                else replace(engine, body_stages=(), body_iterations=0)
            )
            late = replace(engine, camera_iterations=0, body_stages=schedule[prune:])
            self._pruned = (self.smplify.with_config(early), self.smplify.with_config(late))
        self._regressor = (
            load_keypoint_regressor(files, device=device) if self.config.learned_hypothesis else None
        )

    def fit(
        self,
        keypoints: torch.Tensor | np.ndarray,
        camera_center: torch.Tensor | None = None,
        progress: Progress | None = None,
    ) -> FitResult:
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
                logger.info(
                    "%d of %d rows: OpenPose's left/right swapped back against the ground-truth joints",
                    int(swapped.sum()),
                    count,
                )
                fitted_to = swap_openpose_back(given, swapped)

        owner, slots, yaw = self._hypotheses(fitted_to)
        pose, betas, cam_t = mean_initialisation(self.smplify, fitted_to[owner], center[owner], yaw)
        if self._regressor is not None:  # one more hypothesis row per row: the network's guess
            with torch.no_grad():
                learned_pose, learned_betas = self._regressor(fitted_to.float())
            learned_pose = learned_pose.to(pose)
            learned_betas = learned_betas.to(betas)
            learned_cam = initial_camera(self.smplify, learned_pose, learned_betas, fitted_to, center)
            rows = torch.arange(count, device=owner.device)
            owner = torch.cat([owner, rows])
            slots = torch.cat([slots, torch.full_like(rows, int(slots.max()) + 1)])
            pose = torch.cat([pose, learned_pose])
            betas = torch.cat([betas, learned_betas])
            cam_t = torch.cat([cam_t, learned_cam])

        if self._pruned is not None and owner.shape[0] > count:
            result = self._fit_pruned(pose, betas, cam_t, fitted_to, center, owner, slots, progress)
        else:

            def report(done: int, rows: int) -> None:  # hypothesis rows -> the caller's rows
                progress(done * count // max(rows, 1), count)

            result = self.smplify.fit(
                pose, betas, cam_t, fitted_to[owner], center[owner], report if progress is not None else None
            )
            result = _take(result, self._select(result, owner, slots, count))
        if config.outlier_factor is not None and self._refit is not None:
            result = reject_outliers(
                result,
                fitted_to,
                center,
                self.smplify,
                self._refit,
                config.outlier_factor,
                config.outlier_min_px,
            )
        loss = fit_loss_at(
            self.smplify.joints_model,
            result.pose,
            result.betas,
            result.cam_t,
            given,
            self.smplify.config.focal_length,
            center,
            self.smplify.config.weights.sigma,
        )
        loss = torch.where(result.fitted, loss, torch.full_like(loss, float("inf")))
        return replace(result, loss=loss)

    # ------------------------------------------------------------------ steps

    def _fit_pruned(self, pose, betas, cam_t, keypoints, center, owner, slots, progress) -> FitResult:
        """Every hypothesis row (H,) through the early stages, each row's best one (N,) through
        the rest (``OfflineConfig.prune_after_stage``)."""
        early_engine, late_engine = self._pruned
        count = keypoints.shape[0]
        early = early_engine.fit(pose, betas, cam_t, keypoints[owner], center[owner])
        early = _take(early, self._select(early, owner, slots, count))
        late = late_engine.fit(early.pose, early.betas, early.cam_t, keypoints, center, progress)
        return replace(late, iterations=late.iterations + early.iterations)

    def _hypotheses(self, keypoints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, 49, 3) -> per hypothesis (H,): owner row, slot (its hypothesis kind), yaw."""
        return orientation_hypotheses(
            keypoints, self.config.back_hypothesis, self.config.side_hypotheses, self.config.side_ratio
        )

    def _select(
        self, result: FitResult, owner: torch.Tensor, slots: torch.Tensor, count: int
    ) -> torch.Tensor:
        """Index (N,) into the hypotheses rows of each row's best one (lowest criterion)."""
        criterion = result.loss
        if self.config.select_by == "objective":
            with torch.no_grad():
                prior = body_prior_loss(
                    result.pose[:, 3:], result.betas, self.smplify.prior, self._final_weights
                )
            # SMPLify's objective: the data term summed over the 49 joints, plus the priors
            criterion = NUM_SPIN_JOINTS * result.loss + prior
        return best_hypothesis(criterion, owner, slots, count)


def _take(result: FitResult, index: torch.Tensor) -> FitResult:
    return FitResult(
        *(
            getattr(result, name)[index]
            for name in ("pose", "betas", "cam_t", "loss", "iterations", "converged", "fitted")
        )
    )
