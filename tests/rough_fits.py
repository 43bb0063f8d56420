"""Rough fits for the training tests: every row's ground-truth pose with 0.25 rad of noise on every
body joint (the global orientation kept), scored by the store's fit loss, as offline proposals, so
that SMPLify in the loop has something to improve."""

from __future__ import annotations

import numpy as np

from spinfits.fitting.data.dataset import KeypointDataset
from spinfits.fitting.smplify.fit_loss import score_fits
from spinfits.store import Proposals, Source


def rough_fits(arrays: dict[str, np.ndarray], dataset: KeypointDataset, standin_files) -> Proposals:
    """``arrays``: the dataset's npz arrays (pose, shape, gt_cam_t); ``dataset``: it loaded."""
    rows = len(dataset)
    noise = np.random.default_rng(3).normal(0, 0.25, (rows, 72)) * (np.arange(72) >= 3)
    pose = (arrays["pose"] + noise).astype(np.float32)
    betas = arrays["shape"].astype(np.float32)
    return Proposals(
        rows=np.arange(rows),
        pose=pose,
        betas=betas,
        cam_t=arrays["gt_cam_t"].astype(np.float32),
        loss=score_fits(standin_files, pose, betas, dataset.keypoints),
        source=Source.OFFLINE,
        step=-1,
    )
