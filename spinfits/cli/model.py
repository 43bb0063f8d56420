"""``spinfits model``: make the stand-in body model, inspect or convert model files."""

from __future__ import annotations

import argparse

from spinfits.fitting.body.model_files import convert_smpl_pickle, load_body_model_files
from spinfits.fitting.synthetic.standin import write_standin_files


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("model", help="body model files (SMPL or the stand-in)")
    commands = parser.add_subparsers(dest="model_command", metavar="SUBCOMMAND", required=True)

    make = commands.add_parser(
        "make-standin",
        help="write STAND-IN body model files in SMPL's formats (not the licensed SMPL)",
    )
    make.add_argument("directory", help="output folder (SPIN's data/ layout)")
    make.add_argument("--overwrite", action="store_true", help="replace existing model files")
    make.set_defaults(func=_make_standin)

    info = commands.add_parser("info", help="check a model folder and print its fingerprint")
    info.add_argument("directory")
    info.set_defaults(func=_info)

    preview = commands.add_parser(
        "preview", help="draw the body at zero pose (front/side silhouette, skeleton) to a PNG"
    )
    preview.add_argument("directory")
    preview.add_argument("output", help="PNG file to write")
    preview.set_defaults(func=_preview)

    convert = commands.add_parser("convert-smpl", help="write a chumpy-free copy of an official SMPL pickle")
    convert.add_argument("source", help="official SMPL .pkl (may contain chumpy arrays)")
    convert.add_argument("target", help="where to write the plain-numpy copy")
    convert.set_defaults(func=_convert)


def _make_standin(args: argparse.Namespace) -> int:
    paths = write_standin_files(args.directory, overwrite=args.overwrite)
    files = load_body_model_files(args.directory)
    print(f"wrote {files.description}")
    for path in (paths.smpl, paths.extra_regressor, paths.gmm, paths.h36m_regressor, paths.readme):
        print(f"  {path}")
    print("These are STAND-IN files, not the licensed SMPL model: see STANDIN.md.")
    return 0


def _info(args: argparse.Namespace) -> int:
    files = load_body_model_files(args.directory)
    print(files.description)
    print(
        f"  vertices {files.smpl.num_vertices}, faces {len(files.smpl.faces)}, "
        f"shape directions {files.smpl.shapedirs.shape[2]}, "
        f"GMM components {len(files.gmm.weights)}"
    )
    print(f"  provenance: {files.provenance}")
    return 0


def _preview(args: argparse.Namespace) -> int:
    from spinfits.report.plots import plot_body_model

    files = load_body_model_files(args.directory)
    print(f"wrote {plot_body_model(files, args.output)} ({files.description})")
    return 0


def _convert(args: argparse.Namespace) -> int:
    target = convert_smpl_pickle(args.source, args.target)
    print(f"wrote {target} (chumpy arrays converted to numpy; everything else unchanged)")
    return 0
