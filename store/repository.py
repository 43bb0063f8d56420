"""Opening and creating the icechunk repository behind a store, with clear errors.

``create_repository`` writes a fresh spinfits store (root attributes + first commit);
``open_repository`` opens one, checks its branch, its root and (optionally) its body model;
``repository_exists`` says whether a location holds one. ``FitStore`` is built on these.
"""

from __future__ import annotations

import getpass
import logging
import socket

import icechunk

from spinfits.errors import InputError, SpinfitsError, StorageError
from spinfits.store.damage import icechunk_reason
from spinfits.store.layout import init_root, read_root
from spinfits.store.location import StoreLocation
from spinfits.store.schema import BodyModelInfo

log = logging.getLogger(__name__)


def default_who() -> str:
    """``user@host``, recorded as the committer when the caller names nobody."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _open_repo(location: StoreLocation) -> icechunk.Repository:
    if location.is_local:
        path = location.path
        if not path.exists():
            raise InputError(
                f"no store at {location}: the path does not exist; create one with "
                "`spinfits store init` or FitStore.create"
            )
        if not path.is_dir():
            raise InputError(f"{location} is a file, not a store directory; pass the store's directory")
    storage = location.storage()
    try:
        exists = icechunk.Repository.exists(storage)
    except (icechunk.IcechunkError, ValueError, OSError) as error:
        if not location.is_local:
            raise _unreachable(location, error) from None
        raise InputError(
            f"cannot read a store at {location} (corrupt or not a store?): {icechunk_reason(error)}"
        ) from None
    if not exists:
        raise InputError(
            f"{location} is not a spinfits store (no icechunk repository there); create one with "
            "`spinfits store init` or FitStore.create"
        )
    try:
        return icechunk.Repository.open(storage)
    except (icechunk.IcechunkError, ValueError, OSError) as error:
        raise StorageError(f"{location} looks like a store but cannot be opened: {_damaged(error)}") from None


def create_repository(where: StoreLocation, body_model: BodyModelInfo) -> icechunk.Repository:
    """Create an empty store (no datasets, branch ``main``) for fits of ``body_model``.

    A local ``where`` must not exist or be an empty directory.
    """
    if not isinstance(body_model, BodyModelInfo):
        raise InputError(
            f"body_model must be a BodyModelInfo(fingerprint, is_standin), got {type(body_model).__name__}"
        )
    if not body_model.fingerprint:
        raise InputError("body_model.fingerprint is empty; give a string identifying the body model files")
    if where.is_local:
        if where.path.exists() and (not where.path.is_dir() or any(where.path.iterdir())):
            raise InputError(
                f"cannot create a store at {where}: the path exists and is not an empty "
                "directory; choose a new path or open the existing store"
            )
        where.path.mkdir(parents=True, exist_ok=True)
    try:
        repo = icechunk.Repository.create(where.storage())
    except icechunk.IcechunkError as error:
        if where.bucket_is_missing():
            raise where.missing_bucket() from None
        raise InputError(f"cannot create a store at {where}: {icechunk_reason(error)}") from None
    session = repo.writable_session("main")
    init_root(session.store, body_model)
    with where.commit_lock():
        session.commit("create spinfits store", metadata={"who": default_who(), "rows_improved": 0})
    log.info("created store at %s for body model %s", where, body_model.describe())
    return repo


def repository_exists(where: StoreLocation) -> bool:
    """Whether ``where`` holds a repository (local or object storage); no validation."""
    if where.is_local and not where.path.is_dir():
        return False
    try:
        return bool(icechunk.Repository.exists(where.storage()))
    except (icechunk.IcechunkError, ValueError, OSError) as error:
        if not where.is_local:
            raise _unreachable(where, error) from None
        raise InputError(f"cannot read a store at {where}: {icechunk_reason(error)}") from None


def _damaged(error: BaseException) -> str:
    """The reason a store's own files cannot be read, and the repair."""
    return (
        f"{icechunk_reason(error)}. The store's metadata files are damaged or missing: restore the "
        "named file from a backup or copy of the store (spinfits cannot read any version through it)"
    )


def _unreachable(where: StoreLocation, error: Exception) -> SpinfitsError:
    """Object storage that failed to answer: the storage's fault, not the user's input, unless
    the bucket does not exist (the service says so: then how to create it)."""
    if where.bucket_is_missing():
        return where.missing_bucket()
    return StorageError(
        f"cannot reach the store at {where}: {icechunk_reason(error)}; nothing was read or "
        "written. Check the endpoint, the credentials and the network, then retry"
    )


def open_repository(
    where: StoreLocation, branch: str, body_model: BodyModelInfo | str | None
) -> tuple[icechunk.Repository, BodyModelInfo]:
    """The repository at ``where`` and the body model its fits belong to.

    body_model: the caller's body model (or its fingerprint); if it is not the store's,
    ``InputError`` (fits of different models must never mix). None = no check.
    """
    repo = _open_repo(where)
    if branch not in repo.list_branches():
        raise InputError(f"store {where} has no branch {branch!r}; branches: {sorted(repo.list_branches())}")
    try:
        repo.lookup_snapshot(repo.lookup_branch(branch))  # zarr would hide a missing snapshot
        stored = read_root(repo.readonly_session(branch=branch).store, str(where))
    except (icechunk.IcechunkError, OSError) as error:
        raise StorageError(f"store {where} cannot be read: {_damaged(error)}") from None
    if body_model is not None:
        wanted = body_model.fingerprint if isinstance(body_model, BodyModelInfo) else str(body_model)
        if wanted != stored.fingerprint:
            raise InputError(
                f"store {where} holds fits of body model {stored.describe()!r}, but the caller "
                f"uses body model {wanted!r}; fits of different body models must not mix: open "
                "(or create) a store for this body model instead"
            )
    return repo, stored
