"""``StoreWriter``: the one writer of a job's fits, the same for precompute and training.

A job (precompute's driver, or training's writer actor) hands it proposals and failed rows; it
merges them by the store's rule and commits every ``commit_every_s`` seconds (on ``propose``
when due, and on a background clock when ``clock=True``) or every ``commit_every_rows``
proposals, each commit attributed to the job::

    writer = StoreWriter(store, "coco", job="precompute coco", source="precompute",
                         commit_every_s=10.0)
    writer.propose(proposals)                  # merged now, committed when due
    writer.record_failures(rows, reasons)      # failed rows, committed with the next commit
    writer.close()                             # commits what is pending

Commit messages read ``<job>: steps a-b`` when the proposals carry training steps
(``by_steps=True``), else ``<job>: N rows proposed``; metadata carries ``source``, the job's
``metadata`` and the steps or rows. Thread-safe: every call holds one lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spinfits.errors import InputError
from spinfits.store.fit_store import FitStore
from spinfits.store.fits import Proposals

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriterStats:
    """What a writer did so far: proposals received, rows improved by merges (before commit),
    commits made, the last commit's snapshot id (None if none yet), the span of training steps
    proposed (None without steps) and rows recorded as failed."""

    proposals: int
    rows_improved: int
    commits: int
    last_commit: str | None
    steps: tuple[int, int] | None
    rows_failed: int = 0


class StoreWriter:
    """Merges a job's proposals into ``dataset`` of ``store`` and commits them when due.

    dataset: the dataset proposals are for, or several (a training run on a mix): ``propose``
    and ``record_failures`` then name theirs (default: the first).

    job: label that starts every commit message (e.g. ``"training run-1"``); source: the
    ``source`` metadata of its commits (``"precompute"``, ``"training"``); by_steps: describe
    commits by the training steps of their proposals; clock: also commit on a background thread
    every ``commit_every_s`` seconds (for a writer whose callers never wait for it).
    """

    def __init__(
        self,
        store: FitStore,
        dataset: str | Sequence[str],
        *,
        job: str,
        source: str,
        commit_every_s: float,
        commit_every_rows: int | None = None,
        by_steps: bool = False,
        who: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        clock: bool = False,
    ) -> None:
        self._datasets = (dataset,) if isinstance(dataset, str) else tuple(dataset)
        for name in self._datasets:
            store.dataset(name)  # unknown dataset: InputError now, not at the first merge
        self._store = store
        self._job, self._source, self._by_steps = job, source, by_steps
        self._who, self._metadata = who, dict(metadata or {})
        self._every_s, self._every_rows = commit_every_s, commit_every_rows
        self._lock = threading.RLock()
        self._proposals = self._improved = self._commits = self._failed = 0
        self._since_commit = 0
        self._last_commit: str | None = None
        self._last_time = time.monotonic()
        self._pending_steps: tuple[int, int] | None = None
        self._all_steps: tuple[int, int] | None = None
        self._closed = False
        self._stop = threading.Event()
        self._clock = None
        if clock:
            self._clock = threading.Thread(target=self._commit_periodically, daemon=True)
            self._clock.start()

    @property
    def store(self) -> FitStore:
        return self._store

    def propose(self, proposals: Proposals, dataset: str | None = None) -> int:
        """Merge ``proposals`` for ``dataset`` (default: the writer's first) by the store's rule
        (commit if one is due); returns rows improved."""
        with self._lock:
            improved = self._store.merge(self._named(dataset), proposals)
            self._proposals += len(proposals)
            self._since_commit += len(proposals)
            self._improved += improved
            if self._by_steps and len(proposals):
                span = (int(proposals.step.min()), int(proposals.step.max()))
                self._pending_steps = _span(self._pending_steps, span)
                self._all_steps = _span(self._all_steps, span)
            if self._due():
                self._commit()
            return improved

    def record_failures(self, rows: Any, reasons: Sequence[str], dataset: str | None = None) -> int:
        """Record rows of ``dataset`` (default: the writer's first) that could not be fitted
        (committed with the next commit)."""
        with self._lock:
            marked = self._store.record_failures(self._named(dataset), rows, reasons)
            self._failed += len(reasons)
            return marked

    def flush(self, note: str | None = None) -> str:
        """Commit what is pending now (``note`` is added to the message and the metadata);
        returns the branch tip's snapshot id."""
        with self._lock:
            self._commit(note)
            return self._store.tip()

    def stats(self) -> WriterStats:
        with self._lock:
            return WriterStats(
                self._proposals,
                self._improved,
                self._commits,
                self._last_commit,
                self._all_steps,
                self._failed,
            )

    def close(self, note: str | None = None) -> str:
        """Stop the clock and commit what is pending; returns the tip snapshot id. Later
        proposals are merged but no longer committed."""
        self._stop.set()
        with self._lock:
            tip = self.flush(note)
            self._closed = True
            return tip

    # ---------------------------------------------------------------------------- internals
    def _named(self, dataset: str | None) -> str:
        if dataset is None:
            return self._datasets[0]
        if dataset not in self._datasets:
            raise InputError(
                f"this writer writes datasets {list(self._datasets)}, not {dataset!r}; "
                "name one of them, or start a writer for that dataset"
            )
        return dataset

    def _due(self) -> bool:
        if self._closed or not self._store.has_pending:
            return False
        if self._every_rows is not None and self._since_commit >= self._every_rows:
            return True
        return time.monotonic() - self._last_time >= self._every_s

    def _commit_periodically(self) -> None:
        """Commit when one is due: ``commit_every_s`` after the last commit, whoever made it
        (``propose`` commits too when it finds one due; two independent schedules would commit
        up to twice as often)."""
        delay = self._every_s
        while not self._stop.wait(max(delay, 0.01)):
            try:
                with self._lock:
                    if self._due():
                        self._commit()
                    remaining = self._last_time + self._every_s - time.monotonic()
                delay = remaining if remaining > 0 else self._every_s
            except Exception:  # keep the clock alive; the next tick retries
                log.exception("%s: store commit failed; retrying at the next tick", self._job)
                delay = self._every_s

    def _commit(self, note: str | None = None) -> None:
        if not self._store.has_pending:
            return
        metadata = {"source": self._source, **self._metadata}
        if self._by_steps:
            low, high = self._pending_steps or (0, 0)
            detail = f"steps {low}-{high}"
            metadata["steps"] = [low, high]
        else:
            detail = f"{self._proposals} rows proposed"
            metadata["rows_proposed"] = self._proposals
        if note:
            detail += f", {note}"
            metadata["note"] = note
        version = self._store.commit(f"{self._job}: {detail}", who=self._who, metadata=metadata)
        self._pending_steps = None
        self._since_commit = 0
        self._last_time = time.monotonic()
        if version is not None:
            self._commits += 1
            self._last_commit = version.snapshot_id
            log.info("%s committed %s (%s)", self._job, version.snapshot_id, detail)


def _span(a: tuple[int, int] | None, b: tuple[int, int]) -> tuple[int, int]:
    return b if a is None else (min(a[0], b[0]), max(a[1], b[1]))
