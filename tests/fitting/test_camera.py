"""Projection and SPIN's closed-form camera translation."""

import numpy as np
import pytest
import torch

from spinfits.errors import InputError
from spinfits.fitting.smplify.camera import estimate_translation, perspective_projection


def random_joints(batch, dtype=torch.float64):
    return 0.5 * torch.randn(batch, 49, 3, dtype=dtype)


def test_projection_matches_pinhole_formula():
    points = random_joints(3)
    cam_t = torch.tensor([[0.1, -0.2, 30.0]], dtype=torch.float64).repeat(3, 1)
    center = torch.tensor([[112.0, 100.0]], dtype=torch.float64).repeat(3, 1)
    pixels = perspective_projection(points, cam_t, 5000.0, center)
    camera = points + cam_t[:, None]
    assert torch.allclose(pixels[..., 0], 5000 * camera[..., 0] / camera[..., 2] + 112)
    assert torch.allclose(pixels[..., 1], 5000 * camera[..., 1] / camera[..., 2] + 100)


@pytest.mark.parametrize("batch", [1, 2, 7])
def test_estimate_translation_recovers_the_camera(batch):
    joints = random_joints(batch)
    cam_t = torch.cat(
        [
            0.3 * torch.randn(batch, 2, dtype=torch.float64),
            torch.rand(batch, 1, dtype=torch.float64) * 20 + 20,
        ],
        1,
    )
    center = torch.full((batch, 2), 112.0, dtype=torch.float64)
    keypoints = torch.cat(
        [
            perspective_projection(joints, cam_t, 5000.0, center),
            torch.rand(batch, 49, 1, dtype=torch.float64) + 0.1,
        ],
        -1,
    )
    estimate, solvable = estimate_translation(joints, keypoints)
    assert solvable.all()
    assert torch.allclose(estimate, cam_t, atol=1e-6)


def test_estimate_translation_is_spins_weighted_least_squares():
    """Against the stacked weighted system SPIN builds, solved by numpy's lstsq."""
    joints = random_joints(1)
    keypoints = torch.cat(
        [torch.rand(1, 49, 2, dtype=torch.float64) * 224, torch.rand(1, 49, 1, dtype=torch.float64)], -1
    )
    estimate, _ = estimate_translation(joints, keypoints)
    S, kp = joints[0, 25:].numpy(), keypoints[0, 25:].numpy()
    rows, rhs = [], []
    for (X, Y, Z), (u, v, c) in zip(S, kp):
        w = np.sqrt(c)
        rows += [w * np.array([5000, 0, 112 - u]), w * np.array([0, 5000, 112 - v])]
        rhs += [w * ((u - 112) * Z - 5000 * X), w * ((v - 112) * Z - 5000 * Y)]
    expected = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0]
    np.testing.assert_allclose(estimate[0].numpy(), expected, rtol=1e-8)


def test_estimate_translation_flags_unsolvable_rows():
    joints = random_joints(2)
    keypoints = torch.cat(
        [torch.rand(2, 49, 2, dtype=torch.float64) * 224, torch.ones(2, 49, 1, dtype=torch.float64)], -1
    )
    keypoints[1, 25:, 2] = 0.0
    keypoints[1, 30, 2] = 1.0  # one confident GT joint: 2 equations, 3 unknowns
    cam_t, solvable = estimate_translation(joints, keypoints)
    assert solvable.tolist() == [True, False]
    assert torch.isfinite(cam_t).all()


def test_estimate_translation_rejects_bad_shapes():
    with pytest.raises(InputError, match=r"joints must be \(B, 49, 3\)"):
        estimate_translation(torch.zeros(2, 24, 3), torch.zeros(2, 49, 3))
    with pytest.raises(InputError, match="keypoints must be"):
        estimate_translation(torch.zeros(2, 49, 3), torch.zeros(3, 49, 3))
