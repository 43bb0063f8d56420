"""``StoreFork``: a picklable forked icechunk session in which a worker stages proposals.

Workers in other processes (Ray actors) get a ``StoreFork`` from ``FitStore.fork()``, call
``stage()`` (their proposals are written to the object store under a path unique to the fork,
``_staging/<fork_id>/<dataset>/<batch>/``), and send the fork back; the single writer calls
``FitStore.merge_forks(forks)``, which reads every staged batch and applies the merge rule, then
commits once. Staged data is never committed.

Why not let workers write the fit arrays directly: icechunk merges forked sessions chunk by
chunk, last fork wins, so two forks improving different rows of one chunk would lose one of
the improvements. Staging under disjoint paths and merging by the rule loses nothing.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import fields

import icechunk
import numpy as np
import zarr

from spinfits.errors import InputError
from spinfits.store.fits import Proposals
from spinfits.store.layout import list_datasets, unknown_dataset
from spinfits.store.merge_rule import best_per_row
from spinfits.store.schema import STAGING_GROUP, DatasetInfo

log = logging.getLogger(__name__)

_FIELDS = tuple(f.name for f in fields(Proposals))


def check_rows_in_range(proposals: Proposals, info: DatasetInfo) -> None:
    if len(proposals) and int(proposals.rows.max()) >= info.n_rows:
        raise InputError(
            f"proposal rows must lie in [0, {info.n_rows}) for dataset {info.name!r}, got row "
            f"{int(proposals.rows.max())}; check the dataset the rows index"
        )


def check_proposals(proposals: object) -> Proposals:
    if not isinstance(proposals, Proposals):
        raise InputError(
            f"expected a spinfits.store.Proposals, got {type(proposals).__name__}; build one with "
            "Proposals(rows=..., pose=..., betas=..., cam_t=..., loss=..., source=..., step=...)"
        )
    return proposals


class StoreFork:
    """A forked writable session of the store; picklable, for one worker process."""

    def __init__(self, session: icechunk.ForkSession) -> None:
        self._session = session
        self._fork_id = uuid.uuid4().hex
        self._batches = 0
        self._infos = list_datasets(session.store)

    @property
    def fork_id(self) -> str:
        return self._fork_id

    @property
    def base_snapshot(self) -> str:
        """The snapshot the fork was made from."""
        return self._session.snapshot_id

    @property
    def staged_batches(self) -> int:
        return self._batches

    def stage(self, dataset: str, proposals: Proposals, *, accept_unscored: bool = False) -> None:
        """Write ``proposals`` for ``dataset`` into the fork (reduced to the best per row).

        Validated here (unknown dataset, out-of-range rows: ``InputError``, nothing staged).
        """
        proposals = check_proposals(proposals)
        if dataset not in self._infos:
            raise unknown_dataset(dataset, self._infos)
        check_rows_in_range(proposals, self._infos[dataset])
        best = best_per_row(proposals, accept_unscored)
        if len(best) == 0:
            return  # nothing that could land
        path = f"{STAGING_GROUP}/{self._fork_id}/{dataset}/{self._batches:06d}"
        group = zarr.open_group(self._session.store, path=path, mode="w")
        group.attrs["accept_unscored"] = accept_unscored
        for name in _FIELDS:
            values = getattr(best, name)
            array = group.create_array(name, shape=values.shape, dtype=values.dtype, chunks=values.shape)
            array[...] = values
        self._batches += 1
        log.debug("fork %s staged %d proposals for %s", self._fork_id, len(best), dataset)

    def staged(self) -> list[tuple[str, bool, Proposals]]:
        """Every staged batch as ``(dataset, accept_unscored, proposals)``, in staging order."""
        if self._batches == 0:
            return []
        root = zarr.open_group(self._session.store, path=f"{STAGING_GROUP}/{self._fork_id}", mode="r")
        batches = []
        for dataset, group in sorted(root.groups()):
            for _, batch in sorted(group.groups()):
                parts = {name: batch[name][...] for name in _FIELDS}
                proposals = object.__new__(Proposals)  # validated when staged
                for name, value in parts.items():
                    object.__setattr__(proposals, name, np.asarray(value))
                batches.append((dataset, bool(batch.attrs["accept_unscored"]), proposals))
        return batches

    def __getstate__(self) -> dict:
        return {"session": self._session, "fork_id": self._fork_id, "batches": self._batches, "infos": self._infos}

    def __setstate__(self, state: dict) -> None:
        self._session = state["session"]
        self._fork_id = state["fork_id"]
        self._batches = state["batches"]
        self._infos = state["infos"]
