"""SPIN's training losses: each term on hand-made inputs, masks, weights and gradients."""

import numpy as np
import pytest
import torch

from spinfits.errors import InputError
from spinfits.fitting.body.rotations import axis_angle_to_matrix
from spinfits.fitting.smplify.camera import perspective_projection
from spinfits.training.spin_losses import SpinLossWeights, SupervisionTargets, spin_losses

pytestmark = pytest.mark.usefixtures("one_torch_thread")

B, V = 3, 20


def _inputs(dtype=torch.float32, seed=0):
    """Predictions of B bodies (joints 3-5 m in front of the camera) and targets equal to them:
    keypoints = the projection of the predicted joints, fits = the prediction, 3D = it."""
    generator = torch.Generator().manual_seed(seed)
    joints = torch.randn(B, 49, 3, generator=generator, dtype=dtype) * 0.4
    cam_t = torch.tensor([[0.1, -0.2, 30.0], [0.0, 0.1, 40.0], [-0.1, 0.0, 35.0]], dtype=dtype)
    camera = torch.stack([2 * 5000 / (224 * cam_t[:, 2]), cam_t[:, 0], cam_t[:, 1]], -1)
    rotmat = axis_angle_to_matrix(torch.randn(B, 24, 3, generator=generator, dtype=dtype) * 0.3)
    betas = torch.randn(B, 10, generator=generator, dtype=dtype)
    vertices = torch.randn(B, V, 3, generator=generator, dtype=dtype)
    center = torch.full((B, 2), 112.0, dtype=dtype)
    keypoints = torch.cat(
        [perspective_projection(joints, cam_t, 5000.0, center), torch.ones(B, 49, 1, dtype=dtype)], -1
    )
    joints_3d = torch.cat([joints[:, 25:] + cam_t[:, None], torch.ones(B, 24, 1, dtype=dtype)], -1)
    targets = SupervisionTargets(
        keypoints,
        rotmat.clone(),
        betas.clone(),
        vertices.clone(),
        torch.ones(B, dtype=torch.bool),
        joints_3d,
        torch.ones(B, dtype=torch.bool),
    )
    return dict(
        pred_rotmat=rotmat,
        pred_betas=betas,
        pred_camera=camera,
        pred_cam_t=cam_t,
        pred_joints=joints,
        pred_vertices=vertices,
    ), targets


def _replace(targets, **changes):
    fields = dict(vars(targets))
    fields.update(changes)
    return SupervisionTargets(**fields)


def test_zero_when_predictions_match_the_targets():
    pred, targets = _inputs(torch.float64)
    losses = spin_losses(**pred, targets=targets, weights=SpinLossWeights(openpose=1.0))
    for name in ("keypoint", "keypoint_3d", "pose", "betas", "shape"):
        assert abs(float(losses[name])) < 1e-9, name
    camera = float((torch.exp(-10 * pred["pred_camera"][:, 0]) ** 2).mean())
    assert float(losses["camera"]) == pytest.approx(camera)
    np.testing.assert_allclose(float(losses["total"]), 60 * camera, rtol=1e-9)
    # float32 too, to float precision
    pred, targets = _inputs()
    losses = spin_losses(**pred, targets=targets, weights=SpinLossWeights(openpose=1.0))
    assert all(abs(float(losses[n])) < 1e-9 for n in ("keypoint", "keypoint_3d", "pose", "betas"))


def test_keypoint_loss_is_confidence_weighted_mse_in_normalised_coordinates():
    pred, targets = _inputs(torch.float64)
    keypoints = targets.keypoints.clone()
    keypoints[1, 30, 0] += 11.2  # a ground-truth joint 11.2 px off: 0.1 normalised
    keypoints[1, 30, 2] = 0.5
    keypoints[0, 40, 2] = 0.0  # a missing keypoint far off counts nothing
    keypoints[0, 40, :2] = 1000.0
    losses = spin_losses(**pred, targets=_replace(targets, keypoints=keypoints))
    np.testing.assert_allclose(float(losses["keypoint"]), 0.5 * 0.1**2 / (B * 49 * 2), rtol=1e-6)
    # gt weight scales it
    twice = spin_losses(
        **pred, targets=_replace(targets, keypoints=keypoints), weights=SpinLossWeights(gt=2.0)
    )
    np.testing.assert_allclose(float(twice["keypoint"]), 2 * float(losses["keypoint"]), rtol=1e-9)


def test_openpose_weight_zero_ignores_the_openpose_joints():
    pred, targets = _inputs(torch.float64)
    keypoints = targets.keypoints.clone()
    keypoints[:, :25, :2] += 30.0  # every OpenPose keypoint off by 30 px
    off = _replace(targets, keypoints=keypoints)
    assert float(spin_losses(**pred, targets=off)["keypoint"]) < 1e-12  # SPIN: weight 0
    with_openpose = spin_losses(**pred, targets=off, weights=SpinLossWeights(openpose=1.0))
    np.testing.assert_allclose(
        float(with_openpose["keypoint"]), (30.0 / 112) ** 2 * 25 * 2 * B / (B * 49 * 2), rtol=1e-9
    )


def test_invalid_fits_do_not_contribute_to_pose_betas_and_shape():
    pred, targets = _inputs(torch.float64)
    garbage = dict(
        opt_rotmat=targets.opt_rotmat.clone(),
        opt_betas=targets.opt_betas.clone(),
        opt_vertices=targets.opt_vertices.clone(),
    )
    for value in garbage.values():
        value[0] = value[0] + 5.0  # row 0's fit is far off ...
    valid = torch.tensor([False, True, True])  # ... but not valid
    losses = spin_losses(**pred, targets=_replace(targets, valid_fit=valid, **garbage))
    for name in ("pose", "betas", "shape"):
        assert abs(float(losses[name])) < 1e-12, name
    # the valid rows' terms are means over valid rows only
    garbage["opt_betas"][2] += 1.0
    losses = spin_losses(**pred, targets=_replace(targets, valid_fit=valid, **garbage))
    np.testing.assert_allclose(float(losses["betas"]), 1.0 / 2, rtol=1e-9)


def test_all_fits_invalid_gives_zero_and_stays_differentiable():
    pred, targets = _inputs()
    pred = {k: v.clone().requires_grad_(True) for k, v in pred.items()}
    off = _replace(
        targets,
        valid_fit=torch.zeros(B, dtype=torch.bool),
        opt_rotmat=targets.opt_rotmat + 1.0,
        opt_betas=targets.opt_betas + 1.0,
        opt_vertices=targets.opt_vertices + 1.0,
    )
    losses = spin_losses(**pred, targets=off)
    for name in ("pose", "betas", "shape"):
        assert float(losses[name].detach()) == 0.0
    losses["total"].backward()
    assert pred["pred_rotmat"].grad is not None and (pred["pred_rotmat"].grad == 0).all()
    assert pred["pred_camera"].grad[:, 0].abs().min() > 0  # the camera term still pulls


def test_keypoint_3d_loss_is_pelvis_centred():
    pred, targets = _inputs(torch.float64)
    moved = targets.joints_3d.clone()
    moved[..., :3] += torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)  # any translation
    assert float(spin_losses(**pred, targets=_replace(targets, joints_3d=moved))["keypoint_3d"]) < 1e-20
    # a rotation about the pelvis is not free
    rotated = targets.joints_3d.clone()
    rotated[..., :3] = (
        rotated[..., :3] @ axis_angle_to_matrix(torch.tensor([[0.0, 0.5, 0.0]], dtype=torch.float64))[0].T
    )
    assert float(spin_losses(**pred, targets=_replace(targets, joints_3d=rotated))["keypoint_3d"]) > 1e-3
    # rows without 3D joints, or zero confidence, count nothing
    none = _replace(targets, joints_3d=rotated, has_joints_3d=torch.zeros(B, dtype=torch.bool))
    assert float(spin_losses(**pred, targets=none)["keypoint_3d"]) == 0.0
    no_confidence = rotated.clone()
    no_confidence[..., 3] = 0.0
    assert (
        float(spin_losses(**pred, targets=_replace(targets, joints_3d=no_confidence))["keypoint_3d"]) == 0.0
    )
    assert (
        float(
            spin_losses(**pred, targets=_replace(targets, joints_3d=None, has_joints_3d=None))["keypoint_3d"]
        )
        == 0.0
    )


def test_total_is_spins_weighted_sum():
    pred, targets = _inputs(torch.float64, seed=1)
    off = _replace(
        targets,
        keypoints=targets.keypoints + 3.0,
        opt_rotmat=targets.opt_rotmat * 0.9,
        opt_betas=targets.opt_betas + 0.5,
        opt_vertices=targets.opt_vertices + 0.1,
        joints_3d=targets.joints_3d * 1.1,
    )
    weights = SpinLossWeights(
        keypoint=2.0, keypoint_3d=3.0, pose=4.0, betas=0.5, shape=0.25, openpose=1.0, gt=1.0, scale=10.0
    )
    losses = spin_losses(**pred, targets=off, weights=weights)
    terms = {k: float(v) for k, v in losses.items()}
    assert all(terms[k] > 0 for k in ("keypoint", "keypoint_3d", "pose", "betas", "shape"))
    expected = 10.0 * (
        2 * terms["keypoint"]
        + 3 * terms["keypoint_3d"]
        + 4 * terms["pose"]
        + 0.5 * terms["betas"]
        + 0.25 * terms["shape"]
        + terms["camera"]
    )
    np.testing.assert_allclose(terms["total"], expected, rtol=1e-12)


def test_gradcheck_float64():
    pred, targets = _inputs(torch.float64)
    targets = _replace(targets, keypoints=targets.keypoints + 2.0, opt_betas=targets.opt_betas + 0.3)
    names = ["pred_joints", "pred_betas", "pred_camera", "pred_cam_t"]

    def total(*tensors):
        return spin_losses(
            **{**pred, **dict(zip(names, tensors))}, targets=targets, weights=SpinLossWeights(openpose=1.0)
        )["total"]

    inputs = tuple(pred[n].clone().requires_grad_(True) for n in names)
    assert torch.autograd.gradcheck(total, inputs)


@pytest.mark.parametrize("name, value", [("keypoint", -1.0), ("openpose", -0.5), ("scale", float("nan"))])
def test_weights_errors(name, value):
    with pytest.raises(InputError, match=rf"SpinLossWeights.{name} must be >= 0, got {value}"):
        SpinLossWeights(**{name: value})


def test_default_weights_are_spins():
    assert SpinLossWeights() == SpinLossWeights(
        keypoint=5.0, keypoint_3d=5.0, pose=1.0, betas=0.001, shape=0.0, openpose=0.0, gt=1.0, scale=60.0
    )
