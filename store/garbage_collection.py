"""Expiring old snapshots and deleting what nothing reaches any more (``FitStore.history.gc``).

Every commit adds a snapshot, and the objects it wrote stay in storage while any snapshot needs
them. ``collect`` takes snapshots older than a cut out of the history with icechunk's
``Repository.expire_snapshots``, then deletes every object that no branch or tag reaches with
``Repository.garbage_collect``. Kept, and readable as before:

- every branch tip and every tag (history before them that is older than the cut is dropped);
- every commit newer than the cut: ``older_than`` (an age), or the ``keep_last`` newest commits
  of each branch;
- the snapshots named in ``keep`` (e.g. those training checkpoints record, so a run resumes from
  the fits it saw): held by temporary branches ``spinfits-gc-keep-<k>`` while the collection runs.
  A later gc that does not name them collects them; tag a snapshot to keep it for good.

Collected: expired snapshots, commits rolled back from (off every branch), and the objects of
commits that never finished. A reader pinned at an expired snapshot can no longer read it.

On a local store the collection holds the commit lock: no writer is mid-commit (writers write
only while committing), so every unreachable object goes. On object storage there is no lock:
only objects older than ``grace`` (default one hour) are deleted, so a commit in flight keeps
its chunks.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import icechunk

from spinfits.errors import InputError, StorageError
from spinfits.store.damage import icechunk_reason
from spinfits.store.location import StoreLocation

log = logging.getLogger(__name__)

#: Temporary branches that hold the snapshots of ``keep`` during a collection.
KEEP_BRANCH_PREFIX = "spinfits-gc-keep-"
#: Objects younger than this are never deleted from object storage (commits in flight).
OBJECT_STORAGE_GRACE = datetime.timedelta(hours=1)
#: The cut when the caller gives none: a week of history is kept.
DEFAULT_AGE = datetime.timedelta(days=7)


@dataclass(frozen=True)
class GcReport:
    """What a collection did (with ``dry_run``: would do).

    Fields:
        cut: snapshots written before this moment (UTC) are expired.
        kept: snapshot id -> why it stays although it may be older than the cut ("branch main",
            "tag static", or the reason ``keep`` gave).
        expired: snapshots taken out of the history and no longer readable, oldest first.
        missing: snapshot ids of ``keep`` the store does not hold (collected before?) -> reason.
        freed: what was deleted: ``bytes`` and objects by kind (``chunks``, ``manifests``,
            ``snapshots``, ``transaction_logs``, ``attributes``). In a dry run: what is
            unreachable already (before expiring anything).
        size_before, size_after: bytes of a local store's folder (None on object storage).
        dry_run: nothing was changed.
    """

    cut: datetime.datetime
    kept: Mapping[str, tuple[str, ...]]
    expired: tuple[str, ...]
    missing: Mapping[str, str] = field(default_factory=dict)
    freed: Mapping[str, int] = field(default_factory=dict)
    size_before: int | None = None
    size_after: int | None = None
    dry_run: bool = False


def cut_time(
    repo: icechunk.Repository,
    older_than: datetime.timedelta | None,
    keep_last: int | None,
    now: datetime.datetime,
) -> datetime.datetime:
    """The moment before which snapshots expire: ``now - older_than``, or the time of the
    ``keep_last``-th newest commit of the branch where that is earliest."""
    if older_than is not None and keep_last is not None:
        raise InputError("give older_than or keep_last, not both (--older-than DAYS or --keep-last N)")
    if keep_last is None:
        age = DEFAULT_AGE if older_than is None else older_than
        if not isinstance(age, datetime.timedelta) or age < datetime.timedelta(0):
            raise InputError(f"older_than must be a timedelta >= 0 (an age), got {age!r}")
        return now - age
    if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1:
        raise InputError(f"keep_last must be a positive integer (commits kept per branch), got {keep_last!r}")
    cut = now
    for branch in repo.list_branches():
        commits = []
        for info in repo.ancestry(branch=branch):
            commits.append(info)
            if len(commits) == keep_last:
                break
        cut = min(cut, commits[-1].written_at)
    return cut


def references(repo: icechunk.Repository) -> dict[str, list[str]]:
    """Snapshot id -> the branches and tags that point at it."""
    refs: dict[str, list[str]] = {}
    for branch in sorted(repo.list_branches()):
        if not branch.startswith(KEEP_BRANCH_PREFIX):
            refs.setdefault(repo.lookup_branch(branch), []).append(f"branch {branch}")
    for tag in sorted(repo.list_tags()):
        refs.setdefault(repo.lookup_tag(tag), []).append(f"tag {tag}")
    return refs


def expiring(repo: icechunk.Repository, kept: set[str], cut: datetime.datetime) -> list[str]:
    """Snapshots that expiring before ``cut`` makes unreadable while ``kept`` stay, oldest first:
    those on the history of a kept snapshot, written before the cut, not kept themselves and not
    the repository's first snapshot (icechunk keeps it)."""
    found: dict[str, datetime.datetime] = {}
    for snapshot in kept:
        for info in repo.ancestry(snapshot_id=snapshot):
            if info.written_at < cut and info.id not in kept and info.parent_id is not None:
                found[info.id] = info.written_at
    return sorted(found, key=found.__getitem__)


def collect(
    repo: icechunk.Repository,
    location: StoreLocation,
    *,
    older_than: datetime.timedelta | None = None,
    keep_last: int | None = None,
    keep: Mapping[str, str] | None = None,
    dry_run: bool = False,
    grace: datetime.timedelta | None = None,
) -> GcReport:
    """Expire the snapshots before the cut (``cut_time``) and delete what nothing reaches.

    keep: snapshot id -> why (e.g. "checkpoint runs/a/checkpoint_3"), kept readable;
    grace: objects younger than this are never deleted (default: none on a local store, whose
    commit lock is held throughout; ``OBJECT_STORAGE_GRACE`` on object storage).
    """
    grace = _checked_grace(grace, location)
    with location.commit_lock():
        now = datetime.datetime.now(datetime.timezone.utc)
        cut = cut_time(repo, older_than, keep_last, now)
        kept = {snapshot: list(why) for snapshot, why in references(repo).items()}
        missing = {}
        for snapshot, why in dict(keep or {}).items():
            if _exists(repo, snapshot):
                kept.setdefault(snapshot, []).append(why)
            else:
                missing[snapshot] = why
        pins = sorted(set(dict(keep or {})) - set(missing) - set(references(repo)))
        size_before = _local_bytes(location)
        expired = expiring(repo, set(kept), cut)
        if dry_run:
            summary = repo.garbage_collect(now - grace, dry_run=True)
        else:
            _remove_keep_branches(repo)  # left by a collection that crashed
            try:
                for k, snapshot in enumerate(pins):
                    repo.create_branch(f"{KEEP_BRANCH_PREFIX}{k}", snapshot)
                done = set(repo.expire_snapshots(cut)) - set(kept)
                summary = repo.garbage_collect(now - grace)
            except (icechunk.IcechunkError, OSError) as error:
                raise StorageError(
                    f"garbage collection of {location} failed: {icechunk_reason(error)}. Branches, "
                    "tags and kept snapshots are unchanged; the history may already be shorter. "
                    "Fix the storage and run gc again"
                ) from None
            finally:
                _remove_keep_branches(repo)
            order = {snapshot: k for k, snapshot in enumerate(expired)}
            expired = sorted(done, key=lambda snapshot: (order.get(snapshot, len(order)), snapshot))
    freed = {
        "bytes": summary.bytes_deleted,
        "chunks": summary.chunks_deleted,
        "manifests": summary.manifests_deleted,
        "snapshots": summary.snapshots_deleted,
        "transaction_logs": summary.transaction_logs_deleted,
        "attributes": summary.attributes_deleted,
    }
    report = GcReport(
        cut=cut,
        kept={snapshot: tuple(why) for snapshot, why in kept.items()},
        expired=tuple(expired),
        missing=missing,
        freed=freed,
        size_before=size_before,
        size_after=size_before if dry_run else _local_bytes(location),
        dry_run=dry_run,
    )
    log.info(
        "gc of %s%s: cut %s, %d snapshots expired, %d bytes freed",
        location,
        " (dry run)" if dry_run else "",
        cut.isoformat(),
        len(expired),
        freed["bytes"],
    )
    return report


def _checked_grace(grace: datetime.timedelta | None, location: StoreLocation) -> datetime.timedelta:
    if grace is None:
        return datetime.timedelta(0) if location.is_local else OBJECT_STORAGE_GRACE
    if not isinstance(grace, datetime.timedelta) or grace < datetime.timedelta(0):
        raise InputError(f"grace must be a timedelta >= 0, got {grace!r}")
    return grace


def _exists(repo: icechunk.Repository, snapshot: str) -> bool:
    try:
        repo.lookup_snapshot(snapshot)
    except (icechunk.IcechunkError, ValueError):
        return False
    return True


def _remove_keep_branches(repo: icechunk.Repository) -> None:
    for branch in repo.list_branches():
        if branch.startswith(KEEP_BRANCH_PREFIX):
            repo.delete_branch(branch)


def _local_bytes(location: StoreLocation) -> int | None:
    """Bytes of the files in a local store's folder (None on object storage)."""
    if not location.is_local:
        return None
    total = 0
    for folder, _, files in os.walk(location.path):
        for name in files:
            with contextlib.suppress(OSError):  # deleted while walking
                total += os.path.getsize(os.path.join(folder, name))
    return total
