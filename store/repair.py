"""Make a dataset's corrupt rows read as "no fit", in one commit: the first step of
``spinfits precompute --refit-corrupt``, which then refits exactly those rows.

The corrupt rows are the ones ``store verify`` reports (``spinfits.store.dataset_check``):
implausible rows, and every row of a column chunk that cannot be read (a failed checksum, a
missing object) whose value readers take from the columns. Their stored values are garbage, and
the merge rule cannot replace garbage it cannot read or whose loss it cannot trust, so they are
first *reset*: each is written as an empty row (loss +inf, no source), where readers read it:

- a row read from the columns: its column chunk is rewritten, every column, whole; the chunk's
  other rows keep their values (an unreadable array's chunk is written with empty values: every
  row of it is corrupt or held by the update log, whose record readers see instead);
- a row read from the update log (its latest record is implausible): an empty record is appended
  to the log's ``recent`` level, which readers apply last.

Every other row is untouched and the commit says so. After the reset every fit lands on those rows
by the merge rule as on any row without a fit, and the rule still refuses NaN and implausible
fits: a row whose refit fails stays "no fit" (recorded as failed), never garbage. The old values
stay in the history. Damage that names no rows (update-log chunks, the failure record, metadata)
cannot be repaired by a refit: ``DamagedStoreError`` says to roll back.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from spinfits.errors import StorageError
from spinfits.store.damage import READ_ERRORS, DamagedStoreError, rows_text
from spinfits.store.dataset_check import check_dataset
from spinfits.store.fits import Fits
from spinfits.store.layout import list_datasets, open_columns, unknown_dataset
from spinfits.store.repository import default_who
from spinfits.store.update_log import append_records, level_state, open_level

if TYPE_CHECKING:
    from spinfits.store.fit_store import FitStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reset:
    """What ``reset_corrupt_rows`` did: ``rows`` ((C,) sorted int64, the corrupt rows now read as
    no fit) and the commit that did it (None when there were none)."""

    rows: np.ndarray
    snapshot: str | None


def reset_corrupt_rows(store: FitStore, dataset: str, *, who: str | None = None) -> Reset:
    """Reset the corrupt rows of ``dataset`` at the tip of ``store``'s branch to "no fit" in one
    commit (module doc); ``DamagedStoreError`` for damage a refit cannot repair."""
    where = str(store.location)
    with store.location.commit_lock():
        session = store.repository.writable_session(store.branch)
        infos = list_datasets(session.store)
        if dataset not in infos:
            raise unknown_dataset(dataset, infos)
        info = infos[dataset]
        check = check_dataset(session.store, info)
        if check.unrepairable:
            raise DamagedStoreError(check.damage, where, refit_repairs=False)
        rows = check.corrupt
        if not rows.size:
            return Reset(rows, None)
        in_log = rows[np.isin(rows, check.logged)]
        _reset_in_columns(session.store, info.name, info.chunk_rows, info.n_rows, np.setdiff1d(rows, in_log))
        if in_log.size:
            level = open_level(session.store, dataset, "recent")
            empty = Fits.empty(len(in_log))
            append_records(
                session.store,
                dataset,
                "recent",
                in_log,
                empty,
                level_state(level),
                store.write_policy.log_chunk,
            )
        after = check_dataset(session.store, info)
        if not after.whole:  # cannot happen unless the store changed under the lock
            raise StorageError(
                f"{where}: resetting the corrupt rows of {dataset!r} left damage "
                f"({'; '.join(d.describe() for d in after.damage[:4])}); nothing was committed"
            )
        untouched = info.n_rows - len(rows)
        snapshot = session.commit(
            f"refit-corrupt: {len(rows)} corrupt rows of {dataset} reset to no fit until refitted "
            f"({rows_text(rows)}); the other {untouched} rows untouched",
            metadata={
                "who": who or default_who(),
                "rows_improved": 0,
                "rows_reset": {dataset: len(rows)},
                "reset_rows": rows_text(rows, limit=64),
            },
        )
    log.info("%s: reset %s of %s to no fit (commit %s)", where, rows_text(rows), dataset, snapshot)
    return Reset(rows, snapshot)


def _reset_in_columns(store: object, dataset: str, chunk_rows: int, n_rows: int, rows: np.ndarray) -> None:
    """Write ``rows`` ((M,) sorted) of ``dataset``'s columns as empty rows, rewriting each column
    chunk they fall in whole (a chunk of an array that cannot be read is rewritten empty)."""
    columns = open_columns(store, dataset, mode="r+")
    for chunk in np.unique(rows // chunk_rows):
        start, stop = int(chunk) * chunk_rows, min((int(chunk) + 1) * chunk_rows, n_rows)
        block = Fits.empty(stop - start)
        for name, array in columns.items():
            with suppress(READ_ERRORS):  # unreadable: its rows are all corrupt (or logged): empty
                getattr(block, name)[:] = array[start:stop]
        inside = rows[(rows >= start) & (rows < stop)] - start
        for name, empty in Fits.empty(len(inside)).columns().items():
            getattr(block, name)[inside] = empty
        for name, array in columns.items():
            array[start:stop] = getattr(block, name)
