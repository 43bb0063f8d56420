"""``spinfits data``: synthetic datasets and dataset checks."""

from __future__ import annotations

import argparse

import numpy as np

from spinfits.fitting.dataset import load_spin_npz
from spinfits.fitting.model_files import load_body_model_files
from spinfits.fitting.spin_crop import CROP_RES
from spinfits.fitting.synthetic.people import SyntheticConfig, write_synthetic_dataset


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="datasets in SPIN's npz layout")
    commands = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    make = commands.add_parser("make-synthetic", help="write a synthetic dataset with known ground truth")
    make.add_argument("output", help="output .npz (SPIN's dataset layout)")
    make.add_argument("--n", type=int, default=1000, help="number of people (default 1000)")
    make.add_argument("--model-dir", required=True, help="body model folder")
    make.add_argument("--seed", type=int, default=0)
    make.add_argument(
        "--images",
        metavar="DIR",
        default=None,
        help=f"also render each person's {CROP_RES}-px crop to DIR/<imgname> (PNG); the "
        "files are the crops themselves (npz key images_are_crops)",
    )
    make.set_defaults(func=_make_synthetic)

    info = commands.add_parser("info", help="read a SPIN dataset npz and summarise it")
    info.add_argument("dataset")
    info.set_defaults(func=_info)


def _make_synthetic(args: argparse.Namespace) -> int:
    files = load_body_model_files(args.model_dir)
    path = write_synthetic_dataset(
        args.output, files, SyntheticConfig(rows=args.n, seed=args.seed), images_dir=args.images
    )
    print(f"wrote {args.n} synthetic people to {path}, drawn with {files.description}")
    if args.images is not None:
        print(
            f"  rendered their {CROP_RES}-px crops to {args.images}/synthetic/*.png "
            f"(the images are the crops: images_are_crops=True)"
        )
    return 0


def _info(args: argparse.Namespace) -> int:
    dataset = load_spin_npz(args.dataset)
    confident = dataset.keypoints[..., 2] > 0
    print(f"{dataset.source}: {len(dataset)} rows, fingerprint {dataset.fingerprint}")
    print(
        f"  confident keypoints per row: median {np.median(confident.sum(1)):.0f} of 49, "
        f"rows with SMPL ground truth: {int(dataset.has_smpl.sum())}"
    )
    return 0
