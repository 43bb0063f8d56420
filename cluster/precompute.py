"""``spinfits precompute``: Ray actors fit whole datasets and one writer fills the store.

Flow: check every input before any work (dataset, body model, store, dataset/model match) ->
plan the rows that still need a fit from the store's own record -> fitter actors (one per GPU,
or CPU actors with their threads set) fit shards -> the driver, the only writer, merges each
shard by the store's rule and commits every few seconds or every N rows (``StoreWriter``, the
writer training uses too) -> summary.

Fault tolerance: actors restart when killed and Ray retries their unfinished shards; the shards
of an actor whose node is lost go to the actors left (``ShardScheduler``); a killed driver loses
at most the rows since its last commit, and rerunning the same command resumes from the store.
Fitters never wait for a commit: each actor holds two shard slots, so its next shard is already
queued while the driver merges and commits.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import ray
from tqdm import tqdm

from spinfits.cluster.fitter_actor import FitterActor, ShardResult, remote_fitter_class
from spinfits.cluster.head_start import HeadStart, ShardQueue
from spinfits.cluster.local_ray import connect_or_start_ray
from spinfits.cluster.plan import Plan, plan_rows
from spinfits.cluster.ray_job import check_outputs_outlive_the_job
from spinfits.cluster.shard_scheduler import ShardScheduler
from spinfits.errors import ConflictError, InputError, StorageError
from spinfits.fitting.body.joints import NUM_SPIN_JOINTS, SMPLIFY_IGNORED_JOINTS
from spinfits.fitting.body.model_files import BodyModelFiles, load_body_model_files
from spinfits.fitting.data.dataset import DatasetRows, load_spin_rows, npz_row_count
from spinfits.fitting.device import MAX_DEVICE_SLOTS
from spinfits.fitting.offline.config import OfflineConfig, default_offline_config
from spinfits.npy_files import load_npy
from spinfits.store import BodyModelInfo, FitStore, Proposals, S3Options, Source, StoreLocation
from spinfits.store.layout import check_dataset_name
from spinfits.store.merge_rule import any_reason, refusals
from spinfits.store.repair import reset_corrupt_rows
from spinfits.store.schema import LOSS_UNIT
from spinfits.store.verify import check_whole
from spinfits.store.writer import StoreWriter

logger = logging.getLogger(__name__)

#: Fitter actors are named ``spinfits-fitter-<run>-<index>`` (see ``ray.util.list_named_actors``).
FITTER_NAME_PREFIX = "spinfits-fitter-"
#: Rows per shard by default on the CPU (an actor fits a shard in a few seconds)...
CPU_SHARD_ROWS = 256
#: ...and on a GPU: the most solver slots an actor chooses there (``MAX_DEVICE_SLOTS``), so a
#: shard can fill the largest pool.
GPU_SHARD_ROWS = MAX_DEVICE_SLOTS
#: ``step`` recorded with precompute's fits (training records its step).
PRECOMPUTE_STEP = -1


@dataclass(frozen=True)
class PrecomputeConfig:
    """One precompute run. ``shard_size``: dataset rows per shard, the unit an actor fits and
    the driver merges (not SMPLify's ``batch_size``, its solver slots). ``init``: "offline"
    (keypoints alone), "store" (refine the store's current fits; rows without one start offline)
    or a SPIN ``*_fits.npy`` path to refine. ``refit_corrupt``: refit exactly the rows ``store verify``
    reports as corrupt, after resetting them to "no fit" in one commit (``spinfits.store.repair``).

    ``workers`` None (default) fills the Ray cluster: on CPU one actor per CPU the cluster has
    (``threads_per_worker`` threads each, default 1: torch's threads spin-wait for each other, so
    one two-threaded actor fits several times slower than two single-threaded ones on a busy
    machine, ``bench/RESULTS.md``); on GPU one actor per ``gpus_per_worker`` share of its GPUs.
    A number: that many actors, each with ``threads_per_worker`` threads (default: this
    machine's CPUs / workers).

    ``solver_slots``: SMPLify's solver slots on each actor (``SmplifyConfig.batch_size``, the
    rows its device optimises together); None: on the CPU the fitting configuration's (256, a
    size for a CPU core), on a GPU chosen by each actor from the memory of its share of the
    device (``fitting.device.solver_slots_for``: up to 8192). ``shard_size`` None:
    ``CPU_SHARD_ROWS``, or ``GPU_SHARD_ROWS`` with ``gpus_per_worker`` (a shard then fills
    the largest pool; docs/cluster.md).

    ``start_timeout_s``: an actor still pending this long (no room for it: e.g. another job
    holds the GPUs) is given up and its shards go to the started ones; none started: the job
    ends saying which resources are missing (``ShardScheduler``; None: wait for ever).

    ``head_start``: on the CPU, the driver fits the front of the queue itself (one thread, small
    pieces) while Ray starts (``cluster.head_start``); ignored on GPUs."""

    dataset: Path
    store: str
    model_dir: Path
    dataset_name: str | None = None
    workers: int | None = None
    threads_per_worker: int | None = None
    gpus_per_worker: float = 0.0
    shard_size: int | None = None
    solver_slots: int | None = None
    refit: bool = False
    refit_corrupt: bool = False
    retry_failed: bool = False
    init: str = "offline"
    commit_every_s: float = 10.0
    commit_every_rows: int = 20000
    start_timeout_s: float | None = 600.0
    head_start: bool = True
    fitting: OfflineConfig | None = None  # None: default_offline_config(model files)
    s3: S3Options | None = None
    show_progress: bool = True

    def __post_init__(self) -> None:
        # Messages name the field; the command line tells them in its flags (spinfits.cli.options).
        if self.workers is not None and self.workers < 1:
            raise InputError(f"workers must be >= 1 or None (fill the Ray cluster), got {self.workers}")
        if self.threads_per_worker is not None and self.threads_per_worker < 1:
            raise InputError(f"threads_per_worker must be >= 1, got {self.threads_per_worker}")
        if not (math.isfinite(self.commit_every_s) and self.commit_every_s >= 0):
            raise InputError(
                f"commit_every_s must be a finite number of seconds >= 0 (0: commit as often as possible), got {self.commit_every_s}"
            )
        if self.shard_size is not None and self.shard_size < 1:
            raise InputError(f"shard_size must be >= 1, got {self.shard_size}")
        if self.solver_slots is not None and self.solver_slots < 1:
            raise InputError(
                f"solver_slots must be >= 1 or None (the fitting config's), got {self.solver_slots}"
            )
        if self.gpus_per_worker < 0:
            raise InputError(f"gpus_per_worker must be >= 0, got {self.gpus_per_worker}")
        if self.start_timeout_s is not None and not self.start_timeout_s > 0:
            raise InputError(
                f"start_timeout_s must be > 0 or None (wait for ever), got {self.start_timeout_s}"
            )
        if self.refit_corrupt and (self.refit or self.retry_failed):
            raise InputError(
                "refit_corrupt refits exactly the corrupt rows (failed ones included); drop "
                f"{'refit' if self.refit else 'retry_failed'}, or run it separately"
            )
        if self.init not in ("offline", "store") and not str(self.init).endswith(".npy"):
            raise InputError(f"init must be 'offline', 'store' or a SPIN *_fits.npy file, got {self.init!r}")
        try:
            check_dataset_name(self.name)
        except InputError as error:
            how = (
                "dataset_name"
                if self.dataset_name
                else "dataset_name (the dataset file's stem is not a valid name)"
            )
            raise InputError(f"{error}; pass a valid {how}") from None

    @property
    def name(self) -> str:
        return self.dataset_name or Path(self.dataset).stem

    @property
    def shard_rows(self) -> int:
        """Rows per shard: ``shard_size``, or its default for the device."""
        if self.shard_size is not None:
            return self.shard_size
        return GPU_SHARD_ROWS if self.gpus_per_worker > 0 else CPU_SHARD_ROWS

    @property
    def device_share(self) -> float | None:
        """The share of a GPU each actor chooses its solver slots for (None: the slots are
        ``fitting``'s: on the CPU, or given by ``solver_slots``)."""
        if self.gpus_per_worker > 0 and self.solver_slots is None:
            return min(self.gpus_per_worker, 1.0)
        return None

    @property
    def threads(self) -> int:
        if self.threads_per_worker:
            return self.threads_per_worker
        if self.workers is None:
            return 1
        return max(1, (os.cpu_count() or 1) // self.workers)

    def fitting_for(self, files: BodyModelFiles) -> OfflineConfig:
        """The actors' fitting configuration: ``fitting`` (default: ``default_offline_config``)
        with ``solver_slots`` when given."""
        fitting = self.fitting if self.fitting is not None else default_offline_config(files)
        if self.solver_slots is None:
            return fitting
        smplify = dataclasses.replace(fitting.smplify, batch_size=self.solver_slots)
        return dataclasses.replace(fitting, smplify=smplify)

    @property
    def actor_demand(self) -> dict[str, float]:
        """What one fitter actor asks Ray for."""
        if self.gpus_per_worker > 0:
            return {"CPU": 1.0, "GPU": self.gpus_per_worker}
        return {"CPU": float(self.threads)}

    def actor_count(self, cluster_resources: dict[str, float]) -> int:
        """Fitter actors to start on a Ray cluster with ``cluster_resources``
        (``ray.cluster_resources()``): ``workers``, or enough to fill the cluster (class doc)."""
        if self.workers is not None:
            return self.workers
        if self.gpus_per_worker > 0:
            return max(1, int(cluster_resources.get("GPU", 0.0) / self.gpus_per_worker))
        return max(1, int(cluster_resources.get("CPU", 1.0) // self.threads))


@dataclass(frozen=True)
class PrecomputeSummary:
    """What a run did. ``timeline``: (seconds since start, rows fitted so far) per shard."""

    dataset: str
    store: str
    body_model: str
    rows_total: int
    rows_planned: int
    rows_fitted: int
    rows_improved: int
    rows_failed: int
    rows_known_failed: int
    rows_refused: int
    rows_unfittable: int
    rows_already_fitted: int
    seconds: float
    commits: int
    last_commit: str | None
    store_losses: np.ndarray = field(repr=False)
    nothing_to_do: str = ""  #: why no row was planned (empty when rows were)
    timeline: tuple[tuple[float, int], ...] = field(repr=False, default=())
    fitting_seconds: float = 0.0  #: the fitters' time in ``fit_shard``, summed over shards
    rows_head_start: int = 0  #: rows of the dataset the driver fitted itself while Ray started

    @property
    def fits_per_second(self) -> float:
        return self.rows_fitted / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        finite = self.store_losses[np.isfinite(self.store_losses)]
        median = f"{np.median(finite):.2f} {LOSS_UNIT}" if finite.size else "n/a"
        return [
            f"dataset {self.dataset}: {self.rows_total} rows; store {self.store}",
            f"body model: {self.body_model}",
            f"planned {self.rows_planned}, fitted {self.rows_fitted}, improved {self.rows_improved}, "
            f"failed {self.rows_failed}, skipped (too few keypoints) {self.rows_unfittable}, "
            f"skipped (failed before; --retry-failed to retry) {self.rows_known_failed}, "
            f"already fitted {self.rows_already_fitted}"
            + (f", refused by the store {self.rows_refused}" if self.rows_refused else ""),
            f"time {self.seconds:.1f} s ({self.fits_per_second:.1f} fits/s), {self.commits} commits, "
            f"last commit {self.last_commit or '-'}"
            + (
                f"; the driver fitted {self.rows_head_start} rows while Ray started"
                if self.rows_head_start
                else ""
            ),
            f"store now: {finite.size} of {self.rows_total} rows hold a fit, median fit loss {median}",
        ]


# ------------------------------------------------------------------------- checks before work


def _open_or_create_store(config: PrecomputeConfig, files: BodyModelFiles) -> FitStore:
    body = BodyModelInfo(files.fingerprint, is_standin=files.is_standin)
    where = StoreLocation.parse(config.store, config.s3)
    if not FitStore.exists(where):
        try:
            return FitStore.create(where, body)
        except InputError:
            if not FitStore.exists(where):
                raise
            logger.info("another job created %s first; opening it", where)  # a race: fine
    return FitStore.open(where, body_model=body)


def _ensure_dataset(store: FitStore, config: PrecomputeConfig, dataset: DatasetRows) -> None:
    if config.name not in store.datasets():
        try:
            store.create_dataset(
                config.name,
                dataset.n_rows,
                dataset_fingerprint=dataset.fingerprint,
                fitting_config=dataclasses.asdict(config.fitting),
                who=_who(),
            )
            return
        except (ConflictError, InputError):
            if config.name not in store.datasets():  # not a race with another job: a real error
                raise
    info = store.datasets()[config.name]
    if info.n_rows != dataset.n_rows or info.dataset_fingerprint != dataset.fingerprint:
        raise _another_file(
            config, info.n_rows, info.dataset_fingerprint, dataset.n_rows, dataset.fingerprint
        )


def _another_file(config: PrecomputeConfig, rows: int, fingerprint: str, file_rows: int, file_print: str):
    return InputError(
        f"store dataset {config.name!r} was made from another file ({rows} rows, "
        f"fingerprint {fingerprint}) than {config.dataset} ({file_rows} rows, "
        f"fingerprint {file_print}); pass --name to store this file under another "
        f"name, or use another store"
    )


def _prepare_store(
    config: PrecomputeConfig, files: BodyModelFiles, dataset: DatasetRows, attempts: int = 6
) -> FitStore:
    """Open (or create) the store and its dataset group. Jobs started together on a new store
    race to create it (a half-created store reads as "not a spinfits store"): the loser
    re-opens and retries, so only real errors come through (after a few seconds where the
    store was not readable at the start)."""
    try:
        FitStore.open(StoreLocation.parse(config.store, config.s3))
        existed = True
    except InputError:
        existed = False
    attempt = 0
    while True:
        try:
            store = _open_or_create_store(config, files)
            _ensure_dataset(store, config, dataset)
            return store
        except (ConflictError, InputError) as error:
            attempt += 1
            if (isinstance(error, InputError) and existed) or attempt >= attempts:
                raise
            logger.info("store %s is being created by another job (%s); retrying", config.store, error)
            time.sleep(0.25 * attempt)


def _initial_fits(config: PrecomputeConfig, store: FitStore, rows_total: int):
    """(pose (N, 72), betas (N, 10), usable (N,) bool) to refine, or None for offline init."""
    if config.init == "offline":
        return None
    if config.init == "store":
        fits = store.read(config.name)
        return fits.pose, fits.betas, np.isfinite(fits.loss)
    path = Path(config.init)
    if not path.is_file():
        raise InputError(f"init: file {path} does not exist; expected SPIN's *_fits.npy (N, 82)")
    fits = load_npy(path, "init: SPIN fits")
    if fits.shape != (rows_total, 82) or not np.isfinite(fits).all():
        raise InputError(
            f"init: {path}: expected SPIN's static fits, a finite ({rows_total}, 82) array "
            f"(pose 72 + betas 10 per dataset row), got shape {fits.shape}"
        )
    return fits[:, :72], fits[:, 72:], np.ones(rows_total, dtype=bool)


def _who() -> str:
    return f"spinfits-precompute@{socket.gethostname()}"


# ------------------------------------------------------------------------------------- run


def run_precompute(config: PrecomputeConfig) -> PrecomputeSummary:
    """Fill the store with fits of every row of the dataset that has none (see module doc)."""
    return run_precompute_datasets([config])[0]


def run_precompute_datasets(configs: Sequence[PrecomputeConfig]) -> tuple[PrecomputeSummary, ...]:
    """One job for several datasets (SPIN trains on six): ``configs`` differ only in their
    ``dataset``, ``dataset_name`` and ``init`` (``check_one_job``). Every input of every dataset
    is checked before any work; their rows are planned together, one queue of shards dataset
    after dataset, which one set of actors (started once, warm across datasets) fits; one writer
    merges each dataset's rows under its own name and commits as soon as a dataset is complete,
    so a job stopped between datasets resumes with the next one. One summary per dataset, in
    the order given."""
    configs = check_one_job(configs)
    start = time.perf_counter()
    first = configs[0]
    check_outputs_outlive_the_job({"store": first.store})
    StoreLocation.parse(first.store, first.s3).check_writable()
    files = load_body_model_files(first.model_dir)
    fitting = first.fitting_for(files)
    configs = [dataclasses.replace(config, fitting=fitting) for config in configs]
    existing = _existing_store(first, files)  # nothing created before the checks
    records, rows, corrupts = [], [], []
    for config in configs:  # every file checked before anything is created (but refit_corrupt's reset)
        corrupt = _reset_corrupt(config, existing) if config.refit_corrupt else None
        stored = _stored_record(config, existing)
        records.append(stored)
        corrupts.append(corrupt)
        keep = _rows_to_keep(config, stored, corrupt)
        rows.append(load_spin_rows(config.dataset, keep, counted_joints=COUNTED_JOINTS))
    store = None
    work = []
    for index, config in enumerate(configs):
        dataset = rows[index]
        store = _prepare_store(config, files, dataset)
        initial = _initial_fits(config, store, dataset.n_rows)
        losses, failed = records[index] or _stored_record(config, store)  # a new dataset: no fits
        plan = plan_rows(
            losses,
            dataset.confident,
            refit=_refits(config),
            shard_size=config.shard_rows,
            min_keypoints=config.fitting.smplify.min_keypoints,
            failed=None if config.retry_failed else failed,
            only=corrupts[index],
        )
        logger.info(
            "%s; dataset %s (%d rows) -> store %s",
            files.description,
            config.name,
            dataset.n_rows,
            store.location,
        )
        if not plan.shards:
            logger.debug("%s: nothing to do: %s", config.name, plan.nothing_to_do())  # the CLI says it
        work.append(_DatasetWork(config, plan, initial, PlannedKeypoints(plan.pending, dataset)))
        rows[index] = None  # the driver keeps only the keypoints of the rows it fits
    del rows, records
    if not any(item.plan.shards for item in work):
        return tuple(
            _summary(item.config, store, files, item.plan, 0, 0, 0, 0, None, start, ()) for item in work
        )
    return _fit_plans(work, store, files, start)


def _refits(config: PrecomputeConfig) -> bool:
    """Whether the plan refits rows that hold a fit (``refit``, or a start from other fits)."""
    return (config.refit or config.init != "offline") and not config.refit_corrupt


def _rows_to_keep(config: PrecomputeConfig, stored, corrupt: np.ndarray | None) -> np.ndarray | None:
    """(N,) bool rows of the dataset file the driver reads (None: all of them): the corrupt rows
    with ``refit_corrupt``, else the rows the plan may pick."""
    if corrupt is not None:
        keep = np.zeros(len(stored[0]), dtype=bool)
        keep[corrupt] = True
        return keep
    if stored is None or _refits(config):
        return None
    return _may_need_a_fit(*stored, config.retry_failed)


def check_one_job(configs: Sequence[PrecomputeConfig]) -> list[PrecomputeConfig]:
    """``configs`` as a list, when they can be one job: at least one, every field but
    ``dataset``, ``dataset_name`` and ``init`` the same, and distinct dataset names; else
    ``InputError`` naming what differs."""
    configs = list(configs)
    if not configs:
        raise InputError("no dataset given: pass one PrecomputeConfig (one --dataset) or more")
    first = configs[0]
    own = {"dataset", "dataset_name", "init"}
    for config in configs[1:]:
        for field_ in dataclasses.fields(PrecomputeConfig):
            if field_.name not in own and getattr(config, field_.name) != getattr(first, field_.name):
                raise InputError(
                    f"the datasets of one job share every setting but dataset, dataset_name and "
                    f"init: {field_.name} is {getattr(first, field_.name)!r} for {first.dataset} and "
                    f"{getattr(config, field_.name)!r} for {config.dataset}; run separate jobs"
                )
    names = [config.name for config in configs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise InputError(
            f"two datasets of the job have the store name {twice[0]!r} "
            f"({', '.join(str(c.dataset) for c in configs if c.name == twice[0])}); "
            "give each its own dataset_name"
        )
    return configs


@dataclass(frozen=True)
class _DatasetWork:
    """One dataset of a job: its config, plan, initial fits (None: offline) and the keypoints of
    its planned rows."""

    config: PrecomputeConfig
    plan: Plan
    initial: tuple[np.ndarray, np.ndarray, np.ndarray] | None
    keypoints: PlannedKeypoints


#: The keypoints that count towards a row's ``min_keypoints`` (SMPLify ignores the others).
COUNTED_JOINTS = tuple(j for j in range(NUM_SPIN_JOINTS) if j not in SMPLIFY_IGNORED_JOINTS)


def _existing_store(config: PrecomputeConfig, files: BodyModelFiles) -> FitStore | None:
    """The store, when it exists already (``InputError`` if it holds another body model's fits)."""
    where = StoreLocation.parse(config.store, config.s3)
    if not FitStore.exists(where):
        return None
    return FitStore.open(where, body_model=BodyModelInfo(files.fingerprint, is_standin=files.is_standin))


def _stored_record(config: PrecomputeConfig, store: FitStore | None) -> tuple[np.ndarray, np.ndarray] | None:
    """The store's record of the dataset: its (N,) losses and (N,) bool failed rows; None when
    there is no store or it has no such dataset yet. ``InputError`` when the dataset file has another row count
    (read from its header: before the file is read)."""
    info = None if store is None else store.datasets().get(config.name)
    if info is None:
        return None
    _check_row_count(config, info)
    check_whole(store, [config.name])  # every chunk and row of the dataset: stop on damage
    return store.losses(config.name), store.failures(config.name).mask


def _check_row_count(config: PrecomputeConfig, info) -> None:
    """``InputError`` when the dataset file has another row count than store dataset ``info``
    (read from its header: before the file is read)."""
    file_rows = npz_row_count(config.dataset)
    if file_rows is not None and file_rows != info.n_rows:
        raise _another_file(config, info.n_rows, info.dataset_fingerprint, file_rows, "not computed")


def _reset_corrupt(config: PrecomputeConfig, store: FitStore | None) -> np.ndarray:
    """``refit_corrupt``: reset the rows ``store verify`` reports as corrupt to "no fit" in one
    commit (``spinfits.store.repair``); returns them ((C,) sorted int64), the rows to refit."""
    info = None if store is None else store.datasets().get(config.name)
    if info is None:
        raise InputError(
            f"refit_corrupt: store {config.store} holds no dataset {config.name!r}, so no corrupt "
            "rows; run precompute without it to fill the store"
        )
    _check_row_count(config, info)
    reset = reset_corrupt_rows(store, config.name, who=_who())
    if reset.snapshot is not None:
        logger.warning(
            "%s: %d corrupt rows reset to no fit (commit %s); refitting exactly them",
            config.name,
            len(reset.rows),
            reset.snapshot,
        )
    return reset.rows


def _may_need_a_fit(losses: np.ndarray, failed: np.ndarray, retry_failed: bool) -> np.ndarray:
    """(N,) bool rows whose keypoints the driver keeps: those the plan may pick (no fit yet, not
    failed before unless retried)."""
    return ~np.isfinite(losses) & (retry_failed | ~failed)


class PlannedKeypoints:
    """The keypoints of the rows a run fits, and nothing else of the dataset: ``self[rows]`` is
    ``(S, 49, 3)`` crop pixels + confidence for dataset rows ``rows`` (all among ``pending``).

    At a million rows the whole dataset's keypoints are 588 MB; a run that fits 1536 of them
    holds 0.9 MB (``bench/million_rows.py``)."""

    def __init__(self, pending: np.ndarray, dataset: DatasetRows) -> None:
        self.rows = np.unique(pending)  # (P,) sorted dataset rows
        self.keypoints = dataset.keypoints[np.searchsorted(dataset.rows, self.rows)]  # (P, 49, 3)

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        return self.keypoints[np.searchsorted(self.rows, rows)]


def _refused_by_the_store(proposals: Proposals) -> tuple[np.ndarray, list[str]]:
    """Rows (R,) whose fit the store will refuse (``merge_rule.refusals``), one reason each."""
    reasons = refusals(proposals)
    if not reasons:
        return np.zeros(0, dtype=np.int64), []
    refused = any_reason(reasons, len(proposals))
    texts = [
        "the fit was refused by the store: "
        + ", ".join(reason for reason, mask in reasons.items() if mask[index])
        for index in np.flatnonzero(refused)
    ]
    return proposals.rows[refused], texts


def _ray_with_room(demand: dict[str, float]) -> bool:
    """Ray connected (or started: True) with room for one fitter actor (``check_room``)."""
    started_ray = connect_or_start_ray()  # a local cluster runs its workers at normal priority
    try:
        check_room(demand, ray.nodes())
    except InputError:
        if started_ray:
            ray.shutdown()
        raise
    return started_ray


def _start_fitters(config) -> list:
    """The run's fitter actors (as many as the cluster holds, ``config.actor_count``), started."""
    device = "cuda" if config.gpus_per_worker > 0 else "cpu"
    demand = config.actor_demand
    actor_class = remote_fitter_class(num_cpus=demand["CPU"], num_gpus=demand.get("GPU", 0.0))
    run_id = f"{socket.gethostname()}-{os.getpid()}-{int(time.time() * 1000)}"
    actors = [
        actor_class.options(name=f"{FITTER_NAME_PREFIX}{run_id}-{index}").remote(
            str(Path(config.model_dir).resolve()),
            config.fitting,
            device,
            config.threads,
            config.device_share,
        )
        for index in range(config.actor_count(ray.cluster_resources()))
    ]
    logger.info(
        "%d fitter actor(s) x %s on %s",
        len(actors),
        f"{config.gpus_per_worker:g} GPU" if device == "cuda" else f"{config.threads} thread(s)",
        "CUDA" if device == "cuda" else "CPU",
    )
    return actors


def _shard_call(work: list[_DatasetWork]):
    """call((dataset index, rows)) -> the positional arguments of ``fit_shard`` for those rows of
    ``work[index]``: their keypoints ((S, 49, 3)), and their stored fits (``initial``: pose,
    betas) when every row has one to refine."""

    def call(shard) -> tuple:
        index, rows = shard
        keypoints, initial = work[index].keypoints[rows], work[index].initial
        if initial is None:
            return rows, keypoints
        pose, betas, usable = initial
        if not usable[rows].all():  # rows without a fit to refine start from keypoints alone
            return rows, keypoints
        return rows, keypoints, pose[rows], betas[rows]

    return call


def _proposals_of(result: ShardResult) -> Proposals:
    """A shard's fits as the store's proposals (offline, step ``PRECOMPUTE_STEP``)."""
    return Proposals(
        rows=result.rows,
        pose=result.pose,
        betas=result.betas,
        cam_t=result.cam_t,
        loss=result.loss,
        source=Source.OFFLINE,
        step=PRECOMPUTE_STEP,
    )


def _fit_plans(
    work: list[_DatasetWork], store: FitStore, files, start: float
) -> tuple[PrecomputeSummary, ...]:
    """Fit the datasets' shards, one queue dataset after dataset: the driver's head start
    (``cluster.head_start``) fits the front of the queue while Ray starts, then the actors
    (``ShardScheduler``) fit the rest; each shard's keypoints travel with it."""
    config = work[0].config  # the job's settings (check_one_job)
    queue = ShardQueue([(index, rows) for index, item in enumerate(work) for rows in item.plan.shards])
    call = _shard_call(work)
    job = _JobMerge(work, _writer(work, store, files), start, config.show_progress)
    head = _head_start(config, queue, call)
    started_ray, actors = False, []
    try:
        started_ray = _ray_with_room(config.actor_demand)
        if head is not None:  # Ray is up: the actors' start gets the CPU (bench/RESULTS.md)
            head.stop()
            job.merge_driver_pieces(head.done())
            logger.info("the driver fitted %d rows while Ray started", head.rows)
        shards = queue.rest()  # the head start takes no more
        actors = _start_fitters(config) if shards else []  # else: the head start did it all
        scheduler = ShardScheduler(  # two slots per actor: a shard queued while the driver commits
            actors,
            lambda actor, shard: actor.fit_shard.remote(*call(shard)),
            slots_per_actor=2,
            start_timeout_s=config.start_timeout_s,
            demand=config.actor_demand,
        )
        for shard, result in scheduler.indexed_results(shards):
            job.merge(shards[shard][0], result)
            if head is not None:
                job.merge_driver_pieces(head.done())
        if head is not None:
            job.merge_driver_pieces(head.finish())
        job.writer.close()
    except BaseException as error:  # interrupted (Ctrl-C, a failure): keep what was merged
        _merge_stopped_head_start(head, job)
        _commit_interrupted(job.writer, store, error, job.fitted)
        raise
    finally:
        job.bar.close()
        for actor in actors:
            ray.kill(actor)
        if started_ray:
            ray.shutdown()
    return _summaries(work, job.progress, store, files, job.writer.stats(), start)


def _merge_stopped_head_start(head: HeadStart | None, job: _JobMerge) -> None:
    """A job interrupted: stop the head start (no wait) and merge the pieces it had fitted."""
    if head is None:
        return
    head.stop()
    try:
        job.merge_driver_pieces(head.done())
    except Exception:  # the interruption's own error matters more
        logger.exception("could not merge the rows the driver fitted before the interruption")


def _head_start(config: PrecomputeConfig, queue: ShardQueue, call) -> HeadStart | None:
    """The driver's head start on ``queue`` (started), for a job on the CPU that asks for it."""
    if not config.head_start or config.gpus_per_worker > 0:
        return None
    model_dir, fitting = str(Path(config.model_dir).resolve()), config.fitting
    return HeadStart(queue, lambda: FitterActor(model_dir, fitting, "cpu", threads=1), call).start()


def _writer(work: list[_DatasetWork], store: FitStore, files) -> StoreWriter:
    """The job's one writer: merges every dataset's rows under its own name and commits."""
    config = work[0].config
    names = [item.config.name for item in work]
    return StoreWriter(
        store,
        names,
        job=f"precompute {', '.join(names)}" + (" --refit-corrupt" if config.refit_corrupt else ""),
        source="precompute",
        commit_every_s=config.commit_every_s,
        commit_every_rows=config.commit_every_rows,
        who=_who(),
        metadata={
            **({"dataset": names[0]} if len(names) == 1 else {"datasets": names}),
            "body_model_standin": files.is_standin,
        },
    )


class _JobMerge:
    """The driver's side of a running job: merges each shard's result (the actors' or the head
    start's) into the writer, records its failures and refusals, counts it per dataset, moves
    the progress bar, and commits a dataset as soon as it is complete."""

    def __init__(self, work: list[_DatasetWork], writer: StoreWriter, start: float, show: bool) -> None:
        self.writer, self.start = writer, start
        self.names = [item.config.name for item in work]
        self.progress = [_Progress(sum(len(rows) for rows in item.plan.shards)) for item in work]
        self.bar = tqdm(
            total=sum(len(item.plan.pending) for item in work),
            unit="fit",
            desc=f"precompute {', '.join(self.names)}",
            disable=not show,
            dynamic_ncols=True,
        )
        self.fitted = self.failed = 0
        self._finite_sum, self._finite_count = 0.0, 0

    def merge_driver_pieces(self, pieces: list[tuple[int, ShardResult]]) -> None:
        """Merge the head start's pieces, (dataset index, result) each."""
        for index, result in pieces:
            self.merge(index, result, by_driver=True)

    def merge(self, index: int, result: ShardResult, by_driver: bool = False) -> None:
        """Merge dataset ``index``'s ``result`` (``by_driver``: a piece of the head start)."""
        name, done, writer = self.names[index], self.progress[index], self.writer
        done.by_driver += len(result.rows) if by_driver else 0
        if result.failed_rows.size:
            writer.record_failures(result.failed_rows, result.failed_reasons, dataset=name)
        proposals = _proposals_of(result)
        refused_rows, refused_reasons = _refused_by_the_store(proposals)
        if refused_rows.size:  # recorded: a rerun skips them, as other failed rows
            writer.record_failures(refused_rows, refused_reasons, dataset=name)
        done.improved += writer.propose(proposals, dataset=name)
        finite = np.isfinite(result.loss)
        self.failed += int(result.failed_rows.size)
        self.fitted += len(result.rows)
        done.add(result, time.perf_counter() - self.start)
        self._finite_sum += float(result.loss[finite].sum())
        self._finite_count += int(finite.sum())
        self.bar.update(len(result.rows))
        self.bar.set_postfix(
            mean_loss=f"{self._finite_sum / max(self._finite_count, 1):.2f}", failed=self.failed
        )
        if done.rows_left == 0 and any(other.rows_left for other in self.progress):
            # a dataset is complete: committed now, so that a job stopped later resumes after it
            writer.flush(note=f"dataset {name} complete")
            logger.info("dataset %s: all %d planned rows fitted", name, done.fitted)


def _summaries(work, progress, store, files, stats, start: float) -> tuple[PrecomputeSummary, ...]:
    """One summary per dataset of a job that ran (``progress``: what was merged of each)."""
    last = max(range(len(work)), key=lambda index: progress[index].finished or 0.0)
    summaries = []
    for index, (item, done) in enumerate(zip(work, progress, strict=True)):
        summary = _summary(
            item.config,
            store,
            files,
            item.plan,
            done.fitted,
            done.improved,
            done.failed,
            stats.commits,
            stats.last_commit,
            start,
            tuple(done.timeline),
        )
        # the dataset that finished last ran to the job's end (last commit, Ray's shut-down)
        seconds = summary.seconds if index == last or done.finished is None else done.finished
        summaries.append(
            dataclasses.replace(
                summary, fitting_seconds=done.fitting_seconds, seconds=seconds, rows_head_start=done.by_driver
            )
        )
    return tuple(summaries)


@dataclass
class _Progress:
    """What the driver merged of one dataset so far (mutable: one per dataset of a running job)."""

    rows_left: int
    fitted: int = 0
    by_driver: int = 0
    improved: int = 0
    failed: int = 0
    fitting_seconds: float = 0.0
    timeline: list[tuple[float, int]] = field(default_factory=list)
    finished: float | None = None  #: seconds since the job's start when its last shard merged

    def add(self, result: ShardResult, since_start: float) -> None:
        self.rows_left -= len(result.rows)
        self.fitted += len(result.rows)
        self.failed += int(result.failed_rows.size)
        self.fitting_seconds += result.seconds
        self.timeline.append((since_start, self.fitted))
        if self.rows_left == 0:
            self.finished = since_start


def check_room(demand: dict[str, float], nodes: list[dict]) -> None:
    """``InputError`` at once when no live node of the Ray cluster (``ray.nodes()``) has the
    resources one fitter actor asks for (``demand``), e.g. GPUs asked of a cluster without any:
    the actors could never start and the job would wait for ever."""
    alive = [node for node in nodes if node.get("Alive")]
    for node in alive:
        if all(node.get("Resources", {}).get(name, 0.0) >= amount for name, amount in demand.items()):
            return
    asks = ", ".join(f"{name} {amount:g}" for name, amount in demand.items())
    has = "; ".join(
        ", ".join(f"{name} {node.get('Resources', {}).get(name, 0.0):g}" for name in demand) for node in alive
    )
    how = (
        "start nodes with GPUs (ray start --num-gpus N; a CUDA build of torch on each), or fit on "
        "the CPUs: leave out gpus_per_worker"
        if demand.get("GPU")
        else "lower threads_per_worker, or add larger nodes"
    )
    raise InputError(
        f"no node of the Ray cluster can run a fitter actor: each needs {asks} on one node, and its "
        f"{len(alive)} live node(s) have {has or 'nothing'}; {how}"
    )


def _commit_interrupted(writer: StoreWriter, store: FitStore, error: BaseException, fitted: int) -> None:
    """Commit what was merged before ``error`` stopped the run, unless the error is the store's
    storage failing and it no longer answers: the commit would fail too, after icechunk's own
    retries (tens of seconds on S3), and the job would only report its error later."""
    if isinstance(error, StorageError):
        try:
            store.location.check_reachable()
        except StorageError as unreachable:
            logger.warning("rows merged since the last commit are not committed: %s", unreachable)
            return
    try:
        writer.close(note=f"interrupted after {fitted} rows")
    except Exception:  # the original error matters more
        logger.exception("could not commit the rows fitted before the interruption")


def _summary(
    config, store, files, plan, fitted, improved, failed, commits, last_commit, start, timeline
) -> PrecomputeSummary:
    losses = store.losses(config.name)
    return PrecomputeSummary(
        dataset=config.name,
        store=str(store.location),
        body_model=files.description,
        rows_total=len(losses),
        rows_planned=len(plan.pending),
        rows_fitted=fitted,
        rows_improved=improved,
        rows_failed=failed,
        rows_known_failed=len(plan.known_failed),
        rows_refused=sum(store.refused().get(config.name, {}).values()),
        rows_unfittable=len(plan.unfittable),
        rows_already_fitted=plan.already_fitted,
        seconds=time.perf_counter() - start,
        commits=commits,
        last_commit=last_commit,
        store_losses=np.asarray(losses),
        nothing_to_do="" if len(plan.pending) else plan.nothing_to_do(),
        timeline=timeline,
    )
