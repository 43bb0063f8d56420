"""``FitReader``: a training worker's view of one dataset, pinned to one snapshot.

The reader loads the whole dataset of its snapshot into memory once (columns with the update log
applied) and serves ``read_rows`` by numpy indexing. A 100k-row dataset is 100k x (72+10+3+1)
float32 + provenance = about 36 MB and loads in about 50 ms; a zarr/icechunk read per batch would
cost milliseconds, this costs microseconds. Everything a reader returns comes from one committed
snapshot, so a batch never mixes versions.

``refresh`` moves to the branch's newest snapshot reading only what changed since the pinned one
(icechunk's diff between the two): the update-log records appended since (both levels), and the
column chunks a fold rewrote. A 64-row commit into a 1M-row dataset is one log chunk read (see
``bench/store_growth.py``). When the newest snapshot does not descend from the pinned one (a
rollback, or history expired by ``FitStore.history.gc``) it loads everything again.
"""

from __future__ import annotations

import logging
from typing import Any

import icechunk
import numpy as np
import zarr

from spinfits.errors import InputError
from spinfits.store.damage import (
    Damage,
    DamagedStoreError,
    implausible_rows,
    naming_store,
    read_checked,
    rows_text,
)
from spinfits.store.fits import Fits
from spinfits.store.layout import list_datasets, load_dataset, unknown_dataset
from spinfits.store.location import StoreLocation
from spinfits.store.merge_rule import any_reason
from spinfits.store.schema import COLUMNS, DatasetInfo
from spinfits.store.stalled_storage import bounded, call_bounded
from spinfits.store.update_log import LEVELS, apply_records, level_state, open_level, read_records
from spinfits.store.versions import resolve_version, snapshot_store

log = logging.getLogger(__name__)


class FitReader:
    """Read rows of ``dataset`` at a pinned snapshot; ``refresh()`` moves to the branch's newest.

    repo: the icechunk repository; version: branch, tag or snapshot id to pin (None = tip of
    ``branch``); branch: the branch ``refresh`` follows. Picklable: a copy reloads the same
    snapshot.
    """

    def __init__(
        self,
        repo: icechunk.Repository,
        dataset: str,
        *,
        version: str | None = None,
        branch: str = "main",
        location: StoreLocation | None = None,
    ) -> None:
        self._repo = repo
        self._dataset = dataset
        self._branch = branch
        self._location = location  # on object storage its waits are bounded (stalled_storage)
        snapshot = call_bounded(
            self._location,
            "read the fits",
            lambda: resolve_version(repo, branch if version is None else version).snapshot_id,
        )
        with naming_store(location or "(unknown location)"):
            call_bounded(self._location, "read the fits", lambda: self._load(snapshot))

    def _load(self, snapshot_id: str) -> None:
        store = snapshot_store(self._repo, snapshot_id)
        infos = list_datasets(store)
        if self._dataset not in infos:
            raise unknown_dataset(self._dataset, infos)
        self._info = infos[self._dataset]
        self._fits, update_log = load_dataset(store, self._dataset)
        self._log = update_log.states
        self._snapshot_id = snapshot_id
        self._refreshed_rows: np.ndarray | None = None
        self._implausible: dict[str, np.ndarray] = {}
        self._screen(np.arange(self._info.n_rows))
        log.debug("reader %s loaded snapshot %s", self._dataset, snapshot_id)

    def _advance(self, newest: str) -> bool:
        """Move to ``newest`` reading only what changed since the pinned snapshot; False (nothing
        changed here) when ``newest`` does not descend from it."""
        try:
            diff = self._repo.diff(from_snapshot_id=self._snapshot_id, to_snapshot_id=newest)
        except icechunk.IcechunkError:
            return False
        store = snapshot_store(self._repo, newest)
        levels, records = {}, []  # each level's new state, and the records to apply in order
        for level in LEVELS:
            array = open_level(store, self._dataset, level)
            state, old = level_state(array), self._log[level]
            # A level only grows within a generation; emptied, it starts a new one.
            start = old.length if state.generation == old.generation else 0
            if state.length < start:
                return False
            levels[level] = state
            records.append(read_records(array, start, state.length))
        chunk_rows = self._info.chunk_rows
        blocks = []  # (column, start row, values) of the column chunks rewritten since (folds)
        for column in COLUMNS:
            coordinates = diff.updated_chunks.get(f"/{self._dataset}/{column.name}", ())
            if not coordinates:
                continue
            array = zarr.open_array(store, path=f"{self._dataset}/{column.name}", mode="r")
            for index in sorted({int(c[0]) for c in coordinates}):
                first = index * chunk_rows
                blocks.append((column.name, first, read_checked(array, first, first + chunk_rows)))
        # everything is read: now change the in-memory copy
        changed = [np.arange(first, first + len(values)) for _, first, values in blocks]
        for name, first, values in blocks:
            getattr(self._fits, name)[first : first + len(values)] = values
        changed += [apply_records(self._fits, level_records) for level_records in records]
        self._refreshed_rows = np.unique(np.concatenate(changed)).astype(np.int64)
        self._log, self._snapshot_id = levels, newest
        self._screen(self._refreshed_rows)
        log.debug(
            "reader %s advanced to %s: %d column chunks, %d log records",
            self._dataset,
            newest,
            len(blocks),
            sum(len(r) for r in records),
        )
        return True

    def _screen(self, rows: np.ndarray) -> None:
        """Find the implausible rows among ``rows`` ((M,) sorted, just read) and read them as
        "no fit" (empty rows): a damaged row never supervises training or reaches an export."""
        kept = {reason: np.setdiff1d(known, rows) for reason, known in self._implausible.items()}
        reasons = implausible_rows(self._fits.take(rows))
        for reason, mask in reasons.items():
            kept[reason] = np.union1d(kept.get(reason, rows[:0]), rows[mask])
        self._implausible = {reason: found for reason, found in kept.items() if found.size}
        bad = rows[any_reason(reasons, len(rows))]
        if bad.size:
            for name, column in Fits.empty(len(bad)).columns().items():
                getattr(self._fits, name)[bad] = column
            log.warning(
                "%s at %s: %s read as no fit: %s",
                self._dataset,
                self._snapshot_id,
                rows_text(bad),
                "; ".join(d.describe() for d in self.damage),
            )

    @property
    def damage(self) -> list[Damage]:
        """The implausible rows of the pinned snapshot (read as "no fit"), one ``Damage`` per
        reason; empty for a whole dataset."""
        return [
            Damage(self._dataset, "rows", rows_text(rows), f"implausible row ({reason})")
            for reason, rows in self._implausible.items()
        ]

    def check_whole(self) -> None:
        """``DamagedStoreError`` if the pinned snapshot holds implausible rows (what exports
        call: they never write a damaged row, nor silently leave it out)."""
        if self._implausible:
            raise DamagedStoreError(self.damage, str(self._location or "(unknown location)"))

    @property
    def snapshot_id(self) -> str:
        """The pinned snapshot (record it in checkpoints to know which fits a run saw)."""
        return self._snapshot_id

    @property
    def info(self) -> DatasetInfo:
        return self._info

    @property
    def n_rows(self) -> int:
        return self._info.n_rows

    def read_rows(self, rows: Any) -> Fits:
        """The fits of ``rows`` ((B,) integer indices, any order, repeats allowed) as copies."""
        return self._fits.take(checked_rows(rows, self._info.n_rows, self._dataset))

    def read_all(self) -> Fits:
        """Every row of the pinned snapshot (a copy)."""
        return self._fits.copy()

    @property
    def refreshed_rows(self) -> np.ndarray | None:
        """(K,) sorted rows the last ``refresh`` may have changed (a superset: every row of a
        rewritten column chunk); empty when it found nothing new, None when the reader loaded
        every row (at creation, or a refresh to a snapshot that does not descend from the one
        before)."""
        return self._refreshed_rows

    @bounded("refresh the fits")
    def refresh(self) -> bool:
        """Move to the newest snapshot of the branch; True if that changed the snapshot.

        Reads only what changed since the pinned snapshot (see ``refreshed_rows``)."""
        newest = self._repo.lookup_branch(self._branch)
        if newest == self._snapshot_id:
            self._refreshed_rows = np.zeros(0, dtype=np.int64)
            return False
        with naming_store(self._location or "(unknown location)"):
            if not self._advance(newest):
                self._load(newest)
        return True

    def __reduce__(self) -> tuple:
        return (_restore, (self._repo, self._dataset, self._branch, self._snapshot_id, self._location))


def checked_rows(rows: Any, n_rows: int, dataset: str) -> np.ndarray:
    """``rows`` as a 1-d integer index into a dataset of ``n_rows`` rows, or ``InputError``."""
    index = np.asarray(rows)
    if index.ndim != 1 or (index.size and not np.issubdtype(index.dtype, np.integer)):
        raise InputError(
            f"rows must be a 1-d integer array of dataset rows, got shape {index.shape} dtype {index.dtype}"
        )
    if index.size and (index.min() < 0 or index.max() >= n_rows):
        raise InputError(
            f"rows must lie in [0, {n_rows}) for dataset {dataset!r}, "
            f"got values from {int(index.min())} to {int(index.max())}"
        )
    return index


def _restore(
    repo: icechunk.Repository, dataset: str, branch: str, snapshot_id: str, location: StoreLocation | None
) -> FitReader:
    reader = FitReader.__new__(FitReader)
    reader._repo, reader._dataset, reader._branch, reader._location = repo, dataset, branch, location
    with naming_store(location or "(unknown location)"):
        call_bounded(location, "read the fits", lambda: reader._load(snapshot_id))
    return reader
