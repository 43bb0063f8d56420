"""Fits from keypoints alone (offline dictionary initialisation, precompute's default).

With no regressor prediction to start from, SMPLify starts from SPIN's mean pose and shape
(``spin_mean_params.npz``, SPIN's file: 24 rotations in 6D, 10 betas) and a camera translation
estimated from the mean body's joints and every confident keypoint (SPIN's weighted least
squares over all non-ignored joints, not only the ground-truth ones, so OpenPose-only rows get a
camera too). Rows where even that is impossible start at SPIN's mean camera depth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from spinfits.fitting.body_joints import body_joints
from spinfits.fitting.camera import estimate_translation
from spinfits.fitting.joints import NUM_SPIN_JOINTS, SMPLIFY_IGNORED_JOINTS
from spinfits.fitting.model_files import BodyModelFiles
from spinfits.fitting.smplify import SMPLify, Progress
from spinfits.fitting.smplify_config import FitResult, SmplifyConfig

MEAN_PARAMS = "spin_mean_params.npz"
#: SPIN's mean weak-perspective scale (its regressor starts from cam = [0.9, 0, 0]).
MEAN_CAMERA_SCALE = 0.9
_CAMERA_JOINTS = tuple(i for i in range(NUM_SPIN_JOINTS) if i not in SMPLIFY_IGNORED_JOINTS)


def rot6d_to_axis_angle(rot6d: np.ndarray) -> np.ndarray:
    """(J, 6) SPIN/HMR 6D rotations (first two matrix columns, interleaved) -> (J, 3) axis-angle."""
    pairs = rot6d.reshape(-1, 3, 2)
    first = pairs[:, :, 0] / np.linalg.norm(pairs[:, :, 0], axis=1, keepdims=True)
    second = pairs[:, :, 1] - (first * pairs[:, :, 1]).sum(1, keepdims=True) * first
    second /= np.linalg.norm(second, axis=1, keepdims=True)
    matrices = np.stack([first, second, np.cross(first, second)], axis=-1)
    return Rotation.from_matrix(matrices).as_rotvec()


def spin_mean_params(path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """SPIN's mean parameters: pose (72,) axis-angle and betas (10,), float64."""
    path = Path(path) if path else Path(str(resources.files("spinfits.fitting") / MEAN_PARAMS))
    with np.load(path) as params:
        pose = rot6d_to_axis_angle(params["pose"].astype(np.float64)).reshape(72)
        betas = params["shape"].astype(np.float64)
    return pose, betas


def mean_initialisation(smplify: SMPLify, keypoints: torch.Tensor,
                        camera_center: torch.Tensor | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Start values for N rows: SPIN's mean pose/betas, camera from the keypoints.

    Args:
        keypoints: (N, 49, 3) crop pixels x, y, confidence.

    Returns:
        pose (N, 72), betas (N, 10), cam_t (N, 3) on the engine's device and dtype.
    """
    count = keypoints.shape[0]
    mean_pose, mean_betas = spin_mean_params()
    options = dict(device=smplify.device, dtype=smplify.dtype)
    pose = torch.as_tensor(mean_pose, **options).expand(count, 72).clone()
    betas = torch.as_tensor(mean_betas, **options).expand(count, 10).clone()
    keypoints = keypoints.to(**options)
    with torch.no_grad():
        joints = body_joints(smplify.joints_model, pose, betas)
        cam_t, solvable = estimate_translation(joints, keypoints, smplify.config.focal_length,
                                               camera_center, joint_indices=_CAMERA_JOINTS)
    depth = 2 * smplify.config.focal_length / (224.0 * MEAN_CAMERA_SCALE)
    fallback = torch.tensor([0.0, 0.0, depth], **options).expand_as(cam_t)
    usable = solvable & (cam_t[:, 2] > 0)
    return pose, betas, torch.where(usable[:, None], cam_t, fallback)


@dataclass(frozen=True)
class OfflineConfig:
    """How fits are made from keypoints alone."""

    smplify: SmplifyConfig = field(default_factory=SmplifyConfig)


class OfflineFitter:
    """Fits rows from their keypoints alone: mean initialisation, then SMPLify."""

    def __init__(self, files: BodyModelFiles, config: OfflineConfig | None = None,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        self.config = config or OfflineConfig()
        self.smplify = SMPLify(files, self.config.smplify, device, dtype)

    def fit(self, keypoints: torch.Tensor | np.ndarray, camera_center: torch.Tensor | None = None,
            progress: Progress | None = None) -> FitResult:
        """Fit N rows: keypoints (N, 49, 3) crop pixels + confidence -> FitResult (N, ...)."""
        keypoints = torch.as_tensor(keypoints)
        pose, betas, cam_t = mean_initialisation(self.smplify, keypoints, camera_center)
        return self.smplify.fit(pose, betas, cam_t, keypoints, camera_center, progress)
