"""Precompute end to end vs SPIN's own SMPLify loop, side by side on the same keypoints.

    python bench/precompute_vs_spin.py [--model-dir standin|toy|DIR] [--rows 1000] [--spin-rows 132]
        [--keypoints lsp,openpose] [--threads 2] [--workers 1] [--variant prune_after_stage=0]

Per keypoint set (``precompute_common.KEYPOINT_SETS``: "lsp", LSP's 14 ground-truth joints all
visible; "openpose", OpenPose's 25 detections with misses, swaps and wild detections), in one run:

- **SPIN's loop**: ``OfflineConfig.spin_from_mean()`` (``SmplifyConfig.spin_reference()``: full
  6890-vertex forward, Adam lr 1e-2, 100 camera + 100 body iterations, batches of 66, from SPIN's
  mean pose with a camera from the keypoints) on the first --spin-rows rows, in this process with
  --spin-threads torch threads; its fits/s are multiplied by --threads / --spin-threads, the
  copies of it the machine holds (perfect scaling: in SPIN's favour);
- **precompute**: ``run_precompute`` on all --rows rows (the embedded default: a local Ray
  cluster started and stopped by the run, --workers actors with --threads / --workers threads
  each (default: one single-threaded actor per core), a local store), its default fitting configuration (``default_offline_config``), end to
  end (Ray start-up, actor start, merges and commits included) and in its steady state;
- ``--variant FIELD=VALUE`` (repeatable): precompute again with one ``OfflineConfig`` field
  changed.

Quality (``bench/fit_quality.py``'s measures, against the ground truth) is reported on the rows
SPIN's loop fitted, for every method, and on all rows for precompute; fits/s per person.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from precompute_common import (
    QUALITY_HEADER,
    QualityJudge,
    config_variant,
    describe,
    model_folder,
    private_ray,
    write_keypoints,
)

from spinfits.cluster.precompute import PrecomputeConfig, run_precompute
from spinfits.fitting.body.model_files import load_body_model_files
from spinfits.fitting.data.dataset import load_spin_npz
from spinfits.fitting.offline.config import OfflineConfig, default_offline_config
from spinfits.fitting.offline.fitter import OfflineFitter
from spinfits.store import FitStore


def spin_loop(files, keypoints: np.ndarray, threads: int) -> tuple[float, float, dict]:
    """SPIN's loop on ``keypoints``: (wall seconds, CPU seconds, fits as numpy)."""
    torch.set_num_threads(threads)
    fitter = OfflineFitter(files, OfflineConfig.spin_from_mean())
    start = time.perf_counter(), time.process_time()
    result = fitter.fit(keypoints)
    wall, cpu = time.perf_counter() - start[0], time.process_time() - start[1]
    fits = {name: getattr(result, name).detach().numpy() for name in ("pose", "betas", "cam_t", "loss")}
    return wall, cpu, fits


def precompute(args, files, dataset: Path, model_dir: Path, store: Path, fitting: OfflineConfig):
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
        )
    )
    stored = FitStore.open(str(store)).read(dataset.stem)
    fits = {"pose": stored.pose, "betas": stored.betas, "cam_t": stored.cam_t, "loss": stored.loss}
    return summary, fits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", help="standin (default), toy (pose correctives) or a folder")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--spin-rows", type=int, default=132, help="rows SPIN's loop fits (batches of 66)")
    parser.add_argument("--keypoints", default="lsp,openpose")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of the whole run (cores)")
    parser.add_argument("--workers", type=int, default=2, help="precompute's actors (threads / workers each)")
    parser.add_argument("--spin-threads", type=int, default=1, help="threads of SPIN's loop")
    parser.add_argument("--shard-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--variant", action="append", default=[], help="OfflineConfig FIELD=VALUE")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import icechunk

    icechunk.set_logs_filter("error")
    private_ray()
    work = Path(tempfile.mkdtemp(prefix="spinfits-vs-spin-"))
    model_dir = model_folder(args.model_dir, work)
    files = load_body_model_files(model_dir)
    default = default_offline_config(files)
    print(
        f"{describe(files)}; precompute: {args.rows} rows, {args.workers} actor(s) x "
        f"{max(1, args.threads // args.workers)} threads, shards of {args.shard_size}; SPIN's loop: "
        f"{args.spin_rows} rows, {args.spin_threads} thread(s), its fits/s times {args.threads // args.spin_threads} "
        f"(copies on {args.threads} cores); {os.cpu_count()} cores, load average "
        f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}"
    )
    for kind in args.keypoints.split(","):
        dataset = write_keypoints(work / f"{kind}.npz", files, kind, args.rows, args.seed)
        keypoints = load_spin_npz(dataset).keypoints
        judge = QualityJudge(files, dataset, keypoints)
        common = slice(0, args.spin_rows)

        spin_wall, spin_cpu, spin_fits = spin_loop(files, keypoints[common], args.spin_threads)
        # per machine: the loop's fits/s times the copies of it the cores hold (perfect scaling,
        # in SPIN's favour; one process with all threads waits on its threads when the CPU is shared)
        spin_speed = args.spin_rows / spin_wall * max(1, args.threads // args.spin_threads)
        rows = [
            (
                f"SPIN's loop (Adam 100 + 100, full mesh, batch 66), {args.spin_threads} thread(s) "
                f"x {max(1, args.threads // args.spin_threads)}",
                spin_speed,
                args.spin_rows / spin_cpu,
                "",
                judge(**spin_fits, rows=common),
                None,
            )
        ]
        configs = [("precompute (default)", default)] + [
            (f"precompute, {text}", config_variant(default, text)) for text in args.variant
        ]
        for index, (name, fitting) in enumerate(configs):
            summary, fits = precompute(
                args, files, dataset, model_dir, work / f"store-{kind}-{index}", fitting
            )
            times, counts = np.array(summary.timeline, dtype=float).T
            steady = (counts[-1] - counts[0]) / (times[-1] - times[0]) if len(times) > 1 else float("nan")
            on_common = judge(**{key: value[common] for key, value in fits.items()}, rows=common)
            rows.append(
                (
                    f"{name}, end to end",
                    summary.fits_per_second,
                    None,
                    f"steady {steady:.1f}",
                    on_common,
                    judge(**fits),
                )
            )
        print(f"\n{kind}-like keypoints: {args.rows} rows (SPIN's loop: the first {args.spin_rows})")
        print(
            f"| method | fits/s | x SPIN's loop | notes | on SPIN's rows: {QUALITY_HEADER} "
            f"| on all rows: {QUALITY_HEADER} |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for name, speed, cpu_speed, notes, quality, everything in rows:
            notes = notes or (f"{cpu_speed:.1f} fits per CPU second" if cpu_speed else "")
            print(
                f"| {name} | {speed:.1f} | {speed / spin_speed:.1f}x | {notes} | {quality.cells()} | "
                f"{everything.cells() if everything else '- | - | - | -'} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
