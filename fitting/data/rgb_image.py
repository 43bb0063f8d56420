"""The one check of an RGB image array, shared by everything that takes images."""

from __future__ import annotations

import numpy as np

from spinfits.errors import InputError


def check_rgb_image(image: object, name: str = "image") -> None:
    """``image`` must be an (H, W, 3) uint8 RGB numpy array (as ``training.images.load_images``
    reads files); InputError naming ``name`` otherwise."""
    if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        return
    got = (
        f"{image.dtype} array of shape {image.shape}"
        if isinstance(image, np.ndarray)
        else type(image).__name__
    )
    raise InputError(
        f"{name} must be an (H, W, 3) uint8 RGB array, got a {got}; read image files with "
        "spinfits.training.images.load_images"
    )
