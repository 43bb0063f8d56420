"""``WriteSession``: one writer's uncommitted work on a branch, and the commit that writes it.

``FitStore`` holds one and hands it its public merge/commit calls. The session keeps working
copies of the datasets as of a base snapshot (``WorkingCopy``: every row's loss and the rows
merged since, 4 B a row; the failed rows, ``Failures``), the proposals and failures merged since
the last commit (at most one proposal per row and dataset after a reduction) and the refusals
counted. ``commit`` writes each changed row once (``dataset_writes``) and commits under the
local commit lock; if another process committed since the working copies were read, it re-reads
the new tip and replays every pending proposal with the merge rule: never last-writer-wins.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any

import icechunk
import numpy as np

from spinfits.errors import ConflictError, InputError, StorageError
from spinfits.store.damage import icechunk_reason, naming_store
from spinfits.store.dataset_writes import DatasetWrite, write_dataset
from spinfits.store.failures import Failures, read_failures, write_failures
from spinfits.store.fits import Proposals, row_numbers
from spinfits.store.layout import check_dataset_name, create_dataset_group, list_datasets, unknown_dataset
from spinfits.store.location import StoreLocation
from spinfits.store.merge_rule import any_reason, best_per_row, refusals
from spinfits.store.repository import default_who
from spinfits.store.schema import BodyModelInfo, DatasetInfo, config_hash
from spinfits.store.versions import snapshot_store
from spinfits.store.working_copy import WorkingCopy
from spinfits.store.write_policy import WritePolicy

log = logging.getLogger(__name__)

#: Proposal rows pending beyond twice the last reduction before the parts are reduced again.
PENDING_SLACK = 4096


class WriteSession:
    """The uncommitted merges of one writer on ``branch`` of ``repo`` (not thread-safe)."""

    def __init__(
        self,
        repo: icechunk.Repository,
        location: StoreLocation,
        body_model: BodyModelInfo,
        branch: str,
        policy: WritePolicy,
    ) -> None:
        self._repo = repo
        self._location = location
        self._body_model = body_model
        self._branch = branch
        self._policy = policy
        # Working copies, all as of snapshot ``_base`` plus the merges since (None: none read).
        self._base: str | None = None
        self._last_known: str | None = None  # last snapshot read or committed (kept by forget)
        self._infos: dict[str, DatasetInfo] = {}
        self._working: dict[str, WorkingCopy] = {}  # each dataset merged into (losses + changes)
        self._failures: dict[str, Failures] = {}  # working copies of the failed rows
        self._failures_changed: dict[str, np.ndarray] = {}  # dataset -> (N,) bool
        # Proposals merged since the last commit: (dataset, accept_unscored) -> parts, each best
        # per row; reduced to one part by the rule when they grow to twice the last reduction.
        self.pending: dict[tuple[str, bool], list[Proposals]] = {}
        # Rows recorded as failed since the last commit: dataset -> {row: reason}.
        self._pending_failures: dict[str, dict[int, str]] = {}
        self._refused: dict[str, dict[str, int]] = {}  # dataset -> reason -> proposals refused
        self._needs_replay = False
        self._jitter = random.Random()  # backoff after a lost commit race

    # ------------------------------------------------------------------------ working copies
    def _tip(self) -> str:
        return self._repo.lookup_branch(self._branch)

    def _at_base(self) -> str:
        """The snapshot the working copies are read at (the branch tip when none are read yet)."""
        if self._base is None:
            self._set_base(self._tip())
        return self._base

    def _set_base(self, snapshot: str) -> None:
        self.forget()
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

    def forget(self) -> None:
        """Forget the working copies (pending proposals are kept)."""
        self._base = None
        self._infos = {}
        self._working = {}
        self._failures = {}
        self._failures_changed = {}

    def snapshots_expired(self) -> None:
        """The working copies' snapshot may be gone (after gc): read them again when needed."""
        self.forget()
        self._needs_replay = self.has_pending

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
            self.forget()
            self._needs_replay = True
            if isinstance(error, (icechunk.IcechunkError, OSError)):
                raise storage_error(self._location, self._last_known, "read the dataset", error) from None
            raise
        return outcome.rows

    def _replay(self, snapshot: str) -> None:
        """Read the working copies at ``snapshot`` and re-apply every pending proposal."""
        self._set_base(snapshot)
        for dataset in {name for name, _ in self.pending} | set(self._pending_failures):
            if dataset not in self._infos:
                raise ConflictError(
                    f"dataset {dataset!r} no longer exists on branch {self._branch!r} (rolled back "
                    "by someone else?); the pending proposals for it were not committed"
                )
        for (dataset, _), parts in self.pending.items():
            for part in parts:  # the rule is commutative: the parts' order does not matter
                self._apply(dataset, part)
        for dataset, failed in self._pending_failures.items():
            self._apply_failures(dataset, failed)
        self._needs_replay = False

    def _ready(self, dataset: str, rows: np.ndarray) -> None:
        """Working copies with pending work replayed; ``dataset`` exists and holds ``rows``
        (``InputError`` otherwise, before anything changes)."""
        if self._needs_replay:
            self._replay(self._tip())
        self._at_base()
        if dataset not in self._infos:
            tip = self._tip()
            if tip != self._base:  # created by someone else since the working copies were read
                self._replay(tip)
            if dataset not in self._infos:
                raise unknown_dataset(dataset, self._infos)
        check_rows_in_range(rows, self._infos[dataset])

    # ---------------------------------------------------------------------------------- merges
    def merge(self, dataset: str, proposals: Proposals, accept_unscored: bool) -> int:
        """``FitStore.merge`` of checked ``proposals``; returns how many rows improved."""
        self._ready(dataset, proposals.rows)
        count_refusals(self._refused, dataset, proposals, accept_unscored)
        best = best_per_row(proposals, accept_unscored)
        if len(best) == 0:
            return 0
        rows = self._apply(dataset, best)
        self._keep_pending((dataset, accept_unscored), best)
        log.debug("merged %d proposals into %s: %d rows improved", len(proposals), dataset, rows.size)
        return int(rows.size)

    def _keep_pending(self, key: tuple[str, bool], best: Proposals) -> None:
        """Keep ``best`` for a replay. Parts are reduced by the rule (at most one proposal per row)
        when they hold twice the rows of the last reduction, plus ``PENDING_SLACK``: amortised,
        each merge costs its own rows, not all the rows pending (20,000 rows a commit by
        precompute's default)."""
        parts = self.pending.setdefault(key, [])
        parts.append(best)
        if sum(len(part) for part in parts) >= 2 * len(parts[0]) + PENDING_SLACK:
            self.pending[key] = [best_per_row(Proposals.concat(parts), key[1])]

    def refused(self) -> dict[str, dict[str, int]]:
        return {name: dict(counts) for name, counts in self._refused.items()}

    def record_failures(self, dataset: str, rows: Any, reasons: Sequence[str]) -> int:
        """``FitStore.record_failures``: returns how many rows were marked."""
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
            self.forget()
            self._needs_replay = True
            raise storage_error(self._location, self._last_known, "read the failed rows", error) from None
        self._set_failures(dataset, failures, rows[keep])
        return int(keep.sum())

    @property
    def has_pending(self) -> bool:
        return bool(self.pending) or bool(self._pending_failures)

    def pending_rows(self) -> dict[str, int]:
        counts = {name: len(working.changed_rows) for name, working in self._working.items()}
        return {name: count for name, count in counts.items() if count}

    def discard(self) -> None:
        self.pending = {}
        self._pending_failures = {}
        self._needs_replay = False
        self.forget()

    # ---------------------------------------------------------------------------------- commit
    def commit(
        self,
        message: str,
        who: str | None,
        config_hash: str | None,
        metadata: Mapping[str, Any] | None,
        max_attempts: int,
    ) -> str | None:
        """``FitStore.commit``: the new snapshot id, or None if nothing improved."""
        if not isinstance(message, str) or not message.strip():
            raise InputError(f"commit message must be a non-empty string, got {message!r}")
        if not self.has_pending:
            log.info("nothing to commit on %s", self._branch)
            return None
        for attempt in range(1, max_attempts + 1):
            try:
                with self._location.commit_lock():
                    return self._commit_once(message, who, config_hash, metadata, attempt)
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
            except (icechunk.IcechunkError, OSError) as error:
                self.forget()
                self._needs_replay = True
                raise storage_error(self._location, self._last_known, "commit", error) from None
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
            self.pending = {}
            self._pending_failures = {}
            return None
        writes: dict[str, DatasetWrite] = {}
        for name, working in changed.items():
            writes[name] = write_dataset(session.store, working, self._policy)
        for name, rows in failed.items():
            write_failures(session.store, name, self._failures[name], rows, self._infos[name].chunk_rows)
        improved = {name: len(working.changed_rows) for name, working in changed.items()}
        datasets = sorted({name for name, _ in self.pending} | set(self._pending_failures))
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
        self._last_known = snapshot
        try:
            committed = snapshot_store(self._repo, snapshot, known_to_exist=True)
        except (icechunk.IcechunkError, OSError) as error:  # committed, then the storage went away
            self.forget()
            self._needs_replay = True  # a later commit re-reads the tip: these merges are in it
            raise StorageError(
                f"could not read back commit {snapshot} in the store at {self._location}: "
                f"{icechunk_reason(error)}. The commit itself was made and holds every merge up to "
                "it; fix the storage (connection) and rerun the job: it resumes from that commit"
            ) from None
        # The working copies now equal the new snapshot.
        for name, working in self._working.items():
            working.committed(committed, writes[name].log if name in writes else working.log)
        for mask in self._failures_changed.values():
            mask[:] = False
        self._base = snapshot
        self.pending = {}
        self._pending_failures = {}
        log.debug("commit %s wrote %s", snapshot, {name: (w.how, w.chunks) for name, w in writes.items()})
        return snapshot


def count_refusals(
    counts: dict[str, dict[str, int]], dataset: str, proposals: Proposals, accept_unscored: bool
) -> None:
    """Add the refusals among ``proposals`` to ``counts`` (dataset -> reason -> count) and log them."""
    reasons = refusals(proposals, accept_unscored)
    if not reasons:
        return
    counts = counts.setdefault(dataset, {})
    for reason, mask in reasons.items():
        counts[reason] = counts.get(reason, 0) + int(mask.sum())
    log.warning(
        "refused %s proposal(s) for %s (never stored): %s; first rows %s",
        sum(int(m.sum()) for m in reasons.values()),
        dataset,
        ", ".join(f"{reason}: {int(mask.sum())}" for reason, mask in reasons.items()),
        proposals.rows[np.flatnonzero(any_reason(reasons, len(proposals)))[:5]].tolist(),
    )


def storage_error(
    location: StoreLocation, last_known: str | None, action: str, error: BaseException
) -> StorageError:
    """What a writer raises when storage fails while it ``action``s."""
    # The last commit this writer knows, not the tip: asking failing storage for its tip
    # would wait out another round of its retries (about 30 s against a lost S3 endpoint).
    known = last_known or "none read yet"
    return StorageError(
        f"could not {action} in the store at {location}: {icechunk_reason(error)}. "
        f"The store is unchanged by this failure (this writer's last known commit: {known}); this writer keeps its "
        "uncommitted merges. Fix the storage (free space, permissions, connection) and commit "
        "again, or rerun the job: it resumes from the last commit"
    )


def commit_new_dataset(
    repo: icechunk.Repository, location: StoreLocation, branch: str, info: DatasetInfo, who: str | None
) -> None:
    """Add ``info``'s empty dataset group to ``branch`` and commit it (``FitStore.create_dataset``)."""
    session = repo.writable_session(branch)
    existing = list_datasets(session.store)
    if info.name in existing:
        raise InputError(f"dataset {info.name!r} already exists in {location}; pick another name")
    create_dataset_group(session.store, info)
    try:
        with location.commit_lock():
            session.commit(
                f"create dataset {info.name} ({info.n_rows} rows)",
                metadata={"who": who or default_who(), "rows_improved": 0, "config_hash": info.config_hash},
            )
    except icechunk.ConflictError:
        raise ConflictError(
            f"another writer changed {branch!r} while creating {info.name!r}; retry"
        ) from None
    log.info("created dataset %s with %d rows", info.name, info.n_rows)


def new_dataset_info(
    name: str,
    n_rows: int,
    dataset_fingerprint: str,
    fitting_config: Mapping[str, Any] | None,
    chunk_rows: int,
    body_model: BodyModelInfo,
) -> DatasetInfo:
    """The ``DatasetInfo`` of a new dataset, its arguments checked (``InputError`` with the fix)."""
    check_dataset_name(name)
    if isinstance(n_rows, bool) or not isinstance(n_rows, (int, np.integer)) or n_rows < 1:
        raise InputError(f"n_rows must be a positive integer (rows of the dataset), got {n_rows!r}")
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1:
        raise InputError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    try:
        json.dumps(dict(fitting_config or {}))
    except (TypeError, ValueError) as error:
        raise InputError(f"fitting_config must be a JSON-serialisable mapping: {error}") from None
    return DatasetInfo(
        name=name,
        n_rows=int(n_rows),
        dataset_fingerprint=str(dataset_fingerprint),
        fitting_config=dict(fitting_config or {}),
        body_model=body_model,
        chunk_rows=int(chunk_rows),
    )


def check_rows_in_range(rows: np.ndarray, info: DatasetInfo) -> None:
    """``InputError`` unless every row (already ``row_numbers``: >= 0) is < the dataset's N."""
    if rows.size and int(rows.max()) >= info.n_rows:
        raise InputError(
            f"proposal rows must lie in [0, {info.n_rows}) for dataset {info.name!r}, got row "
            f"{int(rows.max())}; check the dataset the rows index"
        )


def _combined_hash(hashes: dict[str, str]) -> str:
    return config_hash(hashes)
