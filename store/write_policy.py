"""``WritePolicy``: how a commit writes the rows it changed in a dataset.

Three ways (see ``spinfits.store.update_log``):

- ``"recent"``: append the changed rows to the log's ``recent`` level (bytes written grow with the
  rows changed: right for scattered in-loop updates);
- ``"settle"``: when ``recent`` would pass ``recent_records``, append the latest record of every
  row in ``recent`` and of the changed rows to the ``settled`` level, in large chunks, and empty
  ``recent`` (keeps the chunks a reader reads few);
- ``"fold"``: rewrite every column chunk that the changed and logged rows fall in and empty the
  log, when ``settled`` would pass ``max(min_log_records, max_log_fraction * N)`` records, or
  when that costs at most ``fold_cost_ratio`` times the append (bytes of the column chunks
  rewritten against bytes of the records appended: bulk writes over whole chunks).

Figures of the defaults (``bench/store_growth.py``, docs/store.md "Store size"): a commit of 64
scattered rows into a 100k-row dataset writes 22 kB, 0.95x the rows' bytes (rewriting the touched
16384-row column chunks wrote 31 MB); over a whole cycle of appends, settles (every 64 commits,
1.3 MB) and the fold that empties the log (every ~845 commits, 32 MB), 78 kB per commit (3.4x).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spinfits.errors import InputError
from spinfits.store.update_log import RECORD, ROW_BYTES, UpdateLog


@dataclass(frozen=True)
class WritePolicy:
    """When a commit appends a dataset's changed rows to its update log, settles it, or folds it.

    Fields:
        log_chunk: records per chunk of the log's ``recent`` level. Each commit appends whole
            chunks (its records padded with empty ones), so a commit of M rows writes
            ceil(M / log_chunk) chunks of log_chunk x 369 bytes; 64 = one in-loop batch.
        recent_records: most records ``recent`` holds; the commit that would pass it settles.
            Bounds the small chunks a reader reads (zarr reads ~1000 small chunks a second).
        settled_chunk: records per chunk of the log's ``settled`` level (1.5 MB at 4096).
        max_log_fraction: ``settled`` holds at most this fraction of the dataset's rows (or
            ``min_log_records``, if more); the commit that would pass it folds. Bounds what a
            reader applies over the columns and what the log adds to the store.
        min_log_records: ``settled`` may always grow to this many records (small datasets).
        fold_cost_ratio: fold at once when rewriting the touched column chunks costs at most this
            many times the bytes of appending (bulk writes over whole chunks).
    """

    log_chunk: int = 64
    recent_records: int = 4096
    settled_chunk: int = 4096
    max_log_fraction: float = 0.5
    min_log_records: int = 4096
    fold_cost_ratio: float = 2.0

    def __post_init__(self) -> None:
        for name in ("log_chunk", "recent_records", "settled_chunk", "min_log_records"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InputError(f"WritePolicy.{name} must be a positive integer, got {value!r}")
        for name in ("max_log_fraction", "fold_cost_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise InputError(f"WritePolicy.{name} must be a number >= 0, got {value!r}")

    def max_log_records(self, n_rows: int) -> int:
        """Most records the ``settled`` level of an ``n_rows``-row dataset may hold."""
        return max(self.min_log_records, int(self.max_log_fraction * n_rows))

    def plan(self, n_rows: int, chunk_rows: int, log: UpdateLog, changed: np.ndarray) -> str:
        """``"recent"``, ``"settle"`` or ``"fold"``: how a commit writes rows ``changed`` ((M,)
        int64, sorted distinct) of a dataset of ``n_rows`` rows in ``chunk_rows``-row chunks
        whose update log is ``log``."""
        recent, settled = log.states["recent"], log.states["settled"]
        appended = recent.padded(len(changed), self.log_chunk)
        touched = np.zeros(-(-n_rows // chunk_rows), dtype=bool)  # column chunks a fold rewrites
        for rows in (log.rows["settled"], log.rows["recent"], changed):
            touched[rows // chunk_rows] = True
        fold_bytes = int(touched.sum()) * min(chunk_rows, n_rows) * ROW_BYTES
        if fold_bytes <= self.fold_cost_ratio * appended * RECORD.itemsize:
            return "fold"
        if recent.length + appended <= self.recent_records:
            return "recent"
        moving = np.union1d(log.rows["recent"], changed).size
        if settled.length + settled.padded(moving, self.settled_chunk) <= self.max_log_records(n_rows):
            return "settle"
        return "fold"
