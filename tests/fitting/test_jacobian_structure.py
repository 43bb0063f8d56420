"""The body stage's Jacobian, formed from its structure: per-joint blocks projected to pixels,
J^T J from the data rows and the priors' closed forms, the correctives' share reused within a
stage; and the LM solver's trial steps with their Jacobian. Each equals the plain dense form."""

import pytest
import torch

from spinfits.fitting.body.joints_only import JointsOnlyBody
from spinfits.fitting.smplify.levenberg_marquardt import solve_pool
from spinfits.fitting.smplify.losses import LossWeights
from spinfits.fitting.smplify.priors import GmmPosePrior
from spinfits.fitting.smplify.stages import BodyStage

D = torch.float64


@pytest.fixture(scope="module")
def toy_model(toy_files):
    return JointsOnlyBody(toy_files, dtype=D), GmmPosePrior(toy_files.gmm, dtype=D)


def _problem(model, prior, rows=4, reuse=False, seed=1):
    generator = torch.Generator().manual_seed(seed)
    pose = 0.4 * torch.randn(rows, 72, generator=generator, dtype=D)
    betas = torch.randn(rows, 10, generator=generator, dtype=D)
    cam_t = torch.tensor([[0.1, 0.2, 12.0]], dtype=D).expand(rows, 3).clone()
    keypoints = torch.rand(rows, 49, 3, generator=generator, dtype=D) * torch.tensor([224.0, 224.0, 1.0])
    keypoints[:, :3, 2] = 0.0  # a few missing joints
    center = torch.full((rows, 2), 112.0, dtype=D)
    weights = LossWeights(pose_prior_weight=20.0, shape_prior_weight=3.0, angle_prior_weight=40.0)
    stage = BodyStage(model, prior, pose, betas, cam_t, keypoints, center, 5000.0, weights, True, reuse)
    return stage, torch.cat([pose, betas], 1)


def test_left_multiplied_jacobian_equals_left_times_the_jacobian(toy_model):
    model, _ = toy_model
    pose, betas = 0.5 * torch.randn(3, 72, dtype=D), torch.randn(3, 10, dtype=D)
    left = torch.randn(3, 49, 2, 3, dtype=D)
    plain = model.evaluate(pose, betas)
    projected = model.evaluate(pose, betas, left=lambda joints: left)
    assert projected.jacobian.shape == (3, 49, 2, 82)
    assert torch.allclose(projected.jacobian, left @ plain.jacobian, atol=1e-12)
    assert torch.equal(projected.joints, plain.joints)


def test_body_stage_normal_equations_equal_the_full_jacobians(toy_model):
    model, prior = toy_model
    stage, x = _problem(model, prior, rows=2)
    rows = torch.arange(x.shape[0])
    r, jac, _ = stage.residuals(x, rows)
    assert jac.shape == (2, 98, 82)  # the data rows only
    # the whole residual vector's Jacobian by central differences (the mixture component does
    # not change over such small steps)
    step = 1e-6
    full = torch.empty(x.shape[0], r.shape[1], 82, dtype=D)
    for i in range(82):
        up, down = x.clone(), x.clone()
        up[:, i] += step
        down[:, i] -= step
        full[..., i] = (
            stage.residuals(up, rows, with_jacobian=False)[0]
            - stage.residuals(down, rows, with_jacobian=False)[0]
        ) / (2 * step)
    assert torch.allclose(jac, full[:, :98], rtol=1e-6, atol=1e-5)
    hessian, gradient = stage.normal_equations(x, r, jac, rows)
    full[:, :98] = jac  # the priors' rows from differences, the data rows analytic (checked above)
    assert torch.allclose(hessian, full.transpose(1, 2) @ full, rtol=1e-6, atol=1e-4)
    assert torch.allclose(gradient, (full.transpose(1, 2) @ r[..., None])[..., 0], rtol=1e-6, atol=1e-4)


def test_reused_corrective_share_is_the_one_from_the_rows_first_evaluation(toy_model):
    model, prior = toy_model
    stage, x = _problem(model, prior, reuse=True)
    exact_stage, _ = _problem(model, prior, reuse=False)
    rows = torch.arange(x.shape[0])
    _, first, _ = stage.residuals(x, rows)  # computes the correctives' share and keeps it
    _, exact_first, _ = exact_stage.residuals(x, rows)
    assert torch.allclose(first, exact_first, atol=1e-12)  # the first evaluation is exact
    kept = model.evaluate(x[:, :72], x[:, 72:]).corrective
    assert torch.allclose(stage._corrective[rows], kept, atol=1e-12)

    moved = x + 0.05
    _, reused, _ = stage.residuals(moved, rows)
    _, exact, _ = exact_stage.residuals(moved, rows)
    difference = exact - reused
    assert difference[..., 3:72].abs().max() > 1e-6  # the share at x, not at the new point
    assert torch.equal(difference[..., :3], torch.zeros_like(difference[..., :3]))
    assert torch.equal(difference[..., 72:], torch.zeros_like(difference[..., 72:]))
    assert difference.norm() < 0.2 * exact.norm()  # a nearby pose: a close approximation


class Rosenbrock:
    """r = (10 (x2 - x1^2), 1 - x1), counting evaluations with and without the Jacobian."""

    def __init__(self, start):
        self.start = start
        self.calls = {True: 0, False: 0}

    def initial(self, rows):
        return self.start[rows].clone()

    def residuals(self, x, rows, with_jacobian=True):
        self.calls[with_jacobian] += 1
        x1, x2 = x[:, 0], x[:, 1]
        r = torch.stack([10 * (x2 - x1**2), 1 - x1], -1)
        jacobian = None
        if with_jacobian:
            jacobian = torch.stack(
                [
                    torch.stack([-20 * x1, torch.full_like(x1, 10.0)], -1),
                    torch.stack([-torch.ones_like(x1), torch.zeros_like(x1)], -1),
                ],
                1,
            )
        return r, jacobian, torch.zeros_like(x1)


def test_trial_steps_with_their_jacobian_give_the_same_iterates_in_fewer_evaluations():
    start = torch.tensor([[-1.2, 1.0], [0.5, -0.5], [2.0, 2.0]], dtype=D)
    rows = torch.arange(3)
    outcomes = {}
    for trial_jacobian in (True, False):
        problem = Rosenbrock(start)
        outcomes[trial_jacobian] = (
            solve_pool(problem, rows, 2, 2, 200, 1e-12, trial_jacobian=trial_jacobian),
            problem,
        )
    fused, fused_problem = outcomes[True]
    plain, plain_problem = outcomes[False]
    assert torch.equal(fused.iterations, plain.iterations)
    assert torch.allclose(fused.x, plain.x, atol=1e-12) and torch.allclose(fused.x, torch.ones(3, 2, dtype=D))
    assert fused_problem.calls[False] == 0  # every evaluation brought its Jacobian ...
    total = lambda calls: calls[True] + calls[False]  # noqa: E731
    assert total(fused_problem.calls) < total(plain_problem.calls)  # ... and there were fewer
