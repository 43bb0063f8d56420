"""The reported figures of an evaluation: per protocol, per Human3.6M action, and 2D PCK.

``summarise`` averages ``RowMetrics`` as SPIN's eval.py does: MPJPE and PA-MPJPE are means
over the rows that have 3D ground truth, in millimetres; the per-action breakdown groups rows
by the Human3.6M action in their image names (``evaluation.h36m_action``); PCK pools every
visible LSP-14 joint of the set (correct / visible).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spinfits.errors import InputError
from spinfits.fitting.evaluation.fit_evaluation import RowMetrics
from spinfits.fitting.evaluation.metrics import M_TO_MM, JointProtocol, h36m_action


@dataclass(frozen=True)
class ProtocolFigures:
    """One protocol over a set of rows: rows with 3D ground truth, mean MPJPE and PA-MPJPE in
    mm (None when no row has ground truth)."""

    protocol: str
    title: str
    rows: int
    mpjpe_mm: float | None
    pa_mpjpe_mm: float | None


@dataclass(frozen=True)
class PckFigures:
    """2D PCK of the LSP-14 joints: alpha (fraction of the box side), threshold_px (in the
    crop frame), joints (visible ones counted), rows (rows with any), pck (correct / visible,
    None without any visible joint)."""

    alpha: float
    threshold_px: float
    joints: int
    rows: int
    pck: float | None


@dataclass(frozen=True)
class EvalSummary:
    """Figures of one evaluation.

    Fields:
        rows: rows evaluated; ground_truth_3d: what the 3D figures compare with (one line).
        protocols: one ``ProtocolFigures`` per protocol, over all rows.
        per_action: Human3.6M action -> its ``ProtocolFigures`` (empty when no image name
            carries an action); rows of other names are grouped under "other".
        pck: the 2D figures.
    """

    rows: int
    ground_truth_3d: str
    protocols: tuple[ProtocolFigures, ...]
    pck: PckFigures
    per_action: dict[str, tuple[ProtocolFigures, ...]] = field(default_factory=dict)

    @property
    def has_3d(self) -> bool:
        return any(p.rows > 0 for p in self.protocols)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures (mm; None where undefined)."""

        def figures(items: tuple[ProtocolFigures, ...], titled: bool = True) -> dict[str, Any]:
            return {
                p.protocol: {
                    **({"title": p.title} if titled else {}),
                    "rows": p.rows,
                    "mpjpe_mm": p.mpjpe_mm,
                    "pa_mpjpe_mm": p.pa_mpjpe_mm,
                }
                for p in items
            }

        return {
            "rows": self.rows,
            "ground_truth_3d": self.ground_truth_3d,
            "protocols": figures(self.protocols),
            "per_action": {action: figures(items, False) for action, items in self.per_action.items()},
            "pck": {
                "alpha": self.pck.alpha,
                "threshold_px": self.pck.threshold_px,
                "convention": "a visible LSP-14 joint is correct within alpha x the box side "
                "(SPIN's crop box: 200 * scale image px = crop_res crop px); pooled correct / visible",
                "joints": self.pck.joints,
                "rows": self.pck.rows,
                "pck": self.pck.pck,
            },
        }


def _mean_mm(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean() * M_TO_MM) if finite.size else None


def _figures(metrics: RowMetrics, protocols: tuple[JointProtocol, ...], mask: np.ndarray):
    return tuple(
        ProtocolFigures(
            protocol=p.name,
            title=p.title,
            rows=int(np.isfinite(metrics.mpjpe[p.name][mask]).sum()),
            mpjpe_mm=_mean_mm(metrics.mpjpe[p.name][mask]),
            pa_mpjpe_mm=_mean_mm(metrics.pa_mpjpe[p.name][mask]),
        )
        for p in protocols
    )


def summarise(
    metrics: RowMetrics,
    imgname: np.ndarray,
    protocols: tuple[JointProtocol, ...],
    ground_truth_3d: str,
    pck_alpha: float,
    crop_res: int,
) -> EvalSummary:
    """The figures of ``metrics`` (N rows) whose image names are ``imgname`` (N,)."""
    imgname = np.asarray(imgname).astype(str)
    if imgname.shape != (len(metrics),):
        raise InputError(f"imgname must be ({len(metrics)},), one per evaluated row, got {imgname.shape}")
    missing = [p.name for p in protocols if p.name not in metrics.mpjpe]
    if missing:
        raise InputError(f"metrics hold no rows of protocols {missing}; score with the same Evaluator")
    everything = np.ones(len(metrics), dtype=bool)
    actions = np.array([h36m_action(name) or "other" for name in imgname], dtype=object)
    per_action = {}
    if (actions != "other").any():
        for action in sorted(set(actions), key=lambda a: (a == "other", a)):
            per_action[action] = _figures(metrics, protocols, actions == action)
    visible = int(metrics.pck_visible.sum())
    return EvalSummary(
        rows=len(metrics),
        ground_truth_3d=ground_truth_3d,
        protocols=_figures(metrics, protocols, everything),
        pck=PckFigures(
            alpha=pck_alpha,
            threshold_px=pck_alpha * crop_res,
            joints=visible,
            rows=int((metrics.pck_visible > 0).sum()),
            pck=float(metrics.pck_correct.sum() / visible) if visible else None,
        ),
        per_action=per_action,
    )


def summary_of(metrics: RowMetrics, targets, evaluator) -> EvalSummary:
    """``summarise`` with what an ``Evaluator`` and the scored ``EvalTargets`` (same rows, same
    order as ``metrics``) know: protocols, PCK alpha, crop size, image names, 3D source."""
    if not np.array_equal(np.asarray(targets.rows), metrics.rows):
        raise InputError("targets must be the rows that were scored, in the same order (targets.take(...))")
    return summarise(
        metrics,
        targets.imgname,
        evaluator.protocols,
        targets.describe_3d,
        evaluator.pck_alpha,
        targets.crop_res,
    )
