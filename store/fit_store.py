"""``FitStore``: the versioned best-fit store, one writer's handle on it.

Lifecycle of a write::

    store = FitStore.open("fits.icechunk", body_model=BodyModelInfo("smpl-1.0-abc123"))
    store.merge("coco", proposals)       # merge rule applied, rows written, not yet visible
    store.merge("coco", more_proposals)
    version = store.commit("precompute shard 3")   # one snapshot with message + metadata

Only commits are visible to readers (``FitReader``), always as whole snapshots. A crash before
``commit`` leaves the store at its last commit. If another process committed to the branch
since this writer's session began, ``commit`` re-reads the new tip, re-applies every pending
proposal with the merge rule and tries again: never last-writer-wins, never a lost improvement.
The writer keeps the proposals merged since its last commit (at most one per row and dataset)
for that replay, and an in-memory copy of each dataset it writes for the merge itself.
"""

from __future__ import annotations

import getpass
import json
import logging
import random
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import icechunk
import numpy as np

from spinfits.errors import ConflictError, InputError, StorageError
from spinfits.store.diff import FitDiff
from spinfits.store.failures import Failures, read_failures, write_failures
from spinfits.store.fits import Fits, Proposals, row_numbers
from spinfits.store.fork import StoreFork, check_proposals, check_rows_in_range
from spinfits.store.layout import (
    check_dataset_name,
    create_dataset_group,
    init_root,
    list_datasets,
    load_fits,
    open_columns,
    read_root,
    unknown_dataset,
    write_rows,
)
from spinfits.store.location import S3Options, StoreLocation
from spinfits.store.merge_rule import best_per_row, merge_into, refusals
from spinfits.store.reader import FitReader
from spinfits.store.schema import CHUNK_ROWS, BodyModelInfo, DatasetInfo, config_hash
from spinfits.store.versions import Version, resolve_version

log = logging.getLogger(__name__)


def default_who() -> str:
    """``user@host``, recorded as the committer when the caller names nobody."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def icechunk_reason(error: BaseException) -> str:
    """The first line of an icechunk error (they carry a long Rust backtrace after it)."""
    for line in str(error).splitlines():
        line = line.strip().removeprefix("x ").strip()
        if line:
            return line
    return type(error).__name__


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
        raise InputError(
            f"{location} looks like a store but cannot be opened (corrupt?): {icechunk_reason(error)}"
        ) from None


class FitStore:
    """A spinfits store at ``location``: datasets of best fits, versioned by icechunk.

    Use ``FitStore.create`` or ``FitStore.open``. One ``FitStore`` is one writer on ``branch``;
    readers use ``reader()``. Not thread-safe: share it across threads behind a lock, or give
    each process its own (forks for workers, see ``fork``).
    """

    def __init__(
        self, repo: icechunk.Repository, location: StoreLocation, body_model: BodyModelInfo, branch: str
    ) -> None:
        self._repo = repo
        self._location = location
        self._body_model = body_model
        self._branch = branch
        self._session: icechunk.Session | None = None
        self._infos: dict[str, DatasetInfo] = {}
        self._columns: dict[str, dict[str, Any]] = {}
        # Working copies: every row of each dataset written, as of the session (base + merges).
        self._working: dict[str, Fits] = {}
        self._working_snapshot: str | None = None
        self._changed: dict[str, np.ndarray] = {}  # dataset -> (N,) bool, changed since base
        # Proposals merged since the last commit, best per row: (dataset, accept_unscored) -> it.
        self._pending: dict[tuple[str, bool], Proposals] = {}
        # Rows recorded as failed since the last commit: dataset -> {row: reason}.
        self._pending_failures: dict[str, dict[int, str]] = {}
        self._failures: dict[str, Failures] = {}  # working copies, as of the session
        self._refused: dict[str, dict[str, int]] = {}  # dataset -> reason -> proposals refused
        self._needs_replay = False
        self._jitter = random.Random()  # backoff after a lost commit race

    # ----------------------------------------------------------------------------- open/create
    @classmethod
    def create(
        cls,
        location: str | Path | StoreLocation,
        body_model: BodyModelInfo,
        *,
        s3: S3Options | None = None,
    ) -> FitStore:
        """Create an empty store (no datasets, branch ``main``) for fits of ``body_model``.

        A local ``location`` must not exist or be an empty directory.
        """
        if not isinstance(body_model, BodyModelInfo):
            raise InputError(
                f"body_model must be a BodyModelInfo(fingerprint, is_standin), got {type(body_model).__name__}"
            )
        if not body_model.fingerprint:
            raise InputError("body_model.fingerprint is empty; give a string identifying the body model files")
        where = StoreLocation.parse(location, s3)
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
            raise InputError(f"cannot create a store at {where}: {icechunk_reason(error)}") from None
        session = repo.writable_session("main")
        init_root(session.store, body_model)
        with where.commit_lock():
            session.commit("create spinfits store", metadata={"who": default_who(), "rows_improved": 0})
        log.info("created store at %s for body model %s", where, body_model.describe())
        return cls(repo, where, body_model, "main")

    @staticmethod
    def exists(location: str | Path | StoreLocation, *, s3: S3Options | None = None) -> bool:
        """Whether ``location`` holds a repository (local or object storage); no validation."""
        where = StoreLocation.parse(location, s3)
        if where.is_local and not where.path.is_dir():
            return False
        try:
            return bool(icechunk.Repository.exists(where.storage()))
        except (icechunk.IcechunkError, ValueError, OSError) as error:
            raise InputError(f"cannot reach a store at {where}: {icechunk_reason(error)}") from None

    @classmethod
    def open(
        cls,
        location: str | Path | StoreLocation,
        *,
        body_model: BodyModelInfo | str | None = None,
        s3: S3Options | None = None,
        branch: str = "main",
    ) -> FitStore:
        """Open an existing store.

        body_model: the body model (or its fingerprint) the caller's fits belong to; if it is not
        the store's, ``InputError`` (fits of different models must never mix). None = no check
        (for reading and inspection).
        """
        where = StoreLocation.parse(location, s3)
        repo = _open_repo(where)
        if branch not in repo.list_branches():
            raise InputError(f"store {where} has no branch {branch!r}; branches: {sorted(repo.list_branches())}")
        try:
            repo.lookup_snapshot(repo.lookup_branch(branch))  # zarr would hide a missing snapshot
            stored = read_root(repo.readonly_session(branch=branch).store, str(where))
        except (icechunk.IcechunkError, OSError) as error:
            raise InputError(f"store {where} cannot be read (corrupt?): {icechunk_reason(error)}") from None
        if body_model is not None:
            wanted = body_model.fingerprint if isinstance(body_model, BodyModelInfo) else str(body_model)
            if wanted != stored.fingerprint:
                raise InputError(
                    f"store {where} holds fits of body model {stored.describe()!r}, but the caller "
                    f"uses body model {wanted!r}; fits of different body models must not mix: open "
                    "(or create) a store for this body model instead"
                )
        return cls(repo, where, stored, branch)

    # ------------------------------------------------------------------------------ properties
    @property
    def location(self) -> StoreLocation:
        return self._location

    @property
    def branch(self) -> str:
        return self._branch

    @property
    def body_model(self) -> BodyModelInfo:
        return self._body_model

    @property
    def repository(self) -> icechunk.Repository:
        """The underlying icechunk repository (for advanced use; prefer this class's methods)."""
        return self._repo

    def tip(self) -> str:
        """Snapshot id at the tip of this store's branch."""
        return self._repo.lookup_branch(self._branch)

    def datasets(self, version: str | None = None) -> dict[str, DatasetInfo]:
        """The datasets at ``version`` (branch, tag or snapshot id; None = tip of the branch)."""
        snapshot = self.resolve(version)
        return list_datasets(self._repo.readonly_session(snapshot_id=snapshot).store)

    def dataset(self, name: str, version: str | None = None) -> DatasetInfo:
        infos = self.datasets(version)
        if name not in infos:
            raise unknown_dataset(name, infos)
        return infos[name]

    def resolve(self, version: str | None = None) -> str:
        """Snapshot id of ``version`` (branch, tag or snapshot id; None = tip of the branch)."""
        return resolve_version(self._repo, self._branch if version is None else version).snapshot_id

    # ---------------------------------------------------------------------------------- writer
    def _begin(self) -> icechunk.Session:
        """The writable session, started at the branch tip if there is none."""
        if self._session is None:
            self._session = self._repo.writable_session(self._branch)
            self._infos = list_datasets(self._session.store)
            self._columns = {}
            self._changed = {}
            if self._session.snapshot_id != self._working_snapshot:
                self._working = {}
                self._working_snapshot = self._session.snapshot_id
        return self._session

    def _working_fits(self, dataset: str) -> Fits:
        session = self._begin()
        if dataset not in self._working:
            self._working[dataset] = load_fits(session.store, dataset)
        if dataset not in self._columns:
            self._columns[dataset] = open_columns(session.store, dataset, mode="r+")
            self._changed[dataset] = np.zeros(self._infos[dataset].n_rows, dtype=bool)
        return self._working[dataset]

    def _drop_session(self) -> None:
        """Forget the session and the working copies (pending proposals are kept)."""
        self._session = None
        self._working = {}
        self._working_snapshot = None
        self._columns = {}
        self._changed = {}
        self._failures = {}

    def _working_failures(self, dataset: str) -> Failures:
        session = self._begin()
        if dataset not in self._failures:
            self._failures[dataset] = read_failures(session.store, dataset, self._infos[dataset].n_rows)
        return self._failures[dataset]

    def _write_failures(self, dataset: str, failures: Failures) -> None:
        write_failures(self._begin().store, dataset, failures, self._infos[dataset].chunk_rows)
        self._failures[dataset] = failures

    def _apply(self, dataset: str, best: Proposals) -> np.ndarray:
        """Merge ``best`` into the session; returns the rows that changed."""
        fits = self._working_fits(dataset)
        try:
            outcome = merge_into(fits, best)
            write_rows(self._columns[dataset], fits, outcome.rows, self._infos[dataset].chunk_rows)
            failures = self._working_failures(dataset)
            if failures.mask[outcome.rows].any():  # a row that gets a fit is no longer failed
                self._write_failures(dataset, failures.with_cleared(outcome.rows))
        except BaseException as error:
            # The working copy may be ahead of the session now: start over from pending.
            self._drop_session()
            self._needs_replay = True
            if isinstance(error, (icechunk.IcechunkError, OSError)):
                raise self._storage_error("write the merged rows", error) from None
            raise
        self._changed[dataset][outcome.rows] = True
        return outcome.rows

    def _storage_error(self, action: str, error: BaseException) -> StorageError:
        try:
            tip = self.tip()
        except Exception:  # noqa: BLE001 - the storage itself may be what failed
            tip = "unknown"
        return StorageError(
            f"could not {action} in the store at {self._location}: {icechunk_reason(error)}. "
            f"The store is unchanged at its last commit ({tip}); this writer keeps its "
            "uncommitted merges. Fix the storage (free space, permissions, connection) and commit "
            "again, or rerun the job: it resumes from the last commit"
        )

    def _replay(self) -> None:
        """Start a fresh session at the branch tip and re-apply every pending proposal."""
        self._drop_session()
        self._begin()
        for dataset in {name for name, _ in self._pending} | set(self._pending_failures):
            if dataset not in self._infos:
                raise ConflictError(
                    f"dataset {dataset!r} no longer exists on branch {self._branch!r} (rolled back "
                    "by someone else?); the pending proposals for it were not committed"
                )
        for (dataset, _), proposals in self._pending.items():
            self._apply(dataset, proposals)
        for dataset, failed in self._pending_failures.items():
            self._apply_failures(dataset, failed)
        self._needs_replay = False

    def merge(self, dataset: str, proposals: Proposals, *, accept_unscored: bool = False) -> int:
        """Merge ``proposals`` into ``dataset`` by SPIN's rule; returns how many rows improved.

        A row is replaced only if the proposed loss is finite and strictly lower (equal losses:
        see ``spinfits.store.merge_rule``); NaN/inf losses never land. Duplicated rows within
        ``proposals`` resolve by the same rule, so the result does not depend on order, and
        merging the same proposals again changes nothing.

        accept_unscored: also accept loss +inf proposals, which fill rows that have no scored
        fit yet (used to import fits of unknown loss; any finite fit replaces them later).

        The change is written to storage but only visible to others after ``commit``. Bad input
        (``InputError``: unknown dataset, rows out of range, wrong shapes) changes nothing.
        """
        proposals = check_proposals(proposals)
        if self._needs_replay:
            self._replay()
        self._begin()
        if dataset not in self._infos:
            raise unknown_dataset(dataset, self._infos)
        check_rows_in_range(proposals, self._infos[dataset])
        self._count_refusals(dataset, proposals, accept_unscored)
        best = best_per_row(proposals, accept_unscored)
        if len(best) == 0:
            return 0
        rows = self._apply(dataset, best)
        key = (dataset, accept_unscored)
        previous = self._pending.get(key)
        self._pending[key] = best if previous is None else best_per_row(Proposals.concat([previous, best]), accept_unscored)
        log.debug("merged %d proposals into %s: %d rows improved", len(proposals), dataset, rows.size)
        return int(rows.size)

    def _count_refusals(self, dataset: str, proposals: Proposals, accept_unscored: bool) -> None:
        reasons = refusals(proposals, accept_unscored)
        if not reasons:
            return
        counts = self._refused.setdefault(dataset, {})
        for reason, mask in reasons.items():
            counts[reason] = counts.get(reason, 0) + int(mask.sum())
        log.warning(
            "refused %s proposal(s) for %s (never stored): %s; first rows %s",
            sum(int(m.sum()) for m in reasons.values()), dataset,
            ", ".join(f"{reason}: {int(mask.sum())}" for reason, mask in reasons.items()),
            proposals.rows[np.flatnonzero(np.logical_or.reduce(list(reasons.values())))[:5]].tolist(),
        )

    def refused(self) -> dict[str, dict[str, int]]:
        """Proposals refused by this writer since it was opened: dataset -> reason -> count.

        Refused proposals (negative loss, non-finite or implausible parameters; see
        ``spinfits.store.merge_rule.refusals``) are never stored.
        """
        return {name: dict(counts) for name, counts in self._refused.items()}

    def record_failures(self, dataset: str, rows: Any, reasons: Sequence[str]) -> int:
        """Record ``rows`` ((M,) dataset rows) of ``dataset`` as failed, one reason text each.

        Rows that hold a scored fit keep it and are not marked (their fit stands). Like merges,
        failures become visible with the next ``commit``; a row that later receives a fit is no
        longer failed. Returns how many rows were marked.
        """
        rows = row_numbers(rows)
        reasons = [str(reason) for reason in reasons]
        if len(reasons) != len(rows):
            raise InputError(f"record_failures needs one reason per row: {len(rows)} rows, {len(reasons)} reasons")
        if self._needs_replay:
            self._replay()
        self._begin()
        if dataset not in self._infos:
            raise unknown_dataset(dataset, self._infos)
        if rows.size and int(rows.max()) >= self._infos[dataset].n_rows:
            raise InputError(
                f"rows must lie in [0, {self._infos[dataset].n_rows}) for dataset {dataset!r}, "
                f"got row {int(rows.max())}"
            )
        failed = dict(zip(rows.tolist(), reasons))
        marked = self._apply_failures(dataset, failed)
        self._pending_failures.setdefault(dataset, {}).update(failed)
        return marked

    def _apply_failures(self, dataset: str, failed: dict[int, str]) -> int:
        fits = self._working_fits(dataset)
        rows = np.fromiter(failed, dtype=np.int64, count=len(failed))
        keep = ~np.isfinite(fits.loss[rows])
        if not keep.any():
            return 0
        texts = [failed[row] for row in rows[keep].tolist()]
        try:
            self._write_failures(dataset, self._working_failures(dataset).with_failed(rows[keep], texts))
        except (icechunk.IcechunkError, OSError) as error:
            self._drop_session()
            self._needs_replay = True
            raise self._storage_error("record failed rows", error) from None
        return int(keep.sum())

    def failures(self, dataset: str, version: str | None = None) -> Failures:
        """Committed failed rows of ``dataset`` at ``version`` (None = tip), with reasons."""
        info = self.dataset(dataset, version)
        store = self._repo.readonly_session(snapshot_id=self.resolve(version)).store
        return read_failures(store, dataset, info.n_rows)

    @property
    def has_pending(self) -> bool:
        """True if proposals were merged (or failures recorded) since the last commit."""
        return bool(self._pending) or bool(self._pending_failures)

    def pending_rows(self) -> dict[str, int]:
        """Per dataset, rows changed by merges since the last commit (as of this session)."""
        return {name: int(mask.sum()) for name, mask in self._changed.items() if mask.any()}

    def discard(self) -> None:
        """Drop everything merged since the last commit."""
        self._pending = {}
        self._pending_failures = {}
        self._needs_replay = False
        self._drop_session()

    def commit(
        self,
        message: str,
        *,
        who: str | None = None,
        config_hash: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        max_attempts: int = 20,
    ) -> Version | None:
        """Commit the pending merges as one snapshot; returns it, or None if nothing improved.

        Metadata recorded: ``who`` (default user@host), ``rows_improved`` (total and per dataset),
        ``config_hash`` (default: the fitting config hash of the datasets written) and the
        caller's ``metadata``. On a local store the commit lock is held while a concurrent
        writer's newer tip is re-read and the pending merges re-applied by the merge rule, so the
        commit cannot lose a race; on object storage a lost race is retried (exponential backoff
        with jitter) up to ``max_attempts`` times, then ``ConflictError`` (pending merges kept).
        A storage failure (read-only, disk full) raises ``StorageError``; the store stays at its
        last commit and the pending merges are kept.
        """
        if not isinstance(message, str) or not message.strip():
            raise InputError(f"commit message must be a non-empty string, got {message!r}")
        if not self.has_pending:
            log.info("nothing to commit on %s", self._branch)
            return None
        for attempt in range(1, max_attempts + 1):
            try:
                with self._location.commit_lock():
                    snapshot = self._commit_once(message, who, config_hash, metadata, attempt)
            except icechunk.ConflictError as error:
                # Object storage only: a local store's lock is held across replay and commit.
                log.info(
                    "commit attempt %d on %s lost a race (%s); re-reading the tip and re-applying "
                    "the merge rule", attempt, self._branch, icechunk_reason(error),
                )
                self._needs_replay = True
                time.sleep(self._jitter.uniform(0.0, min(2.0, 0.01 * 2**attempt)))  # backoff + jitter
                continue
            except (icechunk.IcechunkError, OSError) as error:
                self._drop_session()
                self._needs_replay = True
                raise self._storage_error("commit", error) from None
            if snapshot is None:
                return None
            self._pending = {}
            self._pending_failures = {}
            self._session = None
            self._columns = {}
            self._changed = {}
            self._failures = {}
            self._working_snapshot = snapshot  # the working copies now equal this snapshot
            version = Version.from_snapshot(self._repo.lookup_snapshot(snapshot))
            log.info("committed %s on %s: %s rows improved", snapshot, self._branch, version.rows_improved)
            return version
        raise ConflictError(
            f"could not commit to branch {self._branch!r} after {max_attempts} attempts: other "
            "writers kept committing first; the merges are still pending, call commit again"
        )

    def _commit_once(self, message: str, who: str | None, config_hash: str | None,
                     metadata: Mapping[str, Any] | None, attempt: int) -> str | None:
        """One commit attempt (under the local commit lock): the snapshot id, or None when the
        pending work changes nothing on the tip."""
        if self._location.is_local and self._session is not None and self._session.snapshot_id != self.tip():
            self._needs_replay = True  # another writer committed: replay onto its tip, under the lock
        if self._needs_replay:
            self._replay()
        session = self._begin()
        if not session.has_uncommitted_changes:
            log.info("pending proposals improve nothing on the tip of %s; nothing to commit", self._branch)
            self._pending = {}
            self._pending_failures = {}
            self._drop_session()
            return None
        improved = self.pending_rows()
        datasets = sorted({name for name, _ in self._pending} | set(self._pending_failures))
        hashes = {name: self._infos[name].config_hash for name in datasets}
        record = {
            **dict(metadata or {}),
            "who": who or default_who(),
            "rows_improved": sum(improved.values()),
            "rows_improved_by_dataset": improved,
            "config_hash": config_hash
            or (hashes[datasets[0]] if len(datasets) == 1 else _combined_hash(hashes)),
            "attempts": attempt,
        }
        if self._pending_failures:
            record["rows_failed"] = {name: len(rows) for name, rows in self._pending_failures.items()}
        return session.commit(message, metadata=record)

    # ----------------------------------------------------------------------------- datasets
    def create_dataset(
        self,
        name: str,
        n_rows: int,
        *,
        dataset_fingerprint: str,
        fitting_config: Mapping[str, Any] | None = None,
        chunk_rows: int = CHUNK_ROWS,
        who: str | None = None,
    ) -> DatasetInfo:
        """Add an empty dataset group of ``n_rows`` rows (no fits yet) and commit it.

        dataset_fingerprint: identifies the dataset file (e.g. a hash of the npz), so fits are
        never applied to another dataset's rows; fitting_config: JSON-serialisable settings of
        the fitting that will fill it (its hash goes into commit metadata).
        """
        check_dataset_name(name)
        if isinstance(n_rows, bool) or not isinstance(n_rows, (int, np.integer)) or n_rows < 1:
            raise InputError(f"n_rows must be a positive integer (rows of the dataset), got {n_rows!r}")
        if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1:
            raise InputError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
        if self._pending:
            raise InputError("commit or discard the pending merges before creating a dataset")
        try:
            json.dumps(dict(fitting_config or {}))
        except (TypeError, ValueError) as error:
            raise InputError(f"fitting_config must be a JSON-serialisable mapping: {error}") from None
        info = DatasetInfo(
            name=name,
            n_rows=int(n_rows),
            dataset_fingerprint=str(dataset_fingerprint),
            fitting_config=dict(fitting_config or {}),
            body_model=self._body_model,
            chunk_rows=int(chunk_rows),
        )
        self._drop_session()
        session = self._repo.writable_session(self._branch)
        existing = list_datasets(session.store)
        if name in existing:
            raise InputError(f"dataset {name!r} already exists in {self._location}; pick another name")
        create_dataset_group(session.store, info)
        try:
            with self._location.commit_lock():
                session.commit(
                    f"create dataset {name} ({n_rows} rows)",
                    metadata={"who": who or default_who(), "rows_improved": 0, "config_hash": info.config_hash},
                )
        except icechunk.ConflictError:
            raise ConflictError(f"another writer changed {self._branch!r} while creating {name!r}; retry") from None
        log.info("created dataset %s with %d rows", name, n_rows)
        return info

    # -------------------------------------------------------------------------------- forks
    def fork(self) -> StoreFork:
        """A picklable forked session of the branch tip for a worker process to stage proposals.

        Send it to the worker, call ``fork.stage(dataset, proposals)`` there, send it back and
        pass it to ``merge_forks``. Forks never commit.
        """
        return StoreFork(self._repo.writable_session(self._branch).fork())

    def merge_forks(self, forks: Sequence[StoreFork]) -> int:
        """Merge every proposal staged in ``forks`` by the merge rule; returns rows improved.

        Forks may come from older snapshots of the branch; the rule is applied against this
        writer's current state. Call ``commit`` afterwards (once for all forks).
        """
        batches: dict[tuple[str, bool], list[Proposals]] = {}
        for fork in forks:
            if not isinstance(fork, StoreFork):
                raise InputError(f"merge_forks takes StoreFork objects from FitStore.fork(), got {type(fork).__name__}")
            for dataset, accept, proposals in fork.staged():
                batches.setdefault((dataset, accept), []).append(proposals)
        if self._needs_replay:
            self._replay()
        self._begin()
        before = {name: mask.copy() for name, mask in self._changed.items()}
        for (dataset, accept), parts in sorted(batches.items()):
            self.merge(dataset, Proposals.concat(parts), accept_unscored=accept)
        return sum(
            int((mask & ~before.get(name, np.zeros_like(mask))).sum()) for name, mask in self._changed.items()
        )

    # ------------------------------------------------------------------------------ reading
    def reader(self, dataset: str, version: str | None = None) -> FitReader:
        """A ``FitReader`` of ``dataset`` pinned at ``version`` (None = tip); follows this branch."""
        return FitReader(self._repo, dataset, version=version, branch=self._branch)

    def read(self, dataset: str, version: str | None = None, rows: Any = None) -> Fits:
        """Committed fits of ``dataset`` at ``version`` (None = tip): all rows or ``rows``."""
        reader = self.reader(dataset, version)
        return reader.read_all() if rows is None else reader.read_rows(rows)

    # ------------------------------------------------------------------------------ history
    def log(self, version: str | None = None, limit: int | None = None) -> list[Version]:
        """Commits reachable from ``version`` (None = tip of the branch), newest first."""
        snapshot = self.resolve(version)
        versions = []
        for info in self._repo.ancestry(snapshot_id=snapshot):
            versions.append(Version.from_snapshot(info))
            if limit is not None and len(versions) >= limit:
                break
        return versions

    def tags(self) -> dict[str, str]:
        """Tag name -> snapshot id."""
        return {name: self._repo.lookup_tag(name) for name in sorted(self._repo.list_tags())}

    def tag(self, name: str, version: str | None = None) -> str:
        """Name ``version`` (None = tip) ``name``, permanently; returns the snapshot id."""
        if not isinstance(name, str) or not name or "/" in name:
            raise InputError(f"tag name must be a non-empty string without '/', got {name!r}")
        if name in self._repo.list_tags() or name in self._repo.list_branches():
            raise InputError(f"{name!r} already names a tag or branch; tags are immutable, pick another name")
        snapshot = self.resolve(version)
        with self._location.commit_lock():
            self._repo.create_tag(name, snapshot)
        return snapshot

    def rollback(self, version: str) -> str:
        """Move this branch back to ``version`` (an earlier commit of it); returns the old tip.

        Later commits leave the branch history (``log`` no longer shows them) but stay readable
        by snapshot id, so rolling forward again is ``rollback(old_tip)``. Pending merges must be
        committed or discarded first.
        """
        if self._pending:
            raise InputError("commit or discard the pending merges before rolling back")
        target = self.resolve(version)
        with self._location.commit_lock():
            tip = self.tip()
            # Back to an ancestor of the tip, or forward again to a commit rolled back from.
            back = target in {info.id for info in self._repo.ancestry(snapshot_id=tip)}
            if not back and tip not in {info.id for info in self._repo.ancestry(snapshot_id=target)}:
                raise InputError(
                    f"version {version!r} ({target}) is not in the history of branch "
                    f"{self._branch!r}; roll back only to a commit that `spinfits store log` shows"
                )
            read_root(self._repo.readonly_session(snapshot_id=target).store, str(self._location))
            try:
                self._repo.reset_branch(self._branch, target, from_snapshot_id=tip)
            except icechunk.IcechunkError as error:
                raise ConflictError(f"branch {self._branch!r} moved during rollback ({error}); retry") from None
        self._drop_session()
        log.info("rolled %s back from %s to %s", self._branch, tip, target)
        return tip

    def diff(self, dataset: str, from_version: str, to_version: str | None = None) -> FitDiff:
        """Rows of ``dataset`` that differ between two versions, with their losses in each."""
        from_snapshot = self.resolve(from_version)
        to_snapshot = self.resolve(to_version)
        to_fits = self.reader(dataset, to_snapshot).read_all()
        from_store = self._repo.readonly_session(snapshot_id=from_snapshot).store
        if dataset in list_datasets(from_store):
            from_fits = load_fits(from_store, dataset)
        else:
            from_fits = Fits.empty(len(to_fits))
        return FitDiff.between(dataset, from_snapshot, from_fits, to_snapshot, to_fits)


def _combined_hash(hashes: dict[str, str]) -> str:
    return config_hash(hashes)
