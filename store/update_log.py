"""A dataset's update log: the rows recent commits changed, kept as records beside the columns.

A commit that changes a few scattered rows (SMPLify in the training loop improves tens of rows of
a 100k-row dataset) would rewrite every column chunk those rows fall in: megabytes per commit.
Instead it appends the changed rows to the dataset's update log, and readers apply the log over
the columns. The log has two levels, so that neither commits nor readers pay for its length:

- ``recent``: small chunks (64 records); each commit appends its rows here, in whole chunks (padded
  with empty records), so a commit writes about its rows' bytes and no chunk is rewritten.
- ``settled``: large chunks (4096 records); when ``recent`` is full, a commit *settles* it: the
  latest record of every row in ``recent`` (and of the commit's own rows) is appended here in
  large chunks and ``recent`` is emptied. A reader that loads everything reads few chunks.

When ``settled`` is full, a commit *folds* the log into the columns: it rewrites the column chunks
the logged rows fall in and empties both levels. ``spinfits.store.write_policy.WritePolicy``
decides which of the three a commit does.

Layout: ``<dataset>/updates_settled`` and ``<dataset>/updates_recent``, each ``(D, 369) uint8``;
record k is a packed little-endian ``RECORD``: ``row`` int64 (-1 = padding, ignored), then each
column of ``COLUMNS`` in order (pose 72 f4, betas 10 f4, cam_t 3 f4, loss f4, source i1, step i8,
time f8). Rows read as: columns, then ``settled`` in order, then ``recent`` in order (a row's last
record wins). Array attribute ``spinfits_updates``: ``{"generation": g}``, the times the level was
emptied; within a generation a level only grows, so a reader that applied its first L records
reads only the records after L.

Stores written before the log existed (format 1) have no log arrays: an empty log of generation
0; the first append creates them (and marks the store format 2).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import zarr

from spinfits.store.checksums import CHECKED_COMPRESSORS
from spinfits.store.damage import Damage, DamagedStoreError, read_checked, rows_text, where_in_store
from spinfits.store.fits import Fits
from spinfits.store.schema import COLUMNS

#: The log's levels in the order readers apply them.
LEVELS = ("settled", "recent")
UPDATES_ATTR = "spinfits_updates"

#: One log record: the dataset row, then every column's value for it (packed, little-endian).
RECORD = np.dtype(
    [("row", "<i8")] + [(c.name, c.dtype.newbyteorder("<"), (c.width,) if c.width else ()) for c in COLUMNS]
)
#: Bytes of one row in the columns (what a fold rewrites per row of a chunk).
ROW_BYTES = sum(c.dtype.itemsize * (c.width or 1) for c in COLUMNS)

_NO_ROWS = np.zeros(0, dtype=np.int64)
_NO_LIMIT = int(np.iinfo(np.int64).max)


def array_name(level: str) -> str:
    return f"updates_{level}"


@dataclass(frozen=True)
class LogState:
    """Where one level of a log stands: ``generation`` (times emptied), ``length`` (records,
    padding included) and ``chunk`` (records per chunk; 0 while the level does not exist)."""

    generation: int = 0
    length: int = 0
    chunk: int = 0

    @property
    def exists(self) -> bool:
        return self.chunk > 0

    def padded(self, records: int, chunk: int) -> int:
        """Records an append of ``records`` takes in this level (whole chunks of its size, or
        of ``chunk`` for a level not created yet)."""
        size = self.chunk or chunk
        return -(-records // size) * size


@dataclass(frozen=True)
class UpdateLog:
    """A dataset's log as of one snapshot: each level's state and the (L,) sorted distinct rows
    it holds (``rows`` is empty for a reader, which does not need them)."""

    states: dict[str, LogState]
    rows: dict[str, np.ndarray]

    @classmethod
    def empty(cls) -> UpdateLog:
        return cls({level: LogState() for level in LEVELS}, {level: _NO_ROWS for level in LEVELS})

    def with_level(self, level: str, state: LogState, rows: np.ndarray) -> UpdateLog:
        return UpdateLog({**self.states, level: state}, {**self.rows, level: rows})

    @property
    def all_rows(self) -> np.ndarray:
        """(R,) sorted distinct rows held by any level."""
        return np.union1d(self.rows["settled"], self.rows["recent"]).astype(np.int64)


def open_level(store: Any, dataset: str, level: str, mode: str = "r") -> zarr.Array | None:
    """The array of ``level`` of ``dataset``'s log in ``store`` (None if it has none yet)."""
    try:
        return zarr.open_array(store, path=f"{dataset}/{array_name(level)}", mode=mode, zarr_format=3)
    except FileNotFoundError as missing:  # zarr's ArrayNotFoundError
        # Its traceback and zarr's frames form a reference cycle that holds the callers' frames,
        # so a reader's whole copy of the fits would outlive the reader until the cyclic GC runs.
        traceback.clear_frames(missing.__traceback__)
        return None


def level_state(array: zarr.Array | None) -> LogState:
    """The state of a level (``open_level``), from its metadata only."""
    if array is None:
        return LogState()
    generation = int(dict(array.attrs.get(UPDATES_ATTR) or {}).get("generation", 0))
    return LogState(generation, int(array.shape[0]), int(array.chunks[0]))


def read_records(array: zarr.Array | None, start: int, stop: int) -> np.ndarray:
    """Records ``start:stop`` of a level (``open_level``): (K,) ``RECORD``."""
    if array is None or stop <= start:
        return np.zeros(0, dtype=RECORD)
    raw = np.ascontiguousarray(read_checked(array, start, stop, unit="records"), dtype=np.uint8)
    return raw.view(RECORD).reshape(stop - start)


def check_record_rows(array: zarr.Array, records: np.ndarray, n_rows: int) -> None:
    """``DamagedStoreError`` if ``records`` ((K,) ``RECORD`` of level ``array``) hold a row no
    writer writes: below -1 (the padding) or >= ``n_rows``."""
    rows = records["row"]
    bad = (rows < -1) | (rows >= n_rows)
    if bad.any():
        dataset, name = where_in_store(array)
        raise DamagedStoreError(
            [
                Damage(
                    dataset,
                    name,
                    rows_text(np.unique(rows[bad])),
                    f"log records name rows outside [0, {n_rows})",
                )
            ],
            refit_repairs=False,
        )


#: Records read at a time by ``record_blocks`` (24 MB): a level of a million-row dataset can hold
#: half a million records.
RECORD_BLOCK = 1 << 16


def record_blocks(
    array: zarr.Array | None, stop: int, n_rows: int, block: int = RECORD_BLOCK
) -> Iterator[np.ndarray]:
    """Records ``0:stop`` of a level (``open_level``) in order, ``block`` at a time: (K,) ``RECORD``
    each (K <= block, a whole number of the level's chunks when ``block`` is). Records naming a
    row outside ``[0, n_rows)`` are damage (``check_record_rows``)."""
    if array is None:
        return
    for start in range(0, stop, block):
        records = read_records(array, start, min(start + block, stop))
        check_record_rows(array, records, n_rows)
        yield records


def read_log(store: Any, dataset: str, fits: Fits | None = None) -> UpdateLog:
    """The whole log of ``dataset`` in ``store``; applied to ``fits`` (its columns) when given.
    Records are read ``RECORD_BLOCK`` at a time."""
    if fits is None:
        return _read_levels(store, dataset, logged_rows, _NO_LIMIT)
    return _read_levels(store, dataset, lambda records: apply_records(fits, records), len(fits))


def read_log_losses(store: Any, dataset: str, loss: np.ndarray) -> UpdateLog:
    """``read_log`` that applies only the loss column: ``loss`` ((N,) float32, the dataset's
    loss column) gets each logged row's latest loss, in place."""

    def apply_loss(records: np.ndarray) -> np.ndarray:
        distinct, latest = latest_records(records)
        loss[distinct] = records["loss"][latest]
        return distinct

    return _read_levels(store, dataset, apply_loss, len(loss))


def _read_levels(
    store: Any, dataset: str, apply: Callable[[np.ndarray], np.ndarray], n_rows: int
) -> UpdateLog:
    """Every level's records in readers' order, a block at a time, through ``apply`` ((K,)
    ``RECORD`` -> the (R,) rows they hold); the log with the rows each level holds. ``n_rows``:
    the dataset's rows (a record beyond is damage)."""
    log = UpdateLog.empty()
    for level in LEVELS:
        array = open_level(store, dataset, level)
        state = level_state(array)
        rows = [_NO_ROWS] + [apply(records) for records in record_blocks(array, state.length, n_rows)]
        log = log.with_level(level, state, np.unique(np.concatenate(rows)).astype(np.int64))
    return log


def apply_records(fits: Fits, records: np.ndarray) -> np.ndarray:
    """Write ``records`` ((K,) ``RECORD``) over ``fits`` in place, a row's last record winning;
    returns the (R,) sorted distinct rows written."""
    distinct, latest = latest_records(records)
    for column in COLUMNS:
        getattr(fits, column.name)[distinct] = records[column.name][latest]
    return distinct.astype(np.int64)


def latest_records(records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (R,) sorted distinct rows ``records`` ((K,) ``RECORD``) hold, padding left out, and the
    (R,) index of each row's last record."""
    rows = records["row"]
    keep = np.flatnonzero(rows >= 0)
    # the last record of each row: first occurrence in the reversed order
    distinct, first = np.unique(rows[keep][::-1], return_index=True)
    return distinct.astype(np.int64), keep[::-1][first]


def logged_rows(records: np.ndarray) -> np.ndarray:
    """(R,) sorted distinct rows the records ((K,) ``RECORD``) hold, padding left out."""
    rows = records["row"]
    return np.unique(rows[rows >= 0]).astype(np.int64)


def to_records(rows: np.ndarray, values: Fits, chunk: int) -> np.ndarray:
    """Records of ``rows`` ((M,) int64) with ``values`` (their M fits, aligned), padded with
    ``row = -1`` to a multiple of ``chunk``: (ceil(M / chunk) * chunk,) ``RECORD``."""
    padded = -(-len(rows) // chunk) * chunk
    records = np.zeros(padded, dtype=RECORD)
    records["row"] = -1
    records["row"][: len(rows)] = rows
    for column in COLUMNS:
        records[column.name][: len(rows)] = getattr(values, column.name)
    return records


def append_records(
    store: Any,
    dataset: str,
    level: str,
    rows: np.ndarray,
    values: Fits,
    state: LogState,
    chunk: int,
) -> LogState:
    """Append the records of ``rows`` ((M,) int64) with ``values`` (their M fits) to ``level`` of
    ``dataset``'s log in ``store`` (a writable session's), creating the level with ``chunk``
    records per chunk if it does not exist; returns its new state. Only whole new chunks are
    written."""
    if not state.exists:
        zarr.open_group(store, path=dataset, mode="r+").create_array(
            array_name(level),
            shape=(0, RECORD.itemsize),
            chunks=(chunk, RECORD.itemsize),
            dtype=np.uint8,
            fill_value=0,
            compressors=CHECKED_COMPRESSORS,
            attributes={UPDATES_ATTR: {"generation": state.generation}},
        )
        state = replace(state, length=0, chunk=chunk)
    records = to_records(rows, values, state.chunk)
    array = open_level(store, dataset, level, mode="r+")
    stop = state.length + len(records)
    array.resize((stop, RECORD.itemsize))
    array[state.length : stop] = records.view(np.uint8).reshape(len(records), RECORD.itemsize)
    return replace(state, length=stop)


def clear_level(store: Any, dataset: str, level: str, state: LogState) -> LogState:
    """Empty ``level`` of ``dataset``'s log in ``store`` and start its next generation (a level
    that does not exist yet stays so, in its generation: it has nothing a reader applied)."""
    if not state.exists or state.length == 0:
        return state
    generation = state.generation + 1
    array = open_level(store, dataset, level, mode="r+")
    array.resize((0, RECORD.itemsize))
    array.attrs[UPDATES_ATTR] = {"generation": generation}
    return LogState(generation, 0, state.chunk)
