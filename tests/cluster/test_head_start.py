"""Precompute's head start: the driver fits the front of the queue while Ray and the actors
start, then hands the rest to the actors; every row is fitted once, as the actors fit it."""

import os
import subprocess
import threading
import time
from functools import partial

import numpy as np
import pytest
import torch
from precompute_helpers import precompute_config

from spinfits.cluster import precompute
from spinfits.cluster.fitter_actor import FitterActor, ShardResult
from spinfits.cluster.head_start import HeadStart, ShardQueue
from spinfits.cluster.precompute import run_precompute
from spinfits.store import FitStore

config = partial(precompute_config, shard_size=16)


def _shards(*sizes: int, dataset: int = 0) -> list:
    start = np.cumsum((0, *sizes))
    return [(dataset, np.arange(a, b)) for a, b in zip(start[:-1], start[1:], strict=True)]


def test_queue_hands_out_pieces_from_the_front_and_the_rest_once():
    queue = ShardQueue([*_shards(10, 3), (1, np.arange(100, 104))])
    index, rows = queue.take_piece(4)
    assert index == 0 and rows.tolist() == [0, 1, 2, 3]
    assert queue.take_piece(8)[1].tolist() == [4, 5, 6, 7, 8, 9]  # the shard's rest, not the next one
    rest = queue.rest()
    assert [(i, r.tolist()) for i, r in rest] == [(0, [10, 11, 12]), (1, [100, 101, 102, 103])]
    assert queue.take_piece(4) is None and queue.rest() == []


class _CountingFitter:
    """Fits a piece by writing its rows' numbers as their loss; ``gate`` holds each piece until
    the test lets it go."""

    def __init__(self, gate: threading.Semaphore | None = None, fail_on: int | None = None) -> None:
        self.gate, self.fail_on = gate, fail_on
        self.threads = torch.get_num_threads()

    def fit_shard(self, rows, keypoints):
        if self.gate is not None:
            self.gate.acquire()
        if self.fail_on is not None and self.fail_on in rows:
            raise RuntimeError(f"row {self.fail_on} broke the fitter")
        count = len(rows)
        return ShardResult(
            rows=rows,
            pose=np.zeros((count, 72), np.float32),
            betas=np.zeros((count, 10), np.float32),
            cam_t=np.zeros((count, 3), np.float32),
            loss=rows.astype(np.float32),
            seconds=0.0,
            worker="test",
        )


def _call(shard):
    return shard[1], None


def test_head_start_fits_pieces_until_stopped_and_leaves_the_rest_to_the_actors():
    queue, gate, fitters = ShardQueue(_shards(16, 16)), threading.Semaphore(0), []

    def make():
        fitters.append(_CountingFitter(gate))
        return fitters[-1]

    threads = torch.get_num_threads()
    head = HeadStart(queue, make, _call, piece_rows=6).start()
    gate.release(2)  # two pieces fitted, the third taken and held
    deadline = time.time() + 10
    while head.rows < 12 and time.time() < deadline:
        time.sleep(0.01)
    pieces = head.done()
    head.stop()
    gate.release(10)
    pieces += head.finish(timeout=10)
    assert not head.running
    fitted = np.concatenate([result.rows for _, result in pieces])
    # three pieces in order: 6 rows, 6 rows, and the first shard's last 4 (a piece stays in a shard)
    assert [len(result.rows) for _, result in pieces] == [6, 6, 4]
    assert fitted.tolist() == list(range(16)) and head.rows == 16
    assert all(np.array_equal(result.loss, result.rows) for _, result in pieces)
    rest = queue.rest()  # what the actors get: every other row, once
    assert np.concatenate([rows for _, rows in rest]).tolist() == list(range(16, 32))
    assert fitters[0].threads == 1 and torch.get_num_threads() == threads  # one thread, then restored


def test_head_start_empties_a_small_queue_and_stops():
    queue = ShardQueue(_shards(5, 5))
    head = HeadStart(queue, _CountingFitter, _call, piece_rows=4).start()
    pieces = head.finish(timeout=10)
    assert [result.rows.tolist() for _, result in pieces] == [[0, 1, 2, 3], [4], [5, 6, 7, 8], [9]]
    assert queue.rest() == []


def test_an_error_in_the_head_start_comes_through_finish():
    head = HeadStart(ShardQueue(_shards(8)), lambda: _CountingFitter(fail_on=5), _call, piece_rows=4)
    head.start()
    with pytest.raises(RuntimeError, match="row 5 broke the fitter"):
        head.finish(timeout=10)
    with pytest.raises(ValueError, match="piece_rows must be >= 1, got 0"):
        HeadStart(ShardQueue([]), _CountingFitter, _call, piece_rows=0)


# ---------------------------------------------------------------------- in precompute, on Ray


def _slow_ray(monkeypatch, until: threading.Event) -> None:
    """``ray.init`` (precompute's ``_ray_with_room``) returns only once ``until`` is set (as a
    local cluster takes seconds to start)."""
    real = precompute._ray_with_room

    def slow(demand):
        assert until.wait(120), "the driver never fitted what the test waits for"
        return real(demand)

    monkeypatch.setattr(precompute, "_ray_with_room", slow)


def _counting_driver(monkeypatch, pieces: int | None, reached: threading.Event) -> None:
    """The head start's fitter sets ``reached`` once it has fitted ``pieces`` pieces (None: once
    the whole dataset, 95 fittable rows, is fitted)."""
    fitted = []

    class DriverFitter(FitterActor):
        def fit_shard(self, rows, *args, **kwargs):
            result = super().fit_shard(rows, *args, **kwargs)
            fitted.append(len(rows))
            if (pieces is not None and len(fitted) >= pieces) or sum(fitted) >= 95:
                reached.set()
            return result

    monkeypatch.setattr(precompute, "FitterActor", DriverFitter)


def test_the_driver_fits_while_ray_starts_and_the_actors_fit_the_rest(
    tmp_path, local_ray, small_dataset, standin_dir, monkeypatch
):
    """Ray is up once the driver has fitted two pieces: the driver fitted those (and at most
    the one it was fitting), the actors the rest, and the fits are those of the actors alone."""
    reference = run_precompute(config(small_dataset, tmp_path / "reference", standin_dir))
    reached, store = threading.Event(), tmp_path / "store"
    _counting_driver(monkeypatch, 2, reached)
    _slow_ray(monkeypatch, reached)
    summary = run_precompute(config(small_dataset, store, standin_dir, head_start=True))
    assert 2 * 16 <= summary.rows_head_start <= 3 * 16 < summary.rows_planned == reference.rows_planned
    assert summary.rows_fitted == summary.rows_planned and summary.rows_failed == 0
    assert f"the driver fitted {summary.rows_head_start} rows while Ray started" in summary.lines()[3]
    fits, expected = FitStore.open(store).read("people"), FitStore.open(tmp_path / "reference").read("people")
    assert np.array_equal(np.isfinite(fits.loss), np.isfinite(expected.loss))
    finite = np.isfinite(fits.loss)  # the same fits, whoever fitted them (pieces or whole shards)
    np.testing.assert_allclose(fits.loss[finite], expected.loss[finite], rtol=0.05, atol=0.05)
    assert np.median(np.abs(fits.pose[finite] - expected.pose[finite])) < 1e-3


def test_a_job_the_driver_finished_while_ray_started_starts_no_actor(
    tmp_path, local_ray, small_dataset, standin_dir, monkeypatch
):
    reached = threading.Event()
    _counting_driver(monkeypatch, None, reached)
    _slow_ray(monkeypatch, reached)
    started = []
    monkeypatch.setattr(precompute, "_start_fitters", lambda config: started.append(config) or [])
    summary = run_precompute(config(small_dataset, tmp_path / "store", standin_dir, head_start=True))
    assert summary.rows_head_start == summary.rows_fitted == summary.rows_planned == 95
    assert started == []
    losses = FitStore.open(tmp_path / "store").losses("people")
    assert np.isfinite(np.delete(losses, 5)).all() and np.isinf(losses[5])


def test_numpy_blas_in_the_head_start_survives_the_drivers_forks():
    """``ray.init`` forks processes from the driver's thread while the head start loads the model
    (numpy's OpenBLAS: eigvalsh in read_gmm). A threaded OpenBLAS call in flight at a fork waits
    for ever for the workers the fork shut down; the head start keeps BLAS on its own thread."""
    matrices = np.random.default_rng(0).normal(size=(8, 300, 300))
    matrices = matrices @ matrices.transpose(0, 2, 1)

    class BlasHeavy(_CountingFitter):
        def __init__(self) -> None:
            super().__init__()
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                np.linalg.eigvalsh(matrices)

    head = HeadStart(ShardQueue(_shards(4)), BlasHeavy, _call, piece_rows=4).start()
    deadline = time.monotonic() + 30
    while head.running and time.monotonic() < deadline:  # forks, as ray.init's process starts do
        subprocess.run(["true"], check=True, preexec_fn=os.getpid)  # preexec_fn: a real fork()
    head.stop()
    assert not head.running, "the head start hung in numpy's BLAS after a fork"
    assert [result.rows.tolist() for _, result in head.finish()] == [[0, 1, 2, 3]]
