"""A training worker's best fits: the store's pinned snapshot plus its own uncommitted finds.

SPIN keeps the fits dictionary in memory and updates it in place; here each worker reads a pinned
snapshot of the store (``FitReader``), and what it proposes is also kept locally so the worker
uses its own improvements at once, before the writer has committed them. ``refresh`` moves to the
store's newest snapshot (improvements from every worker) and keeps the local ones that are still
better than what the snapshot holds. Everything is in un-augmented crop-frame terms.
"""

from __future__ import annotations

import numpy as np

from spinfits.store import FitReader, Fits, Proposals, best_per_row, merge_into
from spinfits.store.reader import checked_rows


class BestFits:
    """``reader``: the worker's pinned view of its dataset."""

    def __init__(self, reader: FitReader) -> None:
        self._reader = reader
        self._fits = reader.read_all()
        self._own = np.zeros(reader.n_rows, dtype=bool)  # rows holding a local, uncommitted fit

    @property
    def snapshot_id(self) -> str:
        """The store snapshot this view is based on (recorded in checkpoints)."""
        return self._reader.snapshot_id

    @property
    def n_rows(self) -> int:
        return self._reader.n_rows

    def read(self, rows: np.ndarray) -> Fits:
        """Best known fits of ``rows`` ((B,) int); loss +inf where there is none."""
        return self._fits.take(checked_rows(rows, self.n_rows, self._reader.info.name))

    def record(self, proposals: Proposals) -> None:
        """Keep this worker's proposals that beat what it knows, by the store's merge rule."""
        changed = merge_into(self._fits, best_per_row(proposals))
        self._own[changed.rows] = True

    def refresh(self) -> bool:
        """Move to the store's newest snapshot; True if it changed. Local fits still better
        than the new snapshot's are kept."""
        if not self._reader.refresh():
            return False
        newest = self._reader.read_all()
        keep = self._own & (self._fits.loss < newest.loss)
        for column, values in newest.columns().items():
            values[keep] = self._fits.columns()[column][keep]
        self._fits, self._own = newest, keep
        return True


class MixedBestFits:
    """The best fits of a run's datasets, one ``BestFits`` each, all at one store snapshot.

    names: the run's datasets in order (``TrainingBatch.dataset`` indexes them); readers: each
    dataset's pinned reader (one snapshot for all).
    """

    def __init__(self, names: list[str] | tuple[str, ...], readers: list[FitReader]) -> None:
        self.names = tuple(names)
        self._fits = [BestFits(reader) for reader in readers]

    @property
    def snapshot_id(self) -> str:
        return self._fits[0].snapshot_id

    def read(self, dataset: np.ndarray, rows: np.ndarray) -> Fits:
        """Best known fits of samples (dataset (B,) int, rows (B,) int), in that order."""
        dataset, rows = np.asarray(dataset), np.asarray(rows)
        out = Fits.empty(len(rows))
        columns = out.columns()
        for index in np.unique(dataset):
            mine = np.flatnonzero(dataset == index)
            for name, values in self._fits[index].read(rows[mine]).columns().items():
                columns[name][mine] = values
        return out

    def record(self, proposals: dict[str, Proposals]) -> None:
        """Keep this worker's proposals, per dataset name."""
        for name, part in proposals.items():
            self._fits[self.names.index(name)].record(part)

    def refresh(self) -> bool:
        """Move every dataset to the store's newest snapshot; True if it changed."""
        changed = [fits.refresh() for fits in self._fits]
        return any(changed)
