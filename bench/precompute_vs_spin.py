"""Precompute end to end vs SPIN's own SMPLify loop, side by side on the same keypoints and threads.

    python bench/precompute_vs_spin.py [--model-dir standin|toy|DIR] [--rows 1000] [--spin-rows 132]
        [--keypoints lsp,openpose] [--dataset REAL.npz [--repeat N --noise-px 2]]
        [--threads 2] [--workers 2] [--spin-layout 2x1] [--variant prune_after_stage=0]

Keypoints: synthetic sets (``precompute_common.KEYPOINT_SETS``: "lsp", LSP's 14 ground-truth
joints all visible; "openpose", OpenPose's 25 detections with misses, swaps and wild detections),
judged against their ground truth; or ``--dataset``, a real SPIN npz (e.g.
``../shared/data/lsp_train_keypoints.npz``), judged against its own annotations (2D only: no 3D
truth), ``--repeat N`` times with fresh ``--noise-px`` Gaussian noise on every repeat after the
first (real-like rows at scale). In one run:

- **SPIN's loop**: ``OfflineConfig.spin_from_mean()`` (``SmplifyConfig.spin_reference()``: full
  6890-vertex forward, Adam lr 1e-2, 100 camera + 100 body iterations, batches of 66, from SPIN's
  mean pose with a camera from the keypoints) on the first --spin-rows rows, run with the same
  threads as precompute uses in all (--threads): ``--spin-layout PxT``, P processes of T torch
  threads each, started together (a barrier) on an equal share of the rows; its fits/s are the
  rows over the slowest process's wall time. The default 2x1 is precompute's own layout (one
  single-threaded actor per core); 1x2 is one process with 2 torch threads, SPIN's own code as it
  runs on a CPU (slower on a shared machine: torch's threads wait for each other). The loop's
  set-up (imports, model load) is not counted: in its favour.
- **precompute**: ``run_precompute`` on all rows (the embedded default: a local Ray cluster
  started and stopped by the run, --workers actors with --threads / --workers threads each, a
  local store), its default fitting configuration (``default_offline_config``: with the learned
  initialiser when --model-dir holds one), end to end (Ray start-up, actor start, merges and
  commits included) and in its steady state (the actors' first shard merged to the last; the
  rows the driver fits while Ray starts, its head start, come before); ``--without-head-start``
  runs it again with ``head_start=False``, side by side;
- ``--variant FIELD=VALUE`` (repeatable): precompute again with one ``OfflineConfig`` field
  changed.

Both ratios are printed: end to end and steady state, each over SPIN's loop's fits/s. Quality
on the rows SPIN's loop fitted, for every method, and on all rows for precompute.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from precompute_common import (
    KeypointJudge,
    QualityJudge,
    config_variant,
    describe,
    model_folder,
    private_ray,
    real_like_rows,
    write_keypoints,
)

from spinfits.cluster.precompute import PrecomputeConfig, run_precompute
from spinfits.fitting.body.model_files import load_body_model_files
from spinfits.fitting.data.dataset import load_spin_npz
from spinfits.fitting.offline.config import OfflineConfig, default_offline_config
from spinfits.fitting.offline.fitter import OfflineFitter
from spinfits.store import FitStore

FIT_FIELDS = ("pose", "betas", "cam_t", "loss")


def _spin_process(model_dir, keypoints, threads, barrier, queue, index) -> None:
    """One process of SPIN's loop: set up, wait for the others, fit ``keypoints`` (R, 49, 3)."""
    torch.set_num_threads(threads)
    fitter = OfflineFitter(load_body_model_files(model_dir), OfflineConfig.spin_from_mean())
    barrier.wait()
    start = time.perf_counter(), time.process_time()
    result = fitter.fit(keypoints)
    wall, cpu = time.perf_counter() - start[0], time.process_time() - start[1]
    fits = {name: getattr(result, name).detach().numpy() for name in FIT_FIELDS}
    queue.put((index, wall, cpu, fits))


def spin_loop(model_dir: Path, keypoints: np.ndarray, processes: int, threads: int):
    """SPIN's loop on ``keypoints`` in ``processes`` processes of ``threads`` threads, started
    together on equal shares: (fits/s over the slowest wall time, CPU seconds, fits in row order)."""
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(processes), context.Queue()
    shares = np.array_split(np.arange(len(keypoints)), processes)
    workers = [
        context.Process(
            target=_spin_process, args=(model_dir, keypoints[share], threads, barrier, queue, index)
        )
        for index, share in enumerate(shares)
    ]
    for worker in workers:
        worker.start()
    outcomes = sorted(queue.get() for _ in workers)
    for worker in workers:
        worker.join()
    wall = max(outcome[1] for outcome in outcomes)
    cpu = sum(outcome[2] for outcome in outcomes)
    fits = {name: np.concatenate([outcome[3][name] for outcome in outcomes]) for name in FIT_FIELDS}
    return len(keypoints) / wall, cpu, fits


def precompute(
    args, dataset: Path, model_dir: Path, store: Path, fitting: OfflineConfig, head_start: bool = True
):
    """run_precompute end to end: (summary, fits read back from the store)."""
    summary = run_precompute(
        PrecomputeConfig(
            dataset=dataset,
            store=str(store),
            model_dir=model_dir,
            workers=args.workers,
            threads_per_worker=max(1, args.threads // args.workers),
            shard_size=args.shard_size,
            show_progress=False,
            fitting=fitting,
            head_start=head_start,
        )
    )
    stored = FitStore.open(str(store)).read(dataset.stem)
    return summary, {name: getattr(stored, name) for name in FIT_FIELDS}


def steady_speed(summary) -> float:
    """Fits/s of the actors: from the first of their shards merged to the last shard (NaN with
    one). The rows the driver fitted while Ray started (``rows_head_start``) come first."""
    times, counts = np.array(summary.timeline, dtype=float).T
    first = int(np.argmax(counts > summary.rows_head_start)) if summary.rows_head_start else 0
    times, counts = times[first:], counts[first:]
    return (counts[-1] - counts[0]) / (times[-1] - times[0]) if len(times) > 1 else float("nan")


def keypoint_sets(args, files, work: Path):
    """(label, dataset path) per set the run compares on."""
    if args.dataset:
        source = Path(args.dataset)
        if args.repeat > 1:
            path = real_like_rows(
                source, work / f"{source.stem}_x{args.repeat}.npz", args.repeat, args.noise_px, args.seed
            )
            return [(f"{source.name} x {args.repeat} (fresh {args.noise_px:g} px noise per repeat)", path)]
        return [(source.name, source)]
    return [
        (f"{kind}-like", write_keypoints(work / f"{kind}.npz", files, kind, args.rows, args.seed))
        for kind in args.keypoints.split(",")
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", help="standin (default), toy (pose correctives) or a folder")
    parser.add_argument("--rows", type=int, default=1000, help="synthetic rows per keypoint set")
    parser.add_argument("--spin-rows", type=int, default=132, help="rows SPIN's loop fits (batches of 66)")
    parser.add_argument("--keypoints", default="lsp,openpose")
    parser.add_argument("--dataset", help="a real SPIN npz instead of the synthetic sets")
    parser.add_argument("--repeat", type=int, default=1, help="--dataset's rows repeated N times")
    parser.add_argument("--noise-px", type=float, default=2.0, help="noise of each repeat (image px)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of the whole run (cores)")
    parser.add_argument("--workers", type=int, default=2, help="precompute's actors (threads / workers each)")
    parser.add_argument(
        "--spin-layout", default="2x1", help="SPIN's loop: PROCESSESxTHREADS (product = --threads)"
    )
    parser.add_argument("--shard-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--variant", action="append", default=[], help="OfflineConfig FIELD=VALUE")
    parser.add_argument(
        "--without-head-start",
        action="store_true",
        help="also run the default with --no-head-start (the actors fit every row), side by side",
    )
    args = parser.parse_args()
    processes, threads = (int(v) for v in args.spin_layout.split("x"))
    if processes * threads != args.threads:
        parser.error(
            f"--spin-layout {args.spin_layout} uses {processes * threads} threads, --threads is {args.threads}"
        )
    logging.basicConfig(level=logging.WARNING)
    import icechunk

    icechunk.set_logs_filter("error")
    private_ray()
    work = Path(tempfile.mkdtemp(prefix="spinfits-vs-spin-"))
    model_dir = model_folder(args.model_dir, work)
    files = load_body_model_files(model_dir)
    default = default_offline_config(files)
    print(
        f"{describe(files)}; default fitting: learned initialiser {default.learned_hypothesis}, back "
        f"{default.back_hypothesis}, sides {default.side_hypotheses}; precompute: {args.workers} actor(s) x "
        f"{max(1, args.threads // args.workers)} thread(s), shards of {args.shard_size}; SPIN's loop: "
        f"{args.spin_rows} rows in {processes} process(es) x {threads} thread(s); {os.cpu_count()} cores, "
        f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())} (machine shared with other jobs)"
    )
    for label, dataset in keypoint_sets(args, files, work):
        loaded = load_spin_npz(dataset)
        keypoints = loaded.keypoints
        judge = KeypointJudge(files, keypoints) if args.dataset else QualityJudge(files, dataset, keypoints)
        common = slice(0, args.spin_rows)
        spin_speed, spin_cpu, spin_fits = spin_loop(model_dir, keypoints[common], processes, threads)
        rows = [
            (
                f"SPIN's loop (Adam 100 + 100, full mesh, batch 66), {processes} process(es) x {threads} thread(s)",
                spin_speed,
                spin_speed,  # set-up not counted: its rate is its steady state
                f"{args.spin_rows / spin_cpu:.2f} fits per CPU s",
                judge(**spin_fits, rows=common),
                None,
            )
        ]
        configs = [("precompute (default)", default, True)]
        if args.without_head_start:
            configs.append(("precompute (default), no head start", default, False))
        configs += [(f"precompute, {text}", config_variant(default, text), True) for text in args.variant]
        for index, (name, fitting, head_start) in enumerate(configs):
            driver_cpu = time.process_time()
            summary, fits = precompute(
                args, dataset, model_dir, work / f"store-{index}-{dataset.stem}", fitting, head_start
            )
            driver_cpu = time.process_time() - driver_cpu
            steady = steady_speed(summary)
            first_fit = summary.timeline[0][0] if summary.timeline else float("nan")
            rows.append(
                (
                    name,
                    summary.fits_per_second,
                    steady,
                    f"{summary.seconds:.1f} s, first fits merged at {first_fit:.1f} s, "
                    f"{summary.rows_head_start} rows by the driver, driver CPU {driver_cpu:.1f} s, "
                    f"fitting {summary.rows_fitted / max(summary.fitting_seconds, 1e-9):.1f} fits per "
                    "fitter-second",
                    judge(**{key: value[common] for key, value in fits.items()}, rows=common),
                    judge(**fits),
                )
            )
        print(f"\n{label}: {len(keypoints)} rows (SPIN's loop: the first {args.spin_rows})")
        print(
            f"| method | fits/s end to end | x SPIN end to end | steady fits/s | x SPIN steady | notes "
            f"| on SPIN's rows: {judge.header} | on all rows: {judge.header} |"
        )
        print("|" + "---|" * (6 + 2 * judge.columns))
        for name, speed, steady, notes, quality, everything in rows:
            steady_cells = f"{steady:.1f} | {steady / spin_speed:.1f}x"
            print(
                f"| {name} | {speed:.1f} | {speed / spin_speed:.1f}x | {steady_cells} | {notes} | "
                f"{quality.cells()} | {everything.cells() if everything else ' | '.join('-' * judge.columns)} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
