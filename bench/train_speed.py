"""Training speed: steps/s of ``spinfits train`` and how much of a step is store traffic.

    python bench/train_speed.py [--demo out/demo] [--steps 100] [--workers 2] [--batch 8]
                                [--backbone small] [--input-res 224]

Uses the demo's outputs (run ``bash scripts/demo.sh`` first: stand-in model, synthetic dataset
with rendered crops, a precomputed store). The store is copied, so the demo's stays as it is.
Runs one training run on local Ray and reads the workers' progress files. Printed, over the
steps after the first 5 (start-up excluded):
- steps/s (global: every worker advances one step per step) and seconds per step;
- the share of a step spent in store traffic: reading the batch's best fits, sending proposals
  to the writer (not waited on) and refreshing the reader to the newest commit; target <= 5 %;
- where the rest goes (data, forward, SMPLify, targets, backward) and the writer's figures.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np

from spinfits.fitting.data.spin_crop import CROP_RES
from spinfits.training.progress import read_progress, step_time_split
from spinfits.training.train_config import TrainConfig, TrainDataset
from spinfits.training.trainer import run_training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path("out/demo"))
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--backbone", default="small", choices=("small", "resnet50"))
    parser.add_argument("--input-res", type=int, default=CROP_RES)
    parser.add_argument("--refresh-every", type=int, default=10)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import icechunk

    icechunk.set_logs_filter("error")
    for needed in ("synthetic.npz", "images", "store", "model"):
        if not (args.demo / needed).exists():
            raise SystemExit(f"{args.demo / needed} is missing: run `bash scripts/demo.sh` first")
    with tempfile.TemporaryDirectory() as scratch:
        store = Path(scratch) / "store"
        shutil.copytree(args.demo / "store", store)
        config = TrainConfig(
            datasets=(TrainDataset(args.demo / "synthetic.npz", args.demo / "images"),),
            store=str(store),
            model_dir=args.demo / "model",
            runs_dir=Path(scratch) / "runs",
            run="bench",
            workers=args.workers,
            steps=args.steps,
            batch_size=args.batch,
            backbone=args.backbone,
            input_res=args.input_res,
            use_gt_smpl=False,
            refresh_every=args.refresh_every,
            checkpoint_every=max(args.steps // 2, 1),
            show_progress=False,
        )
        summary = run_training(config)
        ranks = [
            read_progress(config.run_dir.resolve() / "progress" / f"rank{r}.jsonl")
            for r in range(args.workers)
        ]
    report(args, summary, ranks)


def report(args, summary, ranks) -> None:
    steady = [[r for r in records if r["step"] >= 5] for records in ranks]
    seconds = np.array([r["seconds"] for records in steady for r in records])
    store = np.array([r["store_seconds"] for records in steady for r in records])
    per_step = np.array(
        [np.mean([records[i]["seconds"] for records in steady]) for i in range(min(len(x) for x in steady))]
    )
    split = step_time_split([r for records in steady for r in records])
    print(
        f"spinfits train: {args.workers} workers x batch {args.batch}, backbone {args.backbone}, "
        f"input {args.input_res} px, {args.steps} steps (stand-in body model, CPU)"
    )
    print(f"  whole run {summary.seconds:.1f} s including Ray start-up")
    print(
        f"  steady state (steps 5+): {1 / per_step.mean():.2f} steps/s, {per_step.mean():.3f} s/step "
        f"(median {np.median(per_step):.3f}), {args.workers * args.batch / per_step.mean():.1f} "
        f"samples/s"
    )
    print(
        f"  store traffic: {100 * store.sum() / seconds.sum():.2f} % of step time "
        f"(per step: median {1e3 * np.median(store):.2f} ms, max {1e3 * store.max():.1f} ms; "
        f"target <= 5 %)"
    )
    parts = ", ".join(
        f"{name} {100 * value / seconds.sum():.1f} %"
        for name, value in split.items()
        if name != "store traffic"
    )
    print(f"  rest of a step: {parts}")
    print(
        f"  writer: {summary.writer.proposals} proposals, {summary.writer.rows_improved} rows "
        f"improved, {summary.writer.commits} commits; store mean fit loss "
        f"{summary.loss_before:.3f} -> {summary.loss_after:.3f}"
    )


if __name__ == "__main__":
    main()
