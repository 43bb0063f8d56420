"""The driver fits the first rows itself while Ray starts: precompute's head start.

A local Ray cluster takes seconds to start on a small machine (``ray.init``: 4.4 s on 2 cores,
most of it waiting for Ray's processes). The driver has imported torch already, so while
``ray.init`` runs it fits the front of the job's queue of shards itself, on one torch thread, in
pieces of ``piece_rows`` rows, with the actors' own code (``FitterActor``: same fits, same
failure records). Once Ray is up it finishes its current piece and stops, and the actors take
the rest of the queue: kept running while the actors start (each imports torch and loads the
model: CPU-bound), it slowed their start by more than it fitted (bench/RESULTS.md). Its fits
are merged by the driver like any shard's.

Only for jobs fitting on the CPU (the driver's node lends one core for the first seconds); a job
on GPUs starts its actors at once (``PrecomputeConfig.head_start``).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from spinfits.cluster.fitter_actor import FitterActor, ShardResult

logger = logging.getLogger(__name__)

#: Rows the head start fits at a time: its last piece is the most the driver still fits once
#: Ray is up (under a second on one core; pieces of 32 fit at 0.85x the speed of 256).
HEAD_START_PIECE_ROWS = 32

#: A shard of the job's queue: (dataset index in the job, (S,) dataset rows).
Shard = tuple[int, np.ndarray]


class ShardQueue:
    """The job's shards not handed out yet, taken from the front: in pieces by the head start
    (``take_piece``), then whatever is left by the actors (``rest``). Thread-safe."""

    def __init__(self, shards: Sequence[Shard]) -> None:
        self._shards: deque[Shard] = deque(shards)
        self._lock = threading.Lock()

    def take_piece(self, rows: int) -> Shard | None:
        """The first ``rows`` rows of the first shard (the shard itself when it is no longer),
        or None when the queue is empty."""
        with self._lock:
            if not self._shards:
                return None
            index, shard_rows = self._shards.popleft()
            if len(shard_rows) > rows:
                self._shards.appendleft((index, shard_rows[rows:]))
                shard_rows = shard_rows[:rows]
            return index, shard_rows

    def rest(self) -> list[Shard]:
        """Every shard left, in order; the queue is then empty (the head start takes no more)."""
        with self._lock:
            shards = list(self._shards)
            self._shards.clear()
            return shards


class HeadStart:
    """A thread that fits pieces of ``shards`` with the fitter ``make_fitter()`` returns (built in
    the thread: the body model loads while Ray starts) until ``stop`` or until the queue is empty.

    ``call(shard)`` -> the positional arguments of ``FitterActor.fit_shard`` for a shard (its rows,
    their keypoints, the fits to refine). ``done()`` returns the pieces fitted since the last call,
    as (dataset index, ``ShardResult``); ``finish()`` waits for the thread to end and returns the
    last ones, raising what the thread raised. Torch runs on ``threads`` threads meanwhile; the
    process's setting comes back when the thread ends.
    """

    def __init__(
        self,
        shards: ShardQueue,
        make_fitter: Callable[[], FitterActor],
        call: Callable[[Shard], tuple[Any, ...]],
        piece_rows: int = HEAD_START_PIECE_ROWS,
        threads: int = 1,
    ) -> None:
        if piece_rows < 1:
            raise ValueError(f"piece_rows must be >= 1, got {piece_rows}")
        self._shards = shards
        self._make_fitter = make_fitter
        self._call = call
        self._piece_rows = piece_rows
        self._threads = threads
        self._stop = threading.Event()
        self._done: queue.SimpleQueue[tuple[int, ShardResult]] = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="spinfits-head-start", daemon=True)
        self.rows = 0  #: rows fitted so far (read by the driver's thread: an int, set atomically)

    def start(self) -> HeadStart:
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Take no further piece (the one being fitted is finished)."""
        self._stop.set()

    def done(self) -> list[tuple[int, ShardResult]]:
        """The pieces fitted since the last call (dataset index, result), without waiting."""
        pieces = []
        while True:
            try:
                pieces.append(self._done.get_nowait())
            except queue.Empty:
                return pieces

    def finish(self, timeout: float | None = None) -> list[tuple[int, ShardResult]]:
        """Wait for the thread (it ends once the queue is empty or after ``stop``) and return the
        pieces not yet returned by ``done``; the thread's error, if it raised one, comes
        through here."""
        self._thread.join(timeout)
        if self._error is not None:
            raise self._error
        return self.done()

    def _run(self) -> None:
        threads = torch.get_num_threads()
        # numpy's OpenBLAS on the calling thread only: its worker threads are shut down by the
        # fork of every process ``ray.init`` starts meanwhile in the driver's thread, and a
        # threaded call in flight then waits for them for ever (seen in read_gmm's eigvalsh)
        blas = threadpool_limits(limits=1, user_api="blas")
        try:
            torch.set_num_threads(self._threads)
            fitter = self._make_fitter()
            while not self._stop.is_set():
                piece = self._shards.take_piece(self._piece_rows)
                if piece is None:
                    break
                result = fitter.fit_shard(*self._call(piece))
                self.rows += len(result.rows)
                self._done.put((piece[0], result))
        except BaseException as error:  # raised again by finish(), in the driver's thread
            self._error = error
        finally:
            torch.set_num_threads(threads)
            blas.restore_original_limits()
