"""``spinfits store show`` and ``spinfits store report``: looking at stored fits.

Thin glue. ``show`` draws chosen rows of a dataset over their real images (PNG per row, the
image's own size: the mesh in SMPL part colours, blended, depth-correct, and the keypoints the
fit was made against); ``report`` writes one self-contained HTML page about the whole store
(``spinfits.report.store_report``), with the worst and best fits over their images for the datasets
given with ``--npz NAME=DATA.npz --images-root DIR``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from spinfits.errors import InputError

log = logging.getLogger(__name__)


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``show`` and ``report`` to the ``spinfits store`` subcommands."""
    from spinfits.cli.options import NPZ_HELP, add_npz_argument, add_s3_arguments

    p = commands.add_parser(
        "show",
        help="draw stored fits over their images (PNG per row)",
        description="Each row's fit over its image, with the keypoints it was fitted to: "
        "OUT/DATASET_ROW.png (and OUT/DATASET_ROW_side.png with --side).",
    )
    p.add_argument("store", metavar="STORE", help="store directory or s3://bucket/prefix")
    p.add_argument("dataset_name", metavar="DATASET", help="dataset name in the store")
    add_npz_argument(p, NPZ_HELP + ": boxes, keypoints")
    p.add_argument("--images", required=True, type=Path, help="folder its imgname paths are relative to")
    p.add_argument("--model-dir", required=True, type=Path, help="the store's body model folder")
    p.add_argument("--out", required=True, type=Path, help="folder for the PNGs")
    p.add_argument(
        "--rows",
        help="rows to draw, e.g. 0,5,10-19 (default: the first 8 rows holding a fit)",
    )
    p.add_argument("--version", help="branch, tag or snapshot id (default: tip of main)")
    p.add_argument("--side", action="store_true", help="also write each fit's side view")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    add_s3_arguments(p)
    p.set_defaults(func=cmd_show)

    p = commands.add_parser(
        "report",
        help="one self-contained HTML page: losses per version, timeline, worst/best fits, failures",
        description="Per dataset: the loss histogram of each version, the improvement timeline "
        "across commits (precompute versus training), the worst and best fits (over their images "
        "for datasets given with --npz and --images-root) and the failed rows with their reasons. "
        "The page holds its pictures inline: it opens from disk, without a server.",
    )
    p.add_argument("store", metavar="STORE", help="store directory or s3://bucket/prefix")
    p.add_argument("--out", required=True, type=Path, help="the HTML file to write (report.html)")
    p.add_argument("--version", help="branch, tag or snapshot id (default: tip of main)")
    add_npz_argument(
        p,
        "a dataset's SPIN .npz, for pictures of its fits: NAME=DATA.npz, NAME its name in the store "
        "(repeatable; NAME= may be left out when the store holds one dataset)",
        repeat=True,
    )
    p.add_argument(
        "--images-root",
        action="append",
        default=[],
        metavar="DIR",
        help="the folder the --npz files' imgname paths are relative to, for all of them; or "
        "NAME=DIR for one dataset (repeatable)",
    )
    p.add_argument("--images", action="append", default=[], dest="deprecated_images", help=argparse.SUPPRESS)
    p.add_argument("--model-dir", type=Path, help="the store's body model folder (with --npz)")
    p.add_argument("--top", type=int, default=4, help="worst and best fits shown per dataset (default 4)")
    p.add_argument("--versions", type=int, default=6, help="versions whose losses are plotted (default 6)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    add_s3_arguments(p)
    p.set_defaults(func=cmd_report)


def parse_rows(text: str, n_rows: int) -> np.ndarray:
    """``"0,5,10-19"`` -> (M,) int64 rows, in the order given (``InputError`` outside 0..N-1)."""
    rows: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                first, last = (int(x) for x in part.split("-", 1))
                if last < first:
                    raise ValueError
                rows.extend(range(first, last + 1))
            else:
                rows.append(int(part))
        except ValueError:
            raise InputError(
                f"--rows {text!r}: {part!r} is not a row or a range; expected rows and ranges like 0,5,10-19"
            ) from None
    bad = [row for row in rows if not 0 <= row < n_rows]
    if bad:
        raise InputError(f"--rows {text!r}: rows {bad[:10]} are outside the dataset's 0..{n_rows - 1}")
    return np.asarray(rows, dtype=np.int64)


def _overlays(store, name: str, dataset_path: Path, images: Path, model_dir: Path, device: str):
    """``DatasetOverlays`` of store dataset ``name``, checked against the store."""
    from spinfits.fitting.body.model_files import load_body_model_files
    from spinfits.fitting.data.dataset import load_spin_npz
    from spinfits.fitting.evaluation.overlay import FitRenderer
    from spinfits.report.dataset_overlays import DatasetOverlays

    files = load_body_model_files(model_dir)
    if files.fingerprint != store.body_model.fingerprint:
        raise InputError(
            f"{model_dir} holds body model {files.fingerprint}, the store's fits are of "
            f"{store.body_model.describe()}: pass the --model-dir its fits were made with"
        )
    overlays = DatasetOverlays(FitRenderer(files, device), load_spin_npz(dataset_path), images)
    overlays.check_matches(store.dataset(name))
    return overlays


def cmd_show(args: argparse.Namespace) -> int:
    from spinfits.cli.options import npz_of, s3_options
    from spinfits.report.png import add_caption, write_png
    from spinfits.store import FitStore, Source

    store = FitStore.open(args.store, s3=s3_options(args))
    snapshot = store.resolve(args.version)
    info = store.dataset(args.dataset_name, snapshot)
    npz = Path(npz_of(args, "store show"))
    overlays = _overlays(store, args.dataset_name, npz, args.images, args.model_dir, args.device)
    fits = store.read(args.dataset_name, snapshot)
    failures = store.failures(args.dataset_name, snapshot)
    has_fit = fits.source != int(Source.NONE)
    rows = parse_rows(args.rows, info.n_rows) if args.rows else np.flatnonzero(has_fit)[:8]
    drawable = rows[has_fit[rows]]
    for row in rows[~has_fit[rows]]:
        reason = failures.reason(int(row))
        print(f"row {row}: no fit" + (f" (failed: {reason})" if reason else " yet"))
    note = overlays.renderer.note
    for row, views in zip(drawable, overlays.views(drawable, fits.take(drawable))):
        loss = "unscored" if not np.isfinite(fits.loss[row]) else f"loss {fits.loss[row]:.4g}"
        producer = Source(int(fits.source[row])).name.lower()
        caption = f"{note}: {args.dataset_name} row {row}, {loss}, {producer} step {int(fits.step[row])}"
        outputs = [(f"{args.dataset_name}_{row}.png", views.front)]
        if args.side:
            outputs.append((f"{args.dataset_name}_{row}_side.png", views.side))
        for name, picture in outputs:
            path = write_png(args.out / name, add_caption(picture, caption), caption)
            print(f"wrote {path} ({picture.shape[1]}x{picture.shape[0]}, {loss})")
    print(f"{len(drawable)} of {len(rows)} rows drawn from {args.dataset_name} at {snapshot}")
    if store.body_model.is_standin:
        print("note: stand-in body model (not SMPL): these pictures are for tests and demos only")
    return 0


def _named(values: list[str], option: str, datasets: list[str]) -> dict[str, Path]:
    """``NAME=VALUE`` options as {name: path}; a bare VALUE names the store's only dataset."""
    named: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep:
            if len(datasets) != 1:
                raise InputError(
                    f"{option} {value!r}: say which dataset it is for, {option} NAME={value} "
                    f"(the store holds {sorted(datasets) or 'no datasets'})"
                )
            name, path = datasets[0], value
        if name not in datasets:
            raise InputError(
                f"{option} {value!r}: the store has no dataset {name!r}; it holds {sorted(datasets)}"
            )
        named[name] = Path(path)
    return named


def _image_roots(args: argparse.Namespace, drawn: list[str], datasets: list[str]) -> dict[str, Path]:
    """The image folder of each dataset in ``drawn``: ``--images-root DIR`` for all, or
    ``NAME=DIR`` each (the deprecated ``--images NAME=DIR`` too, with a warning)."""
    if args.deprecated_images:
        print(
            f"warning: `spinfits store report --images {args.deprecated_images[0]}` is deprecated: use "
            f"--images-root DIR (one folder for every --npz) or --images-root NAME=DIR",
            file=sys.stderr,
        )
    given = [*args.images_root, *args.deprecated_images]
    shared = [value for value in given if "=" not in value]
    if len(shared) > 1:
        raise InputError(
            f"--images-root {shared[0]} and {shared[1]}: give one folder for all, or NAME=DIR each"
        )
    roots = _named([value for value in given if "=" in value], "--images-root", datasets)
    roots = {name: roots.get(name, Path(shared[0]) if shared else None) for name in drawn} | roots
    extra = sorted(set(roots) - set(drawn))
    if extra:
        raise InputError(
            f"--images-root names {extra}, which no --npz gives: add --npz NAME=DATA.npz for each"
        )
    missing = sorted(name for name, root in roots.items() if root is None)
    if missing:
        raise InputError(
            f"--npz {missing[0]}=... needs its images: add --images-root DIR (or {missing[0]}=DIR)"
        )
    return roots


def cmd_report(args: argparse.Namespace) -> int:
    from spinfits.cli.options import npz_of, s3_options
    from spinfits.report.store_report import ReportConfig, build_report, write_report
    from spinfits.store import FitStore

    config = ReportConfig(top=args.top, versions=args.versions)
    if Path(args.out).suffix.lower() not in (".html", ".htm"):
        raise InputError(f"--out is one HTML page: its name must end in .html, got {str(args.out)!r}")
    store = FitStore.open(args.store, s3=s3_options(args))
    snapshot = store.resolve(args.version)
    datasets = sorted(store.datasets(snapshot))
    data = _named(npz_of(args, "store report", required=False) or [], "--npz", datasets)
    images = _image_roots(args, sorted(data), datasets)
    if data and args.model_dir is None:
        raise InputError("--npz draws fits with the body model: add --model-dir DIR")
    pictures = {
        name: _overlays(store, name, data[name], images[name], args.model_dir, args.device).thumbnails
        for name in data
    }
    path = write_report(args.out, build_report(store, args.version, pictures, config))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB): {len(datasets)} datasets at {snapshot}")
    if store.body_model.is_standin:
        print("note: stand-in body model (not SMPL): the report says so")
    return 0
