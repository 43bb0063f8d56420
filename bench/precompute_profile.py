"""Where precompute's time goes: the offline fitter's steps on a shard, then the path through Ray.

    python bench/precompute_profile.py [--model-dir standin|toy|DIR] [--rows 512] [--shard-size 128]
        [--threads 2] [--keypoints openpose|lsp] [--skip-ray]

(a) ``OfflineFitter.fit`` on shards of --shard-size rows in this process, its steps timed by
wrapping them (swap check, hypotheses set-up, camera stage, each prior stage of the body stage,
hypothesis selection, outlier detection and refit, the final loss): seconds, share, rows fitted
and mean LM iterations per step. (b) ``run_precompute`` on the same rows (local Ray, one actor
with the same threads): Ray start-up, the wait for the first shard (actor start, imports, model
load, warm-up), steady fitting, the driver's merges and commits, shut-down.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from precompute_common import describe, model_folder, private_ray, write_keypoints

import spinfits.cluster.precompute as precompute_module
import spinfits.fitting.offline.fitter as offline_module
import spinfits.fitting.smplify.fitter as smplify_module
from spinfits.cluster.precompute import PrecomputeConfig, run_precompute
from spinfits.fitting.body.model_files import load_body_model_files
from spinfits.fitting.data.dataset import load_spin_npz
from spinfits.fitting.offline.config import default_offline_config
from spinfits.fitting.offline.fitter import OfflineFitter
from spinfits.fitting.smplify.stages import BodyStage, CameraStage
from spinfits.store.writer import StoreWriter


class StepTimer:
    """Seconds, calls, rows and LM iterations per labelled step."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.rows: dict[str, int] = defaultdict(int)
        self.iterations: dict[str, int] = defaultdict(int)
        self.context = ""

    @contextmanager
    def step(self, label: str):
        start = time.perf_counter()
        try:
            yield
        finally:
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
        def wrapper(problem, rows, *args, **kwargs):
            if isinstance(problem, CameraStage):
                label = "camera stage"
            elif isinstance(problem, BodyStage):
                weights = problem.weights
                label = f"body stage (prior weights {weights.pose_prior_weight:g}, {weights.shape_prior_weight:g})"
            else:
                label = type(problem).__name__
            label = timer.context + label
            with timer.step(label):
                outcome = original(problem, rows, *args, **kwargs)
            timer.rows[label] += int(rows.numel())
            timer.iterations[label] += int(outcome.iterations.sum())
            return outcome

        return wrapper

    _wrap(smplify_module, "solve_pool", pool)


def profile_fitter(files, keypoints: np.ndarray, shard_size: int) -> None:
    config = default_offline_config(files)
    fitter = OfflineFitter(files, config)
    fitter.fit(keypoints[: min(16, len(keypoints))])  # warm-up
    timer = StepTimer()
    instrument(timer)
    start = time.perf_counter()
    for begin in range(0, len(keypoints), shard_size):
        fitter.fit(keypoints[begin : begin + shard_size])
    total = time.perf_counter() - start
    # outlier detection's time includes its refit's solver time: report it without
    refit = sum(seconds for label, seconds in timer.seconds.items() if label.startswith("outlier refit"))
    timer.seconds["outlier detection (+ refit's set-up)"] -= refit
    print(
        f"\n(a) OfflineFitter.fit, {len(keypoints)} rows in shards of {shard_size}: {total:.2f} s, "
        f"{len(keypoints) / total:.1f} fits/s (learned hypothesis: {config.learned_hypothesis}; "
        f"back {config.back_hypothesis}, sides {config.side_hypotheses}, {len(config.stages)} prior stages)"
    )
    print("| step | seconds | share | rows fitted | mean LM iterations |")
    print("|---|---|---|---|---|")
    accounted = 0.0
    for label, seconds in timer.seconds.items():
        accounted += seconds
        rows = timer.rows.get(label, 0)
        iterations = f"{timer.iterations[label] / rows:.1f}" if rows else ""
        print(f"| {label} | {seconds:.2f} | {seconds / total:.1%} | {rows or ''} | {iterations} |")
    other = total - accounted
    print(f"| other (input checks, batching, copies) | {other:.2f} | {other / total:.1%} | | |")


def profile_ray(dataset: Path, model_dir: Path, work: Path, shard_size: int, threads: int) -> None:
    timer = StepTimer()
    original = precompute_module.connect_or_start_ray

    def start_ray():
        timer.seconds["checks, store, plan (before Ray)"] = time.perf_counter() - called
        with timer.step("Ray start-up (ray.init)"):
            return original()

    precompute_module.connect_or_start_ray = start_ray
    for name, label in (("propose", "driver: merge shards"), ("close", "driver: last commit")):
        _wrap(StoreWriter, name, lambda f, label=label: _timed_method(timer, label, f))
    _wrap(
        precompute_module.ray, "shutdown", lambda f: _timed_method(timer, "Ray shut-down (ray.shutdown)", f)
    )
    called = time.perf_counter()
    summary = run_precompute(
        PrecomputeConfig(
            dataset=dataset,
            store=str(work / "store"),
            model_dir=model_dir,
            workers=1,
            threads_per_worker=threads,
            shard_size=shard_size,
            show_progress=False,
        )
    )
    times, counts = np.array(summary.timeline, dtype=float).T
    started = timer.seconds["Ray start-up (ray.init)"]
    steady = times[-1] - times[0]
    print(
        f"\n(b) run_precompute: {summary.rows_fitted} rows in {summary.seconds:.2f} s "
        f"({summary.fits_per_second:.1f} fits/s end to end; steady state "
        f"{(counts[-1] - counts[0]) / max(steady, 1e-9):.1f} fits/s), {summary.commits} commits"
    )
    print("| phase | seconds | share |")
    print("|---|---|---|")
    before = timer.seconds["checks, store, plan (before Ray)"]
    phases = {
        "checks, store, plan (before Ray)": before,
        "Ray start-up (ray.init)": started,
        "actor start + first shard (imports, model load, fit)": times[0] - before - started,
        "later shards (steady fitting)": steady,
        "driver: merge shards": timer.seconds["driver: merge shards"],
        "driver: last commit": timer.seconds["driver: last commit"],
        "Ray shut-down (ray.shutdown)": timer.seconds["Ray shut-down (ray.shutdown)"],
    }
    for label, value in phases.items():
        print(f"| {label} | {value:.2f} | {value / summary.seconds:.1%} |")
    print("(merges run while the actor fits its next shard: they overlap the steady fitting)")


def _timed_method(timer: StepTimer, label: str, original):
    def wrapper(*args, **kwargs):
        with timer.step(label):
            return original(*args, **kwargs)

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", help="standin (default), toy (pose correctives) or a folder")
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--shard-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keypoints", choices=("openpose", "lsp"), default="openpose")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import icechunk

    icechunk.set_logs_filter("error")
    private_ray()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="spinfits-profile-"))
    model_dir = model_folder(args.model_dir, work)
    files = load_body_model_files(model_dir)
    dataset = write_keypoints(work / "people.npz", files, args.keypoints, args.rows, args.seed)
    keypoints = load_spin_npz(dataset).keypoints
    print(
        f"{describe(files)}; {args.rows} {args.keypoints}-like rows; {args.threads} threads; "
        f"load average {' '.join(f'{v:.1f}' for v in __import__('os').getloadavg())}"
    )
    if not args.skip_ray:  # first, before this process wraps the fitter's functions
        profile_ray(dataset, model_dir, work, args.shard_size, args.threads)
    profile_fitter(files, keypoints, args.shard_size)


if __name__ == "__main__":
    main()
