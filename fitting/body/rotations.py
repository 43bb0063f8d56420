"""Axis-angle rotations and the right Jacobian of SO(3)'s exponential map, batched.

Convention: axis-angle ``w`` (..., 3) radians; ``R = exp([w]x)`` acts on column vectors;
``[w]x`` is the cross-product matrix (``[w]x v = w x v``). The right Jacobian ``Jr(w)``
satisfies ``exp([w + d]x) ~= exp([w]x) exp([Jr(w) d]x)`` for small ``d``. Both are smooth at
``w = 0`` (Taylor series below ``|w| = 1e-2``), so no NaN gradient at the rest pose.
"""

from __future__ import annotations

import math

import torch

_SMALL_ANGLE_SQUARED = 1e-4


def skew(w: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 3, 3) cross-product matrix ``[w]x``."""
    x, y, z = w.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(w.shape[:-1] + (3, 3))


def _coefficients(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """sin(t)/t, (1-cos t)/t^2, (t - sin t)/t^3 for t = |w|, each (..., 1, 1), smooth at 0."""
    theta_sq = (w * w).sum(-1)[..., None, None]
    small = theta_sq < _SMALL_ANGLE_SQUARED
    safe_sq = torch.where(small, torch.ones_like(theta_sq), theta_sq)
    theta = torch.sqrt(safe_sq)
    a = torch.where(small, 1 - theta_sq / 6 + theta_sq**2 / 120, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta_sq / 24 + theta_sq**2 / 720, (1 - torch.cos(theta)) / safe_sq)
    c = torch.where(
        small, 1.0 / 6 - theta_sq / 120 + theta_sq**2 / 5040, (theta - torch.sin(theta)) / (safe_sq * theta)
    )
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


def matrix_to_axis_angle(rotmat: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrices -> (..., 3) axis-angle, angle in [0, pi].

    Through the unit quaternion (Shepperd's branch choice: the largest of w, x, y, z is taken
    from the diagonal), so it stays accurate near 0 and near pi, where reading the angle from
    the trace alone loses precision.
    """
    m = rotmat
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    # 4 candidate quaternions (w, x, y, z), each accurate when its leading term is largest.
    candidates = torch.stack(
        [
            torch.stack(
                [
                    1 + trace,
                    m[..., 2, 1] - m[..., 1, 2],
                    m[..., 0, 2] - m[..., 2, 0],
                    m[..., 1, 0] - m[..., 0, 1],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[..., 2, 1] - m[..., 1, 2],
                    1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
                    m[..., 0, 1] + m[..., 1, 0],
                    m[..., 0, 2] + m[..., 2, 0],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[..., 0, 2] - m[..., 2, 0],
                    m[..., 0, 1] + m[..., 1, 0],
                    1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2],
                    m[..., 1, 2] + m[..., 2, 1],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[..., 1, 0] - m[..., 0, 1],
                    m[..., 0, 2] + m[..., 2, 0],
                    m[..., 1, 2] + m[..., 2, 1],
                    1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2],
                ],
                -1,
            ),
        ],
        dim=-2,
    )  # (..., 4, 4)
    leading = torch.stack(
        [
            1 + trace,
            1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
            1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2],
            1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2],
        ],
        -1,
    )
    best = leading.argmax(-1)
    quat = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4))[..., 0, :]
    quat = quat / quat.norm(dim=-1, keepdim=True)
    quat = torch.where(quat[..., :1] < 0, -quat, quat)  # w >= 0: angle in [0, pi]
    sin_half = quat[..., 1:].norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(sin_half, quat[..., :1])
    # angle / sin(angle / 2), with its limit 2 at angle 0
    scale = torch.where(sin_half > 1e-6, angle / sin_half.clamp_min(1e-12), 2.0 + angle**2 / 12)
    return quat[..., 1:] * scale


def wrap_axis_angle(w: torch.Tensor) -> torch.Tensor:
    """(..., 3) axis-angle -> the same rotations with every angle below 2 pi.

    A rotation by t about an axis is the rotation by t - 2 pi k about it (exp is 2 pi-periodic
    along a fixed axis): angles of 2 pi and more are reduced modulo 2 pi, the rest are returned
    unchanged. An unconstrained joint (the global orientation) can wind past 2 pi during a fit;
    the store refuses angles beyond 4 pi as implausible, so fits are wrapped before they leave
    the engine.
    """
    angle = w.norm(dim=-1, keepdim=True)
    turns = angle >= 2 * math.pi
    if not bool(turns.any()):
        return w
    reduced = torch.remainder(angle, 2 * math.pi)
    return torch.where(turns, w * (reduced / angle.clamp_min(torch.finfo(w.dtype).tiny)), w)
