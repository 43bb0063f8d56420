"""Shared helpers of the store tests: a fresh local store and random proposals."""

from __future__ import annotations

import numpy as np
import pytest

from spinfits.store import BodyModelInfo, FitStore, Proposals, Source

BODY = BodyModelInfo("smpl-test-0001", is_standin=True)


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
        cam_t=rng.standard_normal((m, 3)).astype(np.float32),
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


@pytest.fixture
def store_path(tmp_path):
    return tmp_path / "fits.icechunk"


@pytest.fixture
def store(store_path) -> FitStore:
    """A new local store with dataset ``coco`` of 50 rows, chunks of 16 rows."""
    s = FitStore.create(store_path, BODY)
    s.create_dataset("coco", 50, dataset_fingerprint="coco-npz-1", fitting_config={"iters": 10}, chunk_rows=16)
    return s
