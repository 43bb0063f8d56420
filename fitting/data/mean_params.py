"""SPIN's mean pose and shape (``spin_mean_params.npz``, SPIN's ``smpl_mean_params.npz``).

The file holds 24 rotations in SPIN's 6D layout and 10 betas; its mean pose faces the camera.
Fits from keypoints alone start there (``hypotheses.mean_initialisation``), and SPIN's
regressor starts its iterative estimate there.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from spinfits.fitting.body.rotations import rot6d_to_rotmat

MEAN_PARAMS = "spin_mean_params.npz"


def rot6d_to_axis_angle(rot6d: np.ndarray) -> np.ndarray:
    """(J, 6) SPIN/HMR 6D rotations (first two matrix columns, interleaved) -> (J, 3) axis-angle."""
    matrices = rot6d_to_rotmat(torch.as_tensor(rot6d, dtype=torch.float64).reshape(1, -1))[0]
    return Rotation.from_matrix(matrices.numpy()).as_rotvec()


def spin_mean_params_path() -> Path:
    """The shipped copy of SPIN's ``smpl_mean_params.npz``."""
    return Path(str(resources.files("spinfits.fitting.data") / MEAN_PARAMS))


def spin_mean_params(path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """SPIN's mean parameters: pose (72,) axis-angle and betas (10,), float64."""
    path = Path(path) if path else spin_mean_params_path()
    with np.load(path) as params:
        pose = rot6d_to_axis_angle(params["pose"].astype(np.float64)).reshape(72)
        betas = params["shape"].astype(np.float64)
    return pose, betas
