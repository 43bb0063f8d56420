"""The store writer of a training run: one Ray actor merges every worker's proposals and commits.

Training workers send ``propose(proposals)`` without waiting for it (fire and forget): merging
is in memory and commits happen on the writer's own clock (every ``commit_every_s`` seconds, on
a background thread), so a worker never waits on storage. Each commit is attributed to the run
(message ``training <run>: steps a-b``, metadata ``source: training``, ``run``, ``steps``).

If the writer is killed, Ray restarts it (``max_restarts=-1``) and replays the calls that had not
run; proposals it had merged but not committed are lost, which costs only improvements, never
correctness: the store only ever holds committed fits, each better than the one it replaced.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import ray

from spinfits.store import FitStore, Proposals, S3Options

logger = logging.getLogger(__name__)

#: The writer actor of run R is named ``spinfits-store-writer-R``.
WRITER_NAME_PREFIX = "spinfits-store-writer-"


@dataclass(frozen=True)
class WriterStats:
    """What the writer did so far: proposals received, rows improved by merges (before
    commit), commits made, the last commit's snapshot id (None if none yet)."""

    proposals: int
    rows_improved: int
    commits: int
    last_commit: str | None
    steps: tuple[int, int] | None


class StoreWriter:
    """Merges proposals into ``dataset`` of the store at ``store`` and commits periodically.

    body_model: fingerprint the store must hold fits of (InputError otherwise).
    """

    def __init__(self, store: str, dataset: str, body_model: str, run: str,
                 commit_every_s: float = 5.0, s3: S3Options | None = None) -> None:
        self._store = FitStore.open(store, body_model=body_model, s3=s3)
        self._store.dataset(dataset)  # unknown dataset: InputError now, not at the first merge
        self._dataset, self._run = dataset, run
        self._commit_every_s = commit_every_s
        self._lock = threading.Lock()
        self._proposals = self._improved = self._commits = 0
        self._last_commit: str | None = None
        self._pending_steps: tuple[int, int] | None = None
        self._all_steps: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._clock = threading.Thread(target=self._commit_periodically, daemon=True)
        self._clock.start()

    def propose(self, proposals: Proposals) -> int:
        """Merge ``proposals`` by the store's rule; returns rows improved (callers need not wait)."""
        with self._lock:
            improved = self._store.merge(self._dataset, proposals)
            self._proposals += len(proposals)
            self._improved += improved
            if len(proposals):
                low, high = int(proposals.step.min()), int(proposals.step.max())
                self._pending_steps = _span(self._pending_steps, (low, high))
                self._all_steps = _span(self._all_steps, (low, high))
            return improved

    def flush(self) -> str:
        """Commit what is pending now; returns the branch tip's snapshot id."""
        with self._lock:
            self._commit()
            return self._store.tip()

    def stats(self) -> WriterStats:
        with self._lock:
            return WriterStats(self._proposals, self._improved, self._commits, self._last_commit,
                               self._all_steps)

    def close(self) -> str:
        """Stop the commit clock and commit what is pending; returns the tip snapshot id."""
        self._stop.set()
        return self.flush()

    def _commit_periodically(self) -> None:
        while not self._stop.wait(self._commit_every_s):
            try:
                with self._lock:
                    self._commit()
            except Exception:  # noqa: BLE001 - keep the clock alive; the next tick retries
                logger.exception("training store writer: commit failed; retrying at the next tick")

    def _commit(self) -> None:
        if not self._store.has_pending:
            return
        low, high = self._pending_steps or (0, 0)
        version = self._store.commit(
            f"training {self._run}: steps {low}-{high}",
            metadata={"source": "training", "run": self._run, "steps": [low, high]})
        self._pending_steps = None
        if version is not None:
            self._commits += 1
            self._last_commit = version.snapshot_id
            logger.info("training %s committed %s (steps %d-%d)", self._run, version.snapshot_id,
                        low, high)


def _span(a: tuple[int, int] | None, b: tuple[int, int]) -> tuple[int, int]:
    return b if a is None else (min(a[0], b[0]), max(a[1], b[1]))


def start_store_writer(store: str, dataset: str, body_model: str, run: str,
                       commit_every_s: float, s3: S3Options | None = None) -> ray.actor.ActorHandle:
    """Start (or find, when resuming) the run's named writer actor; restarts when killed."""
    actor = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)(StoreWriter)
    return actor.options(name=WRITER_NAME_PREFIX + run, get_if_exists=True).remote(
        store, dataset, body_model, run, commit_every_s, s3)


def store_writer(run: str) -> ray.actor.ActorHandle:
    """The writer of ``run`` (from a training worker)."""
    return ray.get_actor(WRITER_NAME_PREFIX + run)
