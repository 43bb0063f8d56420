"""Speed of the best-fit store on a 100k-row dataset (local store in a temp dir).

Prints: the 64-random-row read latency of a pinned ``FitReader`` (median over many reads;
target <= 1 ms) and the merge time of 100k proposals (target <= 1 s), plus commit, reader
load/refresh times. Run: ``python bench/store_speed.py [--rows N]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import icechunk
import numpy as np

from spinfits.store import BodyModelInfo, FitStore, Proposals, Source


def proposals(rng: np.random.Generator, n_rows: int, m: int, scale: float) -> Proposals:
    return Proposals(
        rows=rng.integers(0, n_rows, m),
        pose=rng.standard_normal((m, 72), dtype=np.float32),
        betas=rng.standard_normal((m, 10), dtype=np.float32),
        cam_t=rng.standard_normal((m, 3), dtype=np.float32) + np.float32([0.0, 0.0, 30.0]),  # in front
        loss=(rng.random(m, dtype=np.float32) * scale),
        source=Source.OFFLINE,
        step=1,
        time=time.time(),
    )


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--proposals", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--reads", type=int, default=20_000)
    args = parser.parse_args()
    icechunk.set_logs_filter("error")
    rng = np.random.default_rng(0)
    n = args.rows
    with tempfile.TemporaryDirectory() as tmp:
        store = FitStore.create(Path(tmp) / "fits.icechunk", BodyModelInfo("bench"))
        store.create_dataset("bench", n, dataset_fingerprint="bench")
        print(f"dataset: {n} rows, chunk_rows={store.dataset('bench').chunk_rows}")

        merges, commits, improved = [], [], []
        for repeat in range(args.repeats):
            batch = proposals(rng, n, args.proposals, scale=1.0 / (repeat + 1))
            t_merge, count = timed(lambda: store.merge("bench", batch))  # noqa: B023 (called at once)
            t_commit, _ = timed(lambda: store.commit(f"bench merge {repeat}"))  # noqa: B023 (called at once)
            merges.append(t_merge)
            commits.append(t_commit)
            improved.append(count)
        print(
            f"merge of {args.proposals} proposals: median {statistics.median(merges) * 1e3:.0f} ms "
            f"(min {min(merges) * 1e3:.0f}, max {max(merges) * 1e3:.0f}; rows improved {improved})"
        )
        print(f"commit after it:            median {statistics.median(commits) * 1e3:.0f} ms")

        t_load, reader = timed(lambda: store.reader("bench"))
        print(f"reader load (whole snapshot into memory): {t_load * 1e3:.0f} ms")
        samples = []
        for _ in range(args.reads):
            rows = rng.integers(0, n, 64)
            start = time.perf_counter()
            reader.read_rows(rows)
            samples.append(time.perf_counter() - start)
        samples.sort()
        print(
            f"read 64 random rows: median {statistics.median(samples) * 1e6:.1f} us, "
            f"p99 {samples[int(0.99 * len(samples))] * 1e6:.1f} us over {args.reads} reads"
        )
        store.merge("bench", proposals(rng, n, 1000, scale=1e-3))
        store.commit("small update")
        t_refresh, _ = timed(reader.refresh)
        print(f"reader refresh to a new snapshot: {t_refresh * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
