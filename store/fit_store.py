"""``FitStore``: the versioned best-fit store, one writer's handle on it.

Lifecycle of a write::

    store = FitStore.open("fits.icechunk", body_model=BodyModelInfo("smpl-1.0-abc123"))
    store.merge("coco", proposals)       # merge rule applied in memory, not yet visible
    store.merge("coco", more_proposals)
    version = store.commit("precompute shard 3")   # one snapshot with message + metadata

Opening and creating live in ``repository``, history (log, tags, rollback, diff) in ``history``,
failed rows in ``failures``; this module is the writing session: merge, replay, commit.

Merges are buffered: ``merge`` applies the rule to an in-memory working copy of the dataset
(``WorkingCopy``: every row's loss and the rows merged since its snapshot, 4 B a row) and marks
the rows it changed; ``commit`` writes each changed row once (``dataset_writes``: appended to
the dataset's update log, or folded into its column chunks) and commits, all under the local
commit lock. Only commits are visible to readers (``FitReader``), always as whole snapshots. A
crash before or during ``commit`` leaves the store at its last commit (chunks written by a commit
that did not finish are garbage for ``FitStore.gc``). If another process committed to the branch
since this writer's working copies were read, ``commit`` re-reads the new tip, re-applies every
pending proposal with the merge rule and writes that: never last-writer-wins, never a lost
improvement. The writer keeps the proposals merged since its last commit (at most one per row and
dataset) for that replay.
"""

from __future__ import annotations

import datetime
import json
import logging
import random
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import icechunk
import numpy as np

from spinfits.errors import ConflictError, InputError, StorageError
from spinfits.store import garbage_collection, history
from spinfits.store.damage import icechunk_reason, naming_store
from spinfits.store.dataset_writes import DatasetWrite, write_dataset
from spinfits.store.diff import FitDiff
from spinfits.store.failures import Failures, read_failures, write_failures
from spinfits.store.fits import Fits, Proposals, check_proposals, row_numbers
from spinfits.store.garbage_collection import GcReport
from spinfits.store.layout import (
    check_dataset_name,
    create_dataset_group,
    list_datasets,
    load_losses,
    unknown_dataset,
)
from spinfits.store.location import S3Options, StoreLocation
from spinfits.store.merge_rule import any_reason, best_per_row, refusals
from spinfits.store.reader import FitReader
from spinfits.store.repository import (
    create_repository,
    default_who,
    open_repository,
    repository_exists,
)
from spinfits.store.schema import CHUNK_ROWS, BodyModelInfo, DatasetInfo, config_hash
from spinfits.store.stalled_storage import bounded
from spinfits.store.versions import Version, resolve_version, snapshot_store
from spinfits.store.working_copy import WorkingCopy
from spinfits.store.write_policy import WritePolicy

log = logging.getLogger(__name__)


class FitStore:
    """A spinfits store at ``location``: datasets of best fits, versioned by icechunk.

    Use ``FitStore.create`` or ``FitStore.open``. One ``FitStore`` is one writer on ``branch``;
    readers use ``reader()``. Not thread-safe: share it across threads behind a lock
    (``spinfits.store.StoreWriter`` does), or give each process its own. ``write_policy``: when
    a commit appends its changed rows to a dataset's update log and when it folds the log into
    the columns (``WritePolicy``; readers read either).
    """

    def __init__(
        self,
        repo: icechunk.Repository,
        location: StoreLocation,
        body_model: BodyModelInfo,
        branch: str,
        write_policy: WritePolicy | None = None,
    ) -> None:
        self._repo = repo
        self._location = location
        self._body_model = body_model
        self._branch = branch
        self._policy = _checked_policy(write_policy)
        # Working copies, all as of snapshot ``_base`` plus the merges since (None: none read).
        self._base: str | None = None
        self._last_known: str | None = None  # last snapshot read or committed (kept by _forget)
        self._infos: dict[str, DatasetInfo] = {}
        self._working: dict[str, WorkingCopy] = {}  # each dataset merged into (losses + changes)
        self._failures: dict[str, Failures] = {}  # working copies of the failed rows
        self._failures_changed: dict[str, np.ndarray] = {}  # dataset -> (N,) bool
        # Proposals merged since the last commit: (dataset, accept_unscored) -> parts, each best
        # per row; reduced to one part by the rule when they grow to twice the last reduction.
        self._pending: dict[tuple[str, bool], list[Proposals]] = {}
        # Rows recorded as failed since the last commit: dataset -> {row: reason}.
        self._pending_failures: dict[str, dict[int, str]] = {}
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
        write_policy: WritePolicy | None = None,
    ) -> FitStore:
        """Create an empty store (no datasets, branch ``main``) for fits of ``body_model``.

        A local ``location`` must not exist or be an empty directory.
        """
        where = StoreLocation.parse(location, s3)
        policy = _checked_policy(write_policy)
        return cls(create_repository(where, body_model), where, body_model, "main", policy)

    @staticmethod
    def exists(location: str | Path | StoreLocation, *, s3: S3Options | None = None) -> bool:
        """Whether ``location`` holds a repository (local or object storage); no validation."""
        return repository_exists(StoreLocation.parse(location, s3))

    @classmethod
    def open(
        cls,
        location: str | Path | StoreLocation,
        *,
        body_model: BodyModelInfo | str | None = None,
        s3: S3Options | None = None,
        branch: str = "main",
        write_policy: WritePolicy | None = None,
    ) -> FitStore:
        """Open an existing store.

        body_model: the body model (or its fingerprint) the caller's fits belong to; if it is not
        the store's, ``InputError`` (fits of different models must never mix). None = no check
        (for reading and inspection).
        """
        where = StoreLocation.parse(location, s3)
        policy = _checked_policy(write_policy)
        repo, stored = open_repository(where, branch, body_model)
        return cls(repo, where, stored, branch, policy)

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
    def write_policy(self) -> WritePolicy:
        return self._policy

    @property
    def repository(self) -> icechunk.Repository:
        """The underlying icechunk repository (for advanced use; prefer this class's methods)."""
        return self._repo

    @bounded("read the branch tip")
    def tip(self) -> str:
        """Snapshot id at the tip of this store's branch."""
        return self._repo.lookup_branch(self._branch)

    @bounded("list the datasets")
    def datasets(self, version: str | None = None) -> dict[str, DatasetInfo]:
        """The datasets at ``version`` (branch, tag or snapshot id; None = tip of the branch)."""
        snapshot = self.resolve(version)
        return list_datasets(snapshot_store(self._repo, snapshot))

    def dataset(self, name: str, version: str | None = None) -> DatasetInfo:
        infos = self.datasets(version)
        if name not in infos:
            raise unknown_dataset(name, infos)
        return infos[name]

    def resolve(self, version: str | None = None) -> str:
        """Snapshot id of ``version`` (branch, tag or snapshot id; None = tip of the branch)."""
        return resolve_version(self._repo, self._branch if version is None else version).snapshot_id

    # ---------------------------------------------------------------------------------- writer
    def _at_base(self) -> str:
        """The snapshot the working copies are read at (the branch tip when none are read yet)."""
        if self._base is None:
            self._set_base(self.tip())
        return self._base

    def _set_base(self, snapshot: str) -> None:
        self._forget()
        self._infos = list_datasets(snapshot_store(self._repo, snapshot))
        self._base = self._last_known = snapshot

    def _base_store(self) -> Any:
        return snapshot_store(self._repo, self._at_base())

    def _working_copy(self, dataset: str) -> WorkingCopy:
        if dataset not in self._working:
            self._working[dataset] = WorkingCopy(self._base_store(), self._infos[dataset])
        return self._working[dataset]

    def _working_failures(self, dataset: str) -> Failures:
        if dataset not in self._failures:
            n_rows = self._infos[dataset].n_rows
            self._failures[dataset] = read_failures(self._base_store(), dataset, n_rows)
            self._failures_changed[dataset] = np.zeros(n_rows, dtype=bool)
        return self._failures[dataset]

    def _set_failures(self, dataset: str, failures: Failures, rows: np.ndarray) -> None:
        self._working_failures(dataset)
        self._failures[dataset] = failures
        self._failures_changed[dataset][rows] = True

    def _forget(self) -> None:
        """Forget the working copies (pending proposals are kept)."""
        self._base = None
        self._infos = {}
        self._working = {}
        self._failures = {}
        self._failures_changed = {}

    def _apply(self, dataset: str, best: Proposals) -> np.ndarray:
        """Merge ``best`` into the working copy; returns the rows that changed."""
        try:
            with naming_store(self._location):
                outcome = self._working_copy(dataset).merge(best)
            failures = self._working_failures(dataset)
            if failures.mask[outcome.rows].any():  # a row that gets a fit is no longer failed
                self._set_failures(dataset, failures.with_cleared(outcome.rows), outcome.rows)
        except BaseException as error:
            # The working copy may be half-merged now: start over from pending.
            self._forget()
            self._needs_replay = True
            if isinstance(error, (icechunk.IcechunkError, OSError)):
                raise self._storage_error("read the dataset", error) from None
            raise
        return outcome.rows

    def _storage_error(self, action: str, error: BaseException) -> StorageError:
        # The last commit this writer knows, not the tip: asking failing storage for its tip
        # would wait out another round of its retries (about 30 s against a lost S3 endpoint).
        known = self._last_known or "none read yet"
        return StorageError(
            f"could not {action} in the store at {self._location}: {icechunk_reason(error)}. "
            f"The store is unchanged by this failure (this writer's last known commit: {known}); this writer keeps its "
            "uncommitted merges. Fix the storage (free space, permissions, connection) and commit "
            "again, or rerun the job: it resumes from the last commit"
        )

    def _replay(self, snapshot: str) -> None:
        """Read the working copies at ``snapshot`` and re-apply every pending proposal."""
        self._set_base(snapshot)
        for dataset in {name for name, _ in self._pending} | set(self._pending_failures):
            if dataset not in self._infos:
                raise ConflictError(
                    f"dataset {dataset!r} no longer exists on branch {self._branch!r} (rolled back "
                    "by someone else?); the pending proposals for it were not committed"
                )
        for (dataset, _), parts in self._pending.items():
            for part in parts:  # the rule is commutative: the parts' order does not matter
                self._apply(dataset, part)
        for dataset, failed in self._pending_failures.items():
            self._apply_failures(dataset, failed)
        self._needs_replay = False

    def _ready(self, dataset: str, rows: np.ndarray) -> None:
        """Working copies with pending work replayed; ``dataset`` exists and holds ``rows``
        (``InputError`` otherwise, before anything changes)."""
        if self._needs_replay:
            self._replay(self.tip())
        self._at_base()
        if dataset not in self._infos:
            tip = self.tip()
            if tip != self._base:  # created by someone else since the working copies were read
                self._replay(tip)
            if dataset not in self._infos:
                raise unknown_dataset(dataset, self._infos)
        check_rows_in_range(rows, self._infos[dataset])

    @bounded("merge (read the dataset)")
    def merge(self, dataset: str, proposals: Proposals, *, accept_unscored: bool = False) -> int:
        """Merge ``proposals`` into ``dataset`` by SPIN's rule; returns how many rows improved.

        A row is replaced only if the proposed loss is finite and strictly lower (equal losses:
        see ``spinfits.store.merge_rule``); NaN/inf losses never land. Duplicated rows within
        ``proposals`` resolve by the same rule, so the result does not depend on order, and
        merging the same proposals again changes nothing.

        accept_unscored: also accept loss +inf proposals, which fill rows that have no scored
        fit yet (used to import fits of unknown loss; any finite fit replaces them later).

        The change is kept in memory and written once, by ``commit``: merging many proposals
        between commits writes each changed row once. Bad input (``InputError``: unknown
        dataset, rows out of range, wrong shapes) changes nothing.
        """
        proposals = check_proposals(proposals)
        self._ready(dataset, proposals.rows)
        self._count_refusals(dataset, proposals, accept_unscored)
        best = best_per_row(proposals, accept_unscored)
        if len(best) == 0:
            return 0
        rows = self._apply(dataset, best)
        self._keep_pending((dataset, accept_unscored), best)
        log.debug("merged %d proposals into %s: %d rows improved", len(proposals), dataset, rows.size)
        return int(rows.size)

    def _keep_pending(self, key: tuple[str, bool], best: Proposals) -> None:
        """Keep ``best`` for a replay. Parts are reduced by the rule (at most one proposal per row)
        when they hold twice the rows of the last reduction, plus ``_PENDING_SLACK``: amortised,
        each merge costs its own rows, not all the rows pending (20,000 rows a commit by
        precompute's default)."""
        parts = self._pending.setdefault(key, [])
        parts.append(best)
        if sum(len(part) for part in parts) >= 2 * len(parts[0]) + _PENDING_SLACK:
            self._pending[key] = [best_per_row(Proposals.concat(parts), key[1])]

    def _count_refusals(self, dataset: str, proposals: Proposals, accept_unscored: bool) -> None:
        reasons = refusals(proposals, accept_unscored)
        if not reasons:
            return
        counts = self._refused.setdefault(dataset, {})
        for reason, mask in reasons.items():
            counts[reason] = counts.get(reason, 0) + int(mask.sum())
        log.warning(
            "refused %s proposal(s) for %s (never stored): %s; first rows %s",
            sum(int(m.sum()) for m in reasons.values()),
            dataset,
            ", ".join(f"{reason}: {int(mask.sum())}" for reason, mask in reasons.items()),
            proposals.rows[np.flatnonzero(any_reason(reasons, len(proposals)))[:5]].tolist(),
        )

    def refused(self) -> dict[str, dict[str, int]]:
        """Proposals refused by this writer since it was opened: dataset -> reason -> count.

        Refused proposals (negative loss, non-finite or implausible parameters; see
        ``spinfits.store.merge_rule.refusals``) are never stored.
        """
        return {name: dict(counts) for name, counts in self._refused.items()}

    @bounded("record failed rows")
    def record_failures(self, dataset: str, rows: Any, reasons: Sequence[str]) -> int:
        """Record ``rows`` ((M,) dataset rows) of ``dataset`` as failed, one reason text each.

        Rows that hold a scored fit keep it and are not marked (their fit stands). Like merges,
        failures become visible with the next ``commit``; a row that later receives a fit is no
        longer failed. Returns how many rows were marked.
        """
        rows = row_numbers(rows)
        reasons = [str(reason) for reason in reasons]
        if len(reasons) != len(rows):
            raise InputError(
                f"record_failures needs one reason per row: {len(rows)} rows, {len(reasons)} reasons"
            )
        self._ready(dataset, rows)
        failed = dict(zip(rows.tolist(), reasons))
        marked = self._apply_failures(dataset, failed)
        self._pending_failures.setdefault(dataset, {}).update(failed)
        return marked

    def _apply_failures(self, dataset: str, failed: dict[int, str]) -> int:
        rows = np.fromiter(failed, dtype=np.int64, count=len(failed))
        try:
            keep = ~np.isfinite(self._working_copy(dataset).loss[rows])
            if not keep.any():
                return 0
            texts = [failed[row] for row in rows[keep].tolist()]
            failures = self._working_failures(dataset).with_failed(rows[keep], texts)
        except (icechunk.IcechunkError, OSError) as error:
            self._forget()
            self._needs_replay = True
            raise self._storage_error("read the failed rows", error) from None
        self._set_failures(dataset, failures, rows[keep])
        return int(keep.sum())

    @bounded("read the failed rows")
    def failures(self, dataset: str, version: str | None = None) -> Failures:
        """Committed failed rows of ``dataset`` at ``version`` (None = tip), with reasons."""
        info = self.dataset(dataset, version)
        store = snapshot_store(self._repo, self.resolve(version))
        with naming_store(self._location):
            return read_failures(store, dataset, info.n_rows)

    @property
    def has_pending(self) -> bool:
        """True if proposals were merged (or failures recorded) since the last commit."""
        return bool(self._pending) or bool(self._pending_failures)

    def pending_rows(self) -> dict[str, int]:
        """Per dataset, rows changed by merges since the last commit (as of this session)."""
        counts = {name: len(working.changed_rows) for name, working in self._working.items()}
        return {name: count for name, count in counts.items() if count}

    def discard(self) -> None:
        """Drop everything merged since the last commit."""
        self._pending = {}
        self._pending_failures = {}
        self._needs_replay = False
        self._forget()

    @bounded("commit")
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
        caller's ``metadata``, and ``written`` (per dataset: ``"recent"``, ``"settle"`` or
        ``"fold"``, how its changed rows were written; see ``WritePolicy``).
        Each changed row is written once here, whatever number of merges changed it. On a local
        store the commit lock is held while a concurrent writer's newer tip is re-read, the
        pending merges re-applied by the merge rule and written, so the commit cannot lose a
        race; on object storage a lost race is retried (exponential backoff with jitter) up to
        ``max_attempts`` times, then ``ConflictError`` (pending merges kept). A storage failure
        (read-only, disk full) raises ``StorageError``; the store stays at its last commit and
        the pending merges are kept.
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
                    "the merge rule",
                    attempt,
                    self._branch,
                    icechunk_reason(error),
                )
                self._needs_replay = True
                time.sleep(self._jitter.uniform(0.0, min(2.0, 0.01 * 2**attempt)))  # backoff + jitter
                continue
            except (icechunk.IcechunkError, OSError) as error:
                self._forget()
                self._needs_replay = True
                raise self._storage_error("commit", error) from None
            if snapshot is None:
                return None
            version = Version.from_snapshot(self._repo.lookup_snapshot(snapshot))
            log.info("committed %s on %s: %s rows improved", snapshot, self._branch, version.rows_improved)
            return version
        raise ConflictError(
            f"could not commit to branch {self._branch!r} after {max_attempts} attempts: other "
            "writers kept committing first; the merges are still pending, call commit again"
        )

    def _commit_once(
        self,
        message: str,
        who: str | None,
        config_hash: str | None,
        metadata: Mapping[str, Any] | None,
        attempt: int,
    ) -> str | None:
        """One commit attempt (under the local commit lock): the snapshot id, or None when the
        pending work changes nothing on the tip."""
        session = self._repo.writable_session(self._branch)
        if self._needs_replay or session.snapshot_id != self._base:
            self._replay(session.snapshot_id)  # another writer committed: re-apply onto its tip
        changed = {name: working for name, working in self._working.items() if len(working.changed_rows)}
        failed = {name: np.flatnonzero(mask) for name, mask in self._failures_changed.items() if mask.any()}
        if not changed and not failed:
            log.info("pending proposals improve nothing on the tip of %s; nothing to commit", self._branch)
            self._pending = {}
            self._pending_failures = {}
            return None
        writes: dict[str, DatasetWrite] = {}
        for name, working in changed.items():
            writes[name] = write_dataset(session.store, working, self._policy)
        for name, rows in failed.items():
            write_failures(session.store, name, self._failures[name], rows, self._infos[name].chunk_rows)
        improved = {name: len(working.changed_rows) for name, working in changed.items()}
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
            "written": {name: write.how for name, write in writes.items()},
        }
        if self._pending_failures:
            record["rows_failed"] = {name: len(rows) for name, rows in self._pending_failures.items()}
        snapshot = session.commit(message, metadata=record)
        # The working copies now equal the new snapshot.
        committed = snapshot_store(self._repo, snapshot)
        for name, working in self._working.items():
            working.committed(committed, writes[name].log if name in writes else working.log)
        for mask in self._failures_changed.values():
            mask[:] = False
        self._base = self._last_known = snapshot
        self._pending = {}
        self._pending_failures = {}
        log.debug("commit %s wrote %s", snapshot, {name: (w.how, w.chunks) for name, w in writes.items()})
        return snapshot

    # ----------------------------------------------------------------------------- datasets
    @bounded("create a dataset")
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
        if self.has_pending:
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
        self._forget()
        session = self._repo.writable_session(self._branch)
        existing = list_datasets(session.store)
        if name in existing:
            raise InputError(f"dataset {name!r} already exists in {self._location}; pick another name")
        create_dataset_group(session.store, info)
        try:
            with self._location.commit_lock():
                session.commit(
                    f"create dataset {name} ({n_rows} rows)",
                    metadata={
                        "who": who or default_who(),
                        "rows_improved": 0,
                        "config_hash": info.config_hash,
                    },
                )
        except icechunk.ConflictError:
            raise ConflictError(
                f"another writer changed {self._branch!r} while creating {name!r}; retry"
            ) from None
        log.info("created dataset %s with %d rows", name, n_rows)
        return info

    # ------------------------------------------------------------------------------ reading
    def reader(self, dataset: str, version: str | None = None) -> FitReader:
        """A ``FitReader`` of ``dataset`` pinned at ``version`` (None = tip); follows this branch."""
        return FitReader(self._repo, dataset, version=version, branch=self._branch, location=self._location)

    @bounded("read the fits")
    def read(self, dataset: str, version: str | None = None, rows: Any = None) -> Fits:
        """Committed fits of ``dataset`` at ``version`` (None = tip): all rows or ``rows``."""
        reader = self.reader(dataset, version)
        return reader.read_all() if rows is None else reader.read_rows(rows)

    @bounded("read the losses")
    def losses(self, dataset: str, version: str | None = None) -> np.ndarray:
        """(N,) float32 committed loss of every row of ``dataset`` at ``version`` (None = tip;
        +inf: no scored fit): 4 B a row, where ``read`` holds 361."""
        snapshot = self.resolve(version)
        self.dataset(dataset, snapshot)  # InputError for an unknown dataset
        with naming_store(self._location):
            return load_losses(snapshot_store(self._repo, snapshot), dataset)[0]

    # ------------------------------------------------------------------------------ history
    def log(self, version: str | None = None, limit: int | None = None) -> list[Version]:
        """Commits reachable from ``version`` (None = tip of the branch), newest first."""
        return history.log(self._repo, self.resolve(version), limit)

    def tags(self) -> dict[str, str]:
        """Tag name -> snapshot id."""
        return history.tags(self._repo)

    def tag(self, name: str, version: str | None = None) -> str:
        """Name ``version`` (None = tip) ``name``, permanently; returns the snapshot id."""
        history.check_tag_name(self._repo, name)
        return history.tag(self._repo, self._location, name, self.resolve(version))

    def rollback(self, version: str) -> str:
        """Move this branch back to ``version`` (an earlier commit of it); returns the old tip.

        Later commits leave the branch history (``log`` no longer shows them) but stay readable
        by snapshot id, so rolling forward again is ``rollback(old_tip)``. Pending merges must be
        committed or discarded first.
        """
        if self.has_pending:
            raise InputError("commit or discard the pending merges before rolling back")
        tip = history.rollback(self._repo, self._location, self._branch, self.resolve(version), version)
        self._forget()
        return tip

    def diff(self, dataset: str, from_version: str, to_version: str | None = None) -> FitDiff:
        """Rows of ``dataset`` that differ between two versions, with their losses in each."""
        with naming_store(self._location):
            return history.diff(self._repo, dataset, self.resolve(from_version), self.resolve(to_version))

    # ----------------------------------------------------------------------------- storage
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
        report = garbage_collection.collect(
            self._repo,
            self._location,
            older_than=older_than,
            keep_last=keep_last,
            keep=keep,
            dry_run=dry_run,
            grace=grace,
        )
        if not dry_run:  # the working copies' snapshot may be gone: read them again when needed
            self._forget()
            self._needs_replay = self.has_pending
        return report


#: Proposal rows pending beyond twice the last reduction before the parts are reduced again.
_PENDING_SLACK = 4096


def check_rows_in_range(rows: np.ndarray, info: DatasetInfo) -> None:
    """``InputError`` unless every row (already ``row_numbers``: >= 0) is < the dataset's N."""
    if rows.size and int(rows.max()) >= info.n_rows:
        raise InputError(
            f"proposal rows must lie in [0, {info.n_rows}) for dataset {info.name!r}, got row "
            f"{int(rows.max())}; check the dataset the rows index"
        )


def _combined_hash(hashes: dict[str, str]) -> str:
    return config_hash(hashes)


def _checked_policy(policy: WritePolicy | None) -> WritePolicy:
    if policy is None:
        return WritePolicy()
    if not isinstance(policy, WritePolicy):
        raise InputError(
            f"write_policy must be a spinfits.store.WritePolicy, got {type(policy).__name__}; "
            "leave it out for the defaults"
        )
    return policy
