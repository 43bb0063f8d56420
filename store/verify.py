"""``spinfits store verify``: read every chunk of a version (or of every kept version) and say
what is damaged.

For each version: the snapshot and its manifests must read; every chunk of every array of every
dataset is read on its own (checksum, decompression, missing object: ``damage.chunk_damage``);
the rows readers see (the columns, or a row's latest update-log record) must be plausible
(``damage.implausible_rows``). Arrays written before checksums are listed as unchecked: damage
in them shows only where it makes a row implausible.

Memory is bounded whatever the dataset's size (``spinfits.store.dataset_check``): a block of
16,384 rows or log records at a time (6 MB), plus 8 B per row the update log holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import icechunk

from spinfits.store.checksums import unchecked_arrays
from spinfits.store.damage import READ_ERRORS, Damage, DamagedStoreError, icechunk_reason
from spinfits.store.dataset_check import check_dataset
from spinfits.store.layout import list_datasets
from spinfits.store.versions import snapshot_store

if TYPE_CHECKING:
    from spinfits.store.fit_store import FitStore


@dataclass(frozen=True)
class VersionCheck:
    """What ``verify_version`` found in one snapshot: its ``damage``, its arrays without
    checksums (``unchecked``, ``dataset/array``) and ``unrepairable``."""

    snapshot_id: str
    damage: tuple[Damage, ...]
    unchecked: tuple[str, ...]
    #: the damage among ``damage`` that a refit of the corrupt rows cannot repair (no rows named)
    unrepairable: tuple[Damage, ...] = ()

    @property
    def whole(self) -> bool:
        return not self.damage


def verify_version(
    repo: icechunk.Repository, snapshot_id: str, datasets: Sequence[str] | None = None
) -> VersionCheck:
    """Read every chunk of ``snapshot_id`` and check its rows (see module doc); only the datasets
    named in ``datasets`` when given."""
    try:
        store = snapshot_store(repo, snapshot_id)
        infos = list_datasets(store)
        unchecked = unchecked_arrays(store)
    except READ_ERRORS as error:
        problem = f"snapshot or its metadata cannot be read ({icechunk_reason(error)})"
        whole_snapshot = (Damage("-", "-", "all rows", problem),)
        return VersionCheck(snapshot_id, whole_snapshot, (), whole_snapshot)
    damage: list[Damage] = []
    unrepairable: list[Damage] = []
    for name, info in infos.items():
        if datasets is None or name in datasets:
            check = check_dataset(store, info)
            damage += check.damage
            unrepairable += check.unrepairable
    return VersionCheck(snapshot_id, tuple(damage), tuple(unchecked), tuple(unrepairable))


def kept_versions(repo: icechunk.Repository, branch: str) -> list[str]:
    """Every version a user can read: the history of ``branch`` (newest first), then tagged
    snapshots outside it."""
    history = [info.id for info in repo.ancestry(branch=branch)]
    tagged = [repo.lookup_tag(tag) for tag in sorted(repo.list_tags())]
    return history + [snapshot for snapshot in dict.fromkeys(tagged) if snapshot not in history]


def verify_store(
    store: FitStore, version: str | None = None, *, all_versions: bool = False
) -> list[VersionCheck]:
    """``verify_version`` of ``version`` (None = the tip of the store's branch), or of every kept
    version (``kept_versions``), newest first."""
    repo = store.repository
    snapshots = kept_versions(repo, store.branch) if all_versions else [store.resolve(version)]
    return [verify_version(repo, snapshot) for snapshot in snapshots]


def check_whole(store: FitStore, datasets: Sequence[str]) -> VersionCheck:
    """Verify ``datasets`` at the tip; ``DamagedStoreError`` naming the store when any is
    damaged (what ``precompute`` and ``train`` do before they start)."""
    check = verify_version(store.repository, store.tip(), datasets)
    if check.damage:
        raise DamagedStoreError(check.damage, str(store.location), refit_repairs=not check.unrepairable)
    return check
