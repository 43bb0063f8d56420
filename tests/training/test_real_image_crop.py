"""SPIN's crop of a real image (SPIN's own example im1010.jpg, its box and OpenPose detection
from ../shared/data): the training crop equals an independent crop of the box made with Pillow,
and the keypoints land where the crop puts them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from spinfits.fitting.body.joints import SPIN_JOINTS_FLIP_PERM
from spinfits.fitting.data.dataset import image_to_crop, read_openpose_json
from spinfits.training.augmentation import Augmentation, augment_keypoints
from spinfits.training.images import IMAGENET_MEAN, IMAGENET_STD, crop_images, load_images


@pytest.fixture
def real_example(shared_data):
    x0, y0, w, h = json.loads((shared_data / "im1010_bbox.json").read_text())["bbox"]
    center = np.array([[x0 + w / 2, y0 + h / 2]])
    scale = np.array([max(w, h) * 1.2 / 200])  # SPIN's demo: box side * 1.2 / 200
    image = load_images([shared_data / "im1010.jpg"])[0]
    keypoints = read_openpose_json(shared_data / "im1010_openpose.json")[0]  # (25, 3) person 0
    return image, center, scale, keypoints


def _pixels(crop: torch.Tensor) -> np.ndarray:
    """(1, 3, R, R) normalised -> (R, R, 3) in [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (crop[0] * std + mean).permute(1, 2, 0).numpy()


def _pillow_crop(image: np.ndarray, center: np.ndarray, scale: float, shift: float = 0.0):
    half = 100 * scale
    box = (center[0] - half + shift, center[1] - half, center[0] + half + shift, center[1] + half)
    out = Image.fromarray(image).transform(
        (224, 224), Image.Transform.EXTENT, box, resample=Image.Resampling.BILINEAR
    )
    return np.asarray(out, dtype=np.float32) / 255


def test_crop_of_a_real_image_matches_pillow(real_example):
    image, center, scale, _ = real_example
    ours = _pixels(crop_images([image], center, scale, Augmentation.identity(1)))
    inside = np.ones((224, 224), dtype=bool)  # compare where the box lies inside the image
    half = 100 * scale[0]
    for axis, size in ((1, image.shape[1]), (0, image.shape[0])):
        coords = center[0, axis] - half + (np.arange(224) + 0.5) * (2 * half / 224)
        valid = (coords > 1) & (coords < size - 1)
        inside &= valid[None, :] if axis == 1 else valid[:, None]
    difference = np.abs(ours - _pillow_crop(image, center[0], scale[0]))[inside].mean()
    shifted = np.abs(ours - _pillow_crop(image, center[0], scale[0], shift=4.0))[inside].mean()
    assert difference < 0.02, difference
    assert shifted > 2 * difference  # the comparison does see a 4-pixel misalignment


def test_real_keypoints_follow_the_augmented_crop(real_example):
    image, center, scale, body25 = real_example
    crop_points = image_to_crop(body25[None, :, :2], center, scale, 224)  # (1, 25, 2)
    keypoints = torch.as_tensor(np.concatenate([crop_points, body25[None, :, 2:]], -1), dtype=torch.float32)
    keypoints = torch.cat([keypoints, torch.zeros(1, 24, 3)], dim=1)  # SPIN's 49: no GT joints
    augmentation = Augmentation.geometric([True], [25.0], [1.1])
    moved = augment_keypoints(keypoints, augmentation)
    # mark each confident keypoint in a black image, crop it under the augmentation, and find
    # the marks where augment_keypoints puts them
    found = keypoints[0, :25, 2] > 0
    for joint in np.flatnonzero(found.numpy())[:6]:
        marker = np.zeros_like(image)
        x, y = body25[joint, :2]
        yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
        blob = np.exp(-((xx + 0.5 - x) ** 2 + (yy + 0.5 - y) ** 2) / 2)  # pixel centres at +0.5
        marker[..., 0] = (255 * blob).astype(np.uint8)
        red = _pixels(crop_images([marker], center, scale, augmentation))[..., 0]
        red = red - red.min()
        peak = np.array(np.unravel_index(np.argmax(red), red.shape))[::-1] + 0.5
        mirrored = SPIN_JOINTS_FLIP_PERM[joint]  # the flip relabels left and right (involution)
        assert np.abs(peak - moved[0, mirrored, :2].numpy()).max() < 1.5, (joint, peak)
    assert found.sum() >= 6
