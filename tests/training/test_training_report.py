"""The training report PNG is drawn from progress records (restarted steps counted once)."""

from __future__ import annotations

import matplotlib.image

from spinfits.plots import plot_training_report
from spinfits.training.store_writer import WriterStats
from spinfits.training.trainer import TrainSummary


def _record(step: int, rank: int, total: float) -> dict:
    return {"step": step, "rank": rank, "pid": 1, "seconds": 0.2, "store_seconds": 0.001,
            "proposed": 1, "valid": 8, "batch": 8, "best_fit_loss": 5.0, "snapshot": "S",
            "phases": {"forward": 0.05, "smplify": 0.1, "targets": 0.01, "backward": 0.03},
            "total": total, "keypoint": 0.01}


def test_training_report(tmp_path):
    ranks = [[_record(s, r, 20 - s / 10) for s in range(60)] for r in range(2)]
    ranks[0] += [_record(s, 0, 1.0) for s in range(30, 60)]  # a restart from step 30
    summary = TrainSummary(run="r", first_step=0, steps=60, seconds=10.0, loss_before=9.0,
                           loss_after=8.0, fitted_before=10, fitted_after=10,
                           writer=WriterStats(10, 10, 2, "S", (0, 59)), checkpoint_step=60,
                           checkpoint_snapshot="S", is_standin=True)
    path = plot_training_report(summary, ranks, tmp_path / "report.png")
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 300 and image.shape[1] > 1000
    assert "stand-in body model" in summary.lines()[0]
