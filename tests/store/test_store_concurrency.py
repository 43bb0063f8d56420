"""Several writers: concurrent commits, a writer killed mid-write or mid-commit."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from store_helpers import BODY, best_by_row
from store_worker import N_ROWS, worker_batch

from spinfits.store import FitStore

WORKER = str(Path(__file__).with_name("store_worker.py"))


@pytest.fixture
def shared(store_path) -> FitStore:
    store = FitStore.create(store_path, BODY)
    store.create_dataset("coco", N_ROWS, dataset_fingerprint="coco", chunk_rows=64)
    return store


def run_worker(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, WORKER, *map(str, args)], stdout=subprocess.PIPE, text=True, **kwargs
    )


def test_conflicting_commit_reapplies_the_merge_rule(shared, store_path):
    """Writer A commits after B committed to the same branch: A re-reads and re-merges."""
    a, b = shared, FitStore.open(store_path)
    a.merge("coco", worker_batch(1, 0))
    b.merge("coco", worker_batch(2, 0))
    b_version = b.commit("b first")
    version = a.commit("a second")
    assert version.metadata["attempts"] == 1  # replayed onto B's tip under the commit lock: no race lost
    assert version.parent_id == b_version.snapshot_id
    expected = best_by_row([worker_batch(1, 0), worker_batch(2, 0)], N_ROWS)
    np.testing.assert_array_equal(a.read("coco").loss, expected)
    # rows_improved counts the rows A changed on top of B's commit
    assert (
        version.rows_improved
        == a.history.diff("coco", b_version.snapshot_id, version.snapshot_id).n_changed
        > 0
    )


def test_two_processes_committing_concurrently_lose_no_improvement(shared, store_path, tmp_path):
    go = tmp_path / "go"
    procs = [run_worker("commit_loop", store_path, w, 4, go) for w in (1, 2)]
    time.sleep(0.5)
    go.touch()
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    batches = [worker_batch(w, i) for w in (1, 2) for i in range(4)]
    final = FitStore.open(store_path)
    np.testing.assert_array_equal(final.read("coco").loss, best_by_row(batches, N_ROWS))
    # every commit a worker reported is in the history, none lost by a concurrent ref update
    attempts = [
        int(line.split()[1]) for out in outputs for line in out.splitlines() if line.startswith("attempts")
    ]
    assert len(attempts) == 8
    print("commit attempts per commit:", attempts)
    committed = [v.message for v in final.history.log() if v.message.startswith("worker")]
    assert len(committed) == len(set(committed)) == sum(a > 0 for a in attempts)
    # every row holds exactly the fit of the proposal that had its best loss
    fits = final.read("coco")
    for p in batches:
        hit = fits.loss[p.rows] == p.loss
        np.testing.assert_array_equal(fits.pose[p.rows[hit]], p.pose[hit])


def test_writer_killed_mid_write_leaves_the_last_commit(shared, store_path, tmp_path):
    shared.merge("coco", worker_batch(5, 0))
    committed = shared.commit("before the crash")
    before = shared.read("coco")
    started = tmp_path / "started"
    proc = run_worker("write_forever", store_path, started)
    deadline = time.monotonic() + 60
    while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert started.exists(), proc.communicate()[0]
    time.sleep(0.2)  # let it write some more chunks
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    reopened = FitStore.open(store_path)
    assert reopened.tip() == committed.snapshot_id
    assert reopened.read("coco").equals(before)
    # and the store still takes writes
    reopened.merge("coco", worker_batch(6, 0))
    assert reopened.commit("after the crash") is not None


def test_writer_killed_mid_commit_loses_nothing_committed(shared, store_path, tmp_path):
    """Killed at any moment of a loop of merge + commit: the tip is one of its commits, holding
    exactly the batches up to it; every commit still reads; gc then takes the half-written
    commit's objects and the store still takes writes."""
    started = tmp_path / "started"
    proc = run_worker("commit_forever", store_path, started)
    deadline = time.monotonic() + 60
    while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert started.exists(), proc.communicate()[0]
    time.sleep(0.3)  # several commits, each writing its log records
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    reopened = FitStore.open(store_path)
    history = reopened.history.log()
    last = int(history[0].message.split()[1])
    assert [v.message for v in history[: last + 1]] == [f"batch {k}" for k in range(last, -1, -1)]
    for k, version in enumerate(history[last::-1]):
        expected = best_by_row([worker_batch(98, i) for i in range(k + 1)], N_ROWS)
        np.testing.assert_array_equal(reopened.read("coco", version.snapshot_id).loss, expected)
    tip = reopened.read("coco")
    report = reopened.history.gc(keep_last=1)
    assert reopened.read("coco").equals(tip) and report.freed["bytes"] > 0
    reopened.merge("coco", worker_batch(6, 0))
    assert reopened.commit("after the crash") is not None
    assert any(v.metadata.get("written", {}).get("coco") == "recent" for v in history)  # the update log
