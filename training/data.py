"""Training batches: SPIN's dataset npz + images, cropped and augmented as SPIN does.

``TrainingData.batch(rows, augmentation)`` loads the rows' images, crops each person's box
(``center``, ``scale``; or uses the file as the crop when the dataset's images are crops) under
the augmentation, and returns the keypoints both in the un-augmented crop frame (what the store's
fits and losses refer to) and in the augmented one (what the network sees and SMPLify fits).

Rows per step (``step_rows``) come from a seeded permutation per epoch, so a run resumed at step
s draws exactly the rows (and, with ``step_generator``, the augmentations) it would have drawn.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spinfits.errors import InputError
from spinfits.fitting.dataset import KeypointDataset, load_spin_npz
from spinfits.fitting.spin_crop import CROP_RES
from spinfits.training.augmentation import Augmentation, augment_joints_3d, augment_keypoints
from spinfits.training.images import crop_boxes, crop_images, load_images


@dataclass(frozen=True)
class TrainingBatch:
    """One worker's batch of B samples.

    rows: (B,) int64 dataset rows; images: (B, 3, R, R) normalised crops (augmented);
    keypoints: (B, 49, 3) augmented crop pixels x, y, confidence; keypoints_crop: (B, 49, 3)
    the same keypoints un-augmented (the store's frame); augmentation: per sample;
    has_smpl: (B,) bool rows whose ground-truth SMPL is used; gt_pose (B, 72), gt_betas (B, 10)
    (zeros where absent, un-augmented); joints_3d: (B, 24, 4) augmented 3D joints + confidence
    or None; has_joints_3d: (B,) bool or None.
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
        self, rows: np.ndarray, augmentation: Augmentation, device: torch.device | str = "cpu"
    ) -> TrainingBatch:
        """The batch of ``rows`` ((B,) int) under ``augmentation`` (B samples)."""
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
        )


def step_rows(step: int, rank: int, world_size: int, batch_size: int, n_rows: int, seed: int) -> np.ndarray:
    """The (batch_size,) rows worker ``rank`` trains on at ``step``: global batches walk through
    one seeded permutation per epoch; worker r takes the r-th slice of each global batch. A
    global batch that straddles two epochs may hold a row twice (the merge rule keeps one)."""
    for name, value, least in (
        ("step", step, 0),
        ("batch_size", batch_size, 1),
        ("n_rows", n_rows, 1),
        ("world_size", world_size, 1),
    ):
        if value < least:
            raise InputError(f"{name} must be >= {least}, got {value}")
    if not 0 <= rank < world_size:
        raise InputError(f"rank must be in [0, {world_size}) (the worker's index), got {rank}")
    start = (step * world_size + rank) * batch_size
    positions = np.arange(start, start + batch_size)
    epochs = positions // n_rows
    rows = np.empty(batch_size, dtype=np.int64)
    for epoch in np.unique(epochs):
        mine = epochs == epoch
        rows[mine] = _epoch_order(seed, int(epoch), n_rows)[positions[mine] % n_rows]
    return rows


@functools.lru_cache(maxsize=2)
def _epoch_order(seed: int, epoch: int, n_rows: int) -> np.ndarray:
    """The seeded permutation of epoch ``epoch`` (read-only; kept, so a step does not redraw
    all ``n_rows`` of it)."""
    order = np.random.default_rng([seed, epoch]).permutation(n_rows)
    order.flags.writeable = False
    return order


def step_seed(seed: int, step: int, rank: int, stream: int = 0) -> int:
    """A seed for worker ``rank`` at ``step`` (stream 0: augmentation, 1: dropout), so a resumed
    run draws what the uninterrupted one would have drawn."""
    return int(np.random.default_rng([seed, step, rank, 7 + stream]).integers(2**62))


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """The generator of worker ``rank``'s augmentations at ``step`` (reproducible on resume)."""
    return torch.Generator().manual_seed(step_seed(seed, step, rank))
