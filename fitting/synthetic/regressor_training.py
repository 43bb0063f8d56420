"""Training the keypoint regressor on the body model's own synthetic people.

``spinfits init train-regressor --model-dir DIR`` runs this and saves the network beside the
model files (``fitting.offline.keypoint_regressor.save_keypoint_regressor``). Training keypoints are the
noise-free crop keypoints of synthetic people (``people.make_synthetic_dataset``); each batch
gets pixel noise and randomly removed keypoints (``RegressorTraining.noise_px``,
``max_dropout``). Targets: the 24 rotations (as matrices) and 10 betas that drew each person. The people's
poses are ``SyntheticConfig``'s default mix (mostly CMU mocap poses of held-in clips, the rest from
the anatomy sampler); the share of mocap poses is saved with the figures (``mocap_pose_fraction``).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from spinfits.fitting.body.model_files import BodyModelFiles
from spinfits.fitting.offline.keypoint_regressor import KeypointRegressor, RegressorTraining
from spinfits.fitting.synthetic.people import SyntheticConfig, make_synthetic_dataset


def _training_batch(
    keypoints: np.ndarray, index: np.ndarray, config: RegressorTraining, rng: np.random.Generator
) -> torch.Tensor:
    """Noise and random removal on noise-free crop keypoints (B, 49, 3)."""
    batch = keypoints[index].copy()
    batch[..., :2] += rng.normal(0.0, config.noise_px, batch[..., :2].shape)
    dropout = rng.uniform(0.0, config.max_dropout, (len(index), 1))
    batch[..., 2] *= rng.random(batch[..., 2].shape) >= dropout
    return torch.as_tensor(batch, dtype=torch.float32)


def train_keypoint_regressor(
    files: BodyModelFiles, config: RegressorTraining | None = None, progress=None
) -> tuple[KeypointRegressor, dict[str, float]]:
    """Train on synthetic people of ``files``; returns the model and held-out figures."""
    config = config or RegressorTraining()
    data = make_synthetic_dataset(files, SyntheticConfig(rows=config.samples, seed=config.seed))
    keypoints = data["gt_keypoints"].astype(np.float32)
    target_rot = torch.as_tensor(
        Rotation.from_rotvec(data["pose"].reshape(-1, 3)).as_matrix().reshape(-1, 24, 3, 3),
        dtype=torch.float32,
    )
    target_betas = torch.as_tensor(data["shape"], dtype=torch.float32)
    held_out = max(1, config.samples // 10)
    train_rows = np.arange(held_out, config.samples)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    model = KeypointRegressor(config.hidden)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, config.steps)
    for step in range(config.steps):
        index = rng.choice(train_rows, config.batch_size)
        rotmat, betas = model.rotmats(_training_batch(keypoints, index, config, rng))
        loss = ((rotmat - target_rot[index]) ** 2).mean() + 0.01 * ((betas - target_betas[index]) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if progress is not None:
            progress(step + 1, config.steps, float(loss.detach()))
    model.eval()
    with torch.no_grad():
        index = np.arange(held_out)
        rotmat, _ = model.rotmats(_training_batch(keypoints, index, config, rng))
        relative = rotmat.transpose(-1, -2) @ target_rot[index]
        cos = ((relative.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
        angle = torch.rad2deg(torch.arccos(cos))
    figures = {
        "held_out_rows": float(held_out),
        "global_orient_error_deg_median": float(angle[:, 0].median()),
        "body_joint_error_deg_mean": float(angle[:, 1:].mean()),
        "mocap_pose_fraction": float(np.char.startswith(data["pose_source"].astype(str), "mocap:").mean()),
    }
    return model, figures
