"""The Ray actor that fits shards of a dataset with ``spinfits.fitting``."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import numpy as np
import ray

from spinfits.fitting.dataset import load_spin_npz
from spinfits.fitting.model_files import load_body_model_files
from spinfits.fitting.offline_init import OfflineConfig, OfflineFitter
from spinfits.fitting.refine import refine_fits

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardResult:
    """Fits of one shard (S rows), as numpy, ready to become store proposals.

    Fields: rows (S,) int64; pose (S, 72); betas (S, 10); cam_t (S, 3); loss (S,) (+inf: no fit);
    seconds: fitting time; worker: "host:pid" of the actor that made it.
    """

    rows: np.ndarray
    pose: np.ndarray
    betas: np.ndarray
    cam_t: np.ndarray
    loss: np.ndarray
    seconds: float
    worker: str


class FitterActor:
    """Loads the body model and the dataset once, then fits shards of rows on its device:
    from keypoints alone (``OfflineFitter``), or refining the initial pose/betas sent with a shard.
    """

    def __init__(self, model_dir: str, dataset_path: str, config: OfflineConfig, device: str,
                 threads: int) -> None:
        import torch

        if device == "cpu":
            torch.set_num_threads(threads)
        self.fitter = OfflineFitter(load_body_model_files(model_dir), config, device=device)
        self.keypoints = load_spin_npz(dataset_path).keypoints
        self.worker = f"{os.uname().nodename}:{os.getpid()}"

    def pid(self) -> int:
        return os.getpid()

    def fit_shard(self, rows: np.ndarray, init_pose: np.ndarray | None = None,
                  init_betas: np.ndarray | None = None) -> ShardResult:
        start = time.perf_counter()
        keypoints = self.keypoints[rows]
        if init_pose is None:
            result = self.fitter.fit(keypoints)
        else:
            result = refine_fits(self.fitter.smplify, init_pose, init_betas, keypoints)
        as_numpy = lambda t: t.detach().cpu().numpy()  # noqa: E731
        return ShardResult(rows=rows, pose=as_numpy(result.pose), betas=as_numpy(result.betas),
                           cam_t=as_numpy(result.cam_t), loss=as_numpy(result.loss),
                           seconds=time.perf_counter() - start, worker=self.worker)


def remote_fitter_class(num_cpus: float, num_gpus: float):
    """``FitterActor`` as a fault-tolerant Ray actor: a killed actor restarts and its
    unfinished shards are retried (max_restarts / max_task_retries unlimited)."""
    return ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=-1,
                      max_task_retries=-1)(FitterActor)
