"""``TrainConfig``: one SPIN training run with the best-fit store in the loop."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch

from spinfits.errors import InputError
from spinfits.fitting.data.spin_crop import CROP_RES
from spinfits.fitting.device import native_bf16
from spinfits.fitting.smplify.config import SmplifyConfig
from spinfits.store import S3Options
from spinfits.training.augmentation import AugmentationConfig
from spinfits.training.config_file import config_from_dict, config_to_dict
from spinfits.training.in_loop_rule import IN_LOOP_RULES, InLoopRule
from spinfits.training.spin_losses import SpinLossWeights

#: How often the training run's store writer commits by default, seconds.
COMMIT_EVERY_S = 5.0


def in_loop_smplify() -> SmplifyConfig:
    """SMPLify in the training loop: SPIN's objective, fewer iterations (it starts from the
    network's prediction, which after a little training is close)."""
    return SmplifyConfig(camera_iterations=10, body_iterations=20)


#: SPIN's learning rate (Adam, no weight decay, constant: SPIN's train_options.py and trainer.py).
SPIN_LEARNING_RATE = 5e-5


@dataclass(frozen=True)
class TrainDataset:
    """One dataset of a run: npz: SPIN dataset file; images: the folder its ``imgname`` paths are
    relative to; name: its dataset in the store (default: the npz's stem)."""

    npz: Path
    images: Path
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "npz", Path(self.npz))
        object.__setattr__(self, "images", Path(self.images))
        if not self.name:
            object.__setattr__(self, "name", self.npz.stem)

    def resolved(self) -> TrainDataset:
        """The same dataset with absolute paths (for processes that run elsewhere)."""
        return TrainDataset(self.npz.resolve(), self.images.resolve(), self.name)


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    datasets: the run's datasets (one or more ``TrainDataset``), each with its own group in the
    store; mix: None for SPIN's partition (``training.mixture.spin_partition``: Human3.6M 30 %,
    in-the-wild 60 % by size, MPI-INF-3DHP 10 %), or one weight per dataset.
    store: the store precompute filled (local path or s3://); model_dir: body model folder
    (the store's model).
    runs_dir / run: Ray Train keeps checkpoints in ``runs_dir/run``; resume: continue that run
    from its latest checkpoint (else the run must not exist yet).
    steps: optimiser steps; batch_size: samples each worker trains on per step (the global
    batch is workers x batch_size; SMPLify's own ``smplify.batch_size`` is its solver slots).
    backbone / input_res: the regressor (SPIN: resnet50 at 224 px; "small" for CPU runs).
    pretrained: weights to start from (SPIN's ``model_checkpoint.pt``, an mmhuman3d HMR
    checkpoint, or a torchvision resnet50 state dict for the backbone; ``training.pretrained``);
    not used when resuming (the checkpoint has the weights).
    learning_rate: Adam's (SPIN: 5e-5, constant). use_gt_smpl: supervise rows that have
    ground-truth SMPL with it (SPIN); False makes every row learn from its best fit.
    run_smplify: SMPLify in the loop (SPIN's ``--run_smplify``); False: supervise with the
    store's fits only (static fits, SPIN's default mode), nothing is proposed.
    in_loop_rule: when a new in-loop fit replaces the stored one (``training.in_loop_rule``):
    "fit_loss_and_prior" (default): its fit loss is lower and its pose no less likely under the
    GMM pose prior; "fit_loss": SPIN's, its fit loss is lower. in_loop_swap_check: rows whose
    OpenPose left/right looks swapped (precompute's check) keep a scored stored fit.
    smplify_threshold: best fits with a larger fit loss are not used as supervision (SPIN: 100).
    max_abs_betas: best fits with any |beta| above it are implausible: their betas are replaced
    by zeros for supervision, SPIN's fallback (SPIN: 3).
    precision: the network's forward: "auto" (bf16 autocast on a GPU with native bf16, Ampere and
    later; float32 on older GPUs and the CPU), "fp32" or
    "bf16" (autocast on either device); SMPLify and the losses' body model stay float32.
    loader_workers: DataLoader processes per training worker that decode, crop and augment
    the next steps' images (0: in the training process).
    refresh_every: steps between re-reads of the store's newest snapshot; checkpoint_every:
    steps between checkpoints; commit_every_s: the writer's commit period.
    summary_every / images_every: steps between TensorBoard scalars / image grids (rank 0,
    ``<run dir>/tensorboard``; 0 disables).
    s3: options of an s3:// store, without explicit keys (training refuses them: its Ray
    processes find credentials through the AWS chain, see ``trainer.worker_config``).
    """

    datasets: tuple[TrainDataset, ...]
    store: str
    model_dir: Path
    mix: tuple[float, ...] | None = None
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
    pretrained: Path | None = None
    learning_rate: float = SPIN_LEARNING_RATE
    use_gt_smpl: bool = True
    run_smplify: bool = True
    smplify: SmplifyConfig = field(default_factory=in_loop_smplify)
    in_loop_rule: InLoopRule = "fit_loss_and_prior"
    in_loop_swap_check: bool = True
    smplify_threshold: float = 100.0
    max_abs_betas: float = 3.0
    losses: SpinLossWeights = field(default_factory=SpinLossWeights)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    loader_workers: int = 1
    refresh_every: int = 10
    checkpoint_every: int = 50
    commit_every_s: float = COMMIT_EVERY_S
    summary_every: int = 10
    images_every: int = 100
    max_failures: int = 3
    seed: int = 0
    s3: S3Options | None = None
    show_progress: bool = True

    def __post_init__(self) -> None:
        # Messages name the field; the command line tells them in its flags (spinfits.cli.options).
        datasets = tuple(self.datasets) if isinstance(self.datasets, (list, tuple)) else ()
        if not datasets or not all(isinstance(d, TrainDataset) for d in datasets):
            raise InputError(
                f"datasets must be one or more TrainDataset(npz, images, name), got {self.datasets!r}"
            )
        object.__setattr__(self, "datasets", datasets)
        if not (math.isfinite(self.commit_every_s) and self.commit_every_s >= 0):
            raise InputError(
                f"commit_every_s must be a finite number of seconds >= 0 (0: commit as often as possible), got {self.commit_every_s}"
            )
        names = [d.name for d in datasets]
        if len(set(names)) != len(names):
            raise InputError(
                f"datasets: every dataset needs its own name in the store, got {names}; name them "
                "(TrainDataset(..., name=...))"
            )
        if self.mix is not None:
            mix = tuple(float(w) for w in self.mix)
            if len(mix) != len(datasets) or not all(w >= 0 for w in mix) or not sum(mix) > 0:
                raise InputError(
                    f"mix must be one weight >= 0 per dataset ({len(datasets)}), not all 0, got {list(mix)}"
                )
            object.__setattr__(self, "mix", mix)
        for name in ("workers", "steps", "batch_size", "refresh_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("loader_workers", "summary_every", "images_every"):
            if getattr(self, name) < 0:
                raise InputError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.gpus_per_worker < 0:
            raise InputError(f"gpus_per_worker must be >= 0, got {self.gpus_per_worker}")
        if self.workers > 1 and self.gpus_per_worker != int(self.gpus_per_worker):
            raise InputError(
                f"gpus_per_worker must be a whole number of GPUs when `workers` is {self.workers}, "
                f"got {self.gpus_per_worker:g}: Ray would place two DDP ranks on one GPU "
                "and NCCL refuses that ('Duplicate GPU detected'). Give each worker its own GPU "
                "(gpus_per_worker 1), or train with 1 worker to share a GPU with other jobs"
            )
        if not self.learning_rate > 0:
            raise InputError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.in_loop_rule not in IN_LOOP_RULES:
            raise InputError(
                f"in_loop_rule must be one of {', '.join(IN_LOOP_RULES)} (SPIN's is 'fit_loss'), "
                f"got {self.in_loop_rule!r}"
            )
        if self.precision not in ("auto", "fp32", "bf16"):
            raise InputError(f"precision must be 'auto', 'fp32' or 'bf16', got {self.precision!r}")
        if self.max_failures < -1:
            raise InputError(f"max_failures must be >= -1 (-1: no limit), got {self.max_failures}")
        if not self.run or "/" in self.run or self.run.startswith("."):
            raise InputError(f"run must be a plain folder name, got {self.run!r}")

    @property
    def names(self) -> tuple[str, ...]:
        """The datasets' names in the store, in the run's order."""
        return tuple(d.name for d in self.datasets)

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

    def autocast_dtype(self, device: torch.device | str | None = None) -> torch.dtype | None:
        """bfloat16 where the network's forward runs under autocast on ``device`` (default: the
        run's), else None (float32). "auto" picks bf16 only on a GPU that computes it natively
        (``fitting.device.native_bf16``: Ampere and later; older ones emulate it slowly), so it
        is decided on the worker, which has the GPU."""
        if self.precision == "bf16":
            return torch.bfloat16
        if self.precision == "auto" and native_bf16(device if device is not None else self.device):
            return torch.bfloat16
        return None

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready (paths as text, S3 keys left out)."""
        return config_to_dict(replace(self, s3=None if self.s3 is None else self.s3.without_credentials()))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return config_from_dict(cls, data)

    def save(self, path: str | Path) -> Path:
        """Write the configuration as JSON (``spinfits train --config`` reads it back)."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError(f"config file {path} does not exist; pass a run's config.json") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise InputError(f"config file {path} is not JSON ({error}); pass a run's config.json") from None
        return cls.from_dict(data)
