"""Axis-angle rotations and the right Jacobian of SO(3)'s exponential map, batched.

Convention: axis-angle ``w`` (..., 3) radians; ``R = exp([w]x)`` acts on column vectors;
``[w]x`` is the cross-product matrix (``[w]x v = w x v``). The right Jacobian ``Jr(w)``
satisfies ``exp([w + d]x) ~= exp([w]x) exp([Jr(w) d]x)`` for small ``d``. Both are smooth at
``w = 0`` (Taylor series below ``|w| = 1e-2``), so no NaN gradient at the rest pose.
"""

from __future__ import annotations

import torch

_SMALL_ANGLE_SQUARED = 1e-4


def skew(w: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 3, 3) cross-product matrix ``[w]x``."""
    x, y, z = w.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack(
        [zero, -z, y, z, zero, -x, -y, x, zero], dim=-1
    ).reshape(w.shape[:-1] + (3, 3))


def _coefficients(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """sin(t)/t, (1-cos t)/t^2, (t - sin t)/t^3 for t = |w|, each (..., 1, 1), smooth at 0."""
    theta_sq = (w * w).sum(-1)[..., None, None]
    small = theta_sq < _SMALL_ANGLE_SQUARED
    safe_sq = torch.where(small, torch.ones_like(theta_sq), theta_sq)
    theta = torch.sqrt(safe_sq)
    a = torch.where(small, 1 - theta_sq / 6 + theta_sq ** 2 / 120, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta_sq / 24 + theta_sq ** 2 / 720,
                    (1 - torch.cos(theta)) / safe_sq)
    c = torch.where(small, 1.0 / 6 - theta_sq / 120 + theta_sq ** 2 / 5040,
                    (theta - torch.sin(theta)) / (safe_sq * theta))
    return a, b, c


def axis_angle_to_matrix(w: torch.Tensor) -> torch.Tensor:
    """(..., 3) axis-angle -> (..., 3, 3) rotation matrix (Rodrigues)."""
    K = skew(w)
    a, b, _ = _coefficients(w)
    eye = torch.eye(3, dtype=w.dtype, device=w.device)
    return eye + a * K + b * (K @ K)


def axis_angle_to_matrix_and_right_jacobian(
    w: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., 3) -> rotation (..., 3, 3) and right Jacobian ``Jr(w)`` (..., 3, 3)."""
    K = skew(w)
    KK = K @ K
    a, b, c = _coefficients(w)
    eye = torch.eye(3, dtype=w.dtype, device=w.device)
    return eye + a * K + b * KK, eye - b * K + c * KK


def rot6d_to_rotmat(rot6d: torch.Tensor) -> torch.Tensor:
    """(B, J*6) SPIN/HMR 6D rotations -> (B, J, 3, 3) rotation matrices (Gram-Schmidt).

    Convention: SPIN's layout, the first two columns of each matrix interleaved per row
    (``R[:, :, :2].reshape(6)``).
    """
    pairs = rot6d.reshape(rot6d.shape[0], -1, 3, 2)
    first = torch.nn.functional.normalize(pairs[..., 0], dim=-1)
    second = pairs[..., 1] - (first * pairs[..., 1]).sum(-1, keepdim=True) * first
    second = torch.nn.functional.normalize(second, dim=-1)
    return torch.stack([first, second, torch.cross(first, second, dim=-1)], dim=-1)
