"""TensorBoard summaries of a training run (rank 0): scalars every few steps, and a grid of fits
drawn over the training crops, as SPIN's trainer does (its ``train_summaries``: the prediction
and the best fit, both with the predicted camera, over the input images).

Event files go to ``<run dir>/tensorboard``; ``tensorboard --logdir runs/<run>/tensorboard``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from spinfits.fitting.data.spin_crop import CROP_RES, FOCAL_LENGTH
from spinfits.fitting.synthetic.render import rasterize, render
from spinfits.training.images import IMAGENET_MEAN, IMAGENET_STD


def crops_to_rgb(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, R, R) ImageNet-normalised crops -> (B, R, R, 3) float RGB in [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, device=images.device)[:, None, None]
    return (images.float() * std + mean).clamp(0, 1).permute(0, 2, 3, 1)


def draw_fits(
    crops: torch.Tensor,
    vertices: torch.Tensor,
    cam_t: torch.Tensor,
    faces: np.ndarray,
    colours: np.ndarray,
    alpha: float = 0.7,
    focal_length: float = FOCAL_LENGTH,
) -> torch.Tensor:
    """Meshes blended over crops.

    crops: (B, R, R, 3) RGB in [0, 1], the network's input (an R-px view of SPIN's 224-px crop);
    vertices: (B, V, 3) metres, untranslated; cam_t: (B, 3) camera translation in the 224-px
    crop's camera (focal ``focal_length``); faces (F, 3); colours (F, 3) RGB in [0, 1].
    Returns (B, R, R, 3) float RGB in [0, 1].
    """
    size = crops.shape[1]
    zoom = size / CROP_RES  # the R-px input sees the 224-px crop's camera with a scaled focal length
    placed = vertices.float() + cam_t.float()[:, None]
    focal, centre = focal_length * zoom, (size / 2.0, size / 2.0)
    drawn = render(placed, faces, colours, focal, centre, (size, size)).float() / 255.0
    face_index, _ = rasterize(
        placed, torch.as_tensor(faces, device=placed.device).long(), (size, size), focal, centre
    )
    covered = (face_index >= 0)[..., None].to(crops.dtype)
    return crops * (1 - alpha * covered) + drawn.to(crops.device) * alpha * covered


def fit_grid(rows: list[torch.Tensor]) -> torch.Tensor:
    """Image rows side by side: each (B, R, R, 3) -> one (3, B * R, len(rows) * R) CHW grid
    (sample b in row b, one column per entry of ``rows``)."""
    columns = torch.cat([torch.cat(list(images), dim=0) for images in rows], dim=1)  # (B*R, k*R, 3)
    return columns.permute(2, 0, 1).cpu()


class RunSummaries:
    """rank 0's TensorBoard writer (None elsewhere; every method is then a no-op)."""

    def __init__(self, folder: Path | None) -> None:
        self._writer = None
        if folder is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(folder))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self._writer is None:
            return
        for name, value in values.items():
            if value is not None and np.isfinite(value):
                self._writer.add_scalar(name, value, step)

    def image(self, step: int, name: str, grid: torch.Tensor) -> None:
        if self._writer is not None:
            self._writer.add_image(name, grid, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
