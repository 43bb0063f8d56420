"""The training report PNG is drawn from progress records; a step run again after a recovery
counts once (its last run), and a step's time is split into its parts."""

from __future__ import annotations

import matplotlib.image

from spinfits.report.plots import plot_training_report
from spinfits.training.progress import latest_per_step, step_time_split
from spinfits.training.store_writer import WriterStats
from spinfits.training.trainer import TrainSummary


def _record(step: int, rank: int, total: float) -> dict:
    return {
        "step": step,
        "rank": rank,
        "pid": 1,
        "seconds": 0.2,
        "store_seconds": 0.001,
        "proposed": 1,
        "valid": 8,
        "batch": 8,
        "best_fit_loss": 5.0,
        "snapshot": "S",
        "phases": {"forward": 0.05, "smplify": 0.1, "targets": 0.01, "backward": 0.03},
        "total": total,
        "keypoint": 0.01,
    }


def test_training_report(tmp_path):
    ranks = [[_record(s, r, 20 - s / 10) for s in range(60)] for r in range(2)]
    ranks[0] += [_record(s, 0, 1.0) for s in range(30, 60)]  # a restart from step 30
    summary = TrainSummary(
        run="r",
        first_step=0,
        steps=60,
        seconds=10.0,
        loss_before=9.0,
        loss_after=8.0,
        fitted_before=10,
        fitted_after=10,
        writer=WriterStats(10, 10, 2, "S", (0, 59)),
        checkpoint_step=60,
        checkpoint_snapshot="S",
        is_standin=True,
    )
    path = plot_training_report(summary, ranks, tmp_path / "report.png")
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 300 and image.shape[1] > 1000
    assert "stand-in body model" in summary.lines()[0]


def test_a_rerun_step_counts_once_with_its_last_run():
    records = [_record(s, 0, 10.0) for s in range(5)] + [_record(s, 0, 1.0) for s in (3, 4, 5)]
    latest = latest_per_step(records)
    assert [r["step"] for r in latest] == [0, 1, 2, 3, 4, 5]
    assert [r["total"] for r in latest] == [10.0, 10.0, 10.0, 1.0, 1.0, 1.0]


def test_step_time_split_adds_up_to_the_step_time():
    records = [_record(s, 0, 1.0) for s in range(4)]
    split = step_time_split(records)
    assert abs(sum(split.values()) - 4 * 0.2) < 1e-12
    assert abs(split["store traffic"] - 4 * 0.001) < 1e-12
    assert abs(split["smplify"] - 4 * 0.1) < 1e-12
    assert abs(split["data + other"] - 4 * (0.2 - 0.001 - 0.19)) < 1e-12
