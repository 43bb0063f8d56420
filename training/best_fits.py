"""A training worker's best fits: the store's pinned snapshot plus its own uncommitted finds.

SPIN keeps the fits dictionary in memory and updates it in place; here each worker reads a pinned
snapshot of the store (``FitReader``, the worker's one copy of the fits), and what it proposes is
also kept locally (only those rows) so the worker uses its own improvements at once, before the
writer has committed them. ``refresh`` moves to the store's newest snapshot (improvements from
every worker), reading only what changed, and keeps the local fits that are still better than
what the snapshot holds. Everything is in un-augmented crop-frame terms.
"""

from __future__ import annotations

import numpy as np

from spinfits.store import FitReader, Fits, Proposals, Source, best_per_row
from spinfits.store.merge_rule import replaces
from spinfits.store.reader import checked_rows


class BestFits:
    """``reader``: the worker's pinned view of its dataset.

    One copy of the fits per worker: the reader's, plus this worker's own better fits of the rows
    it proposed (``_own``, sorted unique rows, each strictly better than the snapshot's by the
    store's rule), dropped once a refreshed snapshot holds something as good. ``refresh`` reads only
    what changed in the store (``FitReader.refresh``).
    """

    def __init__(self, reader: FitReader) -> None:
        self._reader = reader
        self._own: Proposals = _no_proposals()

    @property
    def snapshot_id(self) -> str:
        """The store snapshot this view is based on (recorded in checkpoints)."""
        return self._reader.snapshot_id

    @property
    def n_rows(self) -> int:
        return self._reader.n_rows

    @property
    def own_rows(self) -> np.ndarray:
        """(M,) rows where this worker's own, uncommitted fit is the best it knows."""
        return self._own.rows

    def read(self, rows: np.ndarray) -> Fits:
        """Best known fits of ``rows`` ((B,) int); loss +inf where there is none (a copy)."""
        rows = checked_rows(rows, self.n_rows, self._reader.info.name)
        fits = self._reader.read_rows(rows)
        if len(self._own):
            at = np.minimum(np.searchsorted(self._own.rows, rows), len(self._own) - 1)
            hit = self._own.rows[at] == rows
            for name, column in fits.columns().items():
                column[hit] = getattr(self._own, name)[at[hit]]
        return fits

    def record(self, proposals: Proposals) -> None:
        """Keep this worker's proposals that beat what it knows, by the store's merge rule."""
        best = best_per_row(proposals)
        if not len(best):
            return
        wins = best.take(np.flatnonzero(replaces(self.read(best.rows), best, accept_unscored=True)))
        if len(wins):
            kept = self._own.take(np.flatnonzero(~np.isin(self._own.rows, wins.rows)))
            merged = Proposals.concat([kept, wins])
            self._own = merged.take(np.argsort(merged.rows, kind="stable"))

    def refresh(self) -> bool:
        """Move to the store's newest snapshot; True if it changed. Own fits still strictly
        better than the new snapshot's are kept."""
        if not self._reader.refresh():
            return False
        if len(self._own):
            newest = self._reader.read_rows(self._own.rows)
            self._own = self._own.take(np.flatnonzero(self._own.loss < newest.loss))
        return True


def _no_proposals() -> Proposals:
    return Proposals(
        rows=np.zeros(0, np.int64),
        pose=np.zeros((0, 72), np.float32),
        betas=np.zeros((0, 10), np.float32),
        cam_t=np.zeros((0, 3), np.float32),
        loss=np.zeros(0, np.float32),
        source=Source.IN_LOOP,
        step=0,
    )


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
