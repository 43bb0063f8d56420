"""SPIN's merge rule as pure numpy: keep, per row, the fit with the lowest finite loss.

A proposed fit replaces the stored one only if its loss is finite and strictly lower. To make
merging *exactly* commutative, equal losses need a winner that does not depend on arrival order,
so rows are compared by the key ``(loss, content)`` where ``content`` is the row's bytes
(pose, betas, cam_t, source, step, time, big-endian) compared lexicographically, and an empty
row (``Source.NONE``) loses every tie. Big-endian makes equal fits re-proposed later lose to the
stored earlier one (non-negative step/time bytes sort like their values), so re-importing the
same unscored file changes nothing. Ties of float32 losses between different fits are rare;
a tie between identical fits changes nothing, which is what makes retries idempotent.

Unscored proposals (loss +inf, e.g. imported SPIN static fits whose loss is unknown) are
accepted only when asked (``accept_unscored``): they fill rows that hold no scored fit and lose
to any finite fit. NaN never lands (it means "no fit").

Poisoned proposals are *refused* (``refusals``: never stored, counted by the store): a loss
below zero (-1 or -inf would beat every honest fit and lock the row forever), parameters that
are not finite, and parameters no body fit can have (``PLAUSIBLE``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spinfits.store.fits import Fits, Proposals
from spinfits.store.schema import COLUMNS, Source

_BE = {c.name: c.dtype.newbyteorder(">") for c in COLUMNS}
_CONTENT = tuple(c.name for c in COLUMNS if c.name != "loss")


def content_key(fits: Fits | Proposals, index: int) -> bytes:
    """Tie-break key of one row: its content bytes (all columns but loss), big-endian."""
    return b"".join(
        np.ascontiguousarray(getattr(fits, name)[index], dtype=_BE[name]).tobytes() for name in _CONTENT
    )


@dataclass(frozen=True)
class Plausible:
    """Bounds a stored fit must respect; beyond them a proposal is refused, not stored.

    They are far outside anything SMPLify produces (SPIN itself distrusts |betas| > 3) and only
    stop values that cannot be a person in front of the camera.
    """

    max_joint_angle: float = 4.0 * np.pi  #: axis-angle norm of one joint, radians
    max_abs_beta: float = 50.0  #: any shape coefficient
    min_depth: float = 1e-3  #: camera z of a scored fit with a camera, metres (in front of it)
    max_depth: float = 1e5  #: camera z, metres
    max_abs_xy: float = 1e5  #: camera x, y, metres


PLAUSIBLE = Plausible()


def refusals(proposals: Proposals, accept_unscored: bool = False) -> dict[str, np.ndarray]:
    """Why proposals are refused: reason -> (M,) bool mask (only reasons that occur).

    Refused proposals never land and are counted by the store. A NaN loss (or +inf without
    ``accept_unscored``) is not refused: it says "no fit" and is ignored.
    """
    p, bounds = proposals, PLAUSIBLE
    loss = p.loss
    considered = ~np.isnan(loss) & ((loss != np.inf) | accept_unscored)
    scored = np.isfinite(loss)
    finite = np.isfinite(p.pose).all(1) & np.isfinite(p.betas).all(1) & np.isfinite(p.cam_t).all(1)
    with np.errstate(invalid="ignore", over="ignore"):
        angles = np.linalg.norm(p.pose.reshape(len(p), 24, 3), axis=2).max(1)
        depth = p.cam_t[:, 2]
        has_camera = (p.cam_t != 0).any(1)  # SPIN's files carry no camera: zeros are "none"
        masks = {
            "negative loss": loss < 0,
            "non-finite parameters": considered & (loss >= 0) & ~finite,
            f"joint rotation beyond {bounds.max_joint_angle / np.pi:g} pi": considered
            & finite
            & (angles > bounds.max_joint_angle),
            f"|betas| beyond {bounds.max_abs_beta:g}": considered
            & finite
            & (np.abs(p.betas).max(1) > bounds.max_abs_beta),
            "camera behind or too far from the person": scored
            & finite
            & has_camera
            & (
                (depth < bounds.min_depth)
                | (depth > bounds.max_depth)
                | (np.abs(p.cam_t[:, :2]).max(1, initial=0.0) > bounds.max_abs_xy)
            ),
        }
    return {reason: mask for reason, mask in masks.items() if mask.any()}


def any_reason(reasons: dict[str, np.ndarray], count: int) -> np.ndarray:
    """(M,) bool: proposals refused for any of ``reasons`` (output of ``refusals``)."""
    mask = np.zeros(count, dtype=bool)
    for reason_mask in reasons.values():
        mask |= reason_mask
    return mask


def refused(proposals: Proposals, accept_unscored: bool = False) -> np.ndarray:
    """(M,) bool: proposals refused for any reason of ``refusals``."""
    return any_reason(refusals(proposals, accept_unscored), len(proposals))


def eligible(proposals: Proposals, accept_unscored: bool) -> np.ndarray:
    """(M,) bool: proposals that may land at all: finite loss (or +inf if ``accept_unscored``)
    and not refused (see ``refusals``)."""
    ok = np.isfinite(proposals.loss)
    if accept_unscored:
        ok |= proposals.loss == np.inf
    return ok & ~refused(proposals, accept_unscored)


def best_per_row(proposals: Proposals, accept_unscored: bool = False) -> Proposals:
    """At most one proposal per row, the best by ``(loss, content)``; sorted by row.

    The result does not depend on the order of ``proposals`` (duplicates resolve by the rule).
    """
    index = np.flatnonzero(eligible(proposals, accept_unscored))
    if index.size == 0:
        return proposals.take(index)
    rows = proposals.rows[index]
    loss = proposals.loss[index]
    order = np.lexsort((loss, rows))  # by row, then loss
    index, rows, loss = index[order], rows[order], loss[order]
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    chosen = index[starts].copy()
    # Tied minimum losses inside a row group: rare, settled by content bytes.
    group_min = np.repeat(loss[starts], np.diff(np.r_[starts, rows.size]))
    tied = np.flatnonzero((loss == group_min) & np.r_[False, rows[1:] == rows[:-1]])
    if tied.size:
        group_of = np.searchsorted(starts, tied, side="right") - 1
        for group in np.unique(group_of):
            candidates = [index[starts[group]]] + [index[k] for k in tied[group_of == group]]
            chosen[group] = min(candidates, key=lambda i: content_key(proposals, i))
    return proposals.take(chosen)


@dataclass(frozen=True)
class MergeOutcome:
    """What one merge did to a dataset: the rows it changed and their losses before."""

    rows: np.ndarray  # (K,) int64 changed rows, ascending
    loss_before: np.ndarray  # (K,) float32

    @property
    def count(self) -> int:
        return int(self.rows.shape[0])


def replaces(current: Fits, proposals: Proposals, accept_unscored: bool = False) -> np.ndarray:
    """(M,) bool: whether each proposal, on its own, replaces its row's current fit by the rule.

    current: the fits of the proposals' rows, aligned with them (``fits.take(proposals.rows)``);
    a NaN current loss counts as no fit. Equal losses go to the smaller content, and an empty
    row loses every tie. This is the whole rule: ``merge_into`` applies it, and training uses it
    to pick the fit it supervises with.
    """
    stored = np.where(np.isnan(current.loss), np.inf, current.loss)
    ok = eligible(proposals, accept_unscored)
    wins = ok & (proposals.loss < stored)
    for k in np.flatnonzero(ok & (proposals.loss == stored)):
        if current.source[k] == Source.NONE or content_key(proposals, k) < content_key(current, k):
            wins[k] = True
    return wins


def merge_into(current: Fits, best: Proposals) -> MergeOutcome:
    """Apply ``best`` (output of ``best_per_row``) to ``current`` in place; return what changed.

    current: all N rows of a dataset; best.rows must be unique and < N. ``best`` was filtered by
    ``best_per_row`` (unscored proposals only if it accepted them), so +inf is not refused here.
    """
    rows = best.rows
    changed = np.flatnonzero(replaces(current.take(rows), best, accept_unscored=True))
    target = rows[changed]
    before = current.loss[target].copy()
    for name, column in current.columns().items():
        column[target] = getattr(best, name)[changed]
    return MergeOutcome(rows=target, loss_before=before)
