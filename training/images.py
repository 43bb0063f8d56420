"""Training images: read them, and cut SPIN's augmented, normalised crops out of them, batched.

Convention: pixel i covers ``[i, i + 1)`` and its centre is ``i + 0.5``, in the image, in the
``crop_res`` (224) px crop and in the output; keypoints are continuous coordinates in that
convention (as ``fitting.data.dataset`` and ``fitting.synthetic.render``). A person's box
(``center`` (2,) image px, ``scale`` = box side / 200) maps crop point ``u`` to image point
``p = center + (u - c) * 200 * scale / crop_res`` (c = crop_res / 2, the inverse of
``fitting.data.dataset.image_to_crop``); the augmentation (``training.augmentation``) maps ``u`` to
``a = F(R(θ) (u - c) / sc) + c`` in the augmented crop. ``crop_images`` samples, for every output
pixel centre, the image at the point that lands there: an output of ``out_res`` px covers the
augmented ``crop_res`` crop, so output pixel ``j`` has ``a = (j + 0.5) * crop_res / out_res``
(keypoints in the output are ``a * out_res / crop_res``). Sampling is bilinear, point-wise
(no anti-aliasing when ``out_res`` is small), black outside the image.

Pixel values follow SPIN: ``rgb = clip(image * pixel_noise, 0, 255) / 255``, then ImageNet's
mean and std. When a dataset's image files are the crops themselves (``images_are_crops``,
synthetic datasets), crop them with ``crop_boxes``' box: center (112, 112), scale 224 / 200.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from spinfits.errors import InputError
from spinfits.fitting.data.rgb_image import check_rgb_image
from spinfits.fitting.data.spin_crop import BOX_SCALE_PX, CROP_RES
from spinfits.training.augmentation import Augmentation, unaugment_points

logger = logging.getLogger(__name__)

#: ImageNet's RGB mean and std (SPIN's normalisation), for images in [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_images(paths: Sequence[str | Path]) -> list[np.ndarray]:
    """Read image files as (H, W, 3) uint8 RGB arrays (greyscale, palette, RGBA converted)."""
    from PIL import Image, UnidentifiedImageError  # pillow: a dependency of matplotlib

    images = []
    for path in map(Path, paths):
        if not path.is_file():
            raise InputError(
                f"image file {path} does not exist; check the image folder the dataset's "
                f"imgname entries are relative to (for a synthetic dataset, render its images "
                f"with `spinfits data make-synthetic --images DIR`)"
            )
        try:
            with Image.open(path) as image:
                images.append(np.asarray(image.convert("RGB"), dtype=np.uint8))
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise InputError(
                f"image file {path} is not a readable image ({type(error).__name__}: {error}); "
                f"it may be truncated or of another format: expected a PNG or JPEG (re-copy or "
                f"re-render it)"
            ) from None
    return images


def crop_boxes(
    dataset_center: np.ndarray, dataset_scale: np.ndarray, images_are_crops: bool, crop_res: int = CROP_RES
) -> tuple[np.ndarray, np.ndarray]:
    """The boxes to crop a dataset's images with: center (N, 2), scale (N,), float64.

    The dataset's own boxes, or, where the image files ARE the ``crop_res`` crops
    (``KeypointDataset.images_are_crops``), the whole image: center (crop_res / 2,) * 2 and
    scale crop_res / 200 in every row.
    """
    center = np.asarray(dataset_center, dtype=np.float64)
    scale = np.asarray(dataset_scale, dtype=np.float64).reshape(-1)
    if center.shape != (scale.shape[0], 2):
        raise InputError(
            f"dataset_center must be (N, 2) beside dataset_scale (N,) = {scale.shape}, got {center.shape}"
        )
    if images_are_crops:
        return np.full_like(center, crop_res / 2.0), np.full_like(scale, crop_res / BOX_SCALE_PX)
    return center.copy(), scale.copy()


def _check_inputs(
    images: Sequence[np.ndarray], center: torch.Tensor, scale: torch.Tensor, aug: Augmentation, out_res: int
) -> None:
    batch = len(aug)
    if len(images) != batch or tuple(center.shape) != (batch, 2) or tuple(scale.shape) != (batch,):
        raise InputError(
            f"crop_images needs B images, center (B, 2), scale (B,) with B = {batch} (the "
            f"augmentation's batch), got {len(images)} images, center {tuple(center.shape)}, "
            f"scale {tuple(scale.shape)}"
        )
    for index, image in enumerate(images):
        check_rgb_image(image, f"image {index}")
    if not (torch.isfinite(center).all() and torch.isfinite(scale).all() and (scale > 0).all()):
        raise InputError("center and scale must be finite and scale > 0 in every row")
    if out_res < 1:
        raise InputError(f"out_res must be >= 1 pixel, got {out_res}")


def crop_sample_points(
    center: torch.Tensor,
    scale: torch.Tensor,
    aug: Augmentation,
    out_res: int = CROP_RES,
    crop_res: int = CROP_RES,
) -> torch.Tensor:
    """Image points under the output pixel centres (see the module docstring).

    Args:
        center: (B, 2) box centres, image px. scale: (B,) box side / 200.
        aug: the augmentation (B samples).

    Returns:
        (B, out_res, out_res, 2) image px x, y; [b, i, j] is under output row i, column j.
    """
    dtype = center.dtype
    a = (torch.arange(out_res, dtype=dtype, device=center.device) + 0.5) * (crop_res / out_res)
    grid = torch.stack(torch.meshgrid(a, a, indexing="xy"), dim=-1).reshape(1, -1, 2)
    u = unaugment_points(grid.expand(len(aug), -1, -1), aug, crop_res)  # (B, out*out, 2)
    factor = (scale * (BOX_SCALE_PX / crop_res))[:, None, None]
    points = center[:, None, :] + (u - crop_res / 2.0) * factor
    return points.reshape(len(aug), out_res, out_res, 2)


def crop_images(
    images: Sequence[np.ndarray],
    center: torch.Tensor | np.ndarray,
    scale: torch.Tensor | np.ndarray,
    aug: Augmentation,
    out_res: int = CROP_RES,
    crop_res: int = CROP_RES,
) -> torch.Tensor:
    """SPIN's augmented, normalised crops of B images (any sizes), on ``aug``'s device.

    Args:
        images: B (H_b, W_b, 3) uint8 RGB arrays (``load_images``).
        center: (B, 2) box centres, image px. scale: (B,) box side / 200 (``crop_boxes``).
        aug: per-sample augmentation; pixel noise is applied as SPIN does.
        out_res: output side in px (the augmented crop_res crop, resampled).

    Returns:
        (B, 3, out_res, out_res) float32, ImageNet-normalised RGB.
    """
    device = aug.flip.device
    wide = torch.float32 if device.type == "mps" else torch.float64
    center = torch.as_tensor(center, device=device).to(wide)
    scale = torch.as_tensor(scale, device=device).to(wide).reshape(-1)
    _check_inputs(images, center, scale, aug, out_res)
    points = crop_sample_points(center, scale, aug, out_res, crop_res)  # (B, out, out, 2)
    out = torch.empty(len(aug), 3, out_res, out_res, device=device)
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for index, image in enumerate(images):
        groups[image.shape].append(index)
    for (height, width, _), rows in groups.items():
        pixels = torch.from_numpy(np.stack([images[row] for row in rows])).to(device)
        pixels = pixels.permute(0, 3, 1, 2).float()  # (G, 3, H, W)
        size = torch.tensor([width, height], dtype=wide, device=device)
        grid = (2.0 * points[rows] / size - 1.0).float()  # grid_sample's [-1, 1] pixel edges
        out[rows] = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    logger.debug("cropped %d images (%d sizes) to %d px", len(aug), len(groups), out_res)
    noise = aug.pixel_noise.to(device=device, dtype=out.dtype)[:, :, None, None]
    out = (out * noise).clamp(0.0, 255.0) / 255.0
    mean = torch.tensor(IMAGENET_MEAN, device=device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, device=device)[:, None, None]
    return (out - mean) / std
