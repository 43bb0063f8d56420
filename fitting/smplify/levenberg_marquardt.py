"""Batched Levenberg-Marquardt with per-sample damping, convergence and continuous batching.

Each sample ``i`` minimises its own ``|r_i(x_i)|^2 + c_i(x_i)`` (``c`` piecewise constant, e.g.
the mixture prior's component constant). The batch is a pool of slots: a sample that converges
(or reaches the iteration cap) leaves, and the next queued sample takes its slot, so samples
never wait for slow batch-mates and a sample's trajectory does not depend on them.
Steps are accepted only when they lower the loss, so every result is the best iterate seen and
a trial point that is not finite is simply rejected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

_INITIAL_DAMPING = 1e-3
_MAX_DAMPING = 1e10


class LeastSquaresProblem(Protocol):
    """A per-sample problem over rows of a dataset (R residuals, n parameters)."""

    def initial(self, rows: torch.Tensor) -> torch.Tensor:
        """(S,) row indices -> (S, n) starting parameters."""

    def residuals(
        self, x: torch.Tensor, rows: torch.Tensor, with_jacobian: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """(S, n) parameters of rows (S,) -> r (S, R), Jacobian (S, R, n) or None, const (S,).

        A problem may also define ``normal_equations(x, r, jac, rows) -> (J^T J (S, n, n),
        J^T r (S, n))`` to form them from its own, cheaper representation: ``jac`` is then
        whatever its ``residuals`` returns (e.g. the Jacobian of some residuals only, the others'
        share being known in closed form).
        """


@dataclass(frozen=True)
class LmOutcome:
    """Per row (N rows): x (N, n), loss (N,), iterations (N,) int, converged (N,) bool."""

    x: torch.Tensor
    loss: torch.Tensor
    iterations: torch.Tensor
    converged: torch.Tensor


def _loss(r: torch.Tensor, const: torch.Tensor) -> torch.Tensor:
    loss = (r * r).sum(-1) + const
    return torch.where(torch.isfinite(loss), loss, torch.full_like(loss, float("inf")))


def solve_pool(  # long: the solver's hot loop; the pool's nine state tensors live in its locals
    problem: LeastSquaresProblem,
    rows: torch.Tensor,
    num_params: int,
    capacity: int,
    max_iterations: int,
    tolerance: float,
    on_done: Callable[[int], None] | None = None,
    trial_jacobian: bool = True,
    refill_chunk: int | None = None,
) -> LmOutcome:
    """Minimise every row's problem; rows (N,) are queued into ``capacity`` slots.

    Per slot and iteration: solve ``(H + lam diag(H)) d = -g`` (H = J^T J, g = J^T r), evaluate
    the loss at the trial ``x + d``, accept it if the loss drops (then lam shrinks, Nielsen's
    rule) else grow lam. A slot finishes when an accepted step lowers the loss by less than
    ``tolerance * loss`` (converged), when lam exceeds 1e10 (no descent left: converged), or at
    ``max_iterations``.

    ``trial_jacobian``: True evaluates the trial point with its Jacobian, kept where the step
    is accepted (one evaluation per iteration); False evaluates it without, then again with the
    Jacobian for the accepted slots only. Same iterates either way; True is cheaper when most
    steps are accepted (about 95 % in SMPLify's body stage), False when most are rejected.

    ``refill_chunk``: finished slots are refilled from the queue once this many are free (or
    the rest of the queue fits, or the pool ran empty); meanwhile the pool runs smaller. A
    refill evaluates the new rows' residuals, a whole kernel sequence on a GPU whatever their
    number, so refilling a few rows at every iteration would cost nearly a full iteration each
    time. Default ``capacity // 8`` (at least 1). Results do not depend on it.
    """
    device = rows.device
    total = rows.shape[0]
    dtype = problem.initial(rows[:1]).dtype
    out_x = torch.zeros(total, num_params, dtype=dtype, device=device)
    out_loss = torch.full((total,), float("inf"), dtype=dtype, device=device)
    out_iters = torch.zeros(total, dtype=torch.long, device=device)
    out_converged = torch.zeros(total, dtype=torch.bool, device=device)
    if total == 0 or max_iterations == 0:
        if total:
            x0 = problem.initial(rows)
            r, _, const = problem.residuals(x0, rows)
            out_x, out_loss = x0, _loss(r, const)
        return LmOutcome(out_x, out_loss, out_iters, out_converged)

    chunk = max(1, capacity // 8) if refill_chunk is None else max(1, refill_chunk)
    queue_position = min(capacity, total)
    slot = torch.arange(queue_position, device=device)  # index into ``rows`` per slot
    x = problem.initial(rows[slot])
    r, jac, const = problem.residuals(x, rows[slot])
    loss = _loss(r, const)
    damping = torch.full_like(loss, _INITIAL_DAMPING)
    nu = torch.full_like(loss, 2.0)
    iterations = torch.zeros_like(slot)
    eye = torch.eye(num_params, dtype=dtype, device=device)
    normal_equations = getattr(problem, "normal_equations", None)

    while slot.numel():
        # ---- one damped Gauss-Newton step per slot
        if normal_equations is not None:
            hessian, gradient = normal_equations(x, r, jac, rows[slot])
        else:
            hessian = jac.transpose(1, 2) @ jac  # (S, n, n)
            gradient = (jac.transpose(1, 2) @ r[..., None])[..., 0]  # (S, n)
        diagonal = hessian.diagonal(dim1=1, dim2=2).clamp_min(1e-6)
        system = hessian + damping[:, None, None] * torch.diag_embed(diagonal)
        factor, info = torch.linalg.cholesky_ex(system + 1e-9 * eye)
        step = -torch.cholesky_solve(gradient[..., None], factor)[..., 0]
        solved = (info == 0) & torch.isfinite(step).all(-1)
        step = torch.where(solved[:, None], step, torch.zeros_like(step))
        predicted = -(2 * (gradient * step).sum(-1) + (step[:, None, :] @ hessian @ step[..., None])[:, 0, 0])

        trial_x = x + step
        trial_r, trial_jac, trial_const = problem.residuals(trial_x, rows[slot], with_jacobian=trial_jacobian)
        trial_loss = _loss(trial_r, trial_const)
        accept = solved & (trial_loss < loss)
        decrease = loss - trial_loss
        if trial_jacobian:
            jac = torch.where(accept[:, None, None], trial_jac, jac)
        else:
            accepted = torch.nonzero(accept)[:, 0]
            if accepted.numel():
                _, jac[accepted], _ = problem.residuals(trial_x[accepted], rows[slot[accepted]])

        ratio = decrease / predicted.clamp_min(torch.finfo(dtype).tiny)
        shrink = torch.clamp(1 - (2 * ratio - 1) ** 3, min=1.0 / 3.0)
        damping = torch.where(accept, damping * shrink, damping * nu)
        nu = torch.where(accept, torch.full_like(nu, 2.0), nu * 2)
        x = torch.where(accept[:, None], trial_x, x)
        r = torch.where(accept[:, None], trial_r, r)
        const = torch.where(accept, trial_const, const)
        new_loss = torch.where(accept, trial_loss, loss)
        iterations = iterations + 1

        converged = (accept & (decrease <= tolerance * loss.abs())) | (damping > _MAX_DAMPING)
        loss = new_loss
        finished = converged | (iterations >= max_iterations)
        if not bool(finished.any()):
            continue

        # ---- harvest finished slots, shrink the pool, refill it from the queue in chunks
        done = torch.nonzero(finished)[:, 0]
        out_x[slot[done]] = x[done]
        out_loss[slot[done]] = loss[done]
        out_iters[slot[done]] = iterations[done]
        out_converged[slot[done]] = converged[done]
        if on_done is not None:
            on_done(int(done.numel()))
        keep = torch.nonzero(~finished)[:, 0]
        if keep.numel() < slot.numel():
            slot, x, r, jac, const, loss, damping, nu, iterations = (
                t[keep] for t in (slot, x, r, jac, const, loss, damping, nu, iterations)
            )
        free, queued = capacity - slot.numel(), total - queue_position
        if queued and (free >= chunk or free >= queued or slot.numel() == 0):
            new = torch.arange(queue_position, queue_position + min(free, queued), device=device)
            queue_position += new.numel()
            x_new = problem.initial(rows[new])
            r_new, jac_new, const_new = problem.residuals(x_new, rows[new])
            slot, x, r, jac, const = (
                torch.cat(pair)
                for pair in ((slot, new), (x, x_new), (r, r_new), (jac, jac_new), (const, const_new))
            )
            loss = torch.cat([loss, _loss(r_new, const_new)])
            damping = torch.cat([damping, torch.full_like(new, _INITIAL_DAMPING, dtype=dtype)])
            nu = torch.cat([nu, torch.full_like(new, 2.0, dtype=dtype)])
            iterations = torch.cat([iterations, torch.zeros_like(new)])
    return LmOutcome(out_x, out_loss, out_iters, out_converged)
