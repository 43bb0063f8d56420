"""Orientation hypotheses (SMPLify, ECCV 2016): several starts per row, the best one kept.

Every row is fitted from SPIN's mean pose facing the camera and, optionally, facing away (the
mean orientation composed with a half turn about the body's vertical axis); rows whose
shoulders are narrow in the image relative to the torso's height are also fitted from both
side views (a quarter turn each way). The hypotheses are extra rows of one engine batch
(``orientation_hypotheses``); each row keeps the hypothesis with the lowest criterion
(``best_hypothesis``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from spinfits.fitting.body.joints import spin_index
from spinfits.fitting.data.mean_params import spin_mean_params
from spinfits.fitting.offline.initial_camera import initial_camera
from spinfits.fitting.smplify.fitter import SMPLify

#: Yaw (radians, about the body's vertical axis) of each orientation hypothesis.
FRONT, BACK, SIDE_LEFT, SIDE_RIGHT = 0.0, math.pi, math.pi / 2, -math.pi / 2

_SHOULDERS = (
    (spin_index("OP RShoulder"), spin_index("OP LShoulder")),
    (spin_index("Right Shoulder"), spin_index("Left Shoulder")),
)
_HIPS = ((spin_index("OP RHip"), spin_index("OP LHip")), (spin_index("Right Hip"), spin_index("Left Hip")))


def turned_mean_orient(yaw: np.ndarray) -> np.ndarray:
    """(H,) yaw radians -> (H, 3) axis-angle: SPIN's mean global orientation composed with a
    turn of ``yaw`` about the body's own vertical (y) axis (``R_mean @ R_y(yaw)``): 0 faces the
    camera, pi faces away, +-pi/2 are side views."""
    mean_pose, _ = spin_mean_params()
    turn = Rotation.from_rotvec(np.outer(np.asarray(yaw, dtype=np.float64), [0.0, 1.0, 0.0]))
    return (Rotation.from_rotvec(mean_pose[:3]) * turn).as_rotvec()


def mean_initialisation(
    smplify: SMPLify,
    keypoints: torch.Tensor,
    camera_center: torch.Tensor | None = None,
    yaw: torch.Tensor | np.ndarray | None = None,
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


def orientation_hypotheses(
    keypoints: torch.Tensor, back: bool = True, sides: bool = True, side_ratio: float = 0.45
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, 49, 3) -> per hypothesis (H,): owner row, slot (its hypothesis kind), yaw.

    Every row gets FRONT; with ``back`` also BACK; with ``sides`` also SIDE_LEFT and SIDE_RIGHT
    where ``shoulder_to_torso_ratio`` is below ``side_ratio`` or unknown (NaN).
    """
    count = keypoints.shape[0]
    device = keypoints.device
    yaws = [torch.full((count,), FRONT, dtype=torch.float64, device=device)]
    keep = [torch.ones(count, dtype=torch.bool, device=device)]
    if back:
        yaws.append(torch.full_like(yaws[0], BACK))
        keep.append(keep[0])
    if sides:
        ratio = shoulder_to_torso_ratio(keypoints)
        narrow = ~(ratio >= side_ratio)  # NaN (unknown): narrow
        for side in (SIDE_LEFT, SIDE_RIGHT):
            yaws.append(torch.full_like(yaws[0], side))
            keep.append(narrow)
    yaw = torch.stack(yaws, 1)  # (N, K)
    mask = torch.stack(keep, 1)
    rows = torch.arange(count, device=device)[:, None].expand_as(yaw)
    slots = torch.arange(yaw.shape[1], device=device).expand_as(yaw)
    return rows[mask], slots[mask], yaw[mask]


def best_hypothesis(
    criterion: torch.Tensor, owner: torch.Tensor, slots: torch.Tensor, count: int
) -> torch.Tensor:
    """Index (N,) into the H hypothesis rows of each row's best one (lowest ``criterion`` (H,)).

    Non-finite criteria never win; rows where nothing is finite keep their first hypothesis
    (slot 0, facing the camera).
    """
    criterion = torch.where(torch.isfinite(criterion), criterion, torch.full_like(criterion, float("inf")))
    table = torch.full(
        (count, int(slots.max()) + 1), float("inf"), dtype=criterion.dtype, device=criterion.device
    )
    index = torch.full(table.shape, -1, dtype=torch.long, device=criterion.device)
    table[owner, slots] = criterion
    index[owner, slots] = torch.arange(owner.shape[0], device=owner.device)
    choice = index.gather(1, table.argmin(1, keepdim=True))[:, 0]
    return torch.where(choice >= 0, choice, index[:, 0])
