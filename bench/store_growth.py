"""How fast the best-fit store grows, and what ``spinfits store gc`` gives back (local stores in a temp dir).

Bytes written are the growth of the store's folder over the step measured. Sections:

- ``in-loop``: commits of 64 scattered rows into a 100k-row dataset (SMPLify in the training
  loop) under the default write policy (update log) and, for comparison, with every commit
  rewriting the column chunks it touches (what the store did before the update log), for several
  column chunk sizes; the bytes of the commits that append, settle and fold, their mean over a
  whole cycle, and the growth of a long run extrapolated to an hour at one commit every
  ``--commit-every-s`` seconds.
- ``buffered``: ten merges of 64 rows, then one commit: each changed row is written once.
- ``bulk``: a precompute over the 100k rows in shards of 1024 (a commit per shard, or per
  20 shards as precompute's ``commit_every_rows=20000`` does), per column chunk size; and the
  time of a reader's full load.
- ``demo``: a 2000-row store after a precompute (40 shards of 50 rows) and a training history
  (150 commits of 16 random rows), its size, and its size after gc (``--keep-last 1``).
- ``refresh``: a reader of a 1M-row dataset refreshing after each 64-row commit (median).

Run: ``python bench/store_growth.py [--sections in-loop,buffered,bulk,demo,refresh] [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import icechunk
import numpy as np

from spinfits.store import BodyModelInfo, FitReader, FitStore, Proposals, Source, WritePolicy
from spinfits.store.update_log import ROW_BYTES

#: Every commit rewrites the column chunks it touches (the store before the update log).
COLUMNS_ONLY = WritePolicy(fold_cost_ratio=float("inf"))
SECTIONS = ("in-loop", "buffered", "bulk", "demo", "refresh")


def folder_bytes(path: Path) -> int:
    return sum(os.path.getsize(Path(d) / f) for d, _, files in os.walk(path) for f in files)


def proposals(rng: np.random.Generator, rows: np.ndarray, loss_scale: float, step: int) -> Proposals:
    m = len(rows)
    return Proposals(
        rows=rows,
        pose=(rng.standard_normal((m, 72)) * 0.2).astype(np.float32),
        betas=rng.standard_normal((m, 10)).astype(np.float32),
        cam_t=(rng.standard_normal((m, 3)) + [0.0, 0.0, 30.0]).astype(np.float32),
        loss=(rng.random(m) * loss_scale).astype(np.float32),
        source=Source.IN_LOOP if step > 0 else Source.OFFLINE,
        step=step,
        time=1.7e9 + step,
    )


def new_store(
    tmp: Path, name: str, n_rows: int, chunk_rows: int, policy: WritePolicy | None = None
) -> tuple[FitStore, Path]:
    path = tmp / name
    store = FitStore.create(path, BodyModelInfo("bench"), write_policy=policy)
    store.create_dataset("d", n_rows, dataset_fingerprint="bench", chunk_rows=chunk_rows)
    return store, path


def fill(store: FitStore, rng: np.random.Generator, n_rows: int, shard: int = 65536) -> None:
    """A precompute over every row (losses 10..20, so in-loop proposals improve them)."""
    for start in range(0, n_rows, shard):
        rows = np.arange(start, min(start + shard, n_rows))
        store.merge("d", proposals(rng, rows, 10.0, 0))
    store.commit("precompute")


def scattered(rng: np.random.Generator, n_rows: int, m: int) -> np.ndarray:
    return rng.choice(n_rows, m, replace=False)


def kb(n: float) -> str:
    return f"{n / 1e3:,.1f} kB"


def mb(n: float) -> str:
    return f"{n / 1e6:,.2f} MB"


def in_loop(tmp: Path, args: argparse.Namespace) -> None:
    n, m = args.rows, 64
    changed = m * ROW_BYTES
    print(f"\n== in-loop: commits of {m} scattered rows into a {n}-row dataset")
    print(f"changed rows' bytes per commit: {m} x {ROW_BYTES} B = {kb(changed)}")
    configs = [("update log (default policy)", 16384, None)]
    configs += [(f"columns only, chunk_rows={c}", c, COLUMNS_ONLY) for c in args.chunk_sizes]
    for label, chunk_rows, policy in configs:
        rng = np.random.default_rng(0)
        store, path = new_store(tmp, f"loop-{chunk_rows}-{policy is None}", n, chunk_rows, policy)
        fill(store, rng, n)
        commits = args.commits if policy is None else min(args.commits, 20)
        sizes, times, how = [], [], []
        for step in range(1, commits + 1):
            store.merge("d", proposals(rng, scattered(rng, n, m), 1.0 / step, step))
            before = folder_bytes(path)
            start = time.perf_counter()
            version = store.commit(f"step {step}")
            times.append(time.perf_counter() - start)
            sizes.append(folder_bytes(path) - before)
            how.append(version.metadata["written"]["d"])
        parts = []
        for kind in ("recent", "settle", "fold"):
            picked = [size for size, h in zip(sizes, how) if h == kind]
            if picked:
                median = statistics.median(picked)
                parts.append(f"{len(picked)} {kind}: median {kb(median)} ({median / changed:.2f}x)")
        print(f"{label}: {commits} commits; " + "; ".join(parts))
        mean = sum(sizes) / len(sizes)
        print(
            f"   mean per commit {kb(mean)} ({mean / changed:.1f}x), commit time median "
            f"{statistics.median(times) * 1e3:.0f} ms; store growth per hour at one commit every "
            f"{args.commit_every_s:g} s: {mb(mean * 3600 / args.commit_every_s)}"
        )
        if "fold" in how and policy is None:
            cycle = sizes[: how.index("fold") + 1]  # from the fill's fold to the next one
            amortised = sum(cycle) / len(cycle)
            print(
                f"   one whole cycle (appends, settles, the fold that empties the log: {len(cycle)} "
                f"commits): {kb(amortised)} per commit ({amortised / changed:.1f}x), "
                f"{mb(amortised * 3600 / args.commit_every_s)} per hour"
            )
        if policy is None:
            start = time.perf_counter()
            store.reader("d")
            print(f"   reader full load at the end: {(time.perf_counter() - start) * 1e3:.0f} ms")


def buffered(tmp: Path, args: argparse.Namespace) -> None:
    n, m, merges = args.rows, 64, 10
    print(f"\n== buffered: {merges} merges of {m} scattered rows, then one commit ({n} rows)")
    for label, policy in (("update log", None), ("columns only, chunk_rows=16384", COLUMNS_ONLY)):
        rng = np.random.default_rng(1)
        store, path = new_store(tmp, f"buffered-{policy is None}", n, 16384, policy)
        fill(store, rng, n)
        before = folder_bytes(path)
        start = time.perf_counter()
        for k in range(merges):
            store.merge("d", proposals(rng, scattered(rng, n, m), 1.0, k + 1))
        merged = folder_bytes(path) - before
        t_merge = time.perf_counter() - start
        version = store.commit("ten merges")
        written = folder_bytes(path) - before
        print(
            f"{label}: written by the merges {kb(merged)} ({t_merge * 1e3:.0f} ms), by the commit "
            f"{kb(written - merged)} for {version.rows_improved} rows changed "
            f"({kb(version.rows_improved * ROW_BYTES)} of rows)"
        )


def bulk(tmp: Path, args: argparse.Namespace) -> None:
    n, shard = args.rows, 1024
    print(f"\n== bulk: precompute of {n} rows in shards of {shard} (raw columns {mb(n * ROW_BYTES)})")
    for chunk_rows in args.chunk_sizes:
        for per_commit in (1, 20):
            rng = np.random.default_rng(2)
            store, path = new_store(tmp, f"bulk-{chunk_rows}-{per_commit}", n, chunk_rows)
            before = folder_bytes(path)
            start = time.perf_counter()
            for k, first in enumerate(range(0, n, shard)):
                store.merge("d", proposals(rng, np.arange(first, min(first + shard, n)), 10.0, 0))
                if (k + 1) % per_commit == 0:
                    store.commit(f"shards to {k}")
            store.commit("last shards")
            elapsed = time.perf_counter() - start
            written = folder_bytes(path) - before
            folds = sum(v.metadata.get("written", {}).get("d") == "fold" for v in store.history.log())
            start = time.perf_counter()
            store.reader("d")
            load = time.perf_counter() - start
            print(
                f"chunk_rows={chunk_rows:>6}, {per_commit:>2} shard(s) per commit: wrote {mb(written)} "
                f"({written / (n * ROW_BYTES):.2f}x the rows, {folds} folds) in {elapsed:.1f} s; "
                f"reader full load {load * 1e3:.0f} ms"
            )


def demo(tmp: Path, args: argparse.Namespace) -> None:
    n = 2000
    print(f"\n== demo: {n} rows, precompute in 40 shards of 50 rows, then 150 training commits of 16 rows")
    for label, policy in (("update log", None), ("columns only, chunk_rows=16384", COLUMNS_ONLY)):
        rng = np.random.default_rng(3)
        store, path = new_store(tmp, f"demo-{policy is None}", n, 16384, policy)
        for first in range(0, n, 50):
            store.merge("d", proposals(rng, np.arange(first, first + 50), 10.0, 0))
            store.commit("precompute shard")
        after_precompute = folder_bytes(path)
        for step in range(1, 151):
            store.merge("d", proposals(rng, scattered(rng, n, 16), 1.0, step))
            store.commit(f"training step {step}")
        size, commits = folder_bytes(path), len(store.history.log(limit=1000))
        tip = store.read("d")
        report = store.history.gc(keep_last=1)
        assert store.read("d").equals(tip)
        print(
            f"{label}: after precompute {mb(after_precompute)}, after training {mb(size)} "
            f"({commits} commits); after gc --keep-last 1: "
            f"{mb(report.size_after)} ({len(report.expired)} snapshots expired, "
            f"{mb(report.freed['bytes'])} freed); live rows {mb(n * ROW_BYTES)}"
        )


def timed_refreshes(
    store: FitStore, reader: FitReader, rng: np.random.Generator, m: int, commits: int, first_step: int = 1
) -> list[float]:
    """Commit ``m`` scattered rows of dataset "d" ``commits`` times (training steps from
    ``first_step``, losses falling with the step) and refresh ``reader`` after each: the seconds
    of each refresh."""
    samples = []
    for step in range(first_step, first_step + commits):
        store.merge("d", proposals(rng, scattered(rng, reader.n_rows, m), 1.0 / step, step))
        store.commit(f"step {step}")
        start = time.perf_counter()
        assert reader.refresh()
        samples.append(time.perf_counter() - start)
    return samples


def refresh(tmp: Path, args: argparse.Namespace) -> None:
    n, m = args.refresh_rows, 64
    print(f"\n== refresh: a reader of a {n}-row dataset after each commit of {m} scattered rows")
    rng = np.random.default_rng(4)
    store, _ = new_store(tmp, "refresh", n, 16384)
    start = time.perf_counter()
    fill(store, rng, n)
    print(f"fill: {time.perf_counter() - start:.1f} s")
    other = FitStore.open(store.location)
    start = time.perf_counter()
    reader = other.reader("d")
    print(f"reader full load: {(time.perf_counter() - start) * 1e3:.0f} ms")
    samples = timed_refreshes(store, reader, rng, m, args.refreshes)
    assert reader.read_all().equals(store.read("d"))
    print(
        f"refresh after a {m}-row commit: median {statistics.median(samples) * 1e3:.1f} ms, "
        f"max {max(samples) * 1e3:.1f} ms over {len(samples)} refreshes (rows read back equal the tip's)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help="comma-separated, of " + ", ".join(SECTIONS)
    )
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the in-loop/bulk dataset")
    parser.add_argument("--refresh-rows", type=int, default=1_000_000, help="rows of the refresh dataset")
    parser.add_argument("--commits", type=int, default=1100, help="in-loop commits (update log)")
    parser.add_argument("--refreshes", type=int, default=30)
    parser.add_argument("--chunk-sizes", default="4096,16384,65536", help="column chunk sizes compared")
    parser.add_argument("--commit-every-s", type=float, default=5.0, help="training's commit period")
    parser.add_argument("--quick", action="store_true", help="10x smaller datasets, fewer commits")
    args = parser.parse_args()
    args.chunk_sizes = [int(c) for c in args.chunk_sizes.split(",")]
    if args.quick:
        args.rows, args.refresh_rows, args.commits, args.refreshes = 10_000, 100_000, 60, 10
    icechunk.set_logs_filter("error")
    chosen = args.sections.split(",")
    with tempfile.TemporaryDirectory(prefix="spinfits-store-growth-") as tmp:
        for name, section in zip(SECTIONS, (in_loop, buffered, bulk, demo, refresh)):
            if name in chosen:
                section(Path(tmp), args)


if __name__ == "__main__":
    main()
