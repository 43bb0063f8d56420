"""Helpers shared by the store tests (imported by name: keep this file name unique)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from spinfits.store import (
    BodyModelInfo,
    Fits,
    FitStore,
    Proposals,
    Source,
    WritePolicy,
    best_per_row,
    merge_into,
)

BODY = BodyModelInfo("smpl-test-0001", is_standin=True)

#: ``recent`` holds 8 records (chunks of 4), ``settled`` 12 (chunks of 4), then the log folds.
SMALL_LOG = WritePolicy(
    log_chunk=4,
    recent_records=8,
    settled_chunk=4,
    min_log_records=12,
    max_log_fraction=0.0,
    fold_cost_ratio=0.0,
)


def expected_after(batches: list[Proposals], n_rows: int) -> Fits:
    """SPIN's rule over whole batches in order, on an in-memory copy of every row."""
    fits = Fits.empty(n_rows)
    for batch in batches:
        merge_into(fits, best_per_row(batch))
    return fits


def random_proposals(
    rng: np.random.Generator,
    n_rows: int,
    m: int,
    *,
    source: Source = Source.OFFLINE,
    step: int = 0,
    time: float = 1000.0,
    losses: np.ndarray | None = None,
) -> Proposals:
    """``m`` proposals for random rows of an ``n_rows`` dataset, random fits and losses."""
    return Proposals(
        rows=rng.integers(0, n_rows, m),
        pose=rng.standard_normal((m, 72)).astype(np.float32),
        betas=rng.standard_normal((m, 10)).astype(np.float32),
        cam_t=(rng.standard_normal((m, 3)) + [0.0, 0.0, 30.0]).astype(np.float32),  # in front of the camera
        loss=rng.random(m).astype(np.float32) if losses is None else losses,
        source=source,
        step=step,
        time=time,
    )


def best_by_row(batches: list[Proposals], n_rows: int) -> np.ndarray:
    """Plain-Python reference: the lowest finite loss proposed for each row (+inf if none)."""
    best = np.full(n_rows, np.inf, dtype=np.float32)
    for p in batches:
        for row, loss in zip(p.rows.tolist(), p.loss.tolist()):
            if np.isfinite(loss) and loss < best[row]:
                best[row] = loss
    return best


SMALL_ROWS = 6
LOSSES = [0.5, 1.0, 2.0, float("nan"), float("inf"), float("-inf")]


@st.composite
def batches(draw, max_batches=4, max_size=6):
    """Lists of proposal batches over SMALL_ROWS rows, with few distinct values so ties and
    duplicates are common."""
    out = []
    for _ in range(draw(st.integers(1, max_batches))):
        m = draw(st.integers(0, max_size))
        rows = draw(st.lists(st.integers(0, SMALL_ROWS - 1), min_size=m, max_size=m))
        losses = draw(st.lists(st.sampled_from(LOSSES), min_size=m, max_size=m))
        seeds = draw(st.lists(st.integers(0, 2), min_size=m, max_size=m))
        out.append(
            Proposals(
                rows=np.array(rows, dtype=np.int64),
                pose=np.array([[s] * 72 for s in seeds], dtype=np.float32).reshape(m, 72),
                betas=np.array([[s] * 10 for s in seeds], dtype=np.float32).reshape(m, 10),
                cam_t=np.zeros((m, 3), dtype=np.float32),
                loss=np.array(losses, dtype=np.float32),
                source=Source.OFFLINE,
                step=np.array(seeds, dtype=np.int64),
                time=0.0,
            )
        )
    return out


def reopen(store: FitStore, **options) -> FitStore:
    """A second ``FitStore`` on ``store``'s location (same back end and credentials)."""
    return FitStore.open(store.location, **options)
