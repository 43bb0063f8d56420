"""How fits are made from keypoints alone: ``OfflineConfig`` and its presets.

``default_offline_config`` is precompute's default: the learned hypothesis where a keypoint
regressor trained for the model files sits beside them, else mean-pose orientation hypotheses.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Literal

from spinfits.errors import InputError
from spinfits.fitting.body.model_files import BodyModelFiles
from spinfits.fitting.offline.keypoint_regressor import has_keypoint_regressor
from spinfits.fitting.smplify.config import PriorStage, SmplifyConfig

logger = logging.getLogger(__name__)

#: SMPLify 2016's schedule of prior weights (pose, shape; its code's ``opt_weights``), the last
#: stage at SPIN's weights (4.78, 5.0; angle prior 15.2). Iterations are LM caps per stage.
SMPLIFY_2016_STAGES: tuple[PriorStage, ...] = (
    PriorStage(404.0, 100.0, 10),
    PriorStage(404.0, 50.0, 10),
    PriorStage(57.4, 10.0, 10),
    PriorStage(4.78, 5.0, 30),
)


#: The engine of fits from keypoints alone: the LM default, the pose correctives' share of the
#: Jacobian computed once per row and body stage (``SmplifyConfig.reuse_corrective_jacobian``:
#: 1.7x faster with the toy model's correctives for a 5 % higher median fit loss; no change
#: without correctives).
OFFLINE_ENGINE = SmplifyConfig(reuse_corrective_jacobian=True)


@dataclass(frozen=True)
class OfflineConfig:
    """How fits are made from keypoints alone (each step: ``fitting.offline.fitter``).

    smplify: the engine (solver, caps, batch size, sigma). Its ``body_stages`` are replaced by
        ``stages`` and ``confident_torso`` by this config's. Default: ``OFFLINE_ENGINE``.
    stages: body-stage schedule of prior weights; () (default) means SPIN's single stage.
        ``SMPLIFY_2016_STAGES`` is SMPLify 2016's schedule: no better on the stand-in's
        synthetic people and about 2.3x slower (``bench/RESULTS.md``, issue 15).
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
    prune_after_stage: None: every hypothesis runs the whole schedule; k: after the camera
        stage and the first k prior stages, each row keeps its best hypothesis (by
        ``select_by``) and only that one runs the remaining stages (0: after the camera stage).
    """

    smplify: SmplifyConfig = field(default_factory=lambda: OFFLINE_ENGINE)
    stages: tuple[PriorStage, ...] = ()
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
    prune_after_stage: int | None = None

    def __post_init__(self) -> None:
        if self.select_by not in ("objective", "fit_loss"):
            raise InputError(f"select_by must be 'objective' or 'fit_loss', got {self.select_by!r}")
        if self.outlier_factor is not None and not self.outlier_factor > 0:
            raise InputError(
                f"outlier_factor must be > 0 or None (no outlier rejection), got {self.outlier_factor}"
            )
        if self.refit_iterations < 1:
            raise InputError(f"refit_iterations must be >= 1, got {self.refit_iterations}")
        if not 0 < self.swap_ratio < 1:
            raise InputError(f"swap_ratio must be within (0, 1), got {self.swap_ratio}")
        if self.prune_after_stage is not None and not 0 <= self.prune_after_stage < max(len(self.stages), 1):
            raise InputError(
                f"prune_after_stage must be None or within [0, {max(len(self.stages), 1) - 1}] (a stage "
                f"of the {len(self.stages)}-stage schedule after which the hypotheses are pruned), got "
                f"{self.prune_after_stage}"
            )
        if self.confident_torso and self.smplify.solver != "lm":
            raise InputError(
                "confident_torso needs the LM solver; set "
                "OfflineConfig(confident_torso=False) for solver='adam'"
            )

    @classmethod
    def spin_from_mean(cls, **overrides: object) -> "OfflineConfig":
        """SPIN's own configuration from the mean pose: its Adam loop (2 x 100, full forward),
        one stage, one hypothesis, no swap check or outlier rejection (the bench's baseline)."""
        base = cls(
            smplify=SmplifyConfig.spin_reference(),
            stages=(),
            back_hypothesis=False,
            side_hypotheses=False,
            confident_torso=False,
            swap_check=False,
            outlier_factor=None,
        )
        return replace(base, **overrides)

    @classmethod
    def with_learned(cls, **overrides: object) -> "OfflineConfig":
        """Two hypotheses per row: the keypoint regressor's prediction and the mean pose facing
        the camera (best quality per second in ``bench/fit_quality.py --mode offline
        --learned``); needs the regressor beside the model files."""
        base = cls(learned_hypothesis=True, back_hypothesis=False, side_hypotheses=False)
        return replace(base, **overrides)

    def engine_config(self) -> SmplifyConfig:
        return replace(self.smplify, body_stages=self.stages, confident_torso=self.confident_torso)


def default_offline_config(files: BodyModelFiles) -> OfflineConfig:
    """Precompute's default: ``with_learned()`` when a keypoint regressor trained for these
    model files sits beside them, else mean-pose orientation hypotheses (``OfflineConfig()``)."""
    if has_keypoint_regressor(files):
        return OfflineConfig.with_learned()
    logger.info(
        "no keypoint regressor beside %s: fitting from the mean pose with orientation "
        "hypotheses; `spinfits init train-regressor --model-dir %s` makes fits better "
        "and faster",
        files.directory,
        files.directory,
    )
    return OfflineConfig()
