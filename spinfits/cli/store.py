"""``spinfits store ...``: thin command-line glue over ``spinfits.store`` (see docs/store.md)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from spinfits.cli import store_eval, store_gc, store_inspect, store_verify
from spinfits.cli.options import add_s3_arguments, open_store, s3_options, table, utc_time
from spinfits.errors import InputError
from spinfits.store.schema import LOSS_UNIT

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    store = subparsers.add_parser(
        "store",
        help="the versioned best-fit store",
        description="The versioned best-fit store: create, inspect, tag, diff, roll back, export, import, "
        "collect garbage (see docs/store.md).",
    )
    commands = store.add_subparsers(dest="store_command", metavar="STORE_COMMAND", required=True)

    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("store", metavar="STORE", help="store directory or s3://bucket/prefix")
    add_s3_arguments(where)

    p = commands.add_parser("init", parents=[where], help="create an empty store")
    p.add_argument("--body-model", required=True, metavar="FINGERPRINT", help="body model fingerprint")
    p.add_argument("--standin", action="store_true", help="the body model is the generated stand-in")
    p.add_argument("--dataset", help="also create this dataset (needs --rows)")
    p.add_argument("--rows", type=int, help="rows of --dataset")
    _dataset_options(p)
    p.set_defaults(func=cmd_init)

    p = commands.add_parser("info", parents=[where], help="body model, datasets, branches, tags")
    p.add_argument("--version", help="branch, tag or snapshot id (default: tip of main)")
    p.set_defaults(func=cmd_info)

    p = commands.add_parser("log", parents=[where], help="commit history, newest first")
    p.add_argument("--version", help="start from this version (default: tip of main)")
    p.add_argument("--limit", type=int, default=None, help="show at most this many commits")
    p.set_defaults(func=cmd_log)

    p = commands.add_parser("tag", parents=[where], help="list tags, or tag a version")
    p.add_argument("name", nargs="?", help="new tag name (omit to list tags)")
    p.add_argument("--version", help="version to tag (default: tip of main)")
    p.set_defaults(func=cmd_tag)

    p = commands.add_parser("diff", parents=[where], help="rows that changed between two versions")
    p.add_argument("dataset")
    p.add_argument("from_version", metavar="FROM")
    p.add_argument("to_version", metavar="TO", nargs="?", help="default: tip of main")
    p.add_argument("--top", type=int, default=10, help="list this many most improved rows")
    p.set_defaults(func=cmd_diff)

    p = commands.add_parser("rollback", parents=[where], help="move main back to an earlier version")
    p.add_argument("version")
    p.set_defaults(func=cmd_rollback)

    _register_transfers(commands, where)
    store_eval.register(commands)
    store_inspect.register(commands)
    store_gc.register(commands)
    store_verify.register(commands)


def _register_transfers(commands: argparse._SubParsersAction, where: argparse.ArgumentParser) -> None:
    """``store export`` and ``store import``: fits out of and into the store."""
    p = commands.add_parser("export", parents=[where], help="write a version as SPIN .npy or Parquet")
    p.add_argument("dataset")
    p.add_argument("output", help="OUT_fits.npy (SPIN layout) or OUT.parquet")
    p.add_argument("--version", help="branch, tag or snapshot id (default: tip of main)")
    p.add_argument("--losses-out", help="with .npy output: also write the (N,) losses here")
    p.add_argument(
        "--npz",
        metavar="DATA.npz",
        help="with .parquet output: the dataset's SPIN .npz, for an imgname column",
    )
    p.set_defaults(func=cmd_export)

    p = commands.add_parser("import", parents=[where], help="merge SPIN static fits (*_fits.npy)")
    p.add_argument("dataset")
    p.add_argument("fits", help="SPIN fits file, (N, 82) = pose 72 + betas 10")
    p.add_argument("--losses", help="(N,) .npy of the fits' losses; without it they are unscored (+inf)")
    p.add_argument(
        "--score",
        metavar="DATASET_NPZ",
        help="compute the losses: SPIN's fit loss against this dataset's keypoints (needs --model-dir)",
    )
    p.add_argument("--model-dir", help="body model folder, for --score")
    p.add_argument("--body-model", metavar="FINGERPRINT", help="refuse a store of another body model")
    p.add_argument("--message", help="commit message")
    p.add_argument("--step", type=int, default=0, help="step recorded for the imported rows (>= 0)")
    p.add_argument(
        "--trust-losses",
        action="store_true",
        help="accept --losses below the floor of 1e-6 (refused by default: they lock their rows)",
    )
    _dataset_options(p)
    p.set_defaults(func=cmd_import)


def _dataset_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset-fingerprint", default="unknown", help="identifies the dataset file")
    parser.add_argument("--fitting-config", default="{}", help="fitting config as JSON (for new datasets)")


# ---------------------------------------------------------------------------------- helpers
def _json(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"{what} must be JSON, e.g. '{{\"iters\": 100}}': {error}") from None
    if not isinstance(value, dict):
        raise InputError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _loss(value: float) -> str:
    return "-" if not np.isfinite(value) else f"{value:.6g}"


def checksum_status(store, snapshot: str, where: str) -> str:
    from spinfits.store.checksums import unchecked_arrays
    from spinfits.store.versions import snapshot_store

    unchecked = unchecked_arrays(snapshot_store(store.repository, snapshot))
    if not unchecked:
        return "on every chunk"
    return (
        f"UNCHECKED: {len(unchecked)} arrays were written before checksums; add them with "
        f"`spinfits store upgrade {where}`"
    )


# --------------------------------------------------------------------------------- commands
def cmd_init(args: argparse.Namespace) -> int:
    from spinfits.store import BodyModelInfo, FitStore

    if (args.dataset is None) != (args.rows is None):
        raise InputError("--dataset and --rows go together: give both to create a dataset, or neither")
    store = FitStore.create(args.store, BodyModelInfo(args.body_model, args.standin), s3=s3_options(args))
    print(f"created store {store.location} for body model {store.body_model.describe()}")
    if args.dataset:
        info = store.create_dataset(
            args.dataset,
            args.rows,
            dataset_fingerprint=args.dataset_fingerprint,
            fitting_config=_json(args.fitting_config, "--fitting-config"),
        )
        print(f"created dataset {info.name} with {info.n_rows} rows")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    store = open_store(args)
    snapshot = store.resolve(args.version)
    print(f"store:       {store.location}")
    print(f"version:     {snapshot} ({args.version or 'tip of ' + store.branch})")
    print(f"body model:  {store.body_model.describe()}")
    if store.body_model.is_standin:
        print("WARNING: stand-in body model: these fits are for tests and demos only")
    print(f"branches:    {', '.join(sorted(store.repository.list_branches()))}")
    tags = store.history.tags()
    print(f"tags:        {', '.join(f'{k}={v}' for k, v in tags.items()) or 'none'}")
    print(f"checksums:   {checksum_status(store, snapshot, args.store)}")
    rows, failed = [], {}
    for name, info in store.datasets(snapshot).items():
        fits = store.read(name, snapshot)
        failures = store.failures(name, snapshot)
        scored = np.isfinite(fits.loss)
        unscored = int((~scored & (fits.source != 0)).sum())
        rows.append(
            [
                name,
                info.n_rows,
                int(scored.sum()),
                unscored,
                int(failures.mask.sum()),
                _loss(float(np.median(fits.loss[scored]))) if scored.any() else "-",
                info.dataset_fingerprint,
                info.config_hash,
            ]
        )
        if failures.mask.any():
            failed[name] = failures
    print()
    print(
        table(
            rows,
            [
                "dataset",
                "rows",
                "scored",
                "unscored",
                "failed",
                f"median loss ({LOSS_UNIT})",
                "dataset fingerprint",
                "config hash",
            ],
        )
        if rows
        else "no datasets yet"
    )
    for name, failures in failed.items():
        print()
        print(f"{name}: failed rows by reason (precompute skips them; --retry-failed fits them again)")
        for reason, count in failures.counts().items():
            first = np.flatnonzero(failures.reason_texts() == reason)[:5].tolist()
            print(
                f"  {count:>8}  {reason}  (rows {', '.join(map(str, first))}{', ...' if count > 5 else ''})"
            )
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    store = open_store(args)
    rows = [
        [
            v.snapshot_id,
            utc_time(v.written_at),
            v.message,
            "-" if v.rows_improved is None else v.rows_improved,
            v.who or "-",
        ]
        for v in store.history.log(args.version, args.limit)
    ]
    print(table(rows, ["id", "time", "message", "rows improved", "who"]))
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    store = open_store(args)
    if args.name is None:
        tags = store.history.tags()
        print(table([[k, v] for k, v in tags.items()], ["tag", "id"]) if tags else "no tags")
        return 0
    snapshot = store.history.tag(args.name, args.version)
    print(f"tagged {snapshot} as {args.name}")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    store = open_store(args)
    diff = store.history.diff(args.dataset, args.from_version, args.to_version)
    s = diff.summary()
    print(f"{args.dataset}: {diff.from_snapshot} -> {diff.to_snapshot}")
    print(
        f"changed {s['changed']} rows: improved {s['improved']} (first fit {s['first_fit']}), "
        f"worse {s['worse']}; loss improvement over rows scored in both: median "
        f"{_loss(s['median_improvement'])}, mean {_loss(s['mean_improvement'])}"
    )
    if diff.n_changed and args.top > 0:
        gain = diff.improvement
        gain = np.where(np.isnan(gain), -np.inf, gain)  # neither scored: last (+inf, a first fit: first)
        order = np.argsort(-gain, kind="stable")[: args.top]
        rows = [
            [
                int(diff.rows[k]),
                _loss(diff.loss_from[k]),
                _loss(diff.loss_to[k]),
                "new" if np.isposinf(gain[k]) else _loss(gain[k]),
            ]
            for k in order
        ]
        print()
        print(table(rows, ["row", "loss before", "loss after", "improvement"]))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    store = open_store(args)
    old = store.history.rollback(args.version)
    print(
        f"rolled {store.branch} back from {old} to {store.tip()}; undo with: spinfits store rollback {args.store} {old}"
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from spinfits.store import export_parquet, export_spin_fits

    store = open_store(args)
    out = Path(args.output)
    if out.suffix == ".parquet":
        if args.losses_out:
            raise InputError("--losses-out is for .npy output; Parquet has a loss column already")
        imgname = _imgname(args.npz) if args.npz else None
        snapshot = export_parquet(store, args.dataset, out, args.version, imgname)
        print(f"wrote {args.dataset} at {snapshot} to {out}" + (" with imgname" if args.npz else ""))
        return 0
    if args.npz:
        raise InputError("--npz adds an imgname column to .parquet output; SPIN's .npy has no such column")
    if out.suffix != ".npy":
        raise InputError(f"output must end in .npy (SPIN layout) or .parquet, got {str(out)!r}")
    snapshot = store.resolve(args.version)
    fits, losses = export_spin_fits(store, args.dataset, snapshot)
    np.save(out, fits)
    print(f"wrote {args.dataset} at {snapshot} to {out} {fits.shape}")
    if args.losses_out:
        np.save(args.losses_out, losses)
        print(f"wrote losses to {args.losses_out} ({int(np.isfinite(losses).sum())} scored)")
    return 0


def _imgname(npz: str) -> np.ndarray:
    """(N,) str image names of a SPIN dataset npz (only that member read)."""
    from spinfits.fitting.data.npz_members import NpzMembers

    with NpzMembers(npz, "SPIN's dataset npz") as members:
        if "imgname" not in members:
            raise InputError(
                f"--npz {npz} has no 'imgname' (it has {list(members.names)}); expected SPIN's dataset npz"
            )
        return members.read("imgname").astype(str).reshape(-1)


def _score(args: argparse.Namespace, fits):
    """Losses of SPIN fits against a dataset's keypoints, with the store's body model."""
    from spinfits.fitting.body.model_files import load_body_model_files
    from spinfits.fitting.data.dataset import load_spin_npz
    from spinfits.fitting.smplify.fit_loss import score_fits

    if not args.model_dir:
        raise InputError("--score needs --model-dir, the body model the fits belong to")
    if args.losses:
        raise InputError("give either --losses or --score, not both")
    files = load_body_model_files(args.model_dir)
    dataset = load_spin_npz(args.score)
    if fits.ndim != 2 or fits.shape != (len(dataset), 82):
        raise InputError(
            f"{args.fits} has shape {fits.shape}, expected ({len(dataset)}, 82): one SPIN fit "
            f"(pose 72 + betas 10) per row of {args.score}"
        )
    losses = score_fits(files, fits[:, :72], fits[:, 72:], dataset.keypoints)
    print(
        f"scored {len(losses)} fits with {files.description}: "
        f"{int(np.isfinite(losses).sum())} finite, median {np.median(losses):.2f}"
    )
    return losses, files.fingerprint, dataset.fingerprint


def cmd_import(args: argparse.Namespace) -> int:
    from spinfits.store import import_spin_fits
    from spinfits.store.spin_files import load_npy, spin_proposals

    fits = load_npy(args.fits, "SPIN fits")
    losses = None if args.losses is None else load_npy(args.losses, "losses")
    body_model = args.body_model
    if args.score:
        losses, body_model, args.dataset_fingerprint = _score(args, fits)
    spin_proposals(fits, losses, step=args.step, trust_losses=args.trust_losses)  # before the store
    store = open_store(args, body_model=body_model)
    if args.dataset not in store.datasets():
        store.create_dataset(
            args.dataset,
            fits.shape[0],
            dataset_fingerprint=args.dataset_fingerprint,
            fitting_config=_json(args.fitting_config, "--fitting-config"),
        )
        print(f"created dataset {args.dataset} with {fits.shape[0]} rows")
    changed = import_spin_fits(
        store, args.dataset, fits, losses, step=args.step, trust_losses=args.trust_losses
    )
    version = store.commit(args.message or f"import {Path(args.fits).name}")
    if version is None:
        print(f"imported {args.fits}: no row changed, nothing committed")
    else:
        print(f"imported {args.fits}: {changed} rows changed, committed {version.snapshot_id}")
    if losses is None:
        print("note: no --losses given, imported rows are unscored (loss +inf): any scored fit replaces them")
    return 0
