"""``FitDiff``: which rows of a dataset changed between two versions, and by how much."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spinfits.store.fits import Fits


@dataclass(frozen=True)
class FitDiff:
    """Rows whose stored fit differs between version ``from_snapshot`` and ``to_snapshot``.

    rows: (K,) int64 ascending; loss_from, loss_to: (K,) float32 (+inf = no scored fit).
    ``improvement = loss_from - loss_to`` is positive where ``to`` is better, +inf where ``to``
    has the row's first scored fit, negative where ``to`` is worse (e.g. diffing backwards).
    """

    dataset: str
    from_snapshot: str
    to_snapshot: str
    rows: np.ndarray
    loss_from: np.ndarray
    loss_to: np.ndarray

    @classmethod
    def between(cls, dataset: str, from_snapshot: str, a: Fits, to_snapshot: str, b: Fits) -> FitDiff:
        """Compare two full snapshots ``a`` and ``b`` of one dataset row by row (every column)."""
        n = len(a)
        changed = np.zeros(n, dtype=bool)
        for name, column in a.columns().items():  # bitwise, so NaN == NaN and -0.0 != 0.0
            bytes_a = np.ascontiguousarray(column).view(np.uint8).reshape(n, -1)
            bytes_b = np.ascontiguousarray(getattr(b, name)).view(np.uint8).reshape(n, -1)
            changed |= (bytes_a != bytes_b).any(axis=1)
        rows = np.flatnonzero(changed).astype(np.int64)
        return cls(dataset, from_snapshot, to_snapshot, rows, a.loss[rows], b.loss[rows])

    @property
    def improvement(self) -> np.ndarray:
        """(K,) float32 ``loss_from - loss_to``; NaN where neither version has a scored fit."""
        with np.errstate(invalid="ignore"):
            return self.loss_from - self.loss_to

    @property
    def n_changed(self) -> int:
        return int(self.rows.size)

    @property
    def n_improved(self) -> int:
        return int((self.loss_to < self.loss_from).sum())

    @property
    def n_new(self) -> int:
        """Rows that had no scored fit in ``from`` and have one in ``to``."""
        return int((np.isinf(self.loss_from) & np.isfinite(self.loss_to)).sum())

    @property
    def n_worse(self) -> int:
        return int((self.loss_to > self.loss_from).sum())

    def summary(self) -> dict[str, float | int]:
        """Counts and the median/mean improvement over rows scored in both versions."""
        both = np.isfinite(self.loss_from) & np.isfinite(self.loss_to)
        gain = self.improvement[both]
        return {
            "changed": self.n_changed,
            "improved": self.n_improved,
            "first_fit": self.n_new,
            "worse": self.n_worse,
            "median_improvement": float(np.median(gain)) if gain.size else float("nan"),
            "mean_improvement": float(gain.mean()) if gain.size else float("nan"),
        }
