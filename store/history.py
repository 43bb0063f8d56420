"""History operations of a store: its log, tags, rolling a branch back, diffs between versions, gc.

``StoreHistory`` (``FitStore.history``) takes versions as users name them (branch, tag or
snapshot id); the functions below it work on an icechunk repository and snapshot ids.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import icechunk

from spinfits.errors import ConflictError, InputError
from spinfits.store.damage import naming_store
from spinfits.store.diff import FitDiff
from spinfits.store.fits import Fits
from spinfits.store.garbage_collection import GcReport, collect
from spinfits.store.layout import list_datasets, load_fits, read_root, unknown_dataset
from spinfits.store.location import StoreLocation
from spinfits.store.versions import Version, snapshot_store

if TYPE_CHECKING:
    from spinfits.store.write_session import WriteSession

log_ = logging.getLogger(__name__)


class StoreHistory:
    """The history of one store's branch: log, tags, rollback, diff and gc (``FitStore.history``).

    ``resolve``: the store's version -> snapshot id (None = the branch tip); ``session``: the
    store's uncommitted work, which a rollback refuses to drop and which a rollback or gc makes
    re-read its working copies.
    """

    def __init__(
        self,
        repo: icechunk.Repository,
        location: StoreLocation,
        branch: str,
        resolve: Callable[[str | None], str],
        session: WriteSession,
    ) -> None:
        self._repo = repo
        self._location = location
        self._branch = branch
        self._resolve = resolve
        self._session = session

    def log(self, version: str | None = None, limit: int | None = None) -> list[Version]:
        """Commits reachable from ``version`` (None = tip of the branch), newest first."""
        return log(self._repo, self._resolve(version), limit)

    def tags(self) -> dict[str, str]:
        """Tag name -> snapshot id."""
        return tags(self._repo)

    def tag(self, name: str, version: str | None = None) -> str:
        """Name ``version`` (None = tip) ``name``, permanently; returns the snapshot id."""
        check_tag_name(self._repo, name)
        return tag(self._repo, self._location, name, self._resolve(version))

    def rollback(self, version: str) -> str:
        """Move this branch back to ``version`` (an earlier commit of it); returns the old tip.

        Later commits leave the branch history (``log`` no longer shows them) but stay readable
        by snapshot id, so rolling forward again is ``rollback(old_tip)``. Pending merges must be
        committed or discarded first.
        """
        if self._session.has_pending:
            raise InputError("commit or discard the pending merges before rolling back")
        tip = rollback(self._repo, self._location, self._branch, self._resolve(version), version)
        self._session.forget()
        return tip

    def diff(self, dataset: str, from_version: str, to_version: str | None = None) -> FitDiff:
        """Rows of ``dataset`` that differ between two versions, with their losses in each."""
        with naming_store(self._location):
            return diff(self._repo, dataset, self._resolve(from_version), self._resolve(to_version))

    def gc(
        self,
        *,
        older_than: datetime.timedelta | None = None,
        keep_last: int | None = None,
        keep: Mapping[str, str] | None = None,
        dry_run: bool = False,
        grace: datetime.timedelta | None = None,
    ) -> GcReport:
        """Expire old snapshots and delete the objects nothing reaches any more.

        Kept: branch tips, tags, the snapshots of ``keep`` (snapshot id -> why, e.g. those
        training checkpoints record) and every commit newer than the cut: ``older_than`` (an
        age; default 7 days) or the ``keep_last`` newest commits of each branch. Expired
        snapshots can no longer be read. See ``spinfits.store.garbage_collection``; with
        ``dry_run`` nothing changes and the report says what would expire.
        """
        report = collect(
            self._repo,
            self._location,
            older_than=older_than,
            keep_last=keep_last,
            keep=keep,
            dry_run=dry_run,
            grace=grace,
        )
        if not dry_run:
            self._session.snapshots_expired()
        return report


def log(repo: icechunk.Repository, snapshot: str, limit: int | None = None) -> list[Version]:
    """Commits reachable from ``snapshot``, newest first (at most ``limit``)."""
    versions = []
    for info in repo.ancestry(snapshot_id=snapshot):
        versions.append(Version.from_snapshot(info))
        if limit is not None and len(versions) >= limit:
            break
    return versions


def tags(repo: icechunk.Repository) -> dict[str, str]:
    """Tag name -> snapshot id."""
    return {name: repo.lookup_tag(name) for name in sorted(repo.list_tags())}


def check_tag_name(repo: icechunk.Repository, name: object) -> None:
    if not isinstance(name, str) or not name or "/" in name:
        raise InputError(f"tag name must be a non-empty string without '/', got {name!r}")
    if name in repo.list_tags() or name in repo.list_branches():
        raise InputError(f"{name!r} already names a tag or branch; tags are immutable, pick another name")


def tag(repo: icechunk.Repository, location: StoreLocation, name: str, snapshot: str) -> str:
    """Name ``snapshot`` ``name``, permanently (``check_tag_name`` first); returns it."""
    with location.commit_lock():
        repo.create_tag(name, snapshot)
    return snapshot


def rollback(repo: icechunk.Repository, location: StoreLocation, branch: str, target: str, asked: str) -> str:
    """Move ``branch`` to ``target`` (a commit of its history, or one rolled back from);
    returns the old tip. ``asked``: the version as the user named it, for messages."""
    with location.commit_lock():
        tip = repo.lookup_branch(branch)
        # Back to an ancestor of the tip, or forward again to a commit rolled back from.
        back = target in {info.id for info in repo.ancestry(snapshot_id=tip)}
        if not back and tip not in {info.id for info in repo.ancestry(snapshot_id=target)}:
            raise InputError(
                f"version {asked!r} ({target}) is not in the history of branch "
                f"{branch!r}; roll back only to a commit that `spinfits store log` shows"
            )
        read_root(snapshot_store(repo, target), str(location))
        try:
            repo.reset_branch(branch, target, from_snapshot_id=tip)
        except icechunk.IcechunkError as error:
            raise ConflictError(f"branch {branch!r} moved during rollback ({error}); retry") from None
    log_.info("rolled %s back from %s to %s", branch, tip, target)
    return tip


def diff(repo: icechunk.Repository, dataset: str, from_snapshot: str, to_snapshot: str) -> FitDiff:
    """Rows of ``dataset`` that differ between two snapshots, with their losses in each."""
    to_store = snapshot_store(repo, to_snapshot)
    infos = list_datasets(to_store)
    if dataset not in infos:
        raise unknown_dataset(dataset, infos)
    to_fits = load_fits(to_store, dataset)
    from_store = snapshot_store(repo, from_snapshot)
    if dataset in list_datasets(from_store):
        from_fits = load_fits(from_store, dataset)
    else:
        from_fits = Fits.empty(len(to_fits))
    return FitDiff.between(dataset, from_snapshot, from_fits, to_snapshot, to_fits)
