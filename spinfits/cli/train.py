"""``spinfits train``: SPIN training on Ray Train with the best-fit store in the loop."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from spinfits.cli.hints import store_argument
from spinfits.cli.options import add_s3_arguments, default_of, flags_in_errors, make_config, s3_options
from spinfits.errors import InputError
from spinfits.training.in_loop_rule import IN_LOOP_RULES
from spinfits.training.spin_losses import SpinLossWeights
from spinfits.training.train_config import TrainConfig, TrainDataset

#: TrainConfig field -> the flag that sets it (its messages name fields; see cli.options).
FLAGS = {
    "datasets": "--dataset",
    "store": "--store",
    "model_dir": "--model-dir",
    "mix": "--mix",
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
    "pretrained": "--pretrained",
    "learning_rate": "--lr",
    "smplify_threshold": "--smplify-threshold",
    "in_loop_rule": "--in-loop-rule",
    "in_loop_swap_check": "--in-loop-swap-check",
    "precision": "--precision",
    "loader_workers": "--loader-workers",
    "checkpoint_every": "--checkpoint-every",
    "refresh_every": "--refresh-every",
    "commit_every_s": "--commit-every",
    "summary_every": "--summary-every",
    "images_every": "--images-every",
    "max_failures": "--max-failures",
    "seed": "--seed",
}

#: SpinLossWeights field -> (flag, SPIN's option name) for SPIN's loss weights.
LOSS_FLAGS = {
    "keypoint": ("--keypoint-loss-weight", "keypoint_loss_weight"),
    "keypoint_3d": ("--keypoint-3d-loss-weight", "keypoint_loss_weight (3D)"),
    "pose": ("--pose-loss-weight", "pose_loss_weight"),
    "betas": ("--beta-loss-weight", "beta_loss_weight"),
    "shape": ("--shape-loss-weight", "shape_loss_weight"),
    "openpose": ("--openpose-train-weight", "openpose_train_weight"),
    "gt": ("--gt-train-weight", "gt_train_weight"),
}

#: A value the --config file left in place (no flag after --config changed it).
FROM_CONFIG = object()


def _default(name: str):
    return default_of(TrainConfig, name)


class ConfigFile(argparse.Action):
    """``--config FILE``: start from a run's saved ``config.json``; flags after it change it."""

    def __call__(self, parser, namespace, values, option_string=None):
        try:
            with flags_in_errors(FLAGS):
                namespace.config = TrainConfig.load(values)
        except InputError as error:  # told by _run, as every other input error
            namespace.config_error = str(error)
            return
        for action in parser._actions:  # every option now means "as in the file" until given
            if action.dest not in ("help", "config", "func", "verbose", "command") and action.option_strings:
                setattr(namespace, action.dest, FROM_CONFIG)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train SPIN's regressor with SMPLify in the loop, improving the store's fits",
        description="Ray Train (DDP) workers train SPIN's regressor on one or more datasets (SPIN's "
        "mix by default). Each step runs SMPLify from the network's prediction, compares it with "
        "the store's best fit, proposes the better one to the run's store writer and supervises "
        "with it (--no-smplify: supervise with the store's fits only). Checkpoints record the "
        "store snapshot they saw; --resume continues a run; the run's config.json reruns it "
        "(--config).",
    )
    parser.add_argument(
        "--config",
        action=ConfigFile,
        metavar="FILE",
        help="start from a run's saved config (RUNS_DIR/RUN/config.json); give it first: "
        "flags after it change its values",
    )
    data = parser.add_argument_group("datasets")
    data.add_argument(
        "--dataset",
        action="append",
        nargs="+",
        metavar="NPZ [IMAGES [NAME]]",
        help="a SPIN dataset .npz, the folder its imgname paths are relative to, and its name in "
        "the store (default: the file's stem); repeat for a mix. With one dataset, IMAGES may "
        "come from --images and NAME from --name",
    )
    data.add_argument("--images", type=Path, help="image folder of a single --dataset NPZ")
    data.add_argument("--name", help="store name of a single --dataset NPZ (default: the file's stem)")
    data.add_argument(
        "--mix",
        default="spin",
        help="'spin' (default: SPIN's partition by dataset name: h36m* 30%%, *3dhp* 10%%, the "
        "others 60%% split by size) or one weight per --dataset, comma-separated",
    )
    parser.add_argument(
        "--store", help="store path or s3:// URL holding the datasets' fits (spinfits precompute)"
    )
    parser.add_argument("--model-dir", type=Path, help="body model folder")
    parser.add_argument("--run", default=_default("run"), help="run name (default %(default)s)")
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=_default("runs_dir"),
        help="Ray Train storage: checkpoints in RUNS_DIR/RUN (default ./%(default)s)",
    )
    parser.add_argument("--resume", action="store_true", help="continue the run from its latest checkpoint")
    _add_compute_arguments(parser)
    _add_model_arguments(parser)
    _add_supervision_arguments(parser)
    _add_timing_arguments(parser)
    add_s3_arguments(parser)
    parser.set_defaults(func=_run, config=None)


def _add_compute_arguments(parser: argparse.ArgumentParser) -> None:
    """The workers, their threads and devices, and the precision of the forward."""
    compute = parser.add_argument_group("workers and devices")
    compute.add_argument(
        "--workers", type=int, default=_default("workers"), help="training workers (default %(default)s)"
    )
    compute.add_argument(
        "--threads-per-worker",
        type=int,
        default=_default("threads_per_worker"),
        help="CPU threads per worker (default: CPUs / workers)",
    )
    compute.add_argument(
        "--gpus-per-worker",
        type=float,
        default=_default("gpus_per_worker"),
        help="GPUs per worker; > 0 trains on CUDA (default %(default)s: CPU)",
    )
    compute.add_argument(
        "--loader-workers",
        type=int,
        default=_default("loader_workers"),
        help="DataLoader processes per worker decoding and augmenting images ahead (0: none; "
        "default %(default)s)",
    )
    compute.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default=_default("precision"),
        help="the network's forward: auto = bf16 autocast on GPUs with native bf16 (Ampere and "
        "later), float32 elsewhere; SMPLify stays float32, TF32 off (default %(default)s)",
    )


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The regressor and its optimiser."""
    model = parser.add_argument_group("model and optimiser")
    model.add_argument(
        "--backbone",
        choices=("resnet50", "small"),
        default=_default("backbone"),
        help="resnet50 (SPIN's) or small (for CPU runs) (default %(default)s)",
    )
    model.add_argument(
        "--input-res",
        type=int,
        default=_default("input_res"),
        help="network input side in pixels (default %(default)s, SPIN's)",
    )
    model.add_argument(
        "--pretrained",
        type=Path,
        help="start from SPIN's model_checkpoint.pt, an mmhuman3d HMR checkpoint, or a torchvision "
        "resnet50 state dict (backbone only: ImageNet start, SPIN's); ignored with --resume",
    )
    model.add_argument(
        "--steps", type=int, default=_default("steps"), help="optimiser steps (default %(default)s)"
    )
    model.add_argument(
        "--batch",
        type=int,
        default=_default("batch_size"),
        help="samples each worker trains on per step; the global batch is workers x this (default "
        "%(default)s; SPIN: 64 on one GPU)",
    )
    model.add_argument(
        "--lr",
        type=float,
        default=_default("learning_rate"),
        help="Adam learning rate, constant (default %(default)s, SPIN's)",
    )


def _add_supervision_arguments(parser: argparse.ArgumentParser) -> None:
    """SPIN's supervision: SMPLify in the loop and the loss weights."""
    spin = parser.add_argument_group("SPIN's supervision (defaults: SPIN's train_options.py)")
    spin.add_argument(
        "--no-smplify",
        action="store_true",
        help="static fits: supervise with the store's fits only, no SMPLify in the loop, nothing "
        "proposed (SPIN without --run_smplify)",
    )
    spin.add_argument(
        "--smplify-iterations",
        type=int,
        default=_default("smplify").body_iterations,
        help="in-loop SMPLify body iterations (LM's cap; default %(default)s; SPIN's Adam loop runs 100)",
    )
    spin.add_argument(
        "--in-loop-rule",
        choices=IN_LOOP_RULES,
        default=_default("in_loop_rule"),
        help="when an in-loop fit replaces the stored one: fit_loss_and_prior (default): a lower fit "
        "loss and a pose no less likely under the GMM pose prior; fit_loss: a lower fit loss (SPIN's)",
    )
    spin.add_argument(
        "--in-loop-swap-check",
        action=argparse.BooleanOptionalAction,
        default=_default("in_loop_swap_check"),
        help="rows whose OpenPose left/right looks swapped keep their scored stored fit (precompute "
        "fitted them with the swap undone; default on)",
    )
    spin.add_argument(
        "--smplify-threshold",
        type=float,
        default=_default("smplify_threshold"),
        help="fits with a larger fit loss do not supervise (default %(default)s, SPIN's)",
    )
    spin.add_argument(
        "--ignore-gt-smpl",
        action="store_true",
        help="do not supervise with the dataset's ground-truth SMPL (learn from fits)",
    )
    losses = SpinLossWeights()
    for field_name, (flag, spin_name) in LOSS_FLAGS.items():
        spin.add_argument(
            flag,
            type=float,
            default=getattr(losses, field_name),
            help=f"SPIN's {spin_name} (default %(default)s)",
        )


def _add_timing_arguments(parser: argparse.ArgumentParser) -> None:
    """Checkpoints, store traffic, logging and the seed."""
    timing = parser.add_argument_group("checkpoints, store traffic, logging")
    for flag, field_name, meta, text in (
        ("--checkpoint-every", "checkpoint_every", "STEPS", "steps between checkpoints"),
        ("--refresh-every", "refresh_every", "STEPS", "steps between re-reads of the store's newest commit"),
        ("--summary-every", "summary_every", "STEPS", "steps between TensorBoard scalars (0: none)"),
        ("--images-every", "images_every", "STEPS", "steps between TensorBoard fit images (0: none)"),
    ):
        timing.add_argument(
            flag, type=int, default=_default(field_name), metavar=meta, help=f"{text} (default %(default)s)"
        )
    timing.add_argument(
        "--commit-every",
        type=float,
        default=_default("commit_every_s"),
        metavar="SECONDS",
        help="seconds between the store writer's commits (default %(default)s)",
    )
    timing.add_argument(
        "--max-failures",
        type=int,
        default=_default("max_failures"),
        help="worker failures Ray Train recovers from (-1: no limit; default %(default)s)",
    )
    timing.add_argument(
        "--seed",
        type=int,
        default=_default("seed"),
        help="random seed: sample order, mix, augmentation (default %(default)s)",
    )
    timing.add_argument("--report", type=Path, help="write a report PNG here")


def _datasets(args: argparse.Namespace) -> tuple[TrainDataset, ...]:
    """The --dataset values (with --images / --name for a single one) as TrainDatasets."""
    given = args.dataset or []
    if not given:
        raise InputError(
            "--dataset is required: a SPIN dataset .npz with its image folder (or pass --config FILE)"
        )
    single = len(given) == 1
    if not single and (_given(args.images) or _given(args.name)):
        raise InputError(
            "--images and --name belong to a single --dataset; with several, give each as "
            "--dataset NPZ IMAGES [NAME]"
        )
    out = []
    for values in given:
        if len(values) > 3:
            raise InputError(f"--dataset takes NPZ [IMAGES [NAME]], got {len(values)} values: {values}")
        npz = values[0]
        images = values[1] if len(values) > 1 else (args.images if single and _given(args.images) else None)
        name = values[2] if len(values) > 2 else (args.name if single and _given(args.name) else "")
        if images is None:
            raise InputError(f"--dataset {npz}: its image folder is missing: --dataset NPZ IMAGES [NAME]")
        out.append(TrainDataset(Path(npz), Path(images), name or ""))
    return tuple(out)


def _mix(text: str, count: int) -> tuple[float, ...] | None:
    if text == "spin":
        return None
    try:
        weights = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise InputError(f"--mix must be 'spin' or {count} comma-separated weights, got {text!r}") from None
    return weights


def _given(value: Any) -> bool:
    return value is not None and value is not FROM_CONFIG


def _values(args: argparse.Namespace) -> dict[str, Any]:
    """TrainConfig fields the command line sets (with --config: those given after it)."""
    values: dict[str, Any] = {}
    if args.dataset is not FROM_CONFIG:
        values["datasets"] = _datasets(args)
    count = len(values["datasets"]) if "datasets" in values else len(args.config.datasets)
    simple = {
        "store": args.store,
        "model_dir": args.model_dir,
        "runs_dir": args.runs_dir,
        "run": args.run,
        "resume": args.resume,
        "workers": args.workers,
        "threads_per_worker": args.threads_per_worker,
        "gpus_per_worker": args.gpus_per_worker,
        "loader_workers": args.loader_workers,
        "precision": args.precision,
        "steps": args.steps,
        "batch_size": args.batch,
        "backbone": args.backbone,
        "input_res": args.input_res,
        "pretrained": args.pretrained,
        "learning_rate": args.lr,
        "smplify_threshold": args.smplify_threshold,
        "in_loop_rule": args.in_loop_rule,
        "in_loop_swap_check": args.in_loop_swap_check,
        "checkpoint_every": args.checkpoint_every,
        "refresh_every": args.refresh_every,
        "summary_every": args.summary_every,
        "images_every": args.images_every,
        "commit_every_s": args.commit_every,
        "max_failures": args.max_failures,
        "seed": args.seed,
    }
    values.update({name: value for name, value in simple.items() if value is not FROM_CONFIG})
    if args.mix is not FROM_CONFIG:
        values["mix"] = _mix(args.mix, count)
    if args.ignore_gt_smpl is not FROM_CONFIG:
        values["use_gt_smpl"] = not args.ignore_gt_smpl
    if args.no_smplify is not FROM_CONFIG:
        values["run_smplify"] = not args.no_smplify
    if args.smplify_iterations is not FROM_CONFIG:
        smplify = args.config.smplify if args.config else _default("smplify")
        values["smplify"] = replace(smplify, body_iterations=args.smplify_iterations)
    weights = {
        name: getattr(args, flag[2:].replace("-", "_"))
        for name, (flag, _) in LOSS_FLAGS.items()
        if getattr(args, flag[2:].replace("-", "_")) is not FROM_CONFIG
    }
    if weights:
        values["losses"] = replace(args.config.losses if args.config else SpinLossWeights(), **weights)
    s3_given = [
        getattr(args, n) for n in ("endpoint_url", "region", "allow_http", "force_path_style", "anonymous")
    ]
    if all(value is not FROM_CONFIG for value in s3_given):
        values["s3"] = s3_options(args)
    return values


def _run(args: argparse.Namespace) -> int:
    from spinfits.training.run_inputs import check_inputs

    if getattr(args, "config_error", None):
        raise InputError(args.config_error)
    values = _values(args)
    if args.config is not None:
        values.setdefault("resume", False)  # a saved config reruns; --resume continues
        with flags_in_errors(FLAGS):
            config = replace(args.config, **values)
    else:
        for name, flag in (("store", "--store"), ("model_dir", "--model-dir")):
            if values.get(name) is None:
                raise InputError(f"{flag} is required (or pass --config FILE)")
        config = make_config(TrainConfig, FLAGS, **values)
    with flags_in_errors(FLAGS):
        checked = check_inputs(config)  # before importing Ray: bad input fails in seconds
        from spinfits.training.trainer import run_training

        summary = run_training(config, announce=print, checked=checked)
    for line in summary.lines():
        print(line)
    if args.report not in (None, FROM_CONFIG) and not summary.nothing_to_do:
        from spinfits.report.plots import plot_training_report
        from spinfits.training.progress import read_progress

        ranks = [
            read_progress(config.run_dir / "progress" / f"rank{rank}.jsonl") for rank in range(config.workers)
        ]
        print(f"report: {plot_training_report(summary, ranks, args.report)}")
    print(
        f"progress per worker: {config.run_dir / 'progress'}/rank*.jsonl   |   "
        f"TensorBoard: tensorboard --logdir {config.run_dir / 'tensorboard'}   |   "
        f"store history: spinfits store log {store_argument(config.store, config.s3)}"
    )
    return 0
