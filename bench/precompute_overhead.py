"""Precompute through Ray vs the bare engine: fits/s on the same rows and the same cores.

    python bench/precompute_overhead.py [--rows 2000] [--shard-size 128] [--threads 2]

Both sides fit the same synthetic rows (stand-in body model) in shards of --shard-size rows with
--threads torch threads: (a) the bare engine (``OfflineFitter`` in this process, one shard after
another), (b) ``spinfits precompute`` (one Ray actor with the same threads, a local store, commits
every 10 s). Printed: fits/s of each and their ratio, end to end (Ray start-up, actor start and
commits included) and steady state (from the first shard's result to the last).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from spinfits.cluster.precompute import PrecomputeConfig, run_precompute
from spinfits.fitting.body.model_files import load_body_model_files
from spinfits.fitting.data.dataset import load_spin_npz
from spinfits.fitting.offline.fitter import OfflineFitter
from spinfits.fitting.synthetic.people import SyntheticConfig, write_synthetic_dataset
from spinfits.fitting.synthetic.standin import write_standin_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--shard-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import icechunk

    icechunk.set_logs_filter("error")  # its note on local storage and concurrent commits
    work = Path(tempfile.mkdtemp(prefix="spinfits-bench-"))
    write_standin_files(work / "model")
    files = load_body_model_files(work / "model")
    dataset_path = write_synthetic_dataset(
        work / "people.npz", files, SyntheticConfig(rows=args.rows, seed=7)
    )
    keypoints = load_spin_npz(dataset_path).keypoints

    torch.set_num_threads(args.threads)
    fitter = OfflineFitter(files)
    fitter.fit(keypoints[: args.shard_size])  # warm-up, as the actor's first shard is not
    start = time.perf_counter()
    first = None
    for begin in range(0, args.rows, args.shard_size):
        fitter.fit(keypoints[begin : begin + args.shard_size])
        first = first or time.perf_counter()
    bare_seconds = time.perf_counter() - start
    bare_steady = (args.rows - args.shard_size) / (time.perf_counter() - first)

    summary = run_precompute(
        PrecomputeConfig(
            dataset=dataset_path,
            store=str(work / "store"),
            model_dir=work / "model",
            workers=1,
            threads_per_worker=args.threads,
            shard_size=args.shard_size,
            show_progress=False,
        )
    )
    times, counts = np.array(summary.timeline, dtype=float).T
    ray_steady = (counts[-1] - counts[0]) / (times[-1] - times[0])
    ray_end_to_end = summary.rows_fitted / summary.seconds
    bare_end_to_end = args.rows / bare_seconds

    print(
        f"{args.rows} rows, shards of {args.shard_size}, {args.threads} threads, "
        f"STAND-IN body model ({files.fingerprint}); {torch.get_num_threads()} torch threads"
    )
    print(f"{'':28s} {'bare engine':>12s} {'through Ray':>12s} {'ratio':>7s}")
    print(
        f"{'steady state fits/s':28s} {bare_steady:12.1f} {ray_steady:12.1f} {ray_steady / bare_steady:7.2f}"
    )
    print(
        f"{'end to end fits/s':28s} {bare_end_to_end:12.1f} {ray_end_to_end:12.1f} "
        f"{ray_end_to_end / bare_end_to_end:7.2f}"
    )
    print(
        f"Ray run: {summary.commits} commits, {summary.seconds:.1f} s in all "
        f"(start-up before the first shard: {times[0]:.1f} s)"
    )


if __name__ == "__main__":
    main()
