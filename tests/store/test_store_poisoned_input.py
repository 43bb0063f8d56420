"""The store never takes a poisoned row, and says clearly when its storage fails.

Negative losses, non-finite or implausible parameters and wrapping row numbers are refused
(counted, never stored); failed rows are recorded with their reasons; a read-only or full
filesystem is a ``StorageError`` with the store left at its last commit; four writers at the
default settings commit without error and lose nothing.
"""

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from store_helpers import BODY, best_by_row, random_proposals, reopen
from store_worker import N_ROWS, worker_batch

from spinfits.cli import main
from spinfits.errors import InputError, StorageError
from spinfits.store import FitStore, Proposals, Source, StoreLocation, export_parquet

WORKER = str(Path(__file__).with_name("store_worker.py"))


def good_fits(store: FitStore, rows: np.ndarray) -> None:
    """Commit plausible fits with losses 1..2 at ``rows``."""
    m = len(rows)
    store.merge(
        "coco",
        Proposals(
            rows=rows,
            pose=np.full((m, 72), 0.1),
            betas=np.full((m, 10), 0.5),
            cam_t=np.tile([0.1, 0.2, 40.0], (m, 1)),
            loss=np.linspace(1, 2, m),
            source=Source.OFFLINE,
            time=1.0,
        ),
    )
    store.commit("good fits")


def poisoned(rows: np.ndarray, **values) -> Proposals:
    m = len(rows)
    fields = dict(
        pose=np.zeros((m, 72)),
        betas=np.zeros((m, 10)),
        cam_t=np.tile([0.0, 0.0, 30.0], (m, 1)),
        loss=np.full(m, 0.01),
    )
    fields.update({k: np.broadcast_to(v, fields[k].shape).copy() for k, v in values.items()})
    return Proposals(rows=rows, source=Source.IN_LOOP, time=2.0, **fields)


def nan_pose():
    pose = np.zeros(72)
    pose[7] = np.nan
    return pose


@pytest.mark.parametrize(
    "values, reason",
    [
        (dict(loss=-1.0), "negative loss"),
        (dict(loss=-1e9), "negative loss"),
        (dict(loss=-np.inf), "negative loss"),
        (dict(pose=nan_pose()), "non-finite parameters"),
        (dict(betas=np.full(10, np.inf)), "non-finite parameters"),
        (dict(cam_t=np.array([0.0, 0.0, np.nan])), "non-finite parameters"),
        (dict(pose=np.full(72, 1e3)), "joint rotation beyond 4 pi"),
        (dict(betas=np.full(10, 1e3)), "|betas| beyond 50"),
        (dict(cam_t=np.array([0.0, 0.0, -5.0])), "camera behind or too far from the person"),
        (dict(cam_t=np.array([0.0, 0.0, 1e9])), "camera behind or too far from the person"),
    ],
)
def test_poisoned_proposals_are_refused_counted_and_never_stored(store, values, reason, caplog):
    rows = np.arange(64) % 50
    good_fits(store, np.arange(50))
    before, tip = store.read("coco"), store.tip()
    assert store.merge("coco", poisoned(rows, **values)) == 0
    assert store.refused() == {"coco": {reason: 64}}
    assert f"refused 64 proposal(s) for coco (never stored): {reason}: 64" in caplog.text
    assert store.commit("nothing to commit") is None and store.tip() == tip
    assert store.read("coco").equals(before)
    # an honest, better fit still lands afterwards: the rows are not locked
    assert store.merge("coco", poisoned(rows[:3], loss=0.5)) == 3


def test_one_poisoned_row_does_not_stop_the_others(store):
    proposals = poisoned(np.arange(4), loss=np.array([0.5, -1.0, 0.5, 0.5]))
    assert store.merge("coco", proposals) == 3
    store.commit("three")
    assert store.read("coco").loss.tolist()[:4] == [0.5, np.inf, 0.5, 0.5]


def test_unscored_imports_without_a_camera_are_not_refused(store):
    proposals = Proposals(
        rows=np.arange(3),
        pose=np.zeros((3, 72)),
        betas=np.zeros((3, 10)),
        cam_t=np.zeros((3, 3)),
        loss=np.full(3, np.inf),
        source=Source.IMPORTED,
        time=0.0,
    )
    assert store.merge("coco", proposals, accept_unscored=True) == 3 and store.refused() == {}


def test_import_with_negative_losses_is_refused_before_the_store_changes(store, store_path, tmp_path, capsys):
    good_fits(store, np.arange(50))
    before, tip = store.read("coco"), store.tip()
    np.save(tmp_path / "fits.npy", np.zeros((50, 82), dtype=np.float32))
    np.save(tmp_path / "losses.npy", np.full(50, -1.0, dtype=np.float32))
    status = main(
        [
            "store",
            "import",
            str(store_path),
            "coco",
            str(tmp_path / "fits.npy"),
            "--losses",
            str(tmp_path / "losses.npy"),
        ]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert (
        "losses must be >= 0 and finite, or +inf (unknown): 50 are NaN or negative (first at row 0: -1.0)"
        in err
    )
    reopened = FitStore.open(store_path)
    assert reopened.tip() == tip and reopened.read("coco").equals(before)


@pytest.mark.parametrize(
    "rows",
    [
        np.array([0, 2**64 - 1], dtype=np.uint64),
        np.array([2**63], dtype=np.uint64),
    ],
)
def test_row_numbers_beyond_int64_never_wrap(store, rows):
    good_fits(store, np.arange(50))
    before = store.read("coco")
    with pytest.raises(
        InputError, match=r"rows must be dataset row numbers, got \d+ \(uint64\), beyond any dataset"
    ):
        Proposals(
            rows=rows,
            pose=np.zeros((len(rows), 72)),
            betas=np.zeros((len(rows), 10)),
            cam_t=np.ones((len(rows), 3)),
            loss=np.zeros(len(rows)),
        )
    with pytest.raises(InputError, match=r"rows must lie in \[0, 50\) for dataset 'coco'"):
        store.reader("coco").read_rows(rows)
    with pytest.raises(InputError, match=r"rows must be dataset row numbers"):
        store.record_failures("coco", rows, ["x"] * len(rows))
    assert store.read("coco").equals(before)


# ------------------------------------------------------------------------------------ failures


def test_failed_rows_are_recorded_committed_and_cleared_by_a_fit(store, store_path, tmp_path, capsys):
    good_fits(store, np.arange(10))
    marked = store.record_failures(
        "coco",
        np.array([5, 20, 21, 22]),
        ["boom", "fitting raised RuntimeError: x", "fitting raised RuntimeError: x", "boom"],
    )
    assert marked == 3  # row 5 holds a fit: it stands, not marked
    assert store.has_pending and not store.failures("coco").mask.any()  # visible after commit only
    version = store.commit("failures")
    assert version.metadata["rows_failed"] == {"coco": 4}
    failures = FitStore.open(store_path).failures("coco")
    assert np.flatnonzero(failures.mask).tolist() == [20, 21, 22]
    assert failures.reason(20) == "fitting raised RuntimeError: x" and failures.reason(22) == "boom"
    assert failures.counts() == {"fitting raised RuntimeError: x": 2, "boom": 1}
    # visible in store info and in the Parquet export
    assert main(["store", "info", str(store_path)]) == 0
    out = capsys.readouterr().out
    assert "failed rows by reason" in out and "2  fitting raised RuntimeError: x  (rows 20, 21)" in out
    export_parquet(store, "coco", tmp_path / "fits.parquet")
    column = pq.read_table(tmp_path / "fits.parquet").column("failure").to_pylist()
    assert column[20] == "fitting raised RuntimeError: x" and column[22] == "boom" and column[0] is None
    # a fit that lands later clears the row's failure
    store.merge("coco", poisoned(np.array([21]), loss=0.3))
    store.commit("row 21 fitted")
    assert np.flatnonzero(store.failures("coco").mask).tolist() == [20, 22]


def test_pending_failures_survive_a_concurrent_commit(store):
    other = reopen(store)
    store.record_failures("coco", np.array([7]), ["diverged"])
    other.merge("coco", poisoned(np.array([1]), loss=0.2))
    other.commit("other first")
    store.commit("failures after")
    reopened = reopen(store)
    assert reopened.failures("coco").reason(7) == "diverged" and reopened.read("coco").loss[1] == np.float32(
        0.2
    )


def test_stores_without_a_failure_array_read_as_no_failures(store):
    assert not store.failures("coco").mask.any() and store.failures("coco").counts() == {}


# ----------------------------------------------------------------------------- concurrency


def test_four_concurrent_writers_at_default_settings_lose_nothing(store_path, tmp_path):
    shared = FitStore.create(store_path, BODY)
    shared.create_dataset("coco", N_ROWS, dataset_fingerprint="coco", chunk_rows=64)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, "commit_loop", str(store_path), str(w), "5", str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in (1, 2, 3, 4)
    ]
    time.sleep(0.5)
    go.touch()
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [err[-2000:] for _, err in outputs]
    batches = [worker_batch(w, i) for w in (1, 2, 3, 4) for i in range(5)]
    np.testing.assert_array_equal(FitStore.open(store_path).read("coco").loss, best_by_row(batches, N_ROWS))
    attempts = [
        int(line.split()[1]) for out, _ in outputs for line in out.splitlines() if line.startswith("attempts")
    ]
    assert len(attempts) == 20 and max(attempts) == 1  # a local commit never loses a race


# ------------------------------------------------------------------------------ storage faults


def test_store_path_that_is_a_file_is_refused_at_once(tmp_path):
    path = tmp_path / "fits.icechunk"
    path.write_text("not a store")
    with pytest.raises(InputError, match=r"store path .*fits.icechunk is a file, not a store directory"):
        StoreLocation.parse(path).check_writable()


def test_read_only_store_is_a_clear_error_and_stays_unchanged(small_filesystem):
    fs = small_filesystem("8m")
    store = FitStore.create(fs.path / "fits", BODY)
    store.create_dataset("coco", 50, dataset_fingerprint="c", chunk_rows=16)
    good_fits(store, np.arange(50))
    tip, before = store.tip(), store.read("coco")
    fs.remount("ro")
    with pytest.raises(
        StorageError, match=r"cannot write to the store at .*fits: .* is not writable by this user"
    ):
        StoreLocation.parse(fs.path / "fits").check_writable()
    reader = FitStore.open(fs.path / "fits")  # reading still works
    assert reader.read("coco").equals(before)
    with pytest.raises(StorageError, match=r"the store is unchanged|The store is unchanged"):
        store.merge("coco", poisoned(np.arange(5), loss=0.1))
        store.commit("cannot")
    fs.remount("rw")
    reopened = FitStore.open(fs.path / "fits")
    assert reopened.tip() == tip and reopened.read("coco").equals(before)


def test_disk_full_during_a_merge_keeps_the_last_commit(small_filesystem):
    fs = small_filesystem("3m")
    store = FitStore.create(fs.path / "fits", BODY)
    store.create_dataset("coco", 20000, dataset_fingerprint="c", chunk_rows=2048)
    rng = np.random.default_rng(0)
    store.merge("coco", random_proposals(rng, 20000, 100))
    tip = store.commit("fits before the disk filled").snapshot_id
    before = store.read("coco")
    big = random_proposals(rng, 20000, 20000)
    with pytest.raises(
        StorageError,
        match=r"No space left on device.*The store is unchanged by this failure \(this writer's last "
        rf"known commit: {tip}\); this writer keeps its uncommitted merges",
    ):
        store.merge("coco", big)
        store.commit("too big")
    reopened = FitStore.open(fs.path / "fits")
    assert reopened.tip() == tip and reopened.read("coco").equals(before)
    assert reopened.history.log()[0].message == "fits before the disk filled"
