"""The best-fit store and precompute at one million rows (issue 16): planning, merges and commits,
a worker's refresh, and the memory of precompute's driver, of its fitter actors and of a training
worker's fits, each against the issue's target where it gives one.

Sections (``--sections``, all by default):

- ``dataset``: a SPIN-format npz of ``--rows`` rows: ``--pool`` synthetic people of the stand-in
  body model, repeated with a box of their own per row (``part`` and ``openpose`` float64, as in
  SPIN's files); its size and the time to write it.
- ``planning``: what precompute's driver does before any actor starts (the real
  ``run_precompute``, stopped where it would start the actors, in a fresh process): read the
  stored losses and the failed rows, read the dataset keeping the rows without a fit, check it
  against the store, find the rows to fit and cut shards; time and driver RSS per step with no store yet, with the store empty and with it
  holding every row but ``--left``.
- ``merge``: the writer's merges of precompute's shards (its default shard size) and its commits
  every ``commit_every_rows`` (its default) over the whole dataset, then in-loop commits of 64
  scattered rows: times and bytes written.
- ``refresh``: a reader of the dataset refreshing after each 64-row commit (target: median < 50 ms).
- ``precompute-memory``: the real ``run_precompute`` (embedded local Ray, ``--actors``
  single-threaded fitter actors, stand-in body model) on a store holding every row but ``--left``,
  at ``--small-rows`` and at ``--rows``: the driver's peak RSS per phase and each actor's peak RSS
  (target: neither grows with the dataset beyond the keypoints of the rows to fit).
- ``worker-memory``: a training worker's fits (``FitReader`` + ``BestFits``) over the dataset
  through ``--cycles`` record / commit / refresh cycles, against one copy of the fits
  (target < 1.5x).

Memory is measured in fresh processes (``_process.run_in_child``): RSS from /proc (``VmRSS``,
and ``VmHWM`` for peaks) and, for the worker, tracemalloc too. Everything is written to a temp
dir, deleted at the end. MB = 10^6 bytes.

Run: ``python bench/million_rows.py [--rows N] [--sections a,b] [--quick]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
import tracemalloc
from functools import cached_property
from pathlib import Path
from typing import Any

import icechunk
import numpy as np
from _process import Link, PeakWatcher, peak_rss_bytes, reset_peak_rss, rss_bytes, run_in_child
from precompute_common import private_ray
from store_growth import fill, folder_bytes, new_store, proposals, scattered, timed_refreshes

from spinfits.cluster import precompute
from spinfits.cluster.precompute import CPU_SHARD_ROWS, PrecomputeConfig, run_precompute
from spinfits.fitting.body.joints import NUM_OPENPOSE_JOINTS
from spinfits.fitting.body.model_files import load_body_model_files
from spinfits.fitting.data.dataset import crop_to_image, image_to_crop, load_spin_npz
from spinfits.fitting.offline.config import default_offline_config
from spinfits.fitting.synthetic.people import SyntheticConfig, make_synthetic_dataset
from spinfits.store import CHUNK_ROWS, BodyModelInfo, FitStore, Proposals, Source
from spinfits.store.update_log import LEVELS, RECORD, ROW_BYTES, level_state, open_level
from spinfits.store.versions import snapshot_store
from spinfits.training.best_fits import BestFits

SECTIONS = ("dataset", "planning", "merge", "refresh", "precompute-memory", "worker-memory")
#: The issue's targets.
REFRESH_TARGET_S = 0.050
WORKER_TARGET = 1.5
#: Rows of one in-loop commit (a training batch's SMPLify fits).
IN_LOOP_ROWS = 64
#: Rows per block when writing a dataset (bounds the temporaries).
BLOCK_ROWS = 65536
#: Ray names a fitter actor's process after its class.
ACTOR_PROCESS = "ray::FitterActor"
PRECOMPUTE_DEFAULTS = {f.name: f.default for f in dataclasses.fields(PrecomputeConfig)}


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms"


def met(ok: bool) -> str:
    return "met" if ok else "**MISSED**"


def table(header: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def dataset_name(n_rows: int) -> str:
    return f"rows{n_rows}"


def write_spin_npz(path: Path, people: np.ndarray, n_rows: int) -> Path:
    """A SPIN dataset npz of ``n_rows`` rows at ``path``: row i is person ``i % P`` of ``people``
    ((P, 49, 3) crop pixels x, y, confidence) in a box of its own (centre, scale drawn per block of
    rows with a seed of the block, so a smaller file's rows are the first rows of a larger one),
    as image pixels in ``openpose`` (N, 25, 3) and ``part`` (N, 24, 3) float64."""
    openpose = np.empty((n_rows, NUM_OPENPOSE_JOINTS, 3))
    part = np.empty((n_rows, people.shape[1] - NUM_OPENPOSE_JOINTS, 3))
    center, scale = np.empty((n_rows, 2)), np.empty(n_rows)
    for first in range(0, n_rows, BLOCK_ROWS):
        block = slice(first, min(first + BLOCK_ROWS, n_rows))
        count = block.stop - first
        rng = np.random.default_rng([1, first // BLOCK_ROWS])
        scale[block] = rng.uniform(1.0, 3.0, count)
        center[block] = rng.uniform(300.0, 700.0, (count, 2))
        person = people[np.arange(first, block.stop) % len(people)]
        keypoints = person.copy()
        keypoints[..., :2] = crop_to_image(person[..., :2], center[block], scale[block])
        keypoints[person[..., 2] == 0] = 0.0
        openpose[block], part[block] = keypoints[:, :NUM_OPENPOSE_JOINTS], keypoints[:, NUM_OPENPOSE_JOINTS:]
    imgname = np.array([f"synthetic/{i:07d}.png" for i in range(n_rows)])
    np.savez(path, imgname=imgname, center=center, scale=scale, part=part, openpose=openpose)
    return path


class Work:
    """What the sections share, made when first needed: the stand-in model files, the synthetic
    people, the dataset files, precompute's stores (every row fitted but ``--left``) and the
    filled store ``"d"`` of the merge, refresh and worker sections."""

    def __init__(self, tmp: Path, args: argparse.Namespace) -> None:
        self.tmp, self.args = tmp, args
        self.write_seconds: dict[int, float] = {}
        self._datasets: dict[int, Path] = {}
        self._precompute_stores: dict[int, Path] = {}
        self._filled: FitStore | None = None
        self.next_step = 1  # training step of the next in-loop commit into the filled store

    @cached_property
    def model_dir(self) -> Path:
        from spinfits.fitting.synthetic.standin import write_standin_files

        write_standin_files(self.tmp / "standin")
        return self.tmp / "standin"

    @cached_property
    def people(self) -> np.ndarray:
        """(P, 49, 3) crop pixels x, y, confidence of ``--pool`` synthetic people."""
        start = time.perf_counter()
        files = load_body_model_files(self.model_dir)
        arrays = make_synthetic_dataset(files, SyntheticConfig(rows=self.args.pool, seed=0))
        image = np.concatenate([arrays["openpose"], arrays["part"]], axis=1)
        crop = image.copy()
        crop[..., :2] = image_to_crop(image[..., :2], arrays["center"], arrays["scale"])
        crop[image[..., 2] == 0] = 0.0
        self.people_seconds = time.perf_counter() - start
        return crop

    def dataset(self, n_rows: int) -> Path:
        if n_rows not in self._datasets:
            people = self.people
            start = time.perf_counter()
            path = write_spin_npz(self.tmp / f"{dataset_name(n_rows)}.npz", people, n_rows)
            self.write_seconds[n_rows] = time.perf_counter() - start
            self._datasets[n_rows] = path
        return self._datasets[n_rows]

    def config(self, n_rows: int, store: Path, **changes: Any) -> PrecomputeConfig:
        return PrecomputeConfig(
            dataset=self.dataset(n_rows),
            store=str(store),
            model_dir=self.model_dir,
            show_progress=False,
            **changes,
        )

    def left_rows(self, n_rows: int) -> np.ndarray:
        """(L,) sorted rows a precompute store holds no fit for (L = ``--left``)."""
        return np.sort(np.random.default_rng(6).choice(n_rows, min(self.args.left, n_rows), replace=False))

    def prefill(self, store_path: Path, n_rows: int) -> float:
        """Merge plausible fits of every row but ``left_rows`` into the precompute store at
        ``store_path`` in bulk, commit once; returns the seconds taken."""
        start = time.perf_counter()
        store = FitStore.open(store_path)
        keep = np.setdiff1d(np.arange(n_rows), self.left_rows(n_rows))
        rng = np.random.default_rng(5)
        for first in range(0, len(keep), BLOCK_ROWS):
            store.merge(dataset_name(n_rows), proposals(rng, keep[first : first + BLOCK_ROWS], 10.0, 0))
        store.commit("prefill: plausible fits of all rows but a few")
        return time.perf_counter() - start

    def adopt_precompute_store(self, n_rows: int, store_path: Path) -> None:
        self._precompute_stores[n_rows] = store_path

    def empty_precompute_store(self, n_rows: int) -> Path:
        """A new store holding the ``n_rows``-row dataset and no fits, as precompute's first run
        creates it (the stand-in's fingerprint, the dataset file's, the default fitting config)."""
        path = self.tmp / f"precompute-{n_rows}"
        files = load_body_model_files(self.model_dir)
        store = FitStore.create(path, BodyModelInfo(files.fingerprint, is_standin=files.is_standin))
        store.create_dataset(
            dataset_name(n_rows),
            n_rows,
            dataset_fingerprint=load_spin_npz(self.dataset(n_rows)).fingerprint,
            fitting_config=dataclasses.asdict(default_offline_config(files)),
        )
        return path

    def precompute_store(self, n_rows: int) -> Path:
        """A precompute store of the ``n_rows``-row dataset, every row fitted but ``left_rows``
        (the planning section's, or made here); each is used once."""
        if n_rows not in self._precompute_stores:
            path = self.empty_precompute_store(n_rows)
            self.prefill(path, n_rows)
            self.adopt_precompute_store(n_rows, path)
        return self._precompute_stores.pop(n_rows)

    def adopt_filled(self, store: FitStore) -> None:
        self._filled = store

    def filled_store(self) -> FitStore:
        """Store ``"d"`` of ``--rows`` rows, every row fitted (by the merge section, or here)."""
        if self._filled is None:
            store, _ = new_store(self.tmp, "filled", self.args.rows, CHUNK_ROWS)
            fill(store, np.random.default_rng(2), self.args.rows)
            self._filled = store
        return self._filled

    def commit_in_loop(self) -> Any:
        """One in-loop commit of 64 scattered rows into the filled store; returns its version."""
        store, step = self.filled_store(), self.next_step
        rng = np.random.default_rng([3, step])
        store.merge("d", proposals(rng, scattered(rng, self.args.rows, IN_LOOP_ROWS), 1.0 / step, step))
        self.next_step += 1
        return store.commit(f"step {step}")


# ---------------------------------------------------------------------------- fresh processes


class _Planned(Exception):
    def __init__(self, plan: Any) -> None:
        self.plan = plan


def plan_as_driver(link: Link, config: PrecomputeConfig) -> dict[str, Any]:
    """``run_precompute(config)`` in this fresh process up to where it would start the fitter
    actors: per step of the driver its seconds, RSS after and peak RSS so far."""
    icechunk.set_logs_filter("error")
    baseline = rss_bytes()
    reset_peak_rss()  # peaks from here: the driver's work, not the imports
    steps: list[tuple[str, float, int, int]] = []

    def measure(owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        def measured(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                steps.append((label, time.perf_counter() - start, rss_bytes(), peak_rss_bytes()))

        setattr(owner, name, measured)

    measure(FitStore, "losses", "read the stored losses")
    measure(FitStore, "failures", "read the failed rows")
    measure(precompute, "check_whole", "verify the dataset (every chunk and row)")
    measure(precompute, "load_spin_rows", "read the dataset npz (keeps the rows without a fit)")
    measure(precompute, "_prepare_store", "open the store, check the dataset")
    measure(precompute, "plan_rows", "find the rows to fit, cut shards")

    at_actors: dict[str, int] = {}

    def stop(config, store, files, plan, *rest):
        at_actors.update(rss=rss_bytes(), peak=peak_rss_bytes())  # before the frames unwind
        raise _Planned(plan)

    precompute._fit_plan = stop
    start = time.perf_counter()
    try:
        run_precompute(config)
        raise RuntimeError("run_precompute found nothing to fit")
    except _Planned as planned:
        plan = planned.plan
    return {
        "baseline": baseline,
        "steps": steps,
        "seconds": time.perf_counter() - start,
        "rss": at_actors["rss"],
        "peak": at_actors["peak"],
        "pending": len(plan.pending),
        "shards": len(plan.shards),
    }


def verify_memory(link: Link, location: str, name: str, how: str) -> dict[str, Any]:
    """Peak RSS above the start of one check of dataset ``name``, in this fresh process: ``how``
    "block-wise" (``check_whole``, what precompute and train run) or "whole load" (the check
    before it: every row loaded at once, ``layout.load_dataset``, then judged)."""
    from spinfits.store.damage import implausible_rows
    from spinfits.store.layout import load_dataset
    from spinfits.store.verify import check_whole

    icechunk.set_logs_filter("error")
    store = FitStore.open(location)
    snapshot = snapshot_store(store.repository, store.tip())
    baseline = rss_bytes()
    reset_peak_rss()
    start = time.perf_counter()
    if how == "block-wise":
        check_whole(store, [name])
    else:
        implausible_rows(load_dataset(snapshot, name)[0])
    return {"seconds": time.perf_counter() - start, "peak": peak_rss_bytes() - baseline}


def precompute_as_driver(link: Link, config: PrecomputeConfig) -> dict[str, Any]:
    """The real ``run_precompute(config)`` as this fresh process's driver: its peak RSS per phase
    (load and plan / fitting / summary) and the peak RSS of each fitter actor process."""
    private_ray()
    icechunk.set_logs_filter("error")
    baseline = rss_bytes()
    reset_peak_rss()
    phases: dict[str, dict[str, float]] = {}
    since = [time.perf_counter()]

    def end_phase(label: str) -> None:
        phases[label] = {
            "peak": peak_rss_bytes(),
            "rss": rss_bytes(),
            "seconds": time.perf_counter() - since[0],
        }
        reset_peak_rss()
        since[0] = time.perf_counter()

    def before(name: str, label: str) -> None:
        original = getattr(precompute, name)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            end_phase(label)
            return original(*args, **kwargs)

        setattr(precompute, name, wrapped)

    before("_fit_plan", "load and plan")
    before("_summary", "fitting")
    load = precompute.load_spin_rows
    kept: dict[str, int] = {}

    def load_and_weigh(*args: Any, **kwargs: Any) -> Any:
        dataset = load(*args, **kwargs)
        arrays = [getattr(dataset, f.name) for f in dataclasses.fields(dataset)]
        kept["dataset"] = sum(a.nbytes for a in arrays if isinstance(a, np.ndarray))
        return dataset

    precompute.load_spin_rows = load_and_weigh
    with PeakWatcher(os.getpid(), ACTOR_PROCESS) as actors:
        summary = run_precompute(config)
    end_phase("summary")
    return {
        "baseline": baseline,
        "phases": phases,
        "peak_resets": reset_peak_rss(),
        "actors": sorted(actors.peaks.values()),
        "dataset_bytes": kept["dataset"],
        "fitted": summary.rows_fitted,
        "failed": summary.rows_failed,
        "seconds": summary.seconds,
        "commits": summary.commits,
    }


def worker_fits(link: Link, location: str, cycles: int) -> dict[str, Any]:
    """A training worker's fits in this fresh process: a ``FitReader`` of store ``"d"`` at
    ``location`` and a ``BestFits`` over it, through ``cycles`` steps of recording its own 64
    proposals, asking the parent for a 64-row commit and refreshing. Held and peak bytes by
    tracemalloc and by RSS, after the load and after the cycles."""
    icechunk.set_logs_filter("error")
    rng = np.random.default_rng(7)
    store = FitStore.open(location)
    tracemalloc.start()
    rss_before = rss_bytes()
    reset_peak_rss()

    def figures() -> dict[str, int]:
        held, peak = tracemalloc.get_traced_memory()
        return {
            "held": held,
            "peak": peak,
            "rss": rss_bytes() - rss_before,
            "rss_peak": peak_rss_bytes() - rss_before,
        }

    snapshot = snapshot_store(store.repository, store.tip())
    log_records = {level: level_state(open_level(snapshot, "d", level)).length for level in LEVELS}
    start = time.perf_counter()
    reader = store.reader("d")
    load_seconds = time.perf_counter() - start
    loaded = figures()
    tracemalloc.reset_peak()
    reset_peak_rss()
    best = BestFits(reader)
    refreshes = []
    for cycle in range(cycles):
        rows = rng.choice(reader.n_rows, IN_LOOP_ROWS, replace=False)
        best.record(
            Proposals(
                rows=rows,
                pose=(rng.standard_normal((IN_LOOP_ROWS, 72)) * 0.2).astype(np.float32),
                betas=rng.standard_normal((IN_LOOP_ROWS, 10)).astype(np.float32),
                cam_t=(rng.standard_normal((IN_LOOP_ROWS, 3)) + [0.0, 0.0, 30.0]).astype(np.float32),
                loss=(rng.random(IN_LOOP_ROWS) * 1e-3).astype(np.float32),
                source=Source.IN_LOOP,
                step=cycle,
            )
        )
        link.ask("commit")
        start = time.perf_counter()
        best.refresh()
        refreshes.append(time.perf_counter() - start)
        best.read(rng.integers(0, reader.n_rows, IN_LOOP_ROWS))
    return {
        "n_rows": reader.n_rows,
        "log_records": log_records,
        "load_seconds": load_seconds,
        "loaded": loaded,
        "cycles": figures(),
        "own_rows": len(best.own_rows),
        "refresh_median": statistics.median(refreshes),
    }


# ------------------------------------------------------------------------------------ sections


def dataset(work: Work) -> None:
    n = work.args.rows
    print(f"\n== dataset: a SPIN-format npz of {n:,} rows")
    path = work.dataset(n)
    with np.load(path) as archive:
        keypoint_bytes = sum(archive[key].nbytes for key in ("part", "openpose"))
    table(
        ["figure", "value"],
        [
            ["people drawn (stand-in body model)", f"{work.args.pool:,} in {work.people_seconds:.1f} s"],
            ["rows written (a box per row, np.savez)", f"{n:,} in {work.write_seconds[n]:.1f} s"],
            ["file size", f"{mb(path.stat().st_size)} (part + openpose float64: {mb(keypoint_bytes)})"],
        ],
    )


def planning(work: Work) -> None:
    n, left = work.args.rows, len(work.left_rows(work.args.rows))
    print(
        f"\n== planning: precompute's driver before the actors start, {n:,} rows "
        f"(run_precompute in a fresh process; per step: time, RSS after it / peak so far, above the RSS after imports)"
    )
    path = work.empty_precompute_store(n)
    runs = {"store empty": run_in_child(plan_as_driver, work.config(n, path))}
    prefill = work.prefill(path, n)
    runs[f"{(n - left) / n:.1%} of rows fitted"] = run_in_child(plan_as_driver, work.config(n, path))
    work.adopt_precompute_store(n, path)
    print(f"(prefill between the two: bulk merges of {n - left:,} rows + one commit, {prefill:.1f} s)")
    labels = [label for label, *_ in next(iter(runs.values()))["steps"]]
    rows = []
    for index, label in enumerate(labels):
        cells = []
        for run in runs.values():
            _, seconds, rss, peak = run["steps"][index]
            cells.append(f"{seconds:.2f} s, +{mb(rss - run['baseline'])} / +{mb(peak - run['baseline'])}")
        rows.append([label] + cells)
    rows.append(["all of run_precompute up to the actors"] + [f"{r['seconds']:.2f} s" for r in runs.values()])
    rows.append(["driver RSS after imports"] + [mb(r["baseline"]) for r in runs.values()])
    rows.append(
        ["driver peak RSS, above that"] + [f"**+{mb(r['peak'] - r['baseline'])}**" for r in runs.values()]
    )
    rows.append(
        ["driver RSS held when the actors would start, above it"]
        + [f"+{mb(r['rss'] - r['baseline'])}" for r in runs.values()]
    )
    rows.append(["rows to fit / shards"] + [f"{r['pending']:,} / {r['shards']:,}" for r in runs.values()])
    table(["step"] + list(runs), rows)
    print(
        f"\nthe store check alone on the {n:,}-row store (each in a fresh process; peak RSS above its start):"
    )
    checks = {
        how: run_in_child(verify_memory, str(path), dataset_name(n), how)
        for how in ("whole load", "block-wise")
    }
    table(
        ["check", "time", "peak above start"],
        [[how, f"{c['seconds']:.2f} s", f"+{mb(c['peak'])}"] for how, c in checks.items()],
    )


def merge(work: Work) -> None:
    n = work.args.rows
    shard, every = CPU_SHARD_ROWS, PRECOMPUTE_DEFAULTS["commit_every_rows"]
    print(
        f"\n== merge and commit: precompute's writer over {n:,} rows (shards of {shard}, a commit every "
        f"{every:,} rows), then in-loop commits of {IN_LOOP_ROWS} scattered rows"
    )
    store, path = new_store(work.tmp, "merge", n, CHUNK_ROWS)
    rng = np.random.default_rng(2)
    merges, commits, written, how = [], [], [], []
    since = 0
    start_all = time.perf_counter()
    for first in range(0, n, shard):
        batch = proposals(rng, np.arange(first, min(first + shard, n)), 10.0, 0)
        start = time.perf_counter()
        store.merge("d", batch)
        merges.append(time.perf_counter() - start)
        since += len(batch)
        if since >= every or first + shard >= n:
            before = folder_bytes(path)
            start = time.perf_counter()
            version = store.commit(f"rows to {first + len(batch)}")
            commits.append(time.perf_counter() - start)
            written.append(folder_bytes(path) - before)
            how.append(version.metadata["written"]["d"])
            since = 0
    total_seconds = time.perf_counter() - start_all
    work.adopt_filled(store)
    rest = sorted(merges[1:]) or merges
    rows = [
        [
            f"merge of one {shard}-row shard: median / p99 / max",
            f"{ms(statistics.median(rest))} / "
            f"{ms(rest[int(0.99 * (len(rest) - 1))])} / {ms(rest[-1])} over {len(rest):,}",
        ],
        ["first merge (reads the writer's working copy: every row's loss)", ms(merges[0])],
        [
            f"commit of {every:,} rows: median / max",
            f"{ms(statistics.median(commits))} / {ms(max(commits))} "
            f"({len(commits)} commits: {', '.join(f'{how.count(k)} {k}' for k in sorted(set(how)))})",
        ],
        [
            "bytes per commit: median",
            f"{mb(statistics.median(written))} ({statistics.median(written) / (every * ROW_BYTES):.2f}x the rows')",
        ],
        [
            "whole precompute: merges + commits",
            f"{total_seconds:.1f} s, {mb(sum(written))} written "
            f"({sum(written) / (n * ROW_BYTES):.2f}x the rows' {mb(n * ROW_BYTES)})",
        ],
    ]
    merges, commits, written, how = [], [], [], []
    for _ in range(work.args.commits):
        step = work.next_step
        batch = proposals(rng, scattered(rng, n, IN_LOOP_ROWS), 1.0 / step, step)
        start = time.perf_counter()
        store.merge("d", batch)
        merges.append(time.perf_counter() - start)
        before = folder_bytes(path)
        start = time.perf_counter()
        version = store.commit(f"step {step}")
        commits.append(time.perf_counter() - start)
        written.append(folder_bytes(path) - before)
        how.append(version.metadata["written"]["d"])
        work.next_step += 1
    rows += [
        [f"in-loop: merge of {IN_LOOP_ROWS} scattered rows, median", ms(statistics.median(merges))],
        [
            f"in-loop: commit, median / max ({len(commits)} commits)",
            f"{ms(statistics.median(commits))} / {ms(max(commits))}",
        ],
        [
            "in-loop: bytes per commit, median / mean",
            f"{statistics.median(written) / 1e3:,.1f} kB / "
            f"{statistics.mean(written) / 1e3:,.1f} kB (rows' bytes {IN_LOOP_ROWS * ROW_BYTES / 1e3:.1f} kB; "
            f"{', '.join(f'{how.count(k)} {k}' for k in sorted(set(how)))})",
        ],
    ]
    table(["figure", "value"], rows)


def refresh(work: Work) -> None:
    n = work.args.rows
    print(f"\n== refresh: a reader of {n:,} rows after each commit of {IN_LOOP_ROWS} scattered rows")
    store = work.filled_store()
    other = FitStore.open(store.location)
    start = time.perf_counter()
    reader = other.reader("d")
    load = time.perf_counter() - start
    samples = timed_refreshes(
        store, reader, np.random.default_rng(4), IN_LOOP_ROWS, work.args.refreshes, work.next_step
    )
    work.next_step += work.args.refreshes
    assert reader.read_all().equals(store.read("d"))
    ordered = sorted(samples)
    median = statistics.median(samples)
    table(
        ["figure", "value", "target"],
        [
            ["reader full load", ms(load), ""],
            [
                f"refresh after a {IN_LOOP_ROWS}-row commit: median",
                f"**{ms(median)}** (p90 {ms(ordered[int(0.9 * (len(ordered) - 1))])}, max {ms(ordered[-1])}, "
                f"{len(samples)} refreshes; rows read back equal the tip's)",
                f"< {ms(REFRESH_TARGET_S)}: {met(median < REFRESH_TARGET_S)}",
            ],
        ],
    )


def precompute_memory(work: Work) -> None:
    sizes = sorted({work.args.small_rows, work.args.rows})
    left, actors = work.args.left, work.args.actors
    print(
        f"\n== precompute memory: the real run_precompute (local Ray, {actors} fitter actor(s) of 1 thread, "
        f"stand-in) on a store holding every row but {left:,}; driver = a fresh process"
    )
    runs = {}
    for n in sizes:
        path = work.precompute_store(n)
        runs[n] = run_in_child(
            precompute_as_driver, work.config(n, path, workers=actors, threads_per_worker=1)
        )
    must_hold = left * (49 * 3 * 4 + 8)  # keypoints (L, 49, 3) float32 and row indices int64
    header = ["figure"] + [f"{n:,} rows" for n in sizes]
    if len(sizes) == 2:
        header.append("growth")

    def row(label: str, values: list[float], text) -> list[str]:
        cells = [label] + [text(v) for v in values]
        if len(values) == 2:
            cells.append(f"{'+' if values[1] >= values[0] else ''}{mb(values[1] - values[0])}")
        return cells

    phases = [(r["phases"], r["baseline"]) for r in runs.values()]
    rows = [
        [
            "rows fitted (failed) / time",
            *[
                f"{r['fitted']:,} ({r['failed']}) / {r['seconds']:.1f} s, {r['commits']} commits"
                for r in runs.values()
            ],
        ],
        row("driver RSS after imports", [b for _, b in phases], mb),
        row(
            "driver peak: load and plan, above that", [p["load and plan"]["peak"] - b for p, b in phases], mb
        ),
        row(
            "driver RSS held when the actors start, above it",
            [p["load and plan"]["rss"] - b for p, b in phases],
            mb,
        ),
        row(
            "driver peak: fitting (Ray, merges, commits), above it",
            [p["fitting"]["peak"] - b for p, b in phases],
            mb,
        ),
        row(
            "driver peak: summary (reads the store), above it",
            [p["summary"]["peak"] - b for p, b in phases],
            mb,
        ),
        row("fitter actor peak RSS, largest", [max(r["actors"], default=0) for r in runs.values()], mb),
        [
            "fitter actor peak RSS, each",
            *[", ".join(mb(v) for v in r["actors"]) or "none seen" for r in runs.values()],
        ],
    ]
    if len(sizes) == 2:
        for cells in rows[:1] + rows[-1:]:
            cells.append("")
    table(header, rows)
    print(
        f"what the driver must hold for the rows to fit: their keypoints and indices, {left:,} x "
        f"(49 x 3 x 4 + 8) B = {mb(must_hold)}; what it reads at {sizes[-1]:,} rows: the loader's "
        f"result {mb(runs[sizes[-1]]['dataset_bytes'])} (the kept rows' keypoints and every row's "
        f"confident-keypoint count, int16), and per row of the dataset the stored loss (float32, "
        f"the writer's working copy keeps it) and the failed mask (int16 codes): "
        f"{mb(sizes[-1] * (4 + 2))}"
        + ("" if all(r["peak_resets"] for r in runs.values()) else "; NOTE: peaks count from the start")
    )


def worker_memory(work: Work) -> None:
    n, cycles = work.args.rows, work.args.cycles
    one_copy = n * ROW_BYTES
    print(
        f"\n== worker memory: FitReader + BestFits of {n:,} rows in a fresh process, {cycles} cycles of "
        f"record {IN_LOOP_ROWS} own fits / a {IN_LOOP_ROWS}-row commit by another process / refresh; "
        f"one copy of the fits = {n:,} x {ROW_BYTES} B = {mb(one_copy)}"
    )
    store = work.filled_store()

    def serve(message: str) -> None:
        work.commit_in_loop()

    result = run_in_child(worker_fits, str(store.location), cycles, serve=serve)
    loaded, after = result["loaded"], result["cycles"]

    def share(value: int) -> str:
        return f"{mb(value)} ({value / one_copy:.2f}x)"

    table(
        ["figure", "after the reader's load", f"after {cycles} cycles", "target"],
        [
            [
                "held, tracemalloc (allocations alive)",
                share(loaded["held"]),
                f"**{share(after['held'])}**",
                f"< {WORKER_TARGET}x: {met(after['held'] < WORKER_TARGET * one_copy)}",
            ],
            ["peak, tracemalloc", share(loaded["peak"]), share(after["peak"]), ""],
            [
                "RSS growth (the process, icechunk's Rust side too)",
                share(loaded["rss"]),
                share(after["rss"]),
                "",
            ],
            ["peak RSS growth", share(loaded["rss_peak"]), share(after["rss_peak"]), ""],
        ],
    )
    log = ", ".join(f"{level} {count:,}" for level, count in result["log_records"].items())
    print(
        f"update log records the load applied: {log} ({RECORD.itemsize} B each); "
        f"reader load {ms(result['load_seconds'])}; BestFits holds {result['own_rows']} own rows; "
        f"refresh median {ms(result['refresh_median'])}. The 'after cycles' peaks count from the end of the load."
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help="comma-separated, of " + ", ".join(SECTIONS)
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the dataset")
    parser.add_argument(
        "--small-rows", type=int, default=10_000, help="the smaller dataset of precompute-memory"
    )
    parser.add_argument("--left", type=int, default=1536, help="rows a precompute store holds no fit for")
    parser.add_argument("--actors", type=int, default=2, help="fitter actors of precompute-memory")
    parser.add_argument("--pool", type=int, default=2048, help="synthetic people the dataset repeats")
    parser.add_argument("--commits", type=int, default=30, help="in-loop commits of the merge section")
    parser.add_argument("--refreshes", type=int, default=30)
    parser.add_argument(
        "--cycles", type=int, default=10, help="record/commit/refresh cycles of worker-memory"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, to smoke-test the script")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.small_rows, args.left, args.actors, args.pool = 20_000, 5_000, 32, 1, 64
        args.commits, args.refreshes, args.cycles = 5, 5, 3
    chosen = args.sections.split(",")
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; pick from {', '.join(SECTIONS)}")
    icechunk.set_logs_filter("error")
    with tempfile.TemporaryDirectory(prefix="spinfits-million-rows-") as tmp:
        work = Work(Path(tmp), args)
        for name, section in zip(
            SECTIONS, (dataset, planning, merge, refresh, precompute_memory, worker_memory)
        ):
            if name in chosen:
                start = time.perf_counter()
                section(work)
                print(f"({name}: {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
