"""``spinfits model``: make the stand-in body model, inspect or convert model files."""

from __future__ import annotations

import argparse

import numpy as np

from spinfits.fitting.body.model_files import convert_smpl_pickle, load_body_model_files
from spinfits.fitting.synthetic.standin import write_standin_files
from spinfits.fitting.synthetic.standin.files import DEFAULT_PRIOR, PRIORS

PRIOR_WHAT = {
    "mocap": "learned from CMU motion capture, held-out clips excluded",
    "anatomy": "fitted to the anatomy sampler, no motion capture",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("model", help="body model files (SMPL or the stand-in)")
    commands = parser.add_subparsers(dest="model_command", metavar="SUBCOMMAND", required=True)

    make = commands.add_parser(
        "make-standin",
        help="write STAND-IN body model files in SMPL's formats (not the licensed SMPL)",
    )
    make.add_argument("directory", help="output folder (SPIN's data/ layout)")
    make.add_argument("--overwrite", action="store_true", help="replace existing model files")
    make.add_argument(
        "--prior",
        choices=tuple(PRIORS),
        default=DEFAULT_PRIOR,
        help="the GMM pose prior written as gmm_08.pkl: mocap (learned from CMU motion capture, "
        "held-out clips excluded) or anatomy (fitted to the anatomy sampler, the older stand-in "
        "prior) (default %(default)s)",
    )
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

    prior = commands.add_parser(
        "fit-prior",
        help="learn a GMM pose prior (gmm_08.pkl format) from BVH motion capture",
        description="Fits the body of --model-dir to every frame of the clips (MoSh-lite: one shape "
        "per clip, pose and translation per frame, twist kept near rest), then an N-component "
        "full-covariance Gaussian mixture to the body poses of the clips not held out, mirrored. "
        "Seeded: the same inputs give the same file. The fits are cached (--cache).",
    )
    prior.add_argument("--mocap", nargs="+", required=True, metavar="DIR", help="BVH files or folders")
    prior.add_argument("--model-dir", required=True, help="body model folder (its skeleton is fitted)")
    prior.add_argument("--out", default=None, help="where to write the prior (default: MODEL_DIR/gmm_08.pkl)")
    prior.add_argument("--components", type=int, default=8, help="mixture components (default %(default)s)")
    prior.add_argument(
        "--held-out",
        metavar="FILE",
        default=None,
        help="clips never learned from, one `folder/stem` a line (default: the package's list, "
        "spinfits/fitting/mocap/held_out_clips.txt)",
    )
    prior.add_argument("--every", type=int, default=1, metavar="K", help="use every K-th frame (default all)")
    prior.add_argument("--seed", type=int, default=0)
    prior.add_argument("--cache", default=None, help="fits cache (default: OUT with .fits.npz)")
    prior.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    prior.set_defaults(func=_fit_prior)

    convert = commands.add_parser("convert-smpl", help="write a chumpy-free copy of an official SMPL pickle")
    convert.add_argument("source", help="official SMPL .pkl (may contain chumpy arrays)")
    convert.add_argument("target", help="where to write the plain-numpy copy")
    convert.set_defaults(func=_convert)


def _make_standin(args: argparse.Namespace) -> int:
    paths = write_standin_files(args.directory, overwrite=args.overwrite, prior=args.prior)
    files = load_body_model_files(args.directory)
    print(f"wrote {files.description}")
    for path in (paths.smpl, paths.extra_regressor, paths.gmm, paths.h36m_regressor, paths.readme):
        print(f"  {path}")
    print(f"  pose prior: {args.prior} ({PRIOR_WHAT[args.prior]})")
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


def _fit_prior(args: argparse.Namespace) -> int:
    from pathlib import Path

    from spinfits.cli.options import make_config
    from spinfits.errors import InputError
    from spinfits.fitting.body.model_files import GMM_NAME
    from spinfits.fitting.mocap.joints import MocapConfig
    from spinfits.fitting.mocap.prior import cached_fits, learn_pose_prior, read_held_out, write_gmm_pickle

    files = load_body_model_files(args.model_dir)
    out = Path(args.out) if args.out else Path(args.model_dir) / GMM_NAME
    if out.exists() and not args.overwrite:
        raise InputError(f"{out} exists; pass --overwrite to replace it or choose another --out")
    held_out = read_held_out(args.held_out)
    mocap = make_config(MocapConfig, {"every": "--every"}, every=args.every)
    cache = Path(args.cache) if args.cache else out.with_suffix(".fits.npz")
    fit, cached = cached_fits(args.mocap, files, cache, mocap)
    residual = 1000 * fit.residual
    print(
        f"{'read' if cached else 'fitted'} {len(fit)} frames of {len(set(fit.clip.tolist()))} clips "
        f"({cache}): joint residual median {np.nanmedian(residual):.1f} mm, 95th percentile "
        f"{np.nanpercentile(residual, 95):.1f} mm"
    )
    prior = learn_pose_prior(fit, held_out, components=args.components, seed=args.seed)
    write_gmm_pickle(prior, out, f"learned by spinfits model fit-prior from {len(prior.clips)} clips")
    print(
        f"wrote {out}: {args.components} components learned from {prior.frames} frames of "
        f"{len(prior.clips)} clips (mirrored), {len(held_out)} clips held out; mean log-likelihood "
        f"{prior.log_likelihood:.2f}"
    )
    return 0


def _convert(args: argparse.Namespace) -> int:
    target = convert_smpl_pickle(args.source, args.target)
    print(f"wrote {target} (chumpy arrays converted to numpy; everything else unchanged)")
    return 0
