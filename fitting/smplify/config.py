"""SMPLify's configuration and result types."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import torch

from spinfits.errors import InputError
from spinfits.fitting.data.spin_crop import FOCAL_LENGTH
from spinfits.fitting.smplify.losses import LossWeights

#: SPIN's elbow/knee prior weight relative to its pose prior weight (15.2 / 4.78), kept per stage.
ANGLE_TO_POSE_WEIGHT = 15.2 / 4.78


@dataclass(frozen=True)
class PriorStage:
    """One body stage of a staged fit: prior weights (squared in the loss, as SPIN does) and
    the stage's iteration cap (LM) or count (Adam).

    angle_prior_weight: None means ``ANGLE_TO_POSE_WEIGHT * pose_prior_weight`` (SPIN's ratio).
    """

    pose_prior_weight: float
    shape_prior_weight: float
    iterations: int
    angle_prior_weight: float | None = None

    def __post_init__(self) -> None:
        for name in ("pose_prior_weight", "shape_prior_weight"):
            if not getattr(self, name) > 0:
                raise InputError(f"PriorStage.{name} must be > 0, got {getattr(self, name)}")
        if self.angle_prior_weight is not None and not self.angle_prior_weight > 0:
            raise InputError(
                f"PriorStage.angle_prior_weight must be > 0 or None (SPIN's ratio to the pose "
                f"weight), got {self.angle_prior_weight}"
            )
        if self.iterations < 1:
            raise InputError(f"PriorStage.iterations must be >= 1, got {self.iterations}")

    def loss_weights(self, base: LossWeights) -> LossWeights:
        """``base`` (sigma, depth weight) with this stage's prior weights."""
        angle = (
            self.angle_prior_weight
            if self.angle_prior_weight is not None
            else ANGLE_TO_POSE_WEIGHT * self.pose_prior_weight
        )
        return replace(
            base,
            pose_prior_weight=self.pose_prior_weight,
            shape_prior_weight=self.shape_prior_weight,
            angle_prior_weight=angle,
        )


@dataclass(frozen=True)
class SmplifyConfig:
    """How SMPLify fits. The objective (``weights``) is SPIN's in every mode.

    solver: "lm" (batched Levenberg-Marquardt, per-sample damping and convergence, continuous
        batching) or "adam" (SPIN's loop: Adam, fixed iteration counts).
    body_evaluation: "joints_only" (exact, no mesh) or "full" (smplx's 6890-vertex forward;
        only with "adam", SPIN's reference).
    camera_iterations / body_iterations: Adam's iterations per stage, or LM's cap per stage.
    batch_size: solver slots, the samples optimised together on the device (Adam: chunks of
        this many rows; LM: slots of the continuous batch, refilled as samples converge). Not
        precompute's ``PrecomputeConfig.shard_size`` (rows per actor task) nor training's
        ``TrainConfig.batch_size`` (samples per worker per step). The name stays: it is part of
        the fitting config recorded (and hashed) in the store.
    tolerance: LM stops a sample when an accepted step lowers its loss by less than
        ``tolerance * loss``.
    corrective_jacobian: LM's Jacobian includes the pose correctives' share (exact); False
        drops it (a Gauss-Newton approximation; the loss that accepts steps stays exact).
    reuse_corrective_jacobian: the correctives' share is computed once per row and body stage,
        at the stage's start, and reused for the stage's later iterations (an approximate
        Gauss-Newton model again, the loss stays exact; it is most of the Jacobian's cost with
        SMPL's pose correctives). False: computed at every iterate.
    min_keypoints: fewer confident (non-ignored) keypoints than this: no fit, loss = +inf.
    body_stages: () (default, SPIN's single stage: ``weights`` for ``body_iterations``) or
        a schedule of ``PriorStage`` run in order, each starting where the previous ended
        (SMPLify 2016's decreasing prior weights); ``weights`` still gives sigma and the
        camera stage's depth weight, and ``body_iterations`` is then unused.
    confident_torso: False (SPIN): the camera stage fits the four OpenPose torso keypoints if
        all are confident, else the four ground-truth ones whatever their confidence (a
        missing one pulls towards pixel (0, 0)); True: per joint, whichever source is
        confident, and missing joints are left out (LM only).
    """

    solver: Literal["lm", "adam"] = "lm"
    body_evaluation: Literal["joints_only", "full"] = "joints_only"
    camera_iterations: int = 30
    body_iterations: int = 40
    batch_size: int = 256
    step_size: float = 1e-2
    tolerance: float = 1e-4
    focal_length: float = FOCAL_LENGTH
    min_keypoints: int = 4
    corrective_jacobian: bool = True
    reuse_corrective_jacobian: bool = False
    weights: LossWeights = field(default_factory=LossWeights)
    body_stages: tuple[PriorStage, ...] = ()
    confident_torso: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.body_stages, tuple) or not all(
            isinstance(stage, PriorStage) for stage in self.body_stages
        ):
            raise InputError(
                f"body_stages must be a tuple of PriorStage, got {self.body_stages!r}; e.g. "
                f"(PriorStage(404.0, 100.0, 10), PriorStage(4.78, 5.0, 30))"
            )
        if self.solver not in ("lm", "adam"):
            raise InputError(f"solver must be 'lm' or 'adam', got {self.solver!r}")
        if self.body_evaluation not in ("joints_only", "full"):
            raise InputError(f"body_evaluation must be 'joints_only' or 'full', got {self.body_evaluation!r}")
        if self.solver == "lm" and self.body_evaluation == "full":
            raise InputError(
                "the LM solver needs body_evaluation='joints_only' (it uses its analytic "
                "Jacobian); use solver='adam' for the full-mesh reference"
            )
        if self.solver == "adam" and self.confident_torso:
            raise InputError(
                "confident_torso is implemented by the LM solver only; use "
                "solver='lm' or confident_torso=False (SPIN's camera stage)"
            )
        for name in ("camera_iterations", "body_iterations", "batch_size", "min_keypoints"):
            if getattr(self, name) < (0 if name.endswith("iterations") else 1):
                raise InputError(f"{name} must be positive, got {getattr(self, name)}")

    @classmethod
    def spin_reference(cls, **overrides: object) -> "SmplifyConfig":
        """SPIN's own configuration: full forward, Adam lr 1e-2, 100 + 100 iterations, batch 66."""
        base = cls(
            solver="adam",
            body_evaluation="full",
            camera_iterations=100,
            body_iterations=100,
            batch_size=66,
            step_size=1e-2,
        )
        return replace(base, **overrides)

    def body_schedule(self) -> tuple[tuple[LossWeights, int], ...]:
        """The body stages to run as (weights, iterations): ``body_stages``, or SPIN's single
        stage (``weights``, ``body_iterations``)."""
        if not self.body_stages:
            return ((self.weights, self.body_iterations),)
        return tuple((stage.loss_weights(self.weights), stage.iterations) for stage in self.body_stages)


@dataclass(frozen=True)
class FitResult:
    """SMPLify's output for B samples (on the engine's device).

    Fields:
        pose: (B, 72) axis-angle, radians (global orientation, then 23 body joints).
        betas: (B, 10).
        cam_t: (B, 3) camera translation, metres.
        loss: (B,) SPIN's fit loss at (pose, betas, cam_t): the mean over the 49 joints of the
            stage-2 reprojection term; +inf where no fit was made (``fitted`` False).
        iterations: (B,) int, iterations used (camera + body stage).
        converged: (B,) bool, the solver met its tolerance (always False for Adam, which runs
            a fixed number of iterations).
        fitted: (B,) bool, False for samples with too few confident keypoints or an invalid
            initial camera (their pose, betas, cam_t are the initial ones).
    """

    pose: torch.Tensor
    betas: torch.Tensor
    cam_t: torch.Tensor
    loss: torch.Tensor
    iterations: torch.Tensor
    converged: torch.Tensor
    fitted: torch.Tensor

    def __len__(self) -> int:
        return int(self.loss.shape[0])
