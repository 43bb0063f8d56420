"""History operations of a store: its log, tags, rolling a branch back, diffs between versions.

Functions over an icechunk repository (``FitStore`` exposes them as methods); versions are
resolved to snapshot ids by the caller (``spinfits.store.versions.resolve_version``).
"""

from __future__ import annotations

import logging

import icechunk

from spinfits.errors import ConflictError, InputError
from spinfits.store.diff import FitDiff
from spinfits.store.fits import Fits
from spinfits.store.layout import list_datasets, load_fits, read_root, unknown_dataset
from spinfits.store.location import StoreLocation
from spinfits.store.versions import Version, snapshot_store

log_ = logging.getLogger(__name__)


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
