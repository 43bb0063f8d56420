"""``spinfits train``: SPIN training on Ray Train with the best-fit store in the loop."""

from __future__ import annotations

import argparse
from pathlib import Path

from spinfits.cli.options import default_of, make_config
from spinfits.cli.store import add_s3_arguments, s3_options
from spinfits.training.train_config import TrainConfig

#: TrainConfig field -> the flag that sets it (its messages name fields; see cli.options).
FLAGS = {
    "dataset": "--dataset",
    "images": "--images",
    "store": "--store",
    "model_dir": "--model-dir",
    "dataset_name": "--name",
    "run": "--run",
    "runs_dir": "--runs-dir",
    "resume": "--resume",
    "workers": "--workers",
    "threads_per_worker": "--threads-per-worker",
    "gpus_per_worker": "--gpus-per-worker",
    "steps": "--steps",
    "batch_size": "--batch",
    "backbone": "--backbone",
    "input_res": "--input-res",
    "learning_rate": "--lr",
    "checkpoint_every": "--checkpoint-every",
    "refresh_every": "--refresh-every",
    "commit_every_s": "--commit-every",
    "max_failures": "--max-failures",
    "seed": "--seed",
}


def _default(name: str):
    return default_of(TrainConfig, name)


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
    parser.add_argument(
        "--images", required=True, type=Path, help="folder the dataset's imgname paths are relative to"
    )
    parser.add_argument(
        "--store",
        required=True,
        help="store path or s3:// URL holding the dataset's fits (spinfits precompute)",
    )
    parser.add_argument("--model-dir", required=True, type=Path, help="body model folder")
    parser.add_argument("--name", help="dataset name in the store (default: the file's stem)")
    parser.add_argument("--run", default=_default("run"), help="run name (default %(default)s)")
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=_default("runs_dir"),
        help="Ray Train storage: checkpoints in RUNS_DIR/RUN (default ./%(default)s)",
    )
    parser.add_argument("--resume", action="store_true", help="continue the run from its latest checkpoint")
    parser.add_argument(
        "--workers", type=int, default=_default("workers"), help="training workers (default %(default)s)"
    )
    parser.add_argument(
        "--threads-per-worker",
        type=int,
        default=_default("threads_per_worker"),
        help="CPU threads per worker (default: CPUs / workers)",
    )
    parser.add_argument(
        "--gpus-per-worker",
        type=float,
        default=_default("gpus_per_worker"),
        help="GPUs per worker; > 0 trains on CUDA (default %(default)s: CPU)",
    )
    parser.add_argument(
        "--steps", type=int, default=_default("steps"), help="optimiser steps (default %(default)s)"
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=_default("batch_size"),
        help="samples each worker trains on per step; the global batch is "
        "workers x this (default %(default)s)",
    )
    parser.add_argument(
        "--backbone",
        choices=("resnet50", "small"),
        default=_default("backbone"),
        help="resnet50 (SPIN's) or small (for CPU runs) (default %(default)s)",
    )
    parser.add_argument(
        "--input-res",
        type=int,
        default=_default("input_res"),
        help="network input side in pixels (default %(default)s, SPIN's)",
    )
    parser.add_argument(
        "--lr", type=float, default=_default("learning_rate"), help="Adam learning rate (default %(default)s)"
    )
    parser.add_argument(
        "--ignore-gt-smpl",
        action="store_true",
        help="do not supervise with the dataset's ground-truth SMPL (learn from fits)",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=_default("checkpoint_every"),
        metavar="STEPS",
        help="steps between checkpoints (default %(default)s)",
    )
    parser.add_argument(
        "--refresh-every",
        type=int,
        default=_default("refresh_every"),
        metavar="STEPS",
        help="steps between re-reads of the store's newest commit (default %(default)s)",
    )
    parser.add_argument(
        "--commit-every",
        type=float,
        default=_default("commit_every_s"),
        metavar="SECONDS",
        help="seconds between the store writer's commits (default %(default)s)",
    )
    parser.add_argument(
        "--max-failures",
        type=int,
        default=_default("max_failures"),
        help="worker failures Ray Train recovers from (-1: no limit; default %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=_default("seed"),
        help="random seed: row order, augmentation (default %(default)s)",
    )
    parser.add_argument("--report", type=Path, help="write a report PNG here")
    add_s3_arguments(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from spinfits.training.trainer import run_training

    config = make_config(
        TrainConfig,
        FLAGS,
        dataset=args.dataset,
        images=args.images,
        store=args.store,
        model_dir=args.model_dir,
        dataset_name=args.name,
        runs_dir=args.runs_dir,
        run=args.run,
        resume=args.resume,
        workers=args.workers,
        threads_per_worker=args.threads_per_worker,
        gpus_per_worker=args.gpus_per_worker,
        steps=args.steps,
        batch_size=args.batch,
        backbone=args.backbone,
        input_res=args.input_res,
        learning_rate=args.lr,
        use_gt_smpl=not args.ignore_gt_smpl,
        checkpoint_every=args.checkpoint_every,
        refresh_every=args.refresh_every,
        commit_every_s=args.commit_every,
        max_failures=args.max_failures,
        seed=args.seed,
        s3=s3_options(args),
    )
    summary = run_training(config)
    for line in summary.lines():
        print(line)
    if args.report and not summary.nothing_to_do:
        from spinfits.plots import plot_training_report
        from spinfits.training.progress import read_progress

        ranks = [
            read_progress(config.run_dir / "progress" / f"rank{rank}.jsonl") for rank in range(config.workers)
        ]
        print(f"report: {plot_training_report(summary, ranks, args.report)}")
    print(
        f"progress per worker: {config.run_dir / 'progress'}/rank*.jsonl   |   "
        f"store history: spinfits store log {args.store}"
    )
    return 0
