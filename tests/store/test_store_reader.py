"""FitReader: pinned snapshot reads, refresh, validation, pickling."""

import pickle

import numpy as np
import pytest
from store_helpers import random_proposals

from spinfits.errors import InputError
from spinfits.store import FitReader


def test_reader_is_pinned_until_refresh(store):
    rng = np.random.default_rng(0)
    store.merge("coco", random_proposals(rng, 50, 40))
    v1 = store.commit("v1")
    reader = store.reader("coco")
    assert reader.snapshot_id == v1.snapshot_id
    rows = np.array([3, 7, 3, 49, 0])
    first = reader.read_rows(rows)
    np.testing.assert_array_equal(first.loss, store.read("coco", rows=rows).loss)
    store.merge("coco", random_proposals(rng, 50, 40, losses=np.zeros(40, dtype=np.float32)))
    v2 = store.commit("v2")
    assert reader.read_rows(rows).equals(first)  # still v1
    assert reader.refresh() is True and reader.snapshot_id == v2.snapshot_id
    assert reader.read_rows(rows).equals(store.read("coco", v2.snapshot_id, rows=rows))
    assert reader.refresh() is False


def test_reader_at_past_version_and_returned_arrays_are_copies(store):
    store.merge("coco", random_proposals(np.random.default_rng(1), 50, 40))
    v1 = store.commit("v1")
    store.history.tag("v1", v1.snapshot_id)
    reader = store.reader("coco", "v1")
    batch = reader.read_rows([1, 2])
    batch.loss[:] = -5
    assert (reader.read_rows([1, 2]).loss != -5).all()
    assert reader.read_all().equals(store.read("coco", v1.snapshot_id))


@pytest.mark.parametrize(
    "rows, message",
    [
        ([0, 50], r"rows must lie in \[0, 50\) for dataset 'coco', got values from 0 to 50"),
        ([-1], r"rows must lie in \[0, 50\)"),
        ([[1, 2]], r"rows must be a 1-d integer array"),
        ([1.0], r"rows must be a 1-d integer array"),
    ],
)
def test_read_rows_exceptions(store, rows, message):
    with pytest.raises(InputError, match=message):
        store.reader("coco").read_rows(rows)


def test_unknown_dataset(store):
    with pytest.raises(InputError, match=r"unknown dataset 'mpii'; the store has \['coco'\]"):
        FitReader(store.repository, "mpii")


def test_reader_pickles_to_the_same_snapshot(store):
    store.merge("coco", random_proposals(np.random.default_rng(2), 50, 40))
    store.commit("v1")
    reader = store.reader("coco")
    copy = pickle.loads(pickle.dumps(reader))
    store.merge(
        "coco", random_proposals(np.random.default_rng(3), 50, 40, losses=np.zeros(40, dtype=np.float32))
    )
    store.commit("v2")
    copy2 = pickle.loads(pickle.dumps(reader))
    assert copy.snapshot_id == copy2.snapshot_id == reader.snapshot_id
    assert copy2.read_all().equals(reader.read_all())
    assert copy2.refresh() is True
