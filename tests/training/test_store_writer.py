"""The training run's store writer, used as a plain class (no Ray): merges, commits on its own
clock and on flush, attributes commits to the run."""

import os
import time

import numpy as np
import pytest

from spinfits.errors import InputError
from spinfits.store import FitStore, Proposals, Source
from spinfits.training.store_writer import StoreWriter

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _proposals(rows, loss, step, value=1.0) -> Proposals:
    rows = np.asarray(rows, dtype=np.int64)
    return Proposals(
        rows=rows,
        pose=np.full((len(rows), 72), value),
        betas=np.full((len(rows), 10), value),
        cam_t=np.ones((len(rows), 3)),
        loss=np.asarray(loss, dtype=np.float32),
        source=Source.IN_LOOP,
        step=step,
        time=3000.0,
    )


@pytest.fixture
def writer_for(fit_store, training_set, standin_files):
    """writer_for(run, commit_every_s) -> a StoreWriter on ``fit_store`` (closed afterwards)."""
    writers = []

    def make(run="run-1", commit_every_s=3600.0) -> StoreWriter:
        writer = StoreWriter(
            str(fit_store.location.path),
            training_set.name,
            standin_files.fingerprint,
            run,
            commit_every_s=commit_every_s,
        )
        writers.append(writer)
        return writer

    yield make
    for writer in writers:
        writer.close()


def _wait_for(condition, seconds=20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def _pid_of(actor) -> int | None:
    """The process id of a Ray actor's current instance; None while it is restarting."""
    import ray

    try:
        return ray.get(actor.__ray_call__.remote(lambda self: os.getpid()), timeout=5)
    except (ray.exceptions.RayError, TimeoutError):
        return None


def test_propose_merges_by_the_store_rule(writer_for, fit_store, training_set):
    name = training_set.name
    stored = fit_store.read(name)
    writer = writer_for()
    # row 0 has no fit; row 1 a better one; row 2 a worse one; row 4 NaN
    improved = writer.propose(
        _proposals([0, 1, 2, 4], [5.0, stored.loss[1] / 2, stored.loss[2] * 2, np.nan], step=10, value=0.5)
    )
    assert improved == 2
    assert writer.propose(_proposals([0], [6.0], step=11)) == 0  # worse than the pending one
    stats = writer.stats()
    assert (stats.proposals, stats.rows_improved, stats.commits) == (5, 2, 0)
    assert stats.last_commit is None and stats.steps == (10, 11)
    assert fit_store.read(name).equals(stored)  # nothing committed yet
    snapshot = writer.flush()
    fits = FitStore.open(fit_store.location.path).read(name)
    np.testing.assert_array_equal(
        fits.loss[[0, 1, 2, 4]], np.float32([5.0, stored.loss[1] / 2, stored.loss[2], stored.loss[4]])
    )
    np.testing.assert_array_equal(fits.pose[[0, 1], 0], [0.5, 0.5])
    assert fits.take(np.array([2, 4])).equals(stored.take(np.array([2, 4])))
    assert snapshot == fit_store.tip() and writer.stats().last_commit == snapshot


def test_flush_commits_attributed_to_the_run(writer_for, fit_store, training_set):
    writer = writer_for(run="spin-7")
    before = fit_store.tip()
    assert writer.flush() == before  # nothing pending: no commit
    assert writer.stats().commits == 0 and fit_store.history.log(limit=1)[0].snapshot_id == before
    writer.propose(_proposals([0], [5.0], step=30))
    writer.propose(_proposals([7, 12], [4.0, 3.0], step=np.array([12, 21])))
    snapshot = writer.flush()
    assert snapshot != before and snapshot == fit_store.tip()
    version = fit_store.history.log(limit=1)[0]
    assert version.snapshot_id == snapshot
    assert version.message == "training spin-7: steps 12-30"
    assert version.metadata["source"] == "training" and version.metadata["run"] == "spin-7"
    assert list(version.metadata["steps"]) == [12, 30]
    assert version.rows_improved == 3
    assert writer.stats().commits == 1
    # the next commit covers only the steps proposed since
    writer.propose(_proposals([0], [1.0], step=40))
    writer.propose(_proposals([0], [2.0], step=41))  # worse: merged by the rule, still counted
    writer.flush()
    version = fit_store.history.log(limit=1)[0]
    assert version.message == "training spin-7: steps 40-41"
    assert version.rows_improved == 1
    assert writer.stats().steps == (12, 41) and writer.stats().commits == 2


def test_commits_happen_on_the_clock_and_close_stops_it(writer_for, fit_store, training_set):
    writer = writer_for(run="clocked", commit_every_s=0.05)
    start = fit_store.tip()
    writer.propose(_proposals([0], [5.0], step=1))
    assert _wait_for(lambda: fit_store.tip() != start), "no commit within 20 s"
    assert _wait_for(lambda: writer.stats().commits == 1)
    first = fit_store.tip()
    assert fit_store.history.log(limit=1)[0].message == "training clocked: steps 1-1"
    writer.propose(_proposals([7], [4.0], step=2))
    assert _wait_for(lambda: fit_store.tip() != first), "no second commit within 20 s"
    assert _wait_for(lambda: writer.stats().commits == 2)
    # close commits what is pending, then the clock stops
    writer.propose(_proposals([12], [3.0], step=3))
    closed = writer.close()
    assert closed == fit_store.tip() and fit_store.read(training_set.name).loss[12] == 3.0
    writer.propose(_proposals([0], [1.0], step=4))
    time.sleep(0.5)  # ten periods
    assert fit_store.tip() == closed
    assert fit_store.read(training_set.name).loss[0] == 5.0


def test_unknown_dataset_and_wrong_body_model(fit_store, standin_files, training_set):
    with pytest.raises(InputError, match=r"unknown dataset 'mpii'"):
        StoreWriter(str(fit_store.location.path), "mpii", standin_files.fingerprint, "r")
    with pytest.raises(
        InputError,
        match=r"holds fits of body model .* but the caller uses body "
        r"model 'not-this-model'",
    ):
        StoreWriter(str(fit_store.location.path), training_set.name, "not-this-model", "r")


def test_missing_store(tmp_path, standin_files):
    with pytest.raises(InputError, match=str(tmp_path / "nothing")):
        StoreWriter(str(tmp_path / "nothing"), "people", standin_files.fingerprint, "r")


@pytest.mark.slow  # starts Ray
def test_a_workers_fit_reaches_another_worker_after_the_writers_commit(
    fit_store, training_set, standin_files
):
    """Through the Ray actor, as in training: worker A proposes without waiting; worker B's
    pinned view does not change until the writer commits and B refreshes, then shows A's fit."""
    import ray

    from spinfits.training.best_fits import BestFits
    from spinfits.training.store_writer import start_store_writer

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        writer = start_store_writer(
            str(fit_store.location.path),
            training_set.name,
            standin_files.fingerprint,
            "visible",
            commit_every_s=0.3,
        )
        worker_a = BestFits(fit_store.reader(training_set.name))
        worker_b = BestFits(fit_store.reader(training_set.name))
        row = 0  # no fit in the store yet
        assert np.isinf(worker_b.read(np.array([row])).loss[0])
        found = _proposals([row], [0.5], step=7, value=3.0)
        reference = writer.propose.remote(found)  # returns at once: the worker does not wait
        worker_a.record(found)
        assert isinstance(reference, ray.ObjectRef)
        assert worker_a.read(np.array([row])).loss[0] == np.float32(0.5)  # A uses it at once
        assert np.isinf(worker_b.read(np.array([row])).loss[0])  # B: pinned, not yet
        assert _wait_for(worker_b.refresh, seconds=30), "the writer never committed"
        seen = worker_b.read(np.array([row]))
        assert seen.loss[0] == np.float32(0.5) and seen.pose[0, 0] == 3.0
        assert seen.source[0] == int(Source.IN_LOOP) and seen.step[0] == 7
        latest = FitStore.open(fit_store.location.path).history.log(limit=1)[0]
        assert latest.message == "training visible: steps 7-7"
        assert latest.metadata["source"] == "training" and latest.metadata["run"] == "visible"
        # A killed writer restarts by itself; later proposals land; nothing committed is lost.
        # ray.kill is asynchronous: wait for the new instance, or the next proposal may reach
        # the old one just before it dies (and be lost uncommitted, as documented).
        old_pid = ray.get(writer.__ray_call__.remote(lambda self: os.getpid()))
        ray.kill(writer, no_restart=False)
        assert _wait_for(lambda: _pid_of(writer) not in (None, old_pid), seconds=60), "no restart"
        ray.get(writer.propose.remote(_proposals([12], [0.25], step=8, value=4.0)), timeout=60)
        ray.get(writer.flush.remote(), timeout=60)
        after = FitStore.open(fit_store.location.path).read(training_set.name)
        assert after.loss[row] == np.float32(0.5) and after.loss[12] == np.float32(0.25)
        ray.get(writer.close.remote())
    finally:
        ray.shutdown()


def test_the_clock_keeps_the_period_after_any_commit(writer_for):
    """The clock commits ``commit_every_s`` after the last commit, whoever made it (a flush, or
    ``propose`` finding one due); before, it kept its own schedule and committed again soon
    after another commit (commits up to twice as often, some 0 s apart)."""
    every = 1.0
    writer = writer_for(commit_every_s=every)
    start = time.monotonic()

    def at(seconds):
        time.sleep(max(0.0, start + seconds - time.monotonic()))

    writer.propose(_proposals([1], [1e-6], step=1))
    at(1.3)  # the clock committed at about 1.0
    assert writer.stats().commits == 1
    writer.propose(_proposals([2], [1e-6], step=2))
    writer.flush()  # a commit at 1.3: the next is due at 2.3
    writer.propose(_proposals([3], [1e-6], step=3))
    at(2.1)
    assert writer.stats().commits == 2, "the clock committed 0.8 s after the flush"
    assert _wait_for(lambda: writer.stats().commits == 3, seconds=10)
    assert time.monotonic() - start >= 2.3 - 0.05
