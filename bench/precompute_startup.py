"""Precompute's start-up, seen from the command line: seconds from launching ``spinfits
precompute`` to its first fits in the store, and to its end, with and without the driver's head
start, on a fresh local Ray cluster (the embedded default) and on a running one (``ray start``
beforehand: the command only connects).

    python bench/precompute_startup.py --model-dir DIR [--dataset ../shared/data/lsp_train_keypoints.npz]
        [--repeats 2] [--piece-rows 16,32,64,128,256]

Each run is the real command in a fresh process (interpreter, imports, checks, Ray, actors,
fitting, commits, Ray's shut-down), with ``--commit-every 0`` so that the first fits are
committed as soon as they are merged; the bench polls the store for its first committed fit
(every 0.1 s). A first untimed run warms the file cache. Each layout is run ``--repeats`` times,
interleaved; the table gives the median. The imports alone (``python -c 'import ...'``) and
``ray.init`` alone are timed too: Ray's floor.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from ray_nodes import LocalRayCluster  # (the tests' loopback cluster, token-free)

from spinfits.store import FitStore


def _first_fit_seconds(store: Path, name: str, process: subprocess.Popen, began: float) -> float:
    """Seconds from ``began`` to the store's first committed fit (NaN if the process ends first)."""
    while process.poll() is None:
        try:
            if np.isfinite(FitStore.open(store).losses(name)).any():
                return time.perf_counter() - began
        except Exception:  # not created yet
            pass
        time.sleep(0.1)
    return float("nan")


def run_command(args, store: Path, head_start: bool, env: dict) -> dict:
    """One ``spinfits precompute`` run: first fit, end, rows by the driver."""
    command = [
        sys.executable,
        "-m",
        "spinfits",
        "precompute",
        "--dataset",
        str(args.dataset),
        "--store",
        str(store),
        "--model-dir",
        str(args.model_dir),
        "--commit-every",
        "0",
        *([] if head_start else ["--no-head-start"]),
    ]
    began = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first = _first_fit_seconds(store, Path(args.dataset).stem, process, began)
    output = process.communicate()[0]
    end = time.perf_counter() - began
    if process.returncode != 0:
        raise SystemExit(f"precompute failed:\n{output[-3000:]}")
    driver = re.search(r"the driver fitted (\d+) rows", output)
    fitted = re.search(r"fitted (\d+), improved", output)
    return {
        "first": first,
        "end": end,
        "driver": int(driver.group(1)) if driver else 0,
        "fitted": int(fitted.group(1)),
    }


def floor(env: dict) -> tuple[float, float]:
    """Seconds for the driver's imports alone, and for ``ray.init`` + ``ray.shutdown`` after them."""
    imports = "import spinfits.cli, spinfits.cluster.precompute"
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", imports], env=env, check=True)
    imported = time.perf_counter() - began
    code = (
        f"{imports}; import time, ray; t = time.perf_counter(); "
        "ray.init(include_dashboard=False, log_to_driver=False); ray.shutdown(); "
        "print(time.perf_counter() - t)"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    return imported, float(done.stdout.strip().splitlines()[-1])


def piece_speeds(args) -> None:
    """Fits/s of the head start's fitter (one thread, in this process) on the dataset's first
    ``--piece-rows-rows`` rows, fitted in pieces of each size of ``--piece-rows``."""
    import torch

    from spinfits.cluster.fitter_actor import FitterActor
    from spinfits.fitting.body.model_files import load_body_model_files
    from spinfits.fitting.data.dataset import load_spin_npz
    from spinfits.fitting.offline.config import default_offline_config

    torch.set_num_threads(1)
    config = default_offline_config(load_body_model_files(args.model_dir))
    fitter = FitterActor(str(args.model_dir), config, "cpu", threads=1)
    keypoints = load_spin_npz(args.dataset).keypoints[: args.piece_rows_rows]
    rows = np.arange(len(keypoints))
    fitter.fit_shard(rows[:8], keypoints[:8])  # warm
    print(f"\nthe head start's fitter, 1 thread, the first {len(rows)} rows in pieces of:")
    print("| piece rows | fits/s |")
    print("|---|---|")
    for size in (int(v) for v in args.piece_rows.split(",")):
        began = time.perf_counter()
        for start in range(0, len(rows), size):
            fitter.fit_shard(rows[start : start + size], keypoints[start : start + size])
        print(f"| {size} | {len(rows) / (time.perf_counter() - began):.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument(
        "--dataset",
        type=Path,
        default=Path(__file__).resolve().parents[2] / "shared/data/lsp_train_keypoints.npz",
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--piece-rows", default="", help="e.g. 16,32,64,128,256: time the pieces only")
    parser.add_argument("--piece-rows-rows", type=int, default=256)
    args = parser.parse_args()
    if args.piece_rows:
        piece_speeds(args)
        return
    work = Path(tempfile.mkdtemp(prefix="spinfits-startup-"))
    fresh_env = dict(os.environ, RAY_ADDRESS="local")  # a private local cluster per run
    imported, ray_init = floor(fresh_env)
    print(
        f"{os.cpu_count()} cores, load {' '.join(f'{v:.1f}' for v in os.getloadavg())}; imports alone "
        f"{imported:.2f} s; ray.init + shutdown of a fresh local cluster alone {ray_init:.2f} s"
    )
    run_command(args, work / "warm-up", True, fresh_env)  # file cache
    cluster = LocalRayCluster()
    results: dict[tuple[str, bool], list[dict]] = {}
    try:
        cluster.start_head(num_cpus=os.cpu_count() or 2)
        running_env = dict(cluster.env, RAY_ADDRESS=cluster.address)
        for repeat in range(args.repeats):
            for where, env in (("fresh local Ray", fresh_env), ("running Ray cluster", running_env)):
                for head_start in (True, False):
                    store = work / f"{where[:5]}-{head_start}-{repeat}"
                    results.setdefault((where, head_start), []).append(
                        run_command(args, store, head_start, env)
                    )
                    shutil.rmtree(store)
    finally:
        cluster.stop()
    print(f"\n{args.dataset.name}, median of {args.repeats} runs each (seconds from the command's launch)")
    print("| Ray | head start | first fits committed | end | fits/s end to end | rows by the driver |")
    print("|---|---|---|---|---|---|")
    for (where, head_start), runs in results.items():
        first = statistics.median(run["first"] for run in runs)
        end = statistics.median(run["end"] for run in runs)
        driver = statistics.median(run["driver"] for run in runs)
        print(
            f"| {where} | {'yes' if head_start else 'no'} | {first:.1f} | {end:.1f} | "
            f"{runs[0]['fitted'] / end:.1f} | {driver:.0f} |"
        )


if __name__ == "__main__":
    main()
