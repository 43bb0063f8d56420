"""Where precompute's time goes: the offline fitter's steps on a shard, then the path through Ray.

    python bench/precompute_profile.py [--model-dir standin|toy|DIR] [--rows 512] [--shard-size 128]
        [--threads 2] [--keypoints SET[,SET...]] [--skip-ray]

SET: "lsp" or "openpose" (synthetic look-alikes, ``precompute_common.KEYPOINT_SETS``, --rows rows)
or a SPIN npz path (real keypoints, e.g. ``../shared/data/lsp_train_keypoints.npz``: all rows in
(b), the first --rows in (a)).
Per set, in this process: (a) ``OfflineFitter.fit`` on shards of --shard-size rows, its steps
timed by wrapping them (swap check, hypotheses set-up, camera stage, each prior stage of the body
stage, hypothesis selection, outlier detection and refit, the final loss): seconds, share, rows
fitted and mean LM iterations per step; the distribution of LM iterations per hypothesis row and
stage (percentiles, share stopped by the cap: never converged) and per row (the chosen fit's);
time per row by how hard the row is (missing keypoints, final-loss quartile: each group refitted
alone and timed); the actor's Python overhead per shard (``FitterActor.fit_shard`` against
``OfflineFitter.fit`` on the same shard). (b) ``run_precompute`` on the first set (local Ray,
--workers actors with --threads / --workers threads each): checks, Ray start-up, the actors'
start split into process start and imports, body model load, fitter set-up (regressor load) and
first shard, steady fitting, the driver's merges and commits, shut-down.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from precompute_common import describe, model_folder, private_ray, write_keypoints

import spinfits.cluster.fitter_actor as actor_module
import spinfits.cluster.precompute as precompute_module
import spinfits.fitting.offline.fitter as offline_module
import spinfits.fitting.smplify.fitter as smplify_module
from spinfits.cluster.precompute import COUNTED_JOINTS, PrecomputeConfig, run_precompute
from spinfits.fitting.body.model_files import load_body_model_files
from spinfits.fitting.data.dataset import load_spin_npz
from spinfits.fitting.offline.config import default_offline_config
from spinfits.fitting.offline.fitter import OfflineFitter
from spinfits.fitting.smplify.stages import BodyStage, CameraStage
from spinfits.store.writer import StoreWriter


class StepTimer:
    """Seconds, calls, rows and LM iterations per labelled step; per solver call, the iterations
    and convergence of every hypothesis row (``records``: label -> list of (iterations, converged,
    cap))."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.rows: dict[str, int] = defaultdict(int)
        self.iterations: dict[str, int] = defaultdict(int)
        self.records: dict[str, list] = defaultdict(list)
        self.context = ""
        self.enabled = True

    @contextmanager
    def step(self, label: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.enabled:
                self.seconds[label] += time.perf_counter() - start


def _wrap(owner, name: str, wrapper_factory):
    original = getattr(owner, name)
    setattr(owner, name, wrapper_factory(original))
    return original


def instrument(timer: StepTimer) -> None:
    """Wrap the offline fitter's steps (module attributes and methods) with ``timer``."""

    def timed(label):
        def factory(original):
            def wrapper(*args, **kwargs):
                with timer.step(label):
                    return original(*args, **kwargs)

            return wrapper

        return factory

    _wrap(offline_module, "openpose_swapped", timed("swap check"))
    _wrap(offline_module, "swap_openpose_back", timed("swap check"))
    _wrap(offline_module, "mean_initialisation", timed("hypotheses: mean pose + camera"))
    _wrap(OfflineFitter, "_hypotheses", timed("hypotheses: mean pose + camera"))
    _wrap(offline_module, "initial_camera", timed("hypotheses: learned (regressor + camera)"))
    _wrap(OfflineFitter, "_select", timed("hypothesis selection"))
    _wrap(offline_module, "fit_loss_at", timed("final loss"))

    def outliers(original):
        def wrapper(*args, **kwargs):
            timer.context = "outlier refit: "
            try:
                with timer.step("outlier detection (+ refit's set-up)"):
                    return original(*args, **kwargs)
            finally:
                timer.context = ""

        return wrapper

    _wrap(offline_module, "reject_outliers", outliers)

    def pool(original):
        def wrapper(problem, rows, num_params, capacity, max_iterations, *args, **kwargs):
            if isinstance(problem, CameraStage):
                label = "camera stage"
            elif isinstance(problem, BodyStage):
                weights = problem.weights
                label = f"body stage (prior weights {weights.pose_prior_weight:g}, {weights.shape_prior_weight:g})"
            else:
                label = type(problem).__name__
            label = timer.context + label
            with timer.step(label):
                outcome = original(problem, rows, num_params, capacity, max_iterations, *args, **kwargs)
            if timer.enabled:
                timer.rows[label] += int(rows.numel())
                timer.iterations[label] += int(outcome.iterations.sum())
                timer.records[label].append(
                    (outcome.iterations.cpu().numpy(), outcome.converged.cpu().numpy(), max_iterations)
                )
            return outcome

        return wrapper

    _wrap(smplify_module, "solve_pool", pool)


def fit_in_shards(fitter: OfflineFitter, keypoints: np.ndarray, shard_size: int):
    """(seconds, loss (N,), iterations (N,), converged (N,)) of fitting ``keypoints`` shard by shard."""
    start = time.perf_counter()
    results = [fitter.fit(keypoints[b : b + shard_size]) for b in range(0, len(keypoints), shard_size)]
    seconds = time.perf_counter() - start
    return (
        seconds,
        torch.cat([r.loss for r in results]).numpy(),
        torch.cat([r.iterations for r in results]).numpy(),
        torch.cat([r.converged for r in results]).numpy(),
    )


def _percentiles(values: np.ndarray) -> str:
    p10, p50, p90 = np.percentile(values, [10, 50, 90])
    return f"{p10:.0f} / {p50:.0f} / {p90:.0f} / {values.max():.0f} | {values.mean():.1f}"


def profile_fitter(files, label: str, keypoints: np.ndarray, shard_size: int, timer: StepTimer) -> dict:
    config = default_offline_config(files)
    fitter = OfflineFitter(files, config)
    timer.enabled = False
    fitter.fit(keypoints[: min(16, len(keypoints))])  # warm-up
    for table in (timer.seconds, timer.rows, timer.iterations, timer.records):
        table.clear()
    timer.enabled = True
    total, loss, iterations, converged = fit_in_shards(fitter, keypoints, shard_size)
    timer.enabled = False
    # outlier detection's time includes its refit's solver time: report it without
    refit = sum(seconds for name, seconds in timer.seconds.items() if name.startswith("outlier refit"))
    timer.seconds["outlier detection (+ refit's set-up)"] -= refit
    hypothesis_rows = timer.rows.get("camera stage", 0)
    print(
        f"\n### {label}: (a) OfflineFitter.fit, {len(keypoints)} rows in shards of {shard_size}: {total:.2f} s, "
        f"{len(keypoints) / total:.1f} fits/s; {hypothesis_rows} hypothesis rows "
        f"({hypothesis_rows / len(keypoints):.2f} per row; learned {config.learned_hypothesis}, back "
        f"{config.back_hypothesis}, sides {config.side_hypotheses}; {len(config.stages)} prior stages)"
    )
    print("| step | seconds | share | rows fitted | mean LM iterations |")
    print("|---|---|---|---|---|")
    accounted = 0.0
    for name, seconds in timer.seconds.items():
        accounted += seconds
        rows = timer.rows.get(name, 0)
        mean = f"{timer.iterations[name] / rows:.1f}" if rows else ""
        print(f"| {name} | {seconds:.2f} | {seconds / total:.1%} | {rows or ''} | {mean} |")
    other = total - accounted
    print(f"| other (input checks, batching, copies) | {other:.2f} | {other / total:.1%} | | |")

    print(f"\nLM iterations, {label}: per hypothesis row and stage, and per row (the chosen fit, all stages)")
    print("| stage | rows | p10 / p50 / p90 / max | mean | cap | stopped by the cap (never converged) |")
    print("|---|---|---|---|---|---|")
    for name, records in timer.records.items():
        if records[0][2] == 0:  # a stage with no iterations (the outlier refit's camera)
            continue
        its = np.concatenate([r[0] for r in records])
        conv = np.concatenate([r[1] for r in records])
        cap = records[0][2]
        print(f"| {name} | {its.size} | {_percentiles(its)} | {cap} | {(~conv).mean():.1%} |")
    print(
        f"| per row, chosen fit | {iterations.size} | {_percentiles(iterations)} | | {(~converged).mean():.1%} |"
    )

    # time per row by how hard the row is: each group refitted alone
    confident = (keypoints[:, COUNTED_JOINTS, 2] > 0).sum(1)
    finite = np.isfinite(loss)
    quartiles = np.quantile(loss[finite], [0.25, 0.5, 0.75]) if finite.any() else np.zeros(3)
    groups = {f"{count} confident keypoints": confident == count for count in np.unique(confident)}
    if len(groups) > 4:  # many counts: bucket them
        edges = np.quantile(confident, [0.25, 0.5, 0.75])
        groups = {
            f"confident keypoints <= {edges[0]:.0f}": confident <= edges[0],
            f"{edges[0]:.0f} < confident <= {edges[2]:.0f}": (confident > edges[0]) & (confident <= edges[2]),
            f"confident > {edges[2]:.0f}": confident > edges[2],
        }
    bounds = [-np.inf, *quartiles, np.inf]
    for index in range(4):
        groups[f"fit loss quartile {index + 1} ({bounds[index]:.2f} .. {bounds[index + 1]:.2f})"] = (
            finite & (loss > bounds[index]) & (loss <= bounds[index + 1])
        )
    print(
        f"\nTime per row by how hard the row is, {label} (each group refitted alone, shards of {shard_size})"
    )
    print("| rows | count | fits/s | ms per row | mean LM iterations (chosen fit) | never converged |")
    print("|---|---|---|---|---|---|")
    for name, mask in groups.items():
        if mask.sum() == 0:
            continue
        seconds, _, its, conv = fit_in_shards(fitter, keypoints[mask], shard_size)
        print(
            f"| {name} | {int(mask.sum())} | {mask.sum() / seconds:.1f} | {1000 * seconds / mask.sum():.1f} | "
            f"{its.mean():.1f} | {(~conv).mean():.1%} |"
        )

    # the actor's own overhead per shard, in this process (no Ray)
    actor = actor_module.FitterActor(str(files.directory), config, "cpu", torch.get_num_threads())
    shard = keypoints[:shard_size]
    rows = np.arange(len(shard))
    plain = min(_seconds(lambda: fitter.fit(shard)) for _ in range(2))
    wrapped = min(_seconds(lambda: actor.fit_shard(rows, shard)) for _ in range(2))
    print(
        f"\nPython overhead per shard of {len(shard)} rows, {label}: FitterActor.fit_shard {wrapped:.3f} s, "
        f"OfflineFitter.fit {plain:.3f} s: {wrapped - plain:+.3f} s ({(wrapped - plain) / plain:+.1%}; best of 2)"
    )
    return {"loss": loss, "iterations": iterations}


def _seconds(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


class TimedFitter(actor_module.FitterActor):
    """A fitter actor that writes when its process started and what its start-up took to
    ``<folder>/actor-<pid>.json`` (the bench's folder: the class attribute ``folder``)."""

    folder = ""

    def __init__(self, model_dir, config, device, threads) -> None:
        entered = time.time()
        with open(f"/proc/{os.getpid()}/stat") as handle:
            ticks = int(handle.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith("btime"))
        process_start = boot + ticks / os.sysconf("SC_CLK_TCK")
        original = actor_module.load_body_model_files
        loads = {}

        def timed_load(directory):
            begin = time.time()
            try:
                return original(directory)
            finally:
                loads["model load"] = time.time() - begin

        actor_module.load_body_model_files = timed_load
        begin = time.time()
        super().__init__(model_dir, config, device, threads)
        actor_module.load_body_model_files = original
        self.timings = {
            "process start": process_start,
            "actor __init__ entered": entered,
            "model load": loads["model load"],
            "fitter set-up (regressor load, engine)": time.time() - begin - loads["model load"],
            "actor ready": time.time(),
        }
        self.first = None

    def fit_shard(self, rows, keypoints, init_pose=None, init_betas=None):
        begin = time.time()
        result = super().fit_shard(rows, keypoints, init_pose, init_betas)
        if self.first is None:
            self.first = (begin, time.time())
            self.timings["first shard begins"], self.timings["first shard ends"] = self.first
            Path(self.folder, f"actor-{os.getpid()}.json").write_text(json.dumps(self.timings))
        return result


def profile_ray(
    dataset: Path, model_dir: Path, work: Path, shard_size: int, threads: int, workers: int
) -> None:
    timer = StepTimer()
    original = precompute_module.connect_or_start_ray
    marks = {}

    def start_ray():
        marks["checks done"] = time.time()
        with timer.step("Ray start-up (ray.init)"):
            started = original()
        marks["Ray started"] = time.time()
        return started

    precompute_module.connect_or_start_ray = start_ray
    for name, label in (("propose", "driver: merge shards"), ("close", "driver: last commit")):
        _wrap(StoreWriter, name, lambda f, label=label: _timed_method(timer, label, f))
    _wrap(
        precompute_module.ray, "shutdown", lambda f: _timed_method(timer, "Ray shut-down (ray.shutdown)", f)
    )
    TimedFitter.folder = str(work)
    real_class = precompute_module.remote_fitter_class
    precompute_module.remote_fitter_class = lambda num_cpus, num_gpus: real_class(
        num_cpus, num_gpus, TimedFitter
    )
    called = time.time()
    summary = run_precompute(
        PrecomputeConfig(
            dataset=dataset,
            store=str(work / "store"),
            model_dir=model_dir,
            workers=workers,
            threads_per_worker=max(1, threads // workers),
            shard_size=shard_size,
            show_progress=False,
        )
    )
    precompute_module.remote_fitter_class = real_class
    times, counts = np.array(summary.timeline, dtype=float).T
    steady = times[-1] - times[0]
    print(
        f"\n### (b) run_precompute on {dataset.name}: {summary.rows_fitted} rows in {summary.seconds:.2f} s "
        f"({summary.fits_per_second:.1f} fits/s end to end; steady state "
        f"{(counts[-1] - counts[0]) / max(steady, 1e-9):.1f} fits/s), {workers} actor(s), {summary.commits} commits; "
        f"the actors' time in fit_shard {summary.fitting_seconds:.1f} s of {workers * steady:.1f} actor-seconds "
        "of steady state"
    )
    actors = [json.loads(path.read_text()) for path in sorted(work.glob("actor-*.json"))]
    first = min(actors, key=lambda timings: timings["first shard ends"])
    print("Start-up, seconds since run_precompute was called (the first actor to finish a shard):")
    print("| moment | seconds | step |")
    print("|---|---|---|")
    moments = [
        ("checks, store, plan done", marks["checks done"]),
        ("Ray started (ray.init returned)", marks["Ray started"]),
        ("actor process started", first["process start"]),
        ("actor __init__ entered (imports done)", first["actor __init__ entered"]),
        ("body model loaded", first["actor __init__ entered"] + first["model load"]),
        ("fitter set up (regressor, engine): actor ready", first["actor ready"]),
        ("first shard begins", first["first shard begins"]),
        ("first shard ends", first["first shard ends"]),
        ("first shard merged by the driver", called + times[0]),
    ]
    previous = called
    for name, moment in moments:
        print(f"| {name} | {moment - called:.2f} | +{moment - previous:.2f} |")
        previous = moment
    print("| phase | seconds | share |")
    print("|---|---|---|")
    phases = {
        "later shards (steady fitting)": steady,
        "driver: merge shards (overlaps the fitting)": timer.seconds["driver: merge shards"],
        "driver: last commit": timer.seconds["driver: last commit"],
        "Ray shut-down (ray.shutdown)": timer.seconds["Ray shut-down (ray.shutdown)"],
    }
    for label, value in phases.items():
        print(f"| {label} | {value:.2f} | {value / summary.seconds:.1%} |")


def _timed_method(timer: StepTimer, label: str, original):
    def wrapper(*args, **kwargs):
        with timer.step(label):
            return original(*args, **kwargs)

    return wrapper


def keypoint_set(text: str, files, work: Path, rows: int, seed: int) -> tuple[str, Path]:
    if text in ("lsp", "openpose"):
        return f"{rows} synthetic {text}-like rows", write_keypoints(
            work / f"{text}.npz", files, text, rows, seed
        )
    return f"{Path(text).name} (real)", Path(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", help="standin (default), toy (pose correctives) or a folder")
    parser.add_argument(
        "--rows", type=int, default=512, help="rows of each set in (a), of synthetic sets in (b)"
    )
    parser.add_argument("--shard-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="actors in (b) (threads / workers each)")
    parser.add_argument("--keypoints", default="openpose", help="lsp, openpose or npz paths, comma-separated")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import icechunk

    icechunk.set_logs_filter("error")
    private_ray()
    work = Path(tempfile.mkdtemp(prefix="spinfits-profile-"))
    model_dir = model_folder(args.model_dir, work)
    files = load_body_model_files(model_dir)
    sets = [keypoint_set(text, files, work, args.rows, args.seed) for text in args.keypoints.split(",")]
    print(
        f"{describe(files)}; sets: {', '.join(label for label, _ in sets)}; {args.threads} threads in (a); "
        f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())} (machine shared with other jobs)"
    )
    if not args.skip_ray:  # first, before this process wraps the fitter's functions
        profile_ray(sets[0][1], model_dir, work, args.shard_size, args.threads, args.workers)
    torch.set_num_threads(max(1, args.threads // args.workers))
    print(f"\n(a) runs on {torch.get_num_threads()} thread(s), as one actor does")
    timer = StepTimer()
    instrument(timer)
    for label, path in sets:
        profile_fitter(files, label, load_spin_npz(path).keypoints[: args.rows], args.shard_size, timer)


if __name__ == "__main__":
    main()
