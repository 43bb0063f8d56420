"""Versions of a store: one ``Version`` per icechunk snapshot, and naming a version by string.

A version is named by a branch (``main``), a tag, or a snapshot id (20 characters, as
``spinfits store log`` shows). Branch names win over tags, tags over snapshot ids.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import icechunk

from spinfits.errors import InputError


@dataclass(frozen=True)
class Version:
    """One commit (snapshot) of the store and the metadata spinfits recorded with it.

    who: the committing user@host; rows_improved: rows whose fit changed in this commit, over all
    datasets; config_hash: hash of the fitting config(s) the improved rows came from.
    """

    snapshot_id: str
    parent_id: str | None
    written_at: datetime.datetime
    message: str
    who: str | None
    rows_improved: int | None
    config_hash: str | None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_snapshot(cls, info: icechunk.SnapshotInfo) -> Version:
        meta = dict(info.metadata or {})
        improved = meta.get("rows_improved")
        return cls(
            snapshot_id=info.id,
            parent_id=info.parent_id,
            written_at=info.written_at,
            message=info.message,
            who=meta.get("who"),
            rows_improved=None if improved is None else int(improved),
            config_hash=meta.get("config_hash"),
            metadata=meta,
        )


@dataclass(frozen=True)
class ResolvedVersion:
    """A version string resolved to a snapshot id, remembering how it was named."""

    name: str
    kind: str  # "branch", "tag" or "snapshot"
    snapshot_id: str


def resolve_version(repo: icechunk.Repository, name: str) -> ResolvedVersion:
    """Resolve a branch name, tag name or snapshot id to a snapshot id (``InputError`` if none)."""
    if not isinstance(name, str) or not name:
        raise InputError(f"version must be a non-empty string (branch, tag or snapshot id), got {name!r}")
    branches = repo.list_branches()
    if name in branches:
        return ResolvedVersion(name, "branch", repo.lookup_branch(name))
    tags = repo.list_tags()
    if name in tags:
        return ResolvedVersion(name, "tag", repo.lookup_tag(name))
    try:
        repo.lookup_snapshot(name)
    except (icechunk.IcechunkError, ValueError):
        raise InputError(
            f"unknown version {name!r}: expected a branch ({', '.join(sorted(branches))}), "
            f"a tag ({', '.join(sorted(tags)) or 'none yet'}) or a snapshot id from "
            "`spinfits store log`"
        ) from None
    return ResolvedVersion(name, "snapshot", name)


def snapshot_store(repo: icechunk.Repository, snapshot_id: str, known_to_exist: bool = False) -> Any:
    """The zarr store of a read-only session at ``snapshot_id``; ``InputError`` when the
    repository no longer holds that snapshot (expired and collected by ``FitStore.history.gc``).
    ``known_to_exist`` (a snapshot just committed): icechunk's error comes through as it is,
    since "snapshot not found" then means the storage did not answer (icechunk says it of a
    fetch that failed, e.g. a lost S3 endpoint)."""
    try:
        return repo.readonly_session(snapshot_id=snapshot_id).store
    except icechunk.IcechunkError as error:
        if known_to_exist or "snapshot not found" not in str(error):
            raise
        raise InputError(
            f"version {snapshot_id} is no longer in the store (expired and collected by "
            "`spinfits store gc`?); read a version that `spinfits store log` or `tag` shows"
        ) from None
