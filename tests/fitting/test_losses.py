"""SPIN's loss terms: values against their definitions, gradcheck in float64."""

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from spinfits.fitting.body.joints import GT_TORSO_JOINTS, OPENPOSE_TORSO_JOINTS, SMPLIFY_IGNORED_JOINTS
from spinfits.fitting.smplify.losses import (
    LossWeights,
    body_fitting_loss,
    camera_fitting_loss,
    gmof,
    reprojection_loss,
)
from spinfits.fitting.smplify.priors import GmmPosePrior, angle_prior

D = torch.float64


def keypoints(batch=2):
    return torch.cat([torch.rand(batch, 49, 2, dtype=D) * 224, torch.rand(batch, 49, 1, dtype=D)], -1)


def test_gmof_limits_and_gradcheck():
    x = torch.tensor([0.0, 1.0, 1e6], dtype=D)
    values = gmof(x, 100.0)
    assert values[0] == 0 and values[1] == pytest.approx(1.0, rel=1e-3)
    assert values[2] == pytest.approx(100.0**2, rel=1e-6)
    assert torch.autograd.gradcheck(
        lambda t: gmof(t, 100.0), torch.randn(5, dtype=D, requires_grad=True) * 50
    )


def test_reprojection_loss_ignores_spins_ignored_joints_and_gradchecks():
    kp = keypoints()
    projected = (kp[..., :2] + 5 * torch.randn(2, 49, 2, dtype=D)).requires_grad_(True)
    loss = reprojection_loss(projected, kp)
    assert loss.shape == (2, 49)
    assert (loss[:, list(SMPLIFY_IGNORED_JOINTS)] == 0).all()
    other = [j for j in range(49) if j not in SMPLIFY_IGNORED_JOINTS]
    expected = kp[:, other, 2] ** 2 * gmof(projected[:, other] - kp[:, other, :2], 100).sum(-1)
    assert torch.allclose(loss[:, other], expected)
    assert torch.autograd.gradcheck(lambda p: reprojection_loss(p, kp), projected)


def test_camera_loss_uses_openpose_torso_only_when_all_four_are_confident():
    kp = keypoints(2)
    kp[:, list(OPENPOSE_TORSO_JOINTS), 2] = 1.0
    kp[1, OPENPOSE_TORSO_JOINTS[0], 2] = 0.0  # row 1 falls back to the GT torso
    projected = torch.rand(2, 49, 2, dtype=D) * 224
    cam_t = torch.tensor([[0, 0, 30.0], [0, 0, 31.0]], dtype=D)
    init = torch.tensor([[0, 0, 30.5]], dtype=D).repeat(2, 1)
    loss = camera_fitting_loss(projected, cam_t, init, kp)
    op, gt = list(OPENPOSE_TORSO_JOINTS), list(GT_TORSO_JOINTS)
    expected0 = ((kp[0, op, :2] - projected[0, op]) ** 2).sum() + 100**2 * 0.25
    expected1 = ((kp[1, gt, :2] - projected[1, gt]) ** 2).sum() + 100**2 * 0.25
    assert torch.allclose(loss, torch.stack([expected0, expected1]))
    assert torch.autograd.gradcheck(
        lambda p, t: camera_fitting_loss(p, t, init, kp),
        (projected.requires_grad_(True), cam_t.requires_grad_(True)),
    )


def test_gmm_prior_is_the_best_components_negative_log_likelihood(toy_files):
    gmm = toy_files.gmm
    prior = GmmPosePrior(gmm, dtype=D)
    pose = torch.randn(3, 69, dtype=D) * 0.3
    sqrdets = np.sqrt(np.linalg.det(gmm.covars))
    expected = np.min(
        [
            -np.log(w) - multivariate_normal(m, c).logpdf(pose.numpy()) - np.log(sqrdets.min())
            for m, c, w in zip(gmm.means, gmm.covars, gmm.weights)
        ],
        axis=0,
    )
    np.testing.assert_allclose(prior(pose).numpy(), expected, rtol=1e-9)
    assert torch.autograd.gradcheck(prior, pose.requires_grad_(True))


def test_angle_prior_penalises_unnatural_bends_and_gradchecks():
    pose = torch.zeros(1, 69, dtype=D)
    pose[0, 52] = -1.0  # left elbow bent naturally (-y): small penalty
    natural = angle_prior(pose)[0, 0]
    pose[0, 52] = 1.0
    assert angle_prior(pose)[0, 0] > natural
    assert torch.autograd.gradcheck(angle_prior, torch.randn(2, 69, dtype=D, requires_grad=True))


def test_body_fitting_loss_sums_its_terms_and_gradchecks(toy_files):
    prior = GmmPosePrior(toy_files.gmm, dtype=D)
    weights = LossWeights()
    kp = keypoints()
    projected = (kp[..., :2] + torch.randn(2, 49, 2, dtype=D)).requires_grad_(True)
    body = (0.2 * torch.randn(2, 69, dtype=D)).requires_grad_(True)
    betas = torch.randn(2, 10, dtype=D).requires_grad_(True)
    total = body_fitting_loss(projected, kp, body, betas, prior, weights)
    expected = (
        reprojection_loss(projected, kp).sum(-1)
        + 4.78**2 * prior(body)
        + 15.2**2 * angle_prior(body).sum(-1)
        + 25 * (betas**2).sum(-1)
    )
    assert torch.allclose(total, expected)
    assert torch.autograd.gradcheck(
        lambda p, b, s: body_fitting_loss(p, kp, b, s, prior, weights), (projected, body, betas)
    )


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("pose_prior_weight", -1.0, r"pose_prior_weight must be a finite number >= 0 .* got -1.0"),
        ("angle_prior_weight", float("nan"), r"angle_prior_weight must be a finite number >= 0 .* got nan"),
        ("depth_loss_weight", float("inf"), r"depth_loss_weight must be a finite number >= 0"),
        ("sigma", 0.0, r"sigma must be a finite number of pixels > 0, got 0.0"),
    ],
)
def test_loss_weights_refuse_negative_or_non_finite_values(field, value, message):
    from spinfits.errors import InputError

    with pytest.raises(InputError, match=message):
        LossWeights(**{field: value})
    assert LossWeights(**{field: 0.0 if field != "sigma" else 1.0})  # zero weights are allowed
