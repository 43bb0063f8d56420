"""SMPLify's configuration and result types."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import torch

from spinfits.errors import InputError
from spinfits.fitting.losses import LossWeights


@dataclass(frozen=True)
class SmplifyConfig:
    """How SMPLify fits. The objective (``weights``) is SPIN's in every mode.

    solver: "lm" (batched Levenberg-Marquardt, per-sample damping and convergence, continuous
        batching) or "adam" (SPIN's loop: Adam, fixed iteration counts).
    body_evaluation: "joints_only" (exact, no mesh) or "full" (smplx's 6890-vertex forward;
        only with "adam", SPIN's reference).
    camera_iterations / body_iterations: Adam's iterations per stage, or LM's cap per stage.
    batch_size: samples optimised together (LM: slots of the continuous batch).
    tolerance: LM stops a sample when an accepted step lowers its loss by less than
        ``tolerance * loss``.
    corrective_jacobian: LM's Jacobian includes the pose correctives' share (exact); False
        drops it (a Gauss-Newton approximation; the loss that accepts steps stays exact).
    min_keypoints: fewer confident (non-ignored) keypoints than this: no fit, loss = +inf.
    """

    solver: Literal["lm", "adam"] = "lm"
    body_evaluation: Literal["joints_only", "full"] = "joints_only"
    camera_iterations: int = 30
    body_iterations: int = 40
    batch_size: int = 256
    step_size: float = 1e-2
    tolerance: float = 1e-4
    focal_length: float = 5000.0
    min_keypoints: int = 4
    corrective_jacobian: bool = True
    weights: LossWeights = field(default_factory=LossWeights)

    def __post_init__(self) -> None:
        if self.solver not in ("lm", "adam"):
            raise InputError(f"solver must be 'lm' or 'adam', got {self.solver!r}")
        if self.body_evaluation not in ("joints_only", "full"):
            raise InputError(
                f"body_evaluation must be 'joints_only' or 'full', got {self.body_evaluation!r}"
            )
        if self.solver == "lm" and self.body_evaluation == "full":
            raise InputError(
                "the LM solver needs body_evaluation='joints_only' (it uses its analytic "
                "Jacobian); use solver='adam' for the full-mesh reference"
            )
        for name in ("camera_iterations", "body_iterations", "batch_size", "min_keypoints"):
            if getattr(self, name) < (0 if name.endswith("iterations") else 1):
                raise InputError(f"{name} must be positive, got {getattr(self, name)}")

    @classmethod
    def spin_reference(cls, **overrides: object) -> "SmplifyConfig":
        """SPIN's own configuration: full forward, Adam lr 1e-2, 100 + 100 iterations, batch 66."""
        base = cls(solver="adam", body_evaluation="full", camera_iterations=100,
                   body_iterations=100, batch_size=66, step_size=1e-2)
        return replace(base, **overrides)


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
