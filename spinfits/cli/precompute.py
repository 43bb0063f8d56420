"""``spinfits precompute``: fill the store with fits of whole datasets, on Ray (one job for all
the ``--dataset`` given: one set of actors, a summary and a resume point per dataset)."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from spinfits.cli.hints import store_argument
from spinfits.cli.options import (
    DeprecatedAlias,
    add_s3_arguments,
    default_of,
    flags_in_errors,
    make_config,
    s3_options,
)
from spinfits.cluster.precompute import (
    CPU_SHARD_ROWS,
    GPU_SHARD_ROWS,
    PrecomputeConfig,
    run_precompute_datasets,
)
from spinfits.errors import InputError

#: PrecomputeConfig field -> the flag that sets it (its messages name fields; see cli.options).
FLAGS = {
    "dataset": "--dataset",
    "store": "--store",
    "model_dir": "--model-dir",
    "dataset_name": "--name",
    "workers": "--workers",
    "threads_per_worker": "--threads-per-worker",
    "gpus_per_worker": "--gpus-per-worker",
    "shard_size": "--shard-size",
    "solver_slots": "--solver-slots",
    "head_start": "--no-head-start",
    "refit": "--refit",
    "refit_corrupt": "--refit-corrupt",
    "retry_failed": "--retry-failed",
    "init": "--init",
    "commit_every_s": "--commit-every",
}


def _default(name: str):
    return default_of(PrecomputeConfig, name)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "precompute",
        help="fit every row of datasets that has no fit yet, on Ray, into the store",
        description="Plans the rows without a fit from the store's record, fits them in Ray "
        "actors and commits as it goes; rerun the same command to resume. Several --dataset: "
        "one job (the actors stay warm from one dataset to the next), each dataset under its "
        "own name in the store, committed as soon as it is complete.",
    )
    _add_input_arguments(parser)
    _add_compute_arguments(parser)
    parser.add_argument(
        "--refit", action="store_true", help="refit rows that already hold a fit (the better fit is kept)"
    )
    parser.add_argument(
        "--refit-corrupt",
        action="store_true",
        help="refit exactly the rows `spinfits store verify` reports as corrupt (damaged chunks, "
        "implausible rows): one commit resets them to no fit, then they are fitted",
    )
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="fit again the rows an earlier run could not fit (skipped by default; "
        "`spinfits store info` lists them with their reasons)",
    )
    parser.add_argument(
        "--init",
        default=_default("init"),
        help="'offline' (keypoints alone), 'store' (refine the store's fits) or a "
        "SPIN *_fits.npy to refine (default %(default)s)",
    )
    parser.add_argument(
        "--commit-every",
        type=float,
        default=_default("commit_every_s"),
        metavar="SECONDS",
        help="seconds between commits (default %(default)s)",
    )
    parser.add_argument("--report", type=Path, help="write a report PNG here")
    add_s3_arguments(parser)
    parser.set_defaults(func=_run)


def _add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """--dataset (repeatable), --store, --model-dir, --name (repeatable)."""
    parser.add_argument(
        "--dataset",
        required=True,
        type=Path,
        action="append",
        help="SPIN dataset .npz; repeat it for several datasets in one job",
    )
    parser.add_argument("--store", required=True, help="store path (created if absent) or s3:// URL")
    parser.add_argument("--model-dir", required=True, type=Path, help="body model folder")
    parser.add_argument(
        "--name",
        action="append",
        help="dataset name in the store (default: the file's stem); with several --dataset, "
        "give one --name per --dataset, in the same order",
    )


def _add_compute_arguments(parser: argparse.ArgumentParser) -> None:
    """How the job is spread: actors, threads, GPUs, shard and solver sizes."""
    parser.add_argument(
        "--workers",
        type=int,
        default=_default("workers"),
        help="fitter actors (default: fill the Ray cluster, one single-threaded actor per CPU, "
        "or one per --gpus-per-worker share of its GPUs)",
    )
    parser.add_argument(
        "--threads-per-worker",
        type=int,
        default=_default("threads_per_worker"),
        help="CPU threads per actor (default: 1 without --workers, else CPUs / workers)",
    )
    parser.add_argument(
        "--gpus-per-worker",
        type=float,
        default=_default("gpus_per_worker"),
        help="GPUs per actor; > 0 fits on CUDA (default %(default)s: CPU)",
    )
    parser.add_argument(
        "--shard-size",
        type=int,
        default=_default("shard_size"),
        help="dataset rows per shard, the unit of work an actor fits and the driver merges "
        f"(default: {CPU_SHARD_ROWS} on the CPU, {GPU_SHARD_ROWS} with --gpus-per-worker)",
    )
    parser.add_argument(
        "--solver-slots",
        type=int,
        default=_default("solver_slots"),
        help="rows SMPLify's solver optimises together on an actor's device (its batch; default: "
        "the fitting configuration's, 256, on the CPU; on a GPU chosen from the memory of the "
        "actor's share of it, up to 8192)",
    )
    parser.add_argument(
        "--no-head-start",
        dest="head_start",
        action="store_false",
        help="do not let the driver fit the first rows itself while Ray starts (it does by "
        "default on the CPU, on one thread, until ray.init has returned)",
    )
    parser.add_argument(
        "--batch",
        dest="shard_size",
        type=int,
        action=DeprecatedAlias,
        replacement="--shard-size",
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )  # the old name of --shard-size


def _run(args: argparse.Namespace) -> int:
    datasets, names = args.dataset, args.name or [None] * len(args.dataset)
    if len(names) != len(datasets):
        raise InputError(
            f"--name was given {len(names)} time(s) for {len(datasets)} --dataset: give one --name "
            "per --dataset, in the same order, or none (each dataset is named by its file's stem)"
        )
    if len(datasets) > 1 and str(args.init).endswith(".npy"):
        raise InputError(
            f"--init {args.init}: a SPIN fits file belongs to one dataset, and this job has "
            f"{len(datasets)}; run that dataset alone with --init, or use --init offline|store"
        )
    configs = [
        make_config(
            PrecomputeConfig,
            FLAGS,
            dataset=dataset,
            store=args.store,
            model_dir=args.model_dir,
            dataset_name=name,
            workers=args.workers,
            threads_per_worker=args.threads_per_worker,
            gpus_per_worker=args.gpus_per_worker,
            shard_size=args.shard_size,
            solver_slots=args.solver_slots,
            head_start=args.head_start,
            refit=args.refit,
            refit_corrupt=args.refit_corrupt,
            retry_failed=args.retry_failed,
            init=args.init,
            commit_every_s=args.commit_every,
            s3=s3_options(args),
        )
        for dataset, name in zip(datasets, names, strict=True)
    ]
    with flags_in_errors(FLAGS):
        summaries = run_precompute_datasets(configs)
    for summary in summaries:
        for line in summary.lines():
            print(line)
        if summary.rows_planned == 0:
            print(f"nothing to do: {summary.nothing_to_do}")
        if args.report:
            from spinfits.report.plots import plot_precompute_report

            path = args.report
            if len(summaries) > 1:  # one report per dataset: report-<name>.png
                path = path.with_name(f"{path.stem}-{summary.dataset}{path.suffix}")
            print(f"report: {plot_precompute_report(summary, path)}")
    if len(summaries) > 1:
        fitted = sum(summary.rows_fitted for summary in summaries)
        seconds = max(summary.seconds for summary in summaries)
        print(
            f"job: {len(summaries)} datasets, {fitted} rows fitted in {seconds:.1f} s "
            f"({fitted / seconds if seconds > 0 else 0.0:.1f} fits/s)"
        )
    store = store_argument(args.store, configs[0].s3)
    exports = "   |   ".join(
        f"spinfits store export {store} {shlex.quote(config.name)} "
        f"{shlex.quote(config.name) + '_' if len(configs) > 1 else ''}fits.parquet "
        f"--npz {shlex.quote(str(config.dataset))}"
        for config in configs
    )
    print(f"inspect: spinfits store log {store}   |   {exports}")
    return 0
