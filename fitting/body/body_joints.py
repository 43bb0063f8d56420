"""One way to get SPIN's 49 joints from either body model implementation."""

from __future__ import annotations

import torch

from spinfits.fitting.body.body_model import SpinBodyModel
from spinfits.fitting.body.joints_only import JointsOnlyBody

BodyModel = SpinBodyModel | JointsOnlyBody


def body_joints(model: BodyModel, pose: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
    """(B, 72), (B, 10) -> (B, 49, 3) SPIN joints, metres, body frame."""
    output = model(pose, betas)
    return output.joints if isinstance(model, SpinBodyModel) else output
