"""Check one dataset of a snapshot for damage, a block at a time: what ``store verify``,
``precompute`` and ``train`` do before they trust a store, and what ``precompute
--refit-corrupt`` repairs.

Damage (``spinfits.store.damage``) comes in two kinds, and ``check_dataset`` tells which rows
each makes corrupt:

- a column chunk that cannot be read (checksum, decompression, missing object): every row of
  that chunk is corrupt (a row is one fit: with one of its values unknown, none is trusted);
- an implausible row: the value readers see (the columns, or the row's latest update-log record)
  breaks the rules every stored fit passes;
- damage that names no row a refit can repair: an update-log chunk (the rows its records update
  cannot be told), the failure record, the group's metadata. Only a rollback repairs these.

Memory does not grow with the dataset: the columns are read ``CHECK_BLOCK`` rows at a time
(16,384 rows: 6 MB), the update log ``CHECK_BLOCK`` records at a time, newest first (a row's
first record met is the one readers apply), keeping the rows it has met (8 B per logged row, at
most ``WritePolicy.max_log_records``). Before this, the check loaded the whole dataset at once
(361 B a row: 361 MB at a million rows).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zarr

from spinfits.store.damage import (
    READ_ERRORS,
    Damage,
    DamagedStoreError,
    chunk_damage,
    damaged_spans,
    icechunk_reason,
    implausible_rows,
    rows_text,
    span_damage,
)
from spinfits.store.fits import Fits
from spinfits.store.schema import COLUMNS, DatasetInfo
from spinfits.store.update_log import (
    LEVELS,
    array_name,
    check_record_rows,
    latest_records,
    level_state,
    open_level,
    read_records,
)

#: Rows (or update-log records) read at a time, rounded to whole chunks (one chunk of the default
#: 16,384 rows: 6 MB). A 65,536-row block peaked at +204 MB at a million rows, this one at about
#: a third of it (``bench/million_rows.py``, planning; ``bench/RESULTS.md``).
CHECK_BLOCK = 1 << 14

_LOG_ARRAYS = {array_name(level) for level in LEVELS}
_NO_ROWS = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class DatasetCheck:
    """What ``check_dataset`` found in one dataset: ``damage`` (every damaged place),
    ``corrupt`` ((C,) sorted int64 rows whose fit readers cannot trust: implausible rows, and the
    rows of a column chunk that cannot be read, but those the update log holds: readers see
    their log record, checked on its own), ``unrepairable`` (the damage among ``damage`` that
    names no rows a refit could repair: update-log records, the failure record, metadata) and
    ``logged`` ((L,) sorted rows the update log holds; empty when it cannot be read)."""

    damage: tuple[Damage, ...]
    corrupt: np.ndarray
    unrepairable: tuple[Damage, ...]
    logged: np.ndarray = field(default_factory=lambda: _NO_ROWS)

    @property
    def whole(self) -> bool:
        return not self.damage


def check_dataset(store: Any, info: DatasetInfo) -> DatasetCheck:
    """Read every chunk of dataset ``info.name`` in ``store`` (a session's or snapshot's zarr
    store) and check the rows readers see (module doc)."""
    name = info.name
    try:
        arrays = dict(zarr.open_group(store, path=name, mode="r").arrays())
    except READ_ERRORS as error:
        damage = Damage(name, "-", "all rows", f"group metadata cannot be read ({icechunk_reason(error)})")
        return DatasetCheck((damage,), _NO_ROWS, (damage,))
    unrepairable: list[Damage] = []
    for key, array in sorted(arrays.items()):
        if key not in _COLUMN_NAMES:
            unrepairable += chunk_damage(array, unit="records" if key in _LOG_ARRAYS else "rows")
    missing = [c.name for c in COLUMNS if c.name not in arrays]
    unrepairable += [Damage(name, column, "all rows", "array metadata is missing") for column in missing]
    if missing:
        return DatasetCheck(tuple(unrepairable), _NO_ROWS, tuple(unrepairable))
    log_whole = not any(d.array in _LOG_ARRAYS for d in unrepairable)
    reasons: dict[str, list[np.ndarray]] = {}
    logged = _NO_ROWS
    if log_whole:
        try:
            logged = _check_log(store, name, info.n_rows, reasons)
        except DamagedStoreError as error:  # records naming rows the dataset lacks
            unrepairable += error.damage
            log_whole = False
    column_damage: list[Damage] = []
    broken: list[np.ndarray] = []
    columns = {column: arrays[column] for column in _COLUMN_NAMES}
    for start, values in _column_blocks(columns, info, column_damage, broken):
        if not log_whole:  # which rows the log overrides cannot be told: the columns are not what readers see
            continue
        rows = np.arange(start, start + len(values))
        shown = ~np.isin(rows, logged, assume_unique=True)  # a logged row was checked from its record
        _collect(reasons, implausible_rows(values.take(shown)), rows[shown])
    implausible = {reason: np.unique(np.concatenate(found)) for reason, found in reasons.items()}
    row_damage = [
        Damage(name, "rows", rows_text(rows), f"implausible row ({reason})")
        for reason, rows in implausible.items()
    ]
    unread = np.setdiff1d(np.concatenate([_NO_ROWS, *broken]), logged)
    corrupt = np.unique(np.concatenate([unread, *implausible.values()])).astype(np.int64)
    damage = tuple(sorted(column_damage, key=lambda d: d.array)) + tuple(unrepairable) + tuple(row_damage)
    return DatasetCheck(damage, corrupt, tuple(unrepairable), logged)


_COLUMN_NAMES = tuple(c.name for c in COLUMNS)


def _collect(reasons: dict[str, list[np.ndarray]], found: dict[str, np.ndarray], rows: np.ndarray) -> None:
    """Add to ``reasons`` the rows of ``rows`` ((M,)) that each mask of ``found`` marks."""
    for reason, mask in found.items():
        reasons.setdefault(reason, []).append(rows[mask])


def _column_blocks(
    columns: dict[str, zarr.Array], info: DatasetInfo, damage: list[Damage], broken: list[np.ndarray]
) -> Iterator[tuple[int, Fits]]:
    """(first row, the rows' fits) of every readable block of the columns, ``CHECK_BLOCK`` rows
    (whole chunks) at a time; a block that does not read is read again chunk by chunk, and each
    chunk that fails adds its ``Damage`` to ``damage`` and its (S,) rows to ``broken``."""
    chunk = info.chunk_rows
    block = max(1, CHECK_BLOCK // chunk) * chunk
    for start in range(0, info.n_rows, block):
        stop = min(start + block, info.n_rows)
        values = _read(columns, start, stop)
        if values is not None:
            yield start, values
            continue
        for first in range(start, stop, chunk):
            last = min(first + chunk, stop)
            values = _read(columns, first, last)
            if values is not None:
                yield first, values
                continue
            for array in columns.values():
                spans = damaged_spans(array, first, last)
                damage += span_damage(array, spans)
                broken += [np.arange(a, b, dtype=np.int64) for a, b, _ in spans]


def _read(columns: dict[str, zarr.Array], start: int, stop: int) -> Fits | None:
    try:
        return Fits.from_columns({key: array[start:stop] for key, array in columns.items()})
    except READ_ERRORS:
        return None


def _check_log(store: Any, name: str, n_rows: int, reasons: dict[str, list[np.ndarray]]) -> np.ndarray:
    """Check the latest record of every row the update log of dataset ``name`` holds (what
    readers apply over the columns), adding implausible ones to ``reasons``; returns the (L,)
    sorted rows the log holds. Levels and blocks are read newest first, so a row's first record
    met is its latest."""
    seen = _NO_ROWS
    for level in reversed(LEVELS):
        array = open_level(store, name, level)
        length = level_state(array).length
        for start in reversed(range(0, length, CHECK_BLOCK)):
            records = read_records(array, start, min(start + CHECK_BLOCK, length))
            check_record_rows(array, records, n_rows)
            distinct, latest = latest_records(records)
            new = ~np.isin(distinct, seen, assume_unique=True)
            picked = records[latest[new]]
            fits = Fits.from_columns({c.name: picked[c.name] for c in COLUMNS})
            _collect(reasons, implausible_rows(fits), distinct[new])
            seen = np.union1d(seen, distinct[new])
    return seen
