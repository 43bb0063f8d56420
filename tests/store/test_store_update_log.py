"""Buffered merges and the update log: what a commit writes, folds, old stores, reader refresh."""

import os
from pathlib import Path

import numpy as np
import pytest
import zarr
from store_helpers import BODY, SMALL_LOG, expected_after, random_proposals

from spinfits.errors import InputError
from spinfits.store import Fits, FitStore, WritePolicy
from spinfits.store.schema import ROOT_ATTR
from spinfits.store.update_log import RECORD, ROW_BYTES, apply_records, read_log, to_records

COLUMNS_ONLY = WritePolicy(fold_cost_ratio=float("inf"))


def folder_bytes(path: Path) -> int:
    return sum(os.path.getsize(Path(d) / f) for d, _, files in os.walk(path) for f in files)


def make(path: Path, n_rows: int, chunk_rows: int, policy: WritePolicy | None = None) -> FitStore:
    store = FitStore.create(path, BODY, write_policy=policy)
    store.create_dataset("coco", n_rows, dataset_fingerprint="coco", chunk_rows=chunk_rows)
    return store


def log_of(store: FitStore, version: str | None = None):
    """(generation, length) of each level of the log of ``coco`` at ``version``."""
    session = store.repository.readonly_session(snapshot_id=store.resolve(version))
    states = read_log(session.store, "coco").states
    return tuple((states[level].generation, states[level].length) for level in ("settled", "recent"))


def test_records_round_trip_padding_is_ignored_and_the_last_record_of_a_row_wins():
    rng = np.random.default_rng(0)
    fits = expected_after([random_proposals(rng, 10, 10)], 10)
    records = to_records(np.array([3, 7, 3]), fits.take(np.array([3, 7, 3])), chunk=4)
    assert RECORD.itemsize == 8 + ROW_BYTES == 369
    assert len(records) == 4 and records["row"].tolist() == [3, 7, 3, -1]
    records["loss"][2] = 0.001  # a later record of row 3
    target = Fits.empty(10)
    rows = apply_records(target, records)
    assert rows.tolist() == [3, 7]
    assert target.loss[3] == np.float32(0.001) and target.loss[7] == fits.loss[7]
    np.testing.assert_array_equal(target.pose[[3, 7]], fits.pose[[3, 7]])
    assert np.isinf(target.loss[[0, 1, 2, 4, 5, 6, 8, 9]]).all()


def test_a_scattered_commit_appends_its_rows_and_writes_within_4x_their_bytes(tmp_path):
    rng = np.random.default_rng(1)
    sizes = {}
    for name, policy in (("log", None), ("columns", COLUMNS_ONLY)):
        store = make(tmp_path / name, 20000, 4096, policy)
        store.merge("coco", random_proposals(rng, 20000, 20000, losses=np.full(20000, 5.0, np.float32)))
        store.commit("fill")
        batch = random_proposals(rng, 20000, 64)
        batch = batch.take(np.unique(batch.rows, return_index=True)[1])
        before = folder_bytes(tmp_path / name)
        store.merge("coco", batch)
        version = store.commit("in-loop")
        sizes[name] = folder_bytes(tmp_path / name) - before
        assert version.rows_improved == len(batch)
        assert version.metadata["written"] == {"coco": "fold" if policy else "recent"}
        reopened = FitStore.open(tmp_path / name).read("coco")
        np.testing.assert_array_equal(reopened.loss[batch.rows], batch.loss)
        np.testing.assert_array_equal(reopened.pose[batch.rows], batch.pose)
    changed = len(batch) * ROW_BYTES
    assert sizes["log"] < 4 * changed + 16_000, sizes  # one log chunk + snapshot, manifests
    assert sizes["columns"] > 20 * changed, sizes  # every touched 4096-row chunk of every column


def test_merges_write_nothing_until_the_commit_writes_each_row_once(store, store_path):
    rng = np.random.default_rng(2)
    before = folder_bytes(store_path)
    batches = [random_proposals(rng, 50, 20) for _ in range(10)]
    for batch in batches:
        store.merge("coco", batch)
    assert folder_bytes(store_path) == before  # nothing written between commits
    version = store.commit("ten merges")
    assert version.rows_improved == int(np.isfinite(expected_after(batches, 50).loss).sum())
    assert store.read("coco").equals(expected_after(batches, 50))


def test_the_log_settles_and_folds_when_full_and_readers_follow_every_step(tmp_path):
    rng = np.random.default_rng(3)
    store = make(tmp_path / "s", 40, 8, SMALL_LOG)
    reader = FitStore.open(tmp_path / "s").reader("coco")
    batches, ways, states = [], [], []
    for k in range(8):
        batch = random_proposals(rng, 40, 3, losses=np.full(3, 1.0 / (k + 1), np.float32))
        batch = batch.take(np.unique(batch.rows, return_index=True)[1])
        batches.append(batch)
        store.merge("coco", batch)
        ways.append(store.commit(f"commit {k}").metadata["written"]["coco"])
        states.append(log_of(store))
        assert reader.refresh()
        assert reader.read_all().equals(expected_after(batches, 40))
        assert reader.refreshed_rows is not None  # incremental: only what changed was read
        assert set(batch.rows.tolist()) <= set(reader.refreshed_rows.tolist())
    # recent fills (4 + 4 records), settles into settled (its <= 9 rows: 12 records), refills,
    # then settled would pass 12 records: the whole log folds into the columns
    assert ways[:5] == ["recent", "recent", "settle", "recent", "recent"] and "fold" in ways[5:]
    assert states[1] == ((0, 0), (0, 8)) and states[2][1] == (1, 0) and states[2][0][1] == 12
    fold = ways.index("fold")
    assert states[fold] == ((1, 0), (states[fold - 1][1][0] + 1, 0))
    # every version reads the rows it committed, from any reader
    for k, version in enumerate(store.history.log(limit=8)[::-1]):
        assert store.read("coco", version.snapshot_id).equals(expected_after(batches[: k + 1], 40))


def test_a_reader_reloads_everything_after_a_rollback(tmp_path):
    rng = np.random.default_rng(4)
    store = make(tmp_path / "s", 40, 8, SMALL_LOG)
    store.merge("coco", random_proposals(rng, 40, 3))
    first = store.commit("first")
    store.merge("coco", random_proposals(rng, 40, 3, losses=np.zeros(3, np.float32)))
    store.commit("second")
    reader = store.reader("coco")
    store.history.rollback(first.snapshot_id)
    store.merge("coco", random_proposals(rng, 40, 5, losses=np.full(5, 1e-3, np.float32)))
    store.commit("third, on the rolled back branch")
    assert reader.refresh() and reader.refreshed_rows is None
    assert reader.read_all().equals(store.read("coco"))
    assert not reader.refresh() and reader.refreshed_rows.size == 0


def test_a_format_1_store_reads_and_its_first_log_marks_it_format_2(tmp_path):
    rng = np.random.default_rng(5)
    store = make(tmp_path / "s", 200, 64)
    session = store.repository.writable_session("main")
    root = zarr.open_group(session.store, mode="r+")
    root.attrs[ROOT_ATTR] = {**dict(root.attrs[ROOT_ATTR]), "format": 1}  # as stores were before
    session.commit("format 1")
    old = FitStore.open(tmp_path / "s", body_model=BODY)
    assert log_of(old) == ((0, 0), (0, 0))
    batch = random_proposals(rng, 200, 5)
    old.merge("coco", batch)
    assert old.commit("first log").metadata["written"] == {"coco": "recent"}
    session = old.repository.readonly_session(branch="main")
    assert zarr.open_group(session.store, mode="r").attrs[ROOT_ATTR]["format"] == 2
    assert old.read("coco").equals(expected_after([batch], 200))


def test_a_store_of_a_newer_format_is_refused(tmp_path):
    store = make(tmp_path / "s", 10, 4)
    session = store.repository.writable_session("main")
    root = zarr.open_group(session.store, mode="r+")
    root.attrs[ROOT_ATTR] = {**dict(root.attrs[ROOT_ATTR]), "format": 3}
    session.commit("from the future")
    with pytest.raises(InputError, match=r"has store format 3, this spinfits reads formats 1, 2"):
        FitStore.open(tmp_path / "s")


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(log_chunk=0), r"WritePolicy.log_chunk must be a positive integer, got 0"),
        (dict(min_log_records=2.5), r"WritePolicy.min_log_records must be a positive integer, got 2.5"),
        (dict(max_log_fraction=-1), r"WritePolicy.max_log_fraction must be a number >= 0, got -1"),
        (dict(fold_cost_ratio="2"), r"WritePolicy.fold_cost_ratio must be a number >= 0, got '2'"),
    ],
)
def test_write_policy_exceptions(fields, message):
    with pytest.raises(InputError, match=message):
        WritePolicy(**fields)


def test_write_policy_must_be_a_write_policy(tmp_path):
    with pytest.raises(InputError, match=r"write_policy must be a spinfits.store.WritePolicy, got dict"):
        FitStore.create(tmp_path / "s", BODY, write_policy={"log_chunk": 4})
