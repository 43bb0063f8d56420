"""fitting.smplify.levenberg_marquardt.solve_pool: the batched LM solver pool, on problems with known
minimisers (a straight line by least squares, Rosenbrock's valley)."""

import numpy as np
import pytest
import torch

from spinfits.fitting.smplify.levenberg_marquardt import LmOutcome, solve_pool


class LineFit:
    """Row i fits y = a t + b to its own points: x = (a, b), r = a t + b - y_i (M residuals),
    plus a constant ``const_i`` (the solver's piecewise-constant term)."""

    def __init__(self, t, y, start, const):
        self.t, self.y, self.start, self.const = t, y, start, const
        self.calls = []

    def initial(self, rows):
        return self.start[rows].clone()

    def residuals(self, x, rows, with_jacobian=True):
        self.calls.append(rows.clone())
        r = x[:, :1] * self.t + x[:, 1:] - self.y[rows]  # (S, M)
        jacobian = None
        if with_jacobian:
            jacobian = torch.stack([self.t.expand_as(r), torch.ones_like(r)], -1)  # (S, M, 2)
        return r, jacobian, self.const[rows]


class Rosenbrock:
    """r = (10 (x2 - x1^2), 1 - x1): the minimiser is (1, 1) with loss 0, for every row."""

    def __init__(self, start):
        self.start = start

    def initial(self, rows):
        return self.start[rows].clone()

    def residuals(self, x, rows, with_jacobian=True):
        x1, x2 = x[:, 0], x[:, 1]
        r = torch.stack([10 * (x2 - x1**2), 1 - x1], -1)
        jacobian = None
        if with_jacobian:
            zero = torch.zeros_like(x1)
            jacobian = torch.stack(
                [
                    torch.stack([-20 * x1, torch.full_like(x1, 10.0)], -1),
                    torch.stack([-torch.ones_like(x1), zero], -1),
                ],
                1,
            )
        return r, jacobian, torch.zeros_like(x1)


def _line_problem(rows=7, points=12, seed=0):
    generator = torch.Generator().manual_seed(seed)
    t = torch.linspace(-1.0, 2.0, points, dtype=torch.float64)
    slope = torch.randn(rows, 1, generator=generator, dtype=torch.float64)
    offset = torch.randn(rows, 1, generator=generator, dtype=torch.float64)
    y = slope * t + offset + 0.1 * torch.randn(rows, points, generator=generator, dtype=torch.float64)
    start = torch.randn(rows, 2, generator=generator, dtype=torch.float64) * 3
    const = torch.rand(rows, generator=generator, dtype=torch.float64)
    return LineFit(t, y, start, const)


def _closed_form(problem):
    """Normal equations per row: (a, b) minimising sum (a t + b - y)^2, and the minimum."""
    design = np.stack([problem.t.numpy(), np.ones(len(problem.t))], 1)  # (M, 2)
    x, *_ = np.linalg.lstsq(design, problem.y.numpy().T, rcond=None)  # (2, N)
    minimum = ((design @ x - problem.y.numpy().T) ** 2).sum(0)
    return x.T, minimum + problem.const.numpy()


def test_smoke():
    problem = _line_problem()
    rows = torch.arange(7)
    outcome = solve_pool(problem, rows, 2, capacity=4, max_iterations=50, tolerance=1e-12)
    assert isinstance(outcome, LmOutcome)
    assert outcome.x.shape == (7, 2) and outcome.loss.shape == (7,)
    assert outcome.iterations.shape == (7,) and outcome.converged.shape == (7,)
    assert outcome.x.dtype == torch.float64 and outcome.iterations.dtype == torch.long
    assert outcome.converged.dtype == torch.bool


def test_line_fit_matches_least_squares_closed_form():
    problem = _line_problem()
    outcome = solve_pool(problem, torch.arange(7), 2, capacity=7, max_iterations=100, tolerance=1e-12)
    x, minimum = _closed_form(problem)
    np.testing.assert_allclose(outcome.x.numpy(), x, atol=1e-8)
    # the loss is the sum of squares plus the row's constant, at the minimiser
    np.testing.assert_allclose(outcome.loss.numpy(), minimum, rtol=1e-10)
    assert outcome.converged.all()
    assert (outcome.iterations >= 1).all() and (outcome.iterations < 100).all()


def test_rosenbrock_reaches_its_minimum_from_several_starts():
    start = torch.tensor([[-1.2, 1.0], [0.0, 0.0], [2.0, -1.0], [-0.5, 2.5], [1.0, 1.0]], dtype=torch.float64)
    outcome = solve_pool(
        Rosenbrock(start), torch.arange(5), 2, capacity=2, max_iterations=500, tolerance=1e-14
    )
    np.testing.assert_allclose(outcome.x.numpy(), np.ones((5, 2)), atol=1e-6)
    assert (outcome.loss < 1e-12).all()
    assert outcome.converged.all()


@pytest.mark.parametrize("capacity", [1, 2, 3, 7, 20])
def test_batch_sizes_give_the_same_answer(capacity):
    """A row's trajectory does not depend on its batch-mates: any pool size, same result."""
    problem = _line_problem(rows=7)
    rows = torch.arange(7)
    reference = solve_pool(problem, rows, 2, 7, 100, 1e-12)
    problem.calls.clear()
    outcome = solve_pool(problem, rows, 2, capacity, 100, 1e-12)
    np.testing.assert_allclose(outcome.x.numpy(), reference.x.numpy(), atol=1e-12)
    np.testing.assert_allclose(outcome.loss.numpy(), reference.loss.numpy(), rtol=1e-12)
    assert torch.equal(outcome.iterations, reference.iterations)
    assert torch.equal(outcome.converged, reference.converged)
    # never more rows at once than the pool holds
    assert max(len(call) for call in problem.calls) <= capacity


def test_results_follow_the_order_of_rows():
    """``rows`` may be any subset of the problem's rows, in any order; outputs follow it."""
    problem = _line_problem(rows=7)
    rows = torch.tensor([5, 0, 3])
    outcome = solve_pool(problem, rows, 2, 2, 100, 1e-12)
    x, minimum = _closed_form(problem)
    np.testing.assert_allclose(outcome.x.numpy(), x[[5, 0, 3]], atol=1e-8)
    np.testing.assert_allclose(outcome.loss.numpy(), minimum[[5, 0, 3]], rtol=1e-10)


def test_on_done_counts_every_row_once():
    problem = _line_problem(rows=7)
    done = []
    solve_pool(problem, torch.arange(7), 2, 3, 100, 1e-12, on_done=done.append)
    assert sum(done) == 7 and all(count >= 1 for count in done)


def test_iteration_cap_and_zero_iterations():
    problem = _line_problem(rows=4)
    rows = torch.arange(4)
    capped = solve_pool(problem, rows, 2, 4, 1, 1e-12)
    assert (capped.iterations == 1).all()
    untouched = solve_pool(problem, rows, 2, 4, 0, 1e-12)
    np.testing.assert_array_equal(untouched.x.numpy(), problem.start[:4].numpy())
    r, _, const = problem.residuals(problem.start[:4], rows)
    np.testing.assert_allclose(untouched.loss.numpy(), ((r**2).sum(-1) + const).numpy())
    assert (untouched.iterations == 0).all() and not untouched.converged.any()
    # the loss never rises: an accepted step always lowers it
    assert (capped.loss <= untouched.loss).all()


def test_no_rows():
    problem = _line_problem(rows=3)
    outcome = solve_pool(problem, torch.arange(0), 2, 4, 10, 1e-12)
    assert outcome.x.shape == (0, 2) and outcome.loss.shape == (0,)
    assert outcome.iterations.shape == (0,) and outcome.converged.shape == (0,)
