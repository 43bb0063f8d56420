"""A writer's working copy of one dataset: what ``FitStore.merge`` compares proposals with and
what ``commit`` writes, without holding every row.

It holds the loss of every row ((N,) float32: 4 MB per million rows), the dataset's update log as
of its snapshot (the rows each level holds) and the whole fits of the rows merged into since that
snapshot (the overlay). Anything else is read from the snapshot when it is needed:

- a merge compares losses only, except where a proposed loss ties the stored one: the merge rule
  then compares content, and those rows are read (rare);
- a commit that appends to the update log writes the overlay's rows; one that settles also moves
  the rows of ``recent``, read from that level;
- a commit that folds the log rewrites the column chunks the logged and changed rows fall in,
  chunk by chunk: each chunk read from the snapshot, the log's latest records and the overlay
  applied over it. The log's latest values are read for that (at most
  ``WritePolicy.max_log_records``, half the rows by default: a transient of 361 B per logged row).

Before this, a writer held all N rows from its first merge (361 B a row: 361 MB at a million rows,
``bench/million_rows.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np

from spinfits.store.damage import read_all_checked, read_rows_checked, rows_text
from spinfits.store.fits import Fits, Proposals
from spinfits.store.layout import load_losses, open_columns
from spinfits.store.merge_rule import MergeOutcome, replaces
from spinfits.store.schema import COLUMNS, DatasetInfo
from spinfits.store.update_log import (
    LEVELS,
    UpdateLog,
    latest_records,
    open_level,
    record_blocks,
)

log = logging.getLogger(__name__)

_NO_ROWS = np.zeros(0, dtype=np.int64)


class WorkingCopy:
    """Dataset ``info`` as of the snapshot whose (read-only) zarr store is ``store``, plus the
    merges since (see module doc). ``loss``: (N,) float32, every row's current loss (+inf: no
    fit)."""

    def __init__(self, store: Any, info: DatasetInfo) -> None:
        self.info = info
        self._store = store
        self.loss, self.log = load_losses(store, info.name)
        # A loss no writer stores (NaN, negative: damage) would lock its row against every
        # honest fit: the merge treats it as no fit (``spinfits store verify`` reports the row).
        poisoned = np.isnan(self.loss) | (self.loss < 0)
        if poisoned.any():
            log.warning(
                "dataset %s: %d rows hold a loss no fit has (NaN or negative: damaged?); any fit "
                "replaces them: %s",
                info.name,
                int(poisoned.sum()),
                rows_text(np.flatnonzero(poisoned)),
            )
            self.loss[poisoned] = np.inf
        # the overlay: parts merged in order (a later part's row wins), consolidated when read
        self._parts: list[tuple[np.ndarray, Fits]] = []

    @property
    def n_rows(self) -> int:
        return self.info.n_rows

    # ---------------------------------------------------------------------------- overlay
    def _overlay(self) -> tuple[np.ndarray, Fits]:
        """(C,) sorted rows changed since the snapshot and their (C,) current fits."""
        if not self._parts:
            return _NO_ROWS, Fits.empty(0)
        if len(self._parts) > 1:
            rows = np.concatenate([part_rows for part_rows, _ in self._parts])
            values = Fits(
                **{
                    c.name: np.concatenate([getattr(part, c.name) for _, part in self._parts])
                    for c in COLUMNS
                }
            )
            # each row's last part: first occurrence in the reversed order
            distinct, first = np.unique(rows[::-1], return_index=True)
            self._parts = [(distinct.astype(np.int64), values.take(len(rows) - 1 - first))]
        return self._parts[0]

    @property
    def changed_rows(self) -> np.ndarray:
        """(C,) sorted rows merged into since the snapshot."""
        return self._overlay()[0]

    # ----------------------------------------------------------------------------- merging
    def merge(self, best: Proposals) -> MergeOutcome:
        """Apply ``best`` (``merge_rule.best_per_row``'s output: one proposal per row) by the merge
        rule; returns the rows that changed and their losses before."""
        rows = best.rows
        stored = self.loss[rows]
        current = Fits.empty(len(rows))  # the rule reads the stored loss, and content on ties only
        current.loss[:] = stored
        tied = np.flatnonzero(best.loss == np.where(np.isnan(stored), np.inf, stored))
        if tied.size:
            order = np.argsort(rows[tied])
            values = self.values(rows[tied][order])
            for name, column in current.columns().items():
                column[tied[order]] = getattr(values, name)
        changed = np.flatnonzero(replaces(current, best, accept_unscored=True))
        target = rows[changed]
        before = stored[changed].copy()
        self.loss[target] = best.loss[changed]
        self._parts.append((target.astype(np.int64), best.fits.take(changed)))
        return MergeOutcome(rows=target, loss_before=before)

    # ----------------------------------------------------------------------------- reading
    def values(self, rows: np.ndarray) -> Fits:
        """The current fits of ``rows`` ((M,) sorted distinct): the overlay's, else the
        snapshot's (the last log level holding the row, else the columns)."""
        values = Fits.empty(len(rows))
        overlay_rows, overlay = self._overlay()
        position = np.searchsorted(overlay_rows, rows)
        merged = position < len(overlay_rows)
        merged[merged] = overlay_rows[position[merged]] == rows[merged]
        _put(values, np.flatnonzero(merged), overlay.take(position[merged]))
        remaining = ~merged
        for level in reversed(LEVELS):  # a row's latest value is in the last level holding it
            held = remaining & np.isin(rows, self.log.rows[level])
            if held.any():
                _apply_latest(values, rows, held, self._records(level))
                remaining &= ~held
        if remaining.any():
            index = rows[remaining]
            for name, array in open_columns(self._store, self.info.name).items():
                getattr(values, name)[remaining] = read_rows_checked(array, index)
        return values

    def blocks(self, rows: np.ndarray) -> Iterator[tuple[int, Fits]]:
        """(first row, current fits of the chunk) for every ``chunk_rows`` chunk holding any of
        ``rows`` ((M,) int64), in order: what a fold writes."""
        chunk_rows, n_rows = self.info.chunk_rows, self.n_rows
        logged = self.log.all_rows
        logged_values = Fits.empty(len(logged))
        for level in LEVELS:  # in the order readers apply them: the last record wins
            _apply_latest(logged_values, logged, np.ones(len(logged), dtype=bool), self._records(level))
        overlay_rows, overlay = self._overlay()
        columns = open_columns(self._store, self.info.name)
        for chunk in np.unique(rows // chunk_rows):
            start, stop = int(chunk) * chunk_rows, min((int(chunk) + 1) * chunk_rows, n_rows)
            block = Fits.from_columns(read_all_checked(columns, start, stop))
            for source_rows, source in ((logged, logged_values), (overlay_rows, overlay)):
                first, last = np.searchsorted(source_rows, [start, stop])
                _put(block, source_rows[first:last] - start, source.take(np.arange(first, last)))
            yield start, block

    def _records(self, level: str) -> Iterator[np.ndarray]:
        array = open_level(self._store, self.info.name, level)
        return record_blocks(array, self.log.states[level].length, self.n_rows)

    # ----------------------------------------------------------------------------- commit
    def committed(self, store: Any, log: UpdateLog) -> None:
        """The overlay was written: this copy now stands for the snapshot whose store is
        ``store``, with update log ``log``."""
        self._store, self.log, self._parts = store, log, []


def _put(target: Fits, positions: np.ndarray, values: Fits) -> None:
    for name, column in target.columns().items():
        column[positions] = getattr(values, name)


def _apply_latest(values: Fits, rows: np.ndarray, wanted: np.ndarray, blocks: Iterator[np.ndarray]) -> None:
    """Write over ``values`` (aligned with ``rows``, (M,) sorted distinct) the latest record of
    each row of ``rows[wanted]`` found in ``blocks`` (records in the order written)."""
    wanted_rows = rows[wanted]
    for records in blocks:
        distinct, latest = latest_records(records)
        hit = np.isin(distinct, wanted_rows, assume_unique=True)
        if hit.any():
            picked = records[latest[hit]]
            _put(
                values,
                np.searchsorted(rows, distinct[hit]),
                Fits.from_columns({c.name: picked[c.name] for c in COLUMNS}),
            )
