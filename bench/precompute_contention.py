"""Precompute beside a busy neighbour: fits/s quiet and with an ordinary process burning CPU.

    python bench/precompute_contention.py [--rows 256] [--shard-size 64] [--layouts 1x2,2x1]
        [--neighbour-threads 1,2] [--model-dir standin|toy|DIR] [--ray-default] [--timeout 300]

Each run is ``spinfits precompute``'s ``run_precompute`` on the embedded default (its own local
Ray cluster, started and stopped by the run, start-up included) in a child process, on the same
synthetic rows into a fresh store. For each actor layout (WORKERS x THREADS per actor) it runs
quiet, then beside a neighbour (an ordinary niceness-0 process with N threads burning CPU), back
to back. Printed per run: fits/s end to end and in the steady state (first shard to last), the
CPU share the neighbour took (its CPU seconds / (wall seconds x cores)), and the busy/quiet ratio
against the floor ``1 - share``: fits/s should drop by no more than the share of CPU taken.

``--ray-default`` adds a busy run with Ray's own worker niceness (15, ``RAY_worker_niceness=15``),
the behaviour before the embedded default ran its workers at normal priority; it is stopped
after ``--timeout`` seconds (then the rows it committed are counted).

The machine may be shared with other jobs: "quiet" means no neighbour of ours; the load average
is printed with each run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from precompute_common import BusyNeighbour, describe, model_folder, private_ray, write_keypoints

from spinfits.fitting.body.model_files import load_body_model_files


def child(args) -> None:
    """One precompute run; prints its figures as one JSON line."""
    import icechunk

    from spinfits.cluster.precompute import PrecomputeConfig, run_precompute

    icechunk.set_logs_filter("error")
    logging.basicConfig(level=logging.WARNING)
    private_ray()
    summary = run_precompute(
        PrecomputeConfig(
            dataset=Path(args.dataset),
            store=args.store,
            model_dir=Path(args.model_dir),
            workers=args.workers,
            threads_per_worker=args.threads,
            shard_size=args.shard_size,
            show_progress=False,
        )
    )
    times, counts = np.array(summary.timeline, dtype=float).T
    steady = (counts[-1] - counts[0]) / (times[-1] - times[0]) if len(times) > 1 else float("nan")
    print(
        json.dumps(
            {
                "rows": summary.rows_fitted,
                "seconds": summary.seconds,
                "first_shard_s": float(times[0]),
                "steady": steady,
            }
        ),
        flush=True,
    )


def run_one(args, dataset: Path, model_dir: Path, store: Path, workers: int, threads: int, env: dict) -> dict:
    """A child precompute run (stopped with SIGINT after ``args.timeout`` seconds)."""
    command = [
        sys.executable,
        __file__,
        "--child",
        "--dataset",
        str(dataset),
        "--model-dir",
        str(model_dir),
        "--store",
        str(store),
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--shard-size",
        str(args.shard_size),
    ]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        out, _ = process.communicate(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)  # the run commits what it merged and stops Ray
        out, _ = process.communicate(timeout=120)
        wall = time.perf_counter() - start
        from spinfits.store import FitStore

        try:
            rows = int(np.isfinite(FitStore.open(str(store)).read(dataset.stem).loss).sum())
        except Exception:  # nothing committed yet
            rows = 0
        return {
            "rows": rows,
            "seconds": wall,
            "first_shard_s": float("nan"),
            "steady": float("nan"),
            "stopped": True,
        }
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"precompute child failed (exit {process.returncode}): {out[-2000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--shard-size", type=int, default=64)
    parser.add_argument("--layouts", default="1x2,2x1", help="WORKERSxTHREADS, comma-separated")
    parser.add_argument(
        "--neighbour-threads", default="1,2", help="busy runs: neighbour threads, comma-separated"
    )
    parser.add_argument("--model-dir", help="standin (default), toy (pose correctives) or a folder")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--ray-default", action="store_true", help="also a busy run at Ray's niceness 15")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds before a run is stopped")
    # child mode
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    logging.basicConfig(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="spinfits-contention-"))
    model_dir = model_folder(args.model_dir, work)
    files = load_body_model_files(model_dir)
    dataset = write_keypoints(work / "people.npz", files, "openpose", args.rows, args.seed)
    print(
        f"{describe(files)}; {args.rows} OpenPose-like rows, shards of {args.shard_size}; "
        f"{os.cpu_count()} cores; each run starts and stops its own local Ray cluster"
    )
    print(
        "| layout (actors x threads) | worker niceness | neighbour | fits/s end to end | steady fits/s "
        "| first shard (s) | neighbour CPU share | busy / quiet | floor 1 - share | load average |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    env = dict(os.environ)
    env.setdefault("RAY_ADDRESS", "local")
    counter = 0
    for layout in args.layouts.split(","):
        workers, threads = (int(v) for v in layout.split("x"))
        quiet = None
        runs = [(0, None)] + [(int(n), None) for n in args.neighbour_threads.split(",")]
        if args.ray_default:
            runs.append((int(args.neighbour_threads.split(",")[-1]), "15"))
        for neighbour_threads, niceness in runs:
            counter += 1
            run_env = dict(env)
            if niceness is not None:
                run_env["RAY_worker_niceness"] = niceness
            store = work / f"store{counter}"
            load = os.getloadavg()[0]
            if neighbour_threads:
                with BusyNeighbour(neighbour_threads) as neighbour:
                    result = run_one(args, dataset, model_dir, store, workers, threads, run_env)
                share = neighbour.share
            else:
                result = run_one(args, dataset, model_dir, store, workers, threads, run_env)
                share = 0.0
            fits = result["rows"] / result["seconds"]
            if neighbour_threads == 0:
                quiet = fits
            ratio = f"{fits / quiet:.2f}" if quiet and neighbour_threads else ""
            floor = f"{1 - share:.2f}" if neighbour_threads else ""
            stopped = f" (stopped after {result['seconds']:.0f} s)" if result.get("stopped") else ""
            print(
                f"| {workers} x {threads} | {niceness or 'embedded default (0)'} | "
                f"{f'{neighbour_threads} threads' if neighbour_threads else 'none'} | "
                f"{fits:.1f}{stopped} | {result['steady']:.1f} | {result['first_shard_s']:.1f} | "
                f"{share:.0%} | {ratio} | {floor} | {load:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
