"""``spinfits store gc``: expire old snapshots and delete what nothing reaches (glue over ``FitStore.history.gc``).

Kept: branch tips, tags, the commits newer than the cut (``--older-than DAYS``, default 7 days, or
the ``--keep-last N`` newest commits of each branch) and every snapshot that a checkpoint of a run
given with ``--keep-run RUNS_DIR/RUN`` records (``checkpoint_*/training_state.pt``), so the run can
resume from the fits it saw. ``--keep-run`` holds those snapshots for this gc only; tag a snapshot
(``spinfits store tag``) to keep it for good. Expired snapshots can no longer be read.
"""

from __future__ import annotations

import argparse
import datetime
import logging
from pathlib import Path

from spinfits.errors import InputError

log = logging.getLogger(__name__)


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``gc`` to the ``spinfits store`` subcommands."""
    from spinfits.cli.options import add_s3_arguments

    p = commands.add_parser(
        "gc",
        help="expire old snapshots and delete what nothing reaches (tips, tags, pinned kept)",
        description="Expire old snapshots and delete what nothing reaches. Kept: branch tips, tags, "
        "the commits newer than the cut (--older-than DAYS, default 7, or the --keep-last N newest "
        "of each branch) and every snapshot the checkpoints of the runs given with --keep-run record "
        "(for this gc only: tag a snapshot to keep it for good). Expired snapshots can no longer be read.",
    )
    p.add_argument("store", metavar="STORE", help="store directory or s3://bucket/prefix")
    cut = p.add_mutually_exclusive_group()
    cut.add_argument(
        "--older-than", type=float, metavar="DAYS", help="expire commits older than DAYS days (default 7)"
    )
    cut.add_argument("--keep-last", type=int, metavar="N", help="keep the N newest commits of each branch")
    p.add_argument(
        "--keep-run",
        action="append",
        default=[],
        type=Path,
        metavar="RUNS_DIR/RUN",
        help="keep every snapshot this training run's checkpoints record (repeatable)",
    )
    p.add_argument("--dry-run", action="store_true", help="change nothing: list what would expire")
    add_s3_arguments(p)
    p.set_defaults(func=cmd_gc)


def checkpoint_snapshots(runs: list[Path]) -> dict[str, str]:
    """Snapshot id -> "checkpoint DIR (step S)" for every checkpoint of the training ``runs``."""
    if not runs:
        return {}
    from spinfits.training.checkpoint import STATE_FILE, load_training_state

    keep: dict[str, str] = {}
    for run in runs:
        if not run.is_dir():
            raise InputError(
                f"--keep-run {run}: no such folder; pass a training run's folder RUNS_DIR/RUN "
                "(as `spinfits train --runs-dir RUNS_DIR --run RUN` writes it)"
            )
        states = sorted(run.glob(f"checkpoint_*/{STATE_FILE}"))
        if not states:
            raise InputError(
                f"--keep-run {run}: no checkpoint_*/{STATE_FILE} in it; pass the folder of a "
                "training run that saved checkpoints (RUNS_DIR/RUN)"
            )
        for path in states:
            state = load_training_state(path.parent)
            keep.setdefault(state.snapshot_id, f"checkpoint {path.parent} (step {state.step})")
    return keep


def size(n: float) -> str:
    """Bytes as kB/MB/GB text."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{int(n)} B"


def cmd_gc(args: argparse.Namespace) -> int:
    from spinfits.cli.options import open_store, table, utc_time

    if args.older_than is not None and not args.older_than >= 0:
        raise InputError(f"--older-than must be a number of days >= 0, got {args.older_than}")
    if args.keep_last is not None and args.keep_last < 1:
        raise InputError(
            f"--keep-last must be at least 1 (commits kept on each branch), got {args.keep_last}"
        )
    keep = checkpoint_snapshots(args.keep_run)
    store = open_store(args)
    older_than = None if args.older_than is None else datetime.timedelta(days=args.older_than)
    report = store.history.gc(
        older_than=older_than, keep_last=args.keep_last, keep=keep, dry_run=args.dry_run
    )
    print(f"gc of {store.location}{' (dry run: nothing changed)' if report.dry_run else ''}")
    print(f"cut:     {utc_time(report.cut)}; commits written before it expire")
    print("kept:")
    rows = [[snapshot, ", ".join(why)] for snapshot, why in report.kept.items()]
    print("\n".join("  " + line for line in table(rows, ["snapshot", "why"]).splitlines()))
    for snapshot, why in report.missing.items():
        print(f"not in the store (collected earlier?): {snapshot}, {why}")
    freed = report.freed
    objects = ", ".join(
        f"{freed[kind]} {kind.replace('_', ' ')}"
        for kind in ("chunks", "manifests", "snapshots", "transaction_logs", "attributes")
    )
    if report.dry_run:
        print(f"would expire {len(report.expired)} snapshots")
        print(f"unreachable already: {size(freed['bytes'])} ({objects}); expiring frees more")
    else:
        print(f"expired {len(report.expired)} snapshots")
        print(f"freed:   {size(freed['bytes'])} ({objects})")
    if report.size_before is not None and report.dry_run:
        print(f"size:    {size(report.size_before)}")
    elif report.size_before is not None:
        print(f"size:    {size(report.size_before)} -> {size(report.size_after)}")
    return 0
