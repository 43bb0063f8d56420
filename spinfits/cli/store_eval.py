"""``spinfits store eval``: how good are the stored fits, against the dataset's ground truth.

Thin glue: reads the fits of one dataset at one or more versions (``--version``, repeatable:
branch, tag or snapshot id; default the tip of main), evaluates them with the body model
(``fitting.evaluation.fit_evaluation``: MPJPE / PA-MPJPE in mm per protocol, per Human3.6M action, 2D PCK
with the stored camera) and prints the versions side by side; ``--json`` writes the figures.
Rows without a fit (source NONE, loss +inf) are counted and left out; imported fits stored
without a loss (unscored) are evaluated and counted.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

from spinfits.errors import InputError

log = logging.getLogger(__name__)


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``eval`` to the ``spinfits store`` subcommands."""
    from spinfits.cli.eval import add_evaluation_arguments
    from spinfits.cli.options import NPZ_HELP, add_npz_argument, add_s3_arguments

    parser = commands.add_parser(
        "eval",
        help="MPJPE / PA-MPJPE / PCK of the stored fits against the dataset's ground truth",
        description="How good are the stored fits, against the dataset's ground truth: reads the fits "
        "of one dataset at one or more versions (--version, repeatable: branch, tag or snapshot id; "
        "default the tip of main), evaluates them with the body model (MPJPE / PA-MPJPE in mm per "
        "protocol, per Human3.6M action, 2D PCK with the stored camera) and prints the versions side "
        "by side; --json writes the figures. Rows without a fit are counted and left out; imported "
        "fits stored without a loss (unscored) are evaluated and counted.",
    )
    parser.add_argument("store", metavar="STORE", help="store directory or s3://bucket/prefix")
    parser.add_argument("dataset_name", metavar="DATASET", help="dataset name in the store")
    add_npz_argument(parser, NPZ_HELP + ": ground truth S, pose/shape, part")
    parser.add_argument(
        "--version",
        action="append",
        dest="versions",
        metavar="VERSION",
        help="branch, tag or snapshot id; repeat to compare versions side by side (default: tip of main)",
    )
    parser.add_argument("--batch", type=int, default=256, help="fits per batch (default %(default)s)")
    add_evaluation_arguments(parser)
    add_s3_arguments(parser)
    parser.set_defaults(func=cmd_store_eval)


def cmd_store_eval(args: argparse.Namespace) -> int:
    from spinfits.cli.eval import device_of, make_evaluator, print_figures, write_json
    from spinfits.cli.options import npz_of, s3_options
    from spinfits.fitting.evaluation.summary import summary_of
    from spinfits.fitting.evaluation.targets import load_eval_targets
    from spinfits.store import FitStore, Source

    if args.batch < 1:
        raise InputError(f"--batch must be >= 1, got {args.batch}")
    device = device_of(args)
    npz = npz_of(args, "store eval")
    targets = load_eval_targets(npz, args.ground_truth)
    files, evaluator = make_evaluator(args, device)
    store = FitStore.open(args.store, body_model=files.fingerprint, s3=s3_options(args))
    versions = args.versions or [None]
    if len(set(versions)) != len(versions):
        raise InputError(f"--version names a version twice ({', '.join(map(str, versions))}); name each once")
    print(f"store:         {store.location} ({args.dataset_name})")
    print(f"dataset:       {npz} ({len(targets)} rows)")
    print(f"body model:    {files.description}")
    print(
        f"H36M joints:   {evaluator.h36m.description if evaluator.h36m else 'none (LSP-14 from 49 joints only)'}"
    )
    print(f"3D truth:      {targets.describe_3d}")
    summaries, document = {}, {}
    for version in versions:
        snapshot = store.resolve(version)
        info = store.dataset(args.dataset_name, snapshot)
        if info.n_rows != len(targets):
            raise InputError(
                f"{npz} has {len(targets)} rows, dataset {args.dataset_name!r} of the store "
                f"{info.n_rows}: pass the npz the store's fits were made for"
            )
        if info.dataset_fingerprint not in ("unknown", targets.fingerprint):
            log.warning(
                "%s's fingerprint differs from the one %s recorded for %s: are they the same dataset?",
                npz,
                store.location,
                args.dataset_name,
            )
        fits = store.read(args.dataset_name, snapshot)
        fitted = (fits.source != int(Source.NONE)) | np.isfinite(fits.loss)
        rows = np.flatnonzero(fitted)
        label = version or f"{store.branch} (tip)"
        print(f"{label}: snapshot {snapshot}, {rows.size} rows with a fit, {fitted.size - rows.size} without")
        chosen = targets.take(rows)
        metrics = evaluator.score_fits(
            fits.pose[rows],
            fits.betas[rows],
            fits.cam_t[rows],
            chosen,
            batch_size=args.batch,
            progress=not args.no_progress,
        )
        summaries[label] = summary_of(metrics, chosen, evaluator)
        document[label] = {
            "snapshot": snapshot,
            "rows_with_fit": int(rows.size),
            "rows_without_fit": int(fitted.size - rows.size),
            "rows_unscored": int((fitted & ~np.isfinite(fits.loss)).sum()),
            **summaries[label].as_dict(),
        }
    print()
    print_figures(summaries)
    if args.json:
        write_json(
            args.json,
            {
                "store": str(store.location),
                "dataset_name": args.dataset_name,
                "dataset": str(npz),
                "body_model": files.description,
                "body_model_is_standin": files.is_standin,
                "h36m_regressor": None if evaluator.h36m is None else str(evaluator.h36m.path),
                "h36m_regressor_is_standin": bool(evaluator.h36m and evaluator.h36m.is_standin),
                "versions": document,
            },
        )
    return 0
