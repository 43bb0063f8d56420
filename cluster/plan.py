"""Plan precompute work from the store's own record: which rows still need a fit, in shards."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Plan:
    """What a precompute run will do.

    Fields:
        shards: list of (S,) int64 row arrays, each one actor task.
        pending: (P,) int64 rows to fit (the shards' rows, concatenated).
        unfittable: (U,) int64 rows skipped: too few confident keypoints to fit at all.
        already_fitted: rows that hold a fit and are not refitted.
        known_failed: (F,) int64 rows skipped: an earlier run could not fit them (retry them
            with ``--retry-failed``).
        corrupt_only: the plan refits only the corrupt rows (``--refit-corrupt``).
    """

    shards: tuple[np.ndarray, ...]
    pending: np.ndarray
    unfittable: np.ndarray
    already_fitted: int
    known_failed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    corrupt_only: bool = False

    def nothing_to_do(self) -> str:
        """Why there is nothing to fit, in one sentence for the log."""
        parts = []
        if self.corrupt_only:
            parts.append("no corrupt rows to refit (`spinfits store verify` finds the dataset whole)")
        if self.already_fitted:
            parts.append(f"{self.already_fitted} rows already hold a fit (--refit fits them again)")
        if len(self.known_failed):
            parts.append(
                f"{len(self.known_failed)} rows failed in an earlier run "
                "(--retry-failed tries them again; `spinfits store info` shows why)"
            )
        if len(self.unfittable):
            parts.append(f"{len(self.unfittable)} rows have too few confident keypoints to fit")
        return "; ".join(parts) or "the dataset has no rows"


def plan_rows(
    stored_loss: np.ndarray,
    confident_counts: np.ndarray,
    *,
    refit: bool,
    shard_size: int,
    min_keypoints: int,
    failed: np.ndarray | None = None,
    only: np.ndarray | None = None,
) -> Plan:
    """Rows to fit: no finite stored loss yet (all rows with ``refit``), fittable, in shards.

    Args:
        stored_loss: (N,) the store's current loss per row (+inf = no fit yet).
        confident_counts: (N,) confident keypoints per row (SMPLify's ignored joints excluded).
        refit: also refit rows that already hold a fit (the merge rule keeps the better one).
        shard_size: rows per shard (an actor task).
        min_keypoints: rows with fewer confident keypoints cannot be fitted and are skipped.
        failed: (N,) bool rows an earlier run could not fit, skipped; None retries them.
        only: (C,) int64 rows to fit and no others, whether they hold a fit or failed before
            (``--refit-corrupt``'s corrupt rows); None: as above.
    """
    fittable = confident_counts >= min_keypoints
    has_fit = np.isfinite(stored_loss)
    skip_failed = (
        np.zeros_like(fittable) if failed is None or only is not None else failed & fittable & ~has_fit
    )
    if only is not None:
        wanted = fittable & np.isin(np.arange(len(fittable)), only)
    else:
        wanted = (fittable if refit else fittable & ~has_fit) & ~skip_failed
    pending = np.flatnonzero(wanted).astype(np.int64)
    shards = tuple(pending[i : i + shard_size] for i in range(0, len(pending), shard_size))
    return Plan(
        shards=shards,
        pending=pending,
        unfittable=np.flatnonzero(~fittable).astype(np.int64),
        already_fitted=int((has_fit & ~wanted).sum()),
        known_failed=np.flatnonzero(skip_failed).astype(np.int64),
        corrupt_only=only is not None,
    )
