"""``FitStore``: the versioned best-fit store, one writer's handle on it.

Lifecycle of a write::

    store = FitStore.open("fits.icechunk", body_model=BodyModelInfo("smpl-1.0-abc123"))
    store.merge("coco", proposals)       # merge rule applied in memory, not yet visible
    store.merge("coco", more_proposals)
    version = store.commit("precompute shard 3")   # one snapshot with message + metadata

Opening and creating live in ``repository``, history (log, tags, rollback, diff, gc) in
``history`` (``store.history``), failed rows in ``failures``, the writing session (merge, replay,
commit) in ``write_session``; this class is the handle that joins them.

Merges are buffered: ``merge`` applies the rule to an in-memory working copy of the dataset
(``WorkingCopy``: every row's loss and the rows merged since its snapshot, 4 B a row) and marks
the rows it changed; ``commit`` writes each changed row once (``dataset_writes``: appended to
the dataset's update log, or folded into its column chunks) and commits, all under the local
commit lock. Only commits are visible to readers (``FitReader``), always as whole snapshots. A
crash before or during ``commit`` leaves the store at its last commit (chunks written by a commit
that did not finish are garbage for ``FitStore.history.gc``). If another process committed to the branch
since this writer's working copies were read, ``commit`` re-reads the new tip, re-applies every
pending proposal with the merge rule and writes that: never last-writer-wins, never a lost
improvement. The writer keeps the proposals merged since its last commit (at most one per row and
dataset) for that replay.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import icechunk
import numpy as np

from spinfits.errors import InputError
from spinfits.store.damage import naming_store
from spinfits.store.failures import Failures, read_failures
from spinfits.store.fits import Fits, Proposals, check_proposals
from spinfits.store.history import StoreHistory
from spinfits.store.layout import list_datasets, load_losses, unknown_dataset
from spinfits.store.location import S3Options, StoreLocation
from spinfits.store.reader import FitReader
from spinfits.store.repository import create_repository, open_repository, repository_exists
from spinfits.store.schema import CHUNK_ROWS, BodyModelInfo, DatasetInfo
from spinfits.store.stalled_storage import bounded
from spinfits.store.versions import Version, resolve_version, snapshot_store
from spinfits.store.write_policy import WritePolicy
from spinfits.store.write_session import WriteSession, commit_new_dataset, new_dataset_info

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
        self._session = WriteSession(repo, location, body_model, branch, self._policy)
        self._history = StoreHistory(repo, location, branch, self.resolve, self._session)

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

    @property
    def history(self) -> StoreHistory:
        """Log, tags, rollback, diff and gc of this store's branch (``StoreHistory``)."""
        return self._history

    # ---------------------------------------------------------------------------------- writer
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
        return self._session.merge(dataset, check_proposals(proposals), accept_unscored)

    def refused(self) -> dict[str, dict[str, int]]:
        """Proposals refused by this writer since it was opened: dataset -> reason -> count.

        Refused proposals (negative loss, non-finite or implausible parameters; see
        ``spinfits.store.merge_rule.refusals``) are never stored.
        """
        return self._session.refused()

    @bounded("record failed rows")
    def record_failures(self, dataset: str, rows: Any, reasons: Sequence[str]) -> int:
        """Record ``rows`` ((M,) dataset rows) of ``dataset`` as failed, one reason text each.

        Rows that hold a scored fit keep it and are not marked (their fit stands). Like merges,
        failures become visible with the next ``commit``; a row that later receives a fit is no
        longer failed. Returns how many rows were marked.
        """
        return self._session.record_failures(dataset, rows, reasons)

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
        return self._session.has_pending

    def pending_rows(self) -> dict[str, int]:
        """Per dataset, rows changed by merges since the last commit (as of this session)."""
        return self._session.pending_rows()

    def discard(self) -> None:
        """Drop everything merged since the last commit."""
        self._session.discard()

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
        snapshot = self._session.commit(message, who, config_hash, metadata, max_attempts)
        if snapshot is None:
            return None
        version = Version.from_snapshot(self._repo.lookup_snapshot(snapshot))
        log.info("committed %s on %s: %s rows improved", snapshot, self._branch, version.rows_improved)
        return version

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
        info = new_dataset_info(
            name, n_rows, dataset_fingerprint, fitting_config, chunk_rows, self._body_model
        )
        if self.has_pending:
            raise InputError("commit or discard the pending merges before creating a dataset")
        self._session.forget()
        commit_new_dataset(self._repo, self._location, self._branch, info, who)
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


def _checked_policy(policy: WritePolicy | None) -> WritePolicy:
    if policy is None:
        return WritePolicy()
    if not isinstance(policy, WritePolicy):
        raise InputError(
            f"write_policy must be a spinfits.store.WritePolicy, got {type(policy).__name__}; "
            "leave it out for the defaults"
        )
    return policy
