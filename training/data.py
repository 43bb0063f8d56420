"""Training batches: SPIN's dataset npz + images, cropped and augmented as SPIN does.

``TrainingData.batch(rows, augmentation)`` loads the rows' images, crops each person's box
(``center``, ``scale``; or uses the file as the crop when the dataset's images are crops) under
the augmentation, and returns the keypoints both in the un-augmented crop frame (what the store's
fits and losses refer to) and in the augmented one (what the network sees and SMPLify fits).

A run trains on one or more datasets (``MixedTrainingData``); ``StepBatches`` is the
``torch.utils.data.Dataset`` whose item i is a worker's whole batch of step ``first_step + i``: the
samples ``training.mixture.MixedSampler`` draws for (seed, step, rank) and the augmentation of
``step_generator``, so a run resumed at step s draws exactly the samples and augmentations it would
have drawn. ``training_loader`` runs it in ``DataLoader`` worker processes (decoding, cropping and
augmenting the next steps while the current one trains; pinned memory on CUDA).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch

from spinfits.errors import InputError
from spinfits.fitting.data.dataset import KeypointDataset, load_spin_npz
from spinfits.fitting.data.spin_crop import CROP_RES
from spinfits.training.augmentation import (
    Augmentation,
    AugmentationConfig,
    augment_joints_3d,
    augment_keypoints,
)
from spinfits.training.images import crop_boxes, crop_images, load_images
from spinfits.training.mixture import MixedSampler


@dataclass(frozen=True)
class TrainingBatch:
    """One worker's batch of B samples.

    rows: (B,) int64 dataset rows; images: (B, 3, R, R) normalised crops (augmented);
    keypoints: (B, 49, 3) augmented crop pixels x, y, confidence; keypoints_crop: (B, 49, 3)
    the same keypoints un-augmented (the store's frame); augmentation: per sample;
    has_smpl: (B,) bool rows whose ground-truth SMPL is used; gt_pose (B, 72), gt_betas (B, 10)
    (zeros where absent, un-augmented); joints_3d: (B, 24, 4) augmented 3D joints + confidence
    or None; has_joints_3d: (B,) bool or None; dataset: (B,) int64 index of each sample's dataset
    among the run's (None: all from one dataset).
    """

    rows: np.ndarray
    images: torch.Tensor
    keypoints: torch.Tensor
    keypoints_crop: torch.Tensor
    augmentation: Augmentation
    has_smpl: torch.Tensor
    gt_pose: torch.Tensor
    gt_betas: torch.Tensor
    joints_3d: torch.Tensor | None = None
    has_joints_3d: torch.Tensor | None = None
    dataset: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def _map_tensors(self, function) -> TrainingBatch:
        changed = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, (torch.Tensor, Augmentation)):
                changed[item.name] = function(value)
        return replace(self, **changed)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> TrainingBatch:
        """The batch with its tensors on ``device``."""
        return self._map_tensors(lambda value: value.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> TrainingBatch:
        """The batch in pinned memory (``DataLoader(pin_memory=True)`` calls this)."""
        return self._map_tensors(lambda value: value.pin_memory())


def concat_batches(batches: Sequence[TrainingBatch]) -> TrainingBatch:
    """One batch of the samples of ``batches``, in order; 3D joints are zeros with
    ``has_joints_3d`` False for samples of datasets without them."""
    if len(batches) == 1:
        return batches[0]
    with_3d = [b for b in batches if b.joints_3d is not None]

    def joints(b: TrainingBatch) -> tuple[torch.Tensor, torch.Tensor]:
        if b.joints_3d is not None:
            return b.joints_3d, b.has_joints_3d
        like = with_3d[0].joints_3d
        return like.new_zeros((len(b), *like.shape[1:])), torch.zeros(
            len(b), dtype=torch.bool, device=like.device
        )

    cat = lambda name: torch.cat([getattr(b, name) for b in batches])  # noqa: E731
    pairs = [joints(b) for b in batches] if with_3d else None
    return TrainingBatch(
        rows=np.concatenate([b.rows for b in batches]),
        images=cat("images"),
        keypoints=cat("keypoints"),
        keypoints_crop=cat("keypoints_crop"),
        augmentation=Augmentation(
            *(
                torch.cat([getattr(b.augmentation, n) for b in batches])
                for n in ("flip", "rotation", "scale", "pixel_noise")
            )
        ),
        has_smpl=cat("has_smpl"),
        gt_pose=cat("gt_pose"),
        gt_betas=cat("gt_betas"),
        joints_3d=None if pairs is None else torch.cat([p[0] for p in pairs]),
        has_joints_3d=None if pairs is None else torch.cat([p[1] for p in pairs]),
        dataset=np.concatenate(
            [b.dataset if b.dataset is not None else np.zeros(len(b), dtype=np.int64) for b in batches]
        ),
    )


class TrainingData:
    """A dataset ready for training.

    images_dir: folder the npz's ``imgname`` paths are relative to; input_res: side of the
    network's input (the crop is resampled to it; 224 is SPIN's); use_gt_smpl: supervise rows
    that have ground-truth SMPL with it, as SPIN does (False: every row learns from its fits).
    """

    def __init__(
        self,
        dataset: KeypointDataset,
        images_dir: str | Path,
        input_res: int = CROP_RES,
        use_gt_smpl: bool = True,
        joints_3d: np.ndarray | None = None,
    ) -> None:
        self.dataset = dataset
        self.images_dir = Path(images_dir)
        if not self.images_dir.is_dir():
            raise InputError(
                f"image folder {self.images_dir} does not exist; pass the folder the dataset's "
                "imgname paths are relative to (for a synthetic dataset: the --images DIR given "
                "to `spinfits data make-synthetic`)"
            )
        first = self.images_dir / str(dataset.imgname[0])
        if not first.is_file():
            raise InputError(
                f"{first} (row 0's image) is missing: is {self.images_dir} the dataset's image "
                "folder? (synthetic datasets: render images with `spinfits data make-synthetic "
                "--images DIR`)"
            )
        if input_res < 32:
            raise InputError(f"input_res must be >= 32 pixels, got {input_res}")
        self.input_res = input_res
        n = len(dataset)
        self.has_smpl = (
            dataset.has_smpl.astype(bool)
            if use_gt_smpl and dataset.has_smpl is not None and dataset.gt_pose is not None
            else np.zeros(n, dtype=bool)
        )
        self.gt_pose = dataset.gt_pose if dataset.gt_pose is not None else np.zeros((n, 72))
        self.gt_betas = dataset.gt_betas if dataset.gt_betas is not None else np.zeros((n, 10))
        self.joints_3d = joints_3d
        self.box_center, self.box_scale = crop_boxes(
            dataset.center, dataset.scale, dataset.images_are_crops, dataset.crop_res
        )

    @classmethod
    def load(
        cls, path: str | Path, images_dir: str | Path, input_res: int = CROP_RES, use_gt_smpl: bool = True
    ) -> TrainingData:
        """From a SPIN dataset npz (its ``S`` 3D joints are used when present)."""
        dataset = load_spin_npz(path)
        with np.load(path, allow_pickle=False) as data:
            joints_3d = data["S"].astype(np.float32) if "S" in data.files else None
        if joints_3d is not None and joints_3d.shape != (len(dataset), 24, 4):
            raise InputError(f"{path}: S must be (N, 24, 4) 3D joints + confidence, got {joints_3d.shape}")
        return cls(dataset, images_dir, input_res, use_gt_smpl, joints_3d)

    def __len__(self) -> int:
        return len(self.dataset)

    def batch(
        self,
        rows: np.ndarray,
        augmentation: Augmentation,
        device: torch.device | str = "cpu",
        dataset_index: int = 0,
    ) -> TrainingBatch:
        """The batch of ``rows`` ((B,) int) under ``augmentation`` (B samples); ``dataset_index``:
        this dataset's index among the run's (recorded in ``TrainingBatch.dataset``)."""
        rows = np.asarray(rows, dtype=np.int64)
        paths = [self.images_dir / str(name) for name in self.dataset.imgname[rows]]
        augmentation = augmentation.to("cpu")
        images = crop_images(
            load_images(paths),
            self.box_center[rows],
            self.box_scale[rows],
            augmentation,
            out_res=self.input_res,
            crop_res=self.dataset.crop_res,
        )
        keypoints_crop = torch.as_tensor(self.dataset.keypoints[rows], dtype=torch.float32)
        keypoints = augment_keypoints(keypoints_crop, augmentation, self.dataset.crop_res)
        joints_3d = has_3d = None
        if self.joints_3d is not None:
            joints_3d = augment_joints_3d(torch.as_tensor(self.joints_3d[rows]), augmentation)
            has_3d = joints_3d[..., 3].sum(-1) > 0

        def tensor(array: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.asarray(array), dtype=torch.float32, device=device)

        return TrainingBatch(
            rows=rows,
            images=images.to(device),
            keypoints=keypoints.to(device),
            keypoints_crop=keypoints_crop.to(device),
            augmentation=augmentation.to(device),
            has_smpl=torch.as_tensor(self.has_smpl[rows], device=device),
            gt_pose=tensor(self.gt_pose[rows]),
            gt_betas=tensor(self.gt_betas[rows]),
            joints_3d=None if joints_3d is None else joints_3d.to(device),
            has_joints_3d=None if has_3d is None else has_3d.to(device),
            dataset=np.full(len(rows), dataset_index, dtype=np.int64),
        )


class MixedTrainingData:
    """The datasets of a run, by name (in the run's order), batched together.

    ``batch(dataset, rows, augmentation)`` builds each dataset's part with its own boxes, images
    and annotations and concatenates them; samples must come grouped by dataset (``StepBatches``
    sorts them), so the result keeps the order given.
    """

    def __init__(self, names: Sequence[str], datasets: Sequence[TrainingData]) -> None:
        if len(names) != len(datasets) or not names or len(set(names)) != len(names):
            raise InputError(f"datasets need one distinct name each, got names {list(names)}")
        self.names, self.datasets = tuple(names), tuple(datasets)

    def __len__(self) -> int:
        return len(self.datasets)

    @property
    def sizes(self) -> list[int]:
        return [len(data) for data in self.datasets]

    def batch(
        self,
        dataset: np.ndarray,
        rows: np.ndarray,
        augmentation: Augmentation,
        device: torch.device | str = "cpu",
    ) -> TrainingBatch:
        """dataset: (B,) int index of each sample's dataset, grouped (non-decreasing); rows (B,)."""
        dataset = np.asarray(dataset, dtype=np.int64)
        if (np.diff(dataset) < 0).any():
            raise InputError("dataset indices must come grouped (sorted); sort the samples by dataset first")
        parts = []
        for index in np.unique(dataset):
            mine = np.flatnonzero(dataset == index)
            parts.append(
                self.datasets[index].batch(
                    rows[mine], augmentation.take(mine), device, dataset_index=int(index)
                )
            )
        return concat_batches(parts)


class StepBatches(torch.utils.data.Dataset):
    """Item i: worker ``rank``'s whole batch at step ``first_step + i`` (a ``TrainingBatch`` on the
    CPU), drawn from (seed, step, rank) alone: the sampler's samples, grouped by dataset, under
    the augmentation of ``step_generator``. Used with ``DataLoader(batch_size=None)``."""

    def __init__(
        self,
        data: MixedTrainingData,
        sampler: MixedSampler,
        augmentation: AugmentationConfig,
        seed: int,
        rank: int,
        first_step: int,
        last_step: int,
    ) -> None:
        self.data, self.sampler, self.augmentation = data, sampler, augmentation
        self.seed, self.rank, self.first_step, self.last_step = seed, rank, first_step, last_step

    def __len__(self) -> int:
        return max(0, self.last_step - self.first_step)

    def __getitem__(self, index: int) -> TrainingBatch:
        step = self.first_step + index
        samples = self.sampler.draw(step, self.rank)
        order = np.argsort(samples.dataset, kind="stable")
        augmentation = Augmentation.sample(
            self.augmentation, len(order), step_generator(self.seed, step, self.rank)
        )
        return self.data.batch(samples.dataset[order], samples.rows[order], augmentation)


def training_loader(batches: StepBatches, workers: int, pin_memory: bool) -> torch.utils.data.DataLoader:
    """The steps' batches in order, built by ``workers`` processes (0: in this process), each
    prefetching two steps ahead; pinned (for CUDA copies) when ``pin_memory``."""
    if workers < 0:
        raise InputError(f"loader workers must be >= 0, got {workers}")
    return torch.utils.data.DataLoader(
        batches,
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=2 if workers else None,
        persistent_workers=False,
    )


def step_seed(seed: int, step: int, rank: int, stream: int = 0) -> int:
    """A seed for worker ``rank`` at ``step`` (stream 0: augmentation, 1: dropout), so a resumed
    run draws what the uninterrupted one would have drawn."""
    return int(np.random.default_rng([seed, step, rank, 7 + stream]).integers(2**62))


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """The generator of worker ``rank``'s augmentations at ``step`` (reproducible on resume)."""
    return torch.Generator().manual_seed(step_seed(seed, step, rank))
