"""Plan precompute work from the store's own record: which rows still need a fit, in shards."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Plan:
    """What a precompute run will do.

    Fields:
        shards: list of (S,) int64 row arrays, each one actor task.
        pending: (P,) int64 rows to fit (the shards' rows, concatenated).
        unfittable: (U,) int64 rows skipped: too few confident keypoints to fit at all.
        already_fitted: rows that hold a fit and are not refitted.
    """

    shards: tuple[np.ndarray, ...]
    pending: np.ndarray
    unfittable: np.ndarray
    already_fitted: int


def plan_rows(stored_loss: np.ndarray, confident_counts: np.ndarray, *, refit: bool,
              shard_size: int, min_keypoints: int) -> Plan:
    """Rows to fit: no finite stored loss yet (all rows with ``refit``), fittable, in shards.

    Args:
        stored_loss: (N,) the store's current loss per row (+inf = no fit yet).
        confident_counts: (N,) confident keypoints per row (SMPLify's ignored joints excluded).
        refit: also refit rows that already hold a fit (the merge rule keeps the better one).
        shard_size: rows per shard (an actor task).
        min_keypoints: rows with fewer confident keypoints cannot be fitted and are skipped.
    """
    fittable = confident_counts >= min_keypoints
    has_fit = np.isfinite(stored_loss)
    wanted = fittable if refit else fittable & ~has_fit
    pending = np.flatnonzero(wanted).astype(np.int64)
    shards = tuple(pending[i:i + shard_size] for i in range(0, len(pending), shard_size))
    return Plan(shards=shards, pending=pending,
                unfittable=np.flatnonzero(~fittable).astype(np.int64),
                already_fitted=int((has_fit & ~wanted).sum()))
