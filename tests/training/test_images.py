"""Reading training images and cutting SPIN's augmented crops: dots land where keypoints do."""

import numpy as np
import pytest
import torch
from PIL import Image

from spinfits.errors import InputError
from spinfits.fitting.body.joints import spin_index
from spinfits.fitting.data.dataset import image_to_crop
from spinfits.training.augmentation import Augmentation, augment_keypoints
from spinfits.training.images import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    crop_boxes,
    crop_images,
    load_images,
)

#: Joints that a flip maps onto themselves: one dot per colour channel stands for each.
DOT_JOINTS = [spin_index("OP Nose"), spin_index("OP Neck"), spin_index("OP MidHip")]


def _dot_image(height, width, dots, sigma):
    """(H, W, 3) uint8, black, one Gaussian dot per channel centred at ``dots`` (3, 2) px."""
    x = np.arange(width) + 0.5  # pixel centres
    y = np.arange(height) + 0.5
    image = np.zeros((height, width, 3))
    for channel, (cx, cy) in enumerate(dots):
        image[..., channel] = 230 * np.exp(
            -((x[None, :] - cx) ** 2 + (y[:, None] - cy) ** 2) / (2 * sigma**2)
        )
    return np.round(image).astype(np.uint8)


def _unnormalise(crops):
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    return crops * std + mean  # (B, 3, H, W) in [0, 1]


def _centroids(crops):
    """(B, 3, H, W) crops -> (B, 3, 2) per-channel intensity centroids, output px."""
    values = _unnormalise(crops).double().clamp_min(0)
    values = torch.where(values > 0.02, values, torch.zeros_like(values))  # rounding noise
    height, width = values.shape[-2:]
    x = torch.arange(width, dtype=torch.float64) + 0.5
    y = torch.arange(height, dtype=torch.float64) + 0.5
    total = values.sum((-1, -2))
    return torch.stack(
        [(values * x).sum((-1, -2)) / total, (values * y[:, None]).sum((-1, -2)) / total], dim=-1
    )


@pytest.fixture(scope="module")
def dot_batch():
    """A 300x400 image with a person box, and a 224 crop image; crop-frame dot positions."""
    center, scale = np.array([210.0, 150.0]), 1.4  # box side 280 px
    image_dots = np.array([[250.0, 120.0], [170.0, 140.0], [200.0, 205.0]])  # R, G, B
    big = _dot_image(300, 400, image_dots, sigma=3.0)
    big_crop = image_to_crop(image_dots[None], center[None], np.array([scale]))[0]
    crop_dots = np.array([[150.0, 90.0], [80.0, 120.0], [118.0, 160.0]])
    crop = _dot_image(224, 224, crop_dots, sigma=2.5)
    return big, center, scale, big_crop, crop, crop_dots


def _batch(dot_batch, aug):
    """Rows alternate the big image and the crop image."""
    big, center, scale, big_crop, crop, crop_dots = dot_batch
    rows = len(aug)
    images = [big if row % 2 == 0 else crop for row in range(rows)]
    crop_center, crop_scale = crop_boxes(np.zeros((1, 2)), np.ones(1), images_are_crops=True)
    centers = np.stack([center if row % 2 == 0 else crop_center[0] for row in range(rows)])
    scales = np.array([scale if row % 2 == 0 else crop_scale[0] for row in range(rows)])
    keypoints = torch.zeros(rows, 49, 3, dtype=torch.float64)
    for row in range(rows):
        keypoints[row, DOT_JOINTS, :2] = torch.as_tensor(big_crop if row % 2 == 0 else crop_dots)
    keypoints[..., 2] = 1.0
    expected = augment_keypoints(keypoints, aug)[:, DOT_JOINTS, :2]  # (B, 3, 2) 224 frame
    return images, centers, scales, expected


def _augmentation():
    return Augmentation(
        flip=torch.tensor([False, False, True, True, True, False, True, False]),
        rotation=torch.tensor([0.0, 0.0, 0.0, 30.0, -45.0, 60.0, 20.0, -25.0]),
        scale=torch.tensor([1.0, 1.0, 1.0, 1.2, 0.8, 1.25, 0.75, 1.1]),
        pixel_noise=torch.rand(8, 3, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.6,
    )


def test_dots_land_where_the_keypoints_do(dot_batch):
    aug = _augmentation()
    images, centers, scales, expected = _batch(dot_batch, aug)
    crops = crop_images(images, centers, scales, aug)
    assert crops.shape == (8, 3, 224, 224) and crops.dtype == torch.float32
    error = (_centroids(crops) - expected).norm(dim=-1)
    assert error.max() < 0.1, error  # sub-pixel: the pixel-centre conventions agree
    # at a lower resolution the same crop, scaled
    small = crop_images(images, torch.as_tensor(centers), torch.as_tensor(scales), aug, out_res=112)
    assert small.shape == (8, 3, 112, 112)
    error = (_centroids(small) * 2 - expected).norm(dim=-1)
    assert error.max() < 0.15, error


def test_pixel_noise_scales_channels_and_clips(dot_batch):
    crop = dot_batch[4]
    aug = Augmentation(
        torch.zeros(1, dtype=torch.bool), torch.zeros(1), torch.ones(1), torch.tensor([[0.6, 1.0, 1.4]])
    )
    center, scale = crop_boxes(np.zeros((1, 2)), np.ones(1), images_are_crops=True)
    out = _unnormalise(crop_images([crop], center, scale, aug))[0]
    expected = np.clip(crop.astype(np.float64) * [0.6, 1.0, 1.4], 0, 255) / 255
    np.testing.assert_allclose(out.permute(1, 2, 0).numpy(), expected, atol=1e-5)
    assert out[2].max() == pytest.approx(1.0)  # 230 * 1.4 clipped at 255


def test_identity_reproduces_a_crop_image_and_flip_and_quarter_turn_are_exact():
    """Exact up to grid_sample's float32 coordinates (~1e-5 px, so ~3e-5 of a [0, 1] value)."""
    image = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    center, scale = crop_boxes(np.zeros((3, 2)), np.ones(3), images_are_crops=True)
    aug = Augmentation(
        torch.tensor([False, True, False]), torch.tensor([0.0, 0.0, 90.0]), torch.ones(3), torch.ones(3, 3)
    )
    out = _unnormalise(crop_images([image] * 3, center, scale, aug)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(out[0], image / 255.0, atol=3e-5)
    np.testing.assert_allclose(out[1], image[:, ::-1] / 255.0, atol=3e-5)  # x -> 224 - x
    # R(90°) in pixels (y down) turns content clockwise on screen: np.rot90(k=-1)
    np.testing.assert_allclose(out[2], np.rot90(image, k=-1) / 255.0, atol=3e-5)


def test_outside_the_image_is_black():
    image = np.full((100, 100, 3), 255, dtype=np.uint8)  # a small white image, big box
    aug = Augmentation.identity(1)
    out = _unnormalise(crop_images([image], np.array([[50.0, 50.0]]), np.array([2.0]), aug))[0]
    # box side 400 px, 0.56 crop px per image px: the image covers crop pixels [84, 140)
    assert out[:, 85:139, 85:139].min() > 0.999
    assert out[:, :83].abs().max() < 1e-6 and out[:, :, 141:].abs().max() < 1e-6


def test_crop_boxes():
    center = np.array([[300.0, 200.0], [10.0, 20.0]])
    scale = np.array([1.5, 2.0])
    same_center, same_scale = crop_boxes(center, scale, images_are_crops=False)
    np.testing.assert_array_equal(same_center, center)
    np.testing.assert_array_equal(same_scale, scale)
    crop_center, crop_scale = crop_boxes(center, scale, images_are_crops=True)
    np.testing.assert_array_equal(crop_center, [[112.0, 112.0]] * 2)
    np.testing.assert_array_equal(crop_scale, [1.12, 1.12])
    with pytest.raises(InputError, match=r"dataset_center must be \(N, 2\)"):
        crop_boxes(center[:1], scale, images_are_crops=False)


def test_load_images_converts_to_rgb(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(grey, mode="L").save(tmp_path / "grey.png")
    rgba = np.zeros((3, 4, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    rgb = np.random.default_rng(1).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    loaded = load_images([tmp_path / "grey.png", tmp_path / "rgba.png", str(tmp_path / "rgb.png")])
    assert [image.shape for image in loaded] == [(3, 4, 3), (3, 4, 3), (5, 6, 3)]
    assert all(image.dtype == np.uint8 for image in loaded)
    np.testing.assert_array_equal(loaded[0][..., 1], grey)
    assert (loaded[1][..., 0] == 200).all() and (loaded[1][..., 1:] == 0).all()
    np.testing.assert_array_equal(loaded[2], rgb)


def test_missing_and_corrupt_files(tmp_path):
    missing = tmp_path / "synthetic" / "0000001.png"
    with pytest.raises(
        InputError,
        match=r"0000001.png does not exist; check the image folder"
        r".*make-synthetic --images DIR",
    ):
        load_images([missing])
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG not really")
    with pytest.raises(InputError, match=r"corrupt.png is not a readable image"):
        load_images([corrupt])
    truncated = tmp_path / "truncated.png"
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8) + 7).save(tmp_path / "whole.png")
    truncated.write_bytes((tmp_path / "whole.png").read_bytes()[:60])
    with pytest.raises(InputError, match=r"truncated.png is not a readable image"):
        load_images([truncated])


def test_crop_images_input_errors():
    aug = Augmentation.identity(2)
    image = np.zeros((10, 10, 3), dtype=np.uint8)
    center, scale = np.zeros((2, 2)), np.ones(2)
    with pytest.raises(
        InputError,
        match=r"needs B images, center \(B, 2\), scale \(B,\) with "
        r"B = 2 .* got 1 images",
    ):
        crop_images([image], center, scale, aug)
    with pytest.raises(
        InputError,
        match=r"image 1 must be an \(H, W, 3\) uint8 RGB array, got "
        r"a float64 array of shape \(10, 10, 3\)",
    ):
        crop_images([image, image.astype(np.float64)], center, scale, aug)
    with pytest.raises(InputError, match="scale > 0"):
        crop_images([image, image], center, np.array([1.0, 0.0]), aug)
    with pytest.raises(InputError, match="out_res must be >= 1"):
        crop_images([image, image], center, scale, aug, out_res=0)
