"""A training worker's best fits: the store's pinned snapshot plus its own uncommitted finds.

SPIN keeps the fits dictionary in memory and updates it in place; here each worker reads a pinned
snapshot of the store (``FitReader``), and what it proposes is also kept locally so the worker
uses its own improvements at once, before the writer has committed them. ``refresh`` moves to the
store's newest snapshot (improvements from every worker) and keeps the local ones that are still
better than what the snapshot holds. Everything is in un-augmented crop-frame terms.
"""

from __future__ import annotations

import numpy as np

from spinfits.store import FitReader, Fits, Proposals
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
        if not self._own.any():
            return self._reader.read_rows(rows)
        return self._fits.take(checked_rows(rows, self.n_rows, self._reader.info.name))

    def record(self, proposals: Proposals) -> None:
        """Keep this worker's proposals that beat what it knows (strictly lower, finite)."""
        for name, index in _best_first(proposals):
            if np.isfinite(proposals.loss[index]) and proposals.loss[index] < self._fits.loss[name]:
                for column, values in proposals.fits.columns().items():
                    self._fits.columns()[column][name] = values[index]
                self._own[name] = True

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


def _best_first(proposals: Proposals) -> list[tuple[int, int]]:
    """(row, position) pairs, for each row only its lowest-loss proposal."""
    order = np.lexsort((proposals.loss, proposals.rows))
    rows = proposals.rows[order]
    first = np.ones(rows.size, dtype=bool)
    first[1:] = rows[1:] != rows[:-1]
    return [(int(r), int(i)) for r, i in zip(rows[first], order[first])]
