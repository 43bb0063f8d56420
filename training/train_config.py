"""``TrainConfig``: one SPIN training run with the best-fit store in the loop."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from spinfits.errors import InputError
from spinfits.fitting.smplify_config import SmplifyConfig
from spinfits.fitting.spin_crop import CROP_RES
from spinfits.store import S3Options
from spinfits.training.augmentation import AugmentationConfig
from spinfits.training.spin_losses import SpinLossWeights


def in_loop_smplify() -> SmplifyConfig:
    """SMPLify in the training loop: SPIN's objective, fewer iterations (it starts from the
    network's prediction, which after a little training is close)."""
    return SmplifyConfig(camera_iterations=10, body_iterations=20)


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    dataset / images: SPIN dataset npz and the folder its ``imgname`` paths are relative to;
    store: the store precompute filled (local path or s3://); dataset_name: its dataset there
    (default: the npz's stem); model_dir: body model folder (the store's model).
    runs_dir / run: Ray Train keeps checkpoints in ``runs_dir/run``; resume: continue that run
    from its latest checkpoint (else the run must not exist yet).
    steps: optimiser steps; batch_size: samples each worker trains on per step (the global
    batch is workers x batch_size; SMPLify's own ``smplify.batch_size`` is its solver slots).
    backbone / input_res: the regressor (SPIN: resnet50 at 224 px; "small" for CPU runs).
    learning_rate: Adam's (SPIN: 5e-5). use_gt_smpl: supervise rows that have ground-truth
    SMPL with it (SPIN); False makes every row learn from its best fit.
    smplify_threshold: best fits with a larger fit loss are not used as supervision (SPIN: 100).
    max_abs_betas: best fits with any |beta| above it are implausible: their betas are replaced
    by zeros for supervision, SPIN's fallback (SPIN: 3).
    refresh_every: steps between re-reads of the store's newest snapshot; checkpoint_every:
    steps between checkpoints; commit_every_s: the writer's commit period.
    s3: options of an s3:// store, without explicit keys (training refuses them: its Ray
    processes find credentials through the AWS chain, see ``trainer.worker_config``).
    """

    dataset: Path
    images: Path
    store: str
    model_dir: Path
    dataset_name: str | None = None
    runs_dir: Path = Path("runs")
    run: str = "spin"
    resume: bool = False
    workers: int = 2
    threads_per_worker: int | None = None
    gpus_per_worker: float = 0.0
    steps: int = 300
    batch_size: int = 16
    backbone: Literal["resnet50", "small"] = "resnet50"
    input_res: int = CROP_RES
    learning_rate: float = 5e-5
    use_gt_smpl: bool = True
    smplify: SmplifyConfig = field(default_factory=in_loop_smplify)
    smplify_threshold: float = 100.0
    max_abs_betas: float = 3.0
    losses: SpinLossWeights = field(default_factory=SpinLossWeights)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    refresh_every: int = 10
    checkpoint_every: int = 50
    commit_every_s: float = 5.0
    max_failures: int = 3
    seed: int = 0
    s3: S3Options | None = None
    show_progress: bool = True

    def __post_init__(self) -> None:
        # Messages name the field; the command line tells them in its flags (spinfits.cli.options).
        for name in ("workers", "steps", "batch_size", "refresh_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.gpus_per_worker < 0:
            raise InputError(f"gpus_per_worker must be >= 0, got {self.gpus_per_worker}")
        if not self.learning_rate > 0:
            raise InputError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.max_failures < -1:
            raise InputError(f"max_failures must be >= -1 (-1: no limit), got {self.max_failures}")
        if not self.run or "/" in self.run or self.run.startswith("."):
            raise InputError(f"run must be a plain folder name, got {self.run!r}")

    @property
    def name(self) -> str:
        """The dataset's name in the store."""
        return self.dataset_name or Path(self.dataset).stem

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir).resolve() / self.run

    @property
    def threads(self) -> int:
        if self.threads_per_worker:
            return self.threads_per_worker
        return max(1, (os.cpu_count() or 1) // self.workers)

    @property
    def device(self) -> str:
        return "cuda" if self.gpus_per_worker > 0 else "cpu"
