"""Fixtures of the store tests: a fresh local store."""

from __future__ import annotations

import pytest
from store_helpers import BODY

from spinfits.store import FitStore


@pytest.fixture
def store_path(tmp_path):
    return tmp_path / "fits.icechunk"


@pytest.fixture
def store(store_path) -> FitStore:
    """A new local store with dataset ``coco`` of 50 rows, chunks of 16 rows."""
    s = FitStore.create(store_path, BODY)
    s.create_dataset(
        "coco", 50, dataset_fingerprint="coco-npz-1", fitting_config={"iters": 10}, chunk_rows=16
    )
    return s
