"""``spinfits train``: SPIN training on Ray Train with the best-fit store in the loop."""

from __future__ import annotations

import argparse
from pathlib import Path

from spinfits.cli_store import add_s3_arguments, s3_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train SPIN's regressor with SMPLify in the loop, improving the store's fits",
        description="Ray Train (DDP) workers train SPIN's regressor; each step runs SMPLify from "
        "the network's prediction, compares it with the store's best fit, proposes the better "
        "one to the run's store writer and supervises with it. Checkpoints record the store "
        "snapshot they saw; --resume continues a run.",
    )
    parser.add_argument("--dataset", required=True, type=Path, help="SPIN dataset .npz")
    parser.add_argument("--images", required=True, type=Path,
                        help="folder the dataset's imgname paths are relative to")
    parser.add_argument("--store", required=True,
                        help="store path or s3:// URL holding the dataset's fits (spinfits precompute)")
    parser.add_argument("--model-dir", required=True, type=Path, help="body model folder")
    parser.add_argument("--name", help="dataset name in the store (default: the file's stem)")
    parser.add_argument("--run", default="spin", help="run name (default 'spin')")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"),
                        help="Ray Train storage: checkpoints in RUNS_DIR/RUN (default ./runs)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run from its latest checkpoint")
    parser.add_argument("--workers", type=int, default=2, help="training workers (default 2)")
    parser.add_argument("--threads-per-worker", type=int,
                        help="CPU threads per worker (default: CPUs / workers)")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0,
                        help="GPUs per worker; > 0 trains on CUDA (default 0: CPU)")
    parser.add_argument("--steps", type=int, default=300, help="optimiser steps (default 300)")
    parser.add_argument("--batch", type=int, default=16, help="samples per worker per step (default 16)")
    parser.add_argument("--backbone", choices=("resnet50", "small"), default="resnet50",
                        help="resnet50 (SPIN's, default) or small (for CPU runs)")
    parser.add_argument("--input-res", type=int, default=224,
                        help="network input side in pixels (default 224, SPIN's)")
    parser.add_argument("--lr", type=float, default=5e-5, help="Adam learning rate (default 5e-5)")
    parser.add_argument("--ignore-gt-smpl", action="store_true",
                        help="do not supervise with the dataset's ground-truth SMPL (learn from fits)")
    parser.add_argument("--checkpoint-every", type=int, default=50, metavar="STEPS")
    parser.add_argument("--refresh-every", type=int, default=10, metavar="STEPS",
                        help="steps between re-reads of the store's newest commit (default 10)")
    parser.add_argument("--commit-every", type=float, default=5.0, metavar="SECONDS")
    parser.add_argument("--max-failures", type=int, default=3,
                        help="worker failures Ray Train recovers from (-1: no limit)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", type=Path, help="write a report PNG here")
    add_s3_arguments(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from spinfits.training.train_config import TrainConfig
    from spinfits.training.trainer import run_training

    config = TrainConfig(
        dataset=args.dataset, images=args.images, store=args.store, model_dir=args.model_dir,
        dataset_name=args.name, runs_dir=args.runs_dir, run=args.run, resume=args.resume,
        workers=args.workers, threads_per_worker=args.threads_per_worker,
        gpus_per_worker=args.gpus_per_worker, steps=args.steps, batch_size=args.batch,
        backbone=args.backbone, input_res=args.input_res, learning_rate=args.lr,
        use_gt_smpl=not args.ignore_gt_smpl, checkpoint_every=args.checkpoint_every,
        refresh_every=args.refresh_every, commit_every_s=args.commit_every,
        max_failures=args.max_failures, seed=args.seed, s3=s3_options(args))
    summary = run_training(config)
    for line in summary.lines():
        print(line)
    if args.report and not summary.nothing_to_do:
        from spinfits.plots import plot_training_report
        from spinfits.training.progress import read_progress

        ranks = [read_progress(config.run_dir / "progress" / f"rank{rank}.jsonl")
                 for rank in range(config.workers)]
        print(f"report: {plot_training_report(summary, ranks, args.report)}")
    print(f"progress per worker: {config.run_dir / 'progress'}/rank*.jsonl   |   "
          f"store history: spinfits store log {args.store}")
    return 0
