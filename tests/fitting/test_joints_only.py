"""Joints-only evaluation: equal to smplx's full forward, analytic Jacobian equal to autograd."""

import pytest
import torch
from smplx.lbs import batch_rodrigues

from spinfits.fitting.body.body_model import SpinBodyModel
from spinfits.fitting.body.joints_only import JointsOnlyBody
from spinfits.fitting.body.rotations import (
    axis_angle_to_matrix,
    axis_angle_to_matrix_and_right_jacobian,
)

D = torch.float64


def test_rotation_matches_smplx_and_is_smooth_at_zero():
    w = torch.randn(10, 3, dtype=D)
    w[0] = 0.0
    w[1] = 1e-5
    assert torch.allclose(axis_angle_to_matrix(w), batch_rodrigues(w), atol=1e-7)
    zero = torch.zeros(1, 3, dtype=D, requires_grad=True)
    axis_angle_to_matrix(zero).sum().backward()
    assert torch.isfinite(zero.grad).all()


def test_right_jacobian_matches_autograd():
    w = torch.randn(4, 3, dtype=D)
    w[0] = 1e-4
    rot, right = axis_angle_to_matrix_and_right_jacobian(w)
    numeric = torch.autograd.functional.jacobian(axis_angle_to_matrix, w)  # (4,3,3,4,3)
    numeric = torch.stack([numeric[i, :, :, i] for i in range(4)])  # (4, 3, 3, 3 i)
    for i in range(3):  # dR/dw_i = R [Jr e_i]x
        u = right[:, :, i]
        skew = torch.zeros(4, 3, 3, dtype=D)
        skew[:, 0, 1], skew[:, 0, 2], skew[:, 1, 2] = -u[:, 2], u[:, 1], -u[:, 0]
        skew = skew - skew.transpose(1, 2)
        assert torch.allclose(rot @ skew, numeric[..., i], atol=1e-9)


@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-6), (torch.float32, 1e-5)])
@pytest.mark.parametrize("batch", [1, 5])
def test_joints_only_equals_full_forward(body_files, toy_files, dtype, tolerance, batch):
    for files in (body_files, toy_files):
        full = SpinBodyModel(files, dtype=dtype)
        fast = JointsOnlyBody(files, dtype=dtype)
        pose = 0.5 * torch.randn(batch, 72, dtype=dtype)
        betas = torch.randn(batch, 10, dtype=dtype)
        expected = full(pose, betas).joints
        assert (fast(pose, betas) - expected).abs().max() < tolerance


def test_analytic_jacobian_equals_autograd(toy_files):
    model = JointsOnlyBody(toy_files, dtype=D)  # with pose correctives
    pose, betas = 0.5 * torch.randn(3, 72, dtype=D), torch.randn(3, 10, dtype=D)
    pose[0, 6:9] = 0.0  # a joint at the rest pose
    evaluation = model.evaluate(pose, betas)
    x = torch.cat([pose, betas], 1)
    numeric = torch.autograd.functional.jacobian(lambda v: model(v[:, :72], v[:, 72:]), x)
    numeric = torch.stack([numeric[i, :, :, i] for i in range(3)])
    assert torch.allclose(evaluation.jacobian, numeric, atol=1e-10)


def test_joints_only_honours_device_and_dtype(toy_files):
    model = JointsOnlyBody(toy_files, device=torch.device("cpu"), dtype=torch.float32)
    joints = model(torch.zeros(2, 72), torch.zeros(2, 10))
    assert joints.device.type == "cpu" and joints.dtype == torch.float32
    assert all(b.device.type == "cpu" for b in model.buffers())
