"""``spinfits data``: synthetic datasets, converters to SPIN's npz, and dataset checks."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from spinfits.cli import data_spin_sets
from spinfits.cli.data_spin_sets import write_converted
from spinfits.cli.options import default_of, make_config
from spinfits.fitting.body.model_files import load_body_model_files
from spinfits.fitting.converters.coco import CocoConfig, convert_coco
from spinfits.fitting.converters.mmpose_3dhp import UNIT_METRES, Mmpose3dhpConfig, convert_mmpose_3dhp
from spinfits.fitting.converters.openpose_folder import OpenPoseFolderConfig, convert_openpose_folder
from spinfits.fitting.data.dataset import load_spin_npz
from spinfits.fitting.data.spin_crop import CROP_RES
from spinfits.fitting.mocap.joints import MocapConfig, mocap_joints, write_mocap_joints
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
        "--mocap-fraction",
        type=float,
        default=SyntheticConfig.mocap_fraction,
        metavar="F",
        help="share of people posed from CMU motion capture (MoSh-lite poses of the held-in clips, "
        "shipped with the stand-in); the rest from the anatomy sampler (default %(default)s)",
    )
    make.add_argument(
        "--images",
        metavar="DIR",
        default=None,
        help=f"also render each person's {CROP_RES}-px crop to DIR/<imgname> (PNG); the "
        "files are the crops themselves (npz key images_are_crops)",
    )
    make.set_defaults(func=_make_synthetic)

    _register_converters(commands)
    data_spin_sets.register(commands)
    _register_from_bvh(commands)

    info = commands.add_parser(
        "info",
        help="read a SPIN dataset npz and summarise it: members and shapes, 2D / 3D / SMPL ground truth",
        description="Checks and summarises a SPIN dataset npz: its members with their shapes and "
        "dtypes, confident keypoints per row, whether it has SMPL and 3D joint (S) ground truth "
        "and, with --images, which named images are missing.",
    )
    info.add_argument("dataset")
    info.add_argument("--images", type=Path, help="the folder imgname is relative to: list missing images")
    info.set_defaults(func=_info)


#: Converter options: config field -> flag, per config class.
OPENPOSE_FLAGS = {
    "min_keypoints": "--min-keypoints",
    "detection_threshold": "--detection-threshold",
}
COCO_FLAGS = {"min_body_joints": "--min-body-joints"}
MMPOSE_3DHP_FLAGS = {"min_visible_joints": "--min-visible-joints", "s_unit": "--s-unit"}


def _register_converters(commands: argparse._SubParsersAction) -> None:
    openpose = commands.add_parser(
        "from-openpose",
        help="OpenPose BODY_25 JSON files plus their images -> SPIN's npz (one row per person)",
        description="One row per detected person of every OpenPose JSON file, matched to its image "
        "by name (frame1.json or frame1_keypoints.json for frame1.jpg/.jpeg/.png); SPIN's box "
        "from the keypoints (bbox_from_openpose); no ground truth (part zeros, has_smpl 0).",
    )
    openpose.add_argument("--keypoints", required=True, metavar="DIR", help="folder of OpenPose JSON files")
    openpose.add_argument("--images", required=True, metavar="DIR", help="folder of the images")
    openpose.add_argument("output", help="output .npz (SPIN's dataset layout)")
    openpose.add_argument(
        "--min-keypoints",
        type=int,
        metavar="K",
        default=default_of(OpenPoseFolderConfig, "min_keypoints"),
        help="keypoints above the detection threshold a person needs to become a row "
        "(default %(default)s); fewer are skipped and counted",
    )
    openpose.add_argument(
        "--detection-threshold",
        type=float,
        metavar="T",
        default=default_of(OpenPoseFolderConfig, "detection_threshold"),
        help="confidence above which a keypoint places the box and counts (SPIN's %(default)s)",
    )
    openpose.set_defaults(func=_from_openpose)

    coco = commands.add_parser(
        "from-coco",
        help="COCO person keypoint annotations -> SPIN's npz (as SPIN's coco.py)",
        description="COCO's 17 keypoints in SPIN's 24-joint part, the box from the annotation's "
        "bbox (x 1.2), annotations with all 12 body joints labelled (SPIN's filter); imgname is "
        "the image's file_name relative to --images, whose files must exist.",
    )
    coco.add_argument("--annotations", required=True, metavar="JSON", help="person_keypoints_*.json")
    coco.add_argument("--images", required=True, metavar="DIR", help="folder file_name is relative to")
    coco.add_argument("output", help="output .npz (SPIN's dataset layout)")
    coco.add_argument(
        "--min-body-joints",
        type=int,
        metavar="K",
        default=default_of(CocoConfig, "min_body_joints"),
        help="labelled body joints (of 12, shoulders to ankles) an annotation needs (SPIN's %(default)s)",
    )
    coco.set_defaults(func=_from_coco)

    mmpose = commands.add_parser(
        "from-mmpose-3dhp",
        help="mmpose's MPI-INF-3DHP npz (17 joints) -> SPIN's npz (24 joints, S in metres)",
        description="mmpose's 17-joint part and S in SPIN's 24-joint order, S in metres relative "
        "to the pelvis (as SPIN's mpi_inf_3dhp.py), center and scale kept, has_pose_3d 1.",
    )
    mmpose.add_argument("--npz", required=True, help="mmpose's mpi_inf_3dhp_*.npz")
    mmpose.add_argument("output", help="output .npz (SPIN's dataset layout)")
    mmpose.add_argument("--images", metavar="DIR", default=None, help="check that every frame is in DIR")
    mmpose.add_argument(
        "--min-visible-joints",
        type=int,
        metavar="K",
        default=default_of(Mmpose3dhpConfig, "min_visible_joints"),
        help="joints (of 17) a frame needs inside the image (SPIN's %(default)s: all)",
    )
    mmpose.add_argument(
        "--s-unit",
        choices=sorted(UNIT_METRES),
        default=default_of(Mmpose3dhpConfig, "s_unit"),
        help="unit of the file's S (mmpose's: %(default)s)",
    )
    mmpose.set_defaults(func=_from_mmpose_3dhp)


def _register_from_bvh(commands: argparse._SubParsersAction) -> None:
    bvh = commands.add_parser(
        "from-bvh",
        help="BVH motion capture clips -> 3D joints in SMPL's 24 slots (metres, y up) in an npz",
        description="Reads each clip (files, or folders of .bvh), recognises its rig (CMU/cgspeed, "
        "cgspeed's Daz naming, Character Creator), poses it and writes the mapped joints in SMPL's "
        "24 joint slots, metres, y up, with each row's clip name and frame number. Each clip is "
        "scaled to --height through its leg length; a leading T-pose frame is dropped.",
    )
    bvh.add_argument("clips", nargs="+", metavar="CLIP", help="BVH files or folders of them")
    bvh.add_argument("output", help="output .npz")
    bvh.add_argument(
        "--height",
        type=float,
        default=default_of(MocapConfig, "height"),
        help="body height in metres each clip is scaled to (default %(default)s)",
    )
    bvh.add_argument(
        "--every",
        type=int,
        metavar="K",
        default=default_of(MocapConfig, "every"),
        help="keep every K-th frame of each clip (default %(default)s: all)",
    )
    bvh.set_defaults(func=_from_bvh)


def _from_bvh(args: argparse.Namespace) -> int:
    config = make_config(
        MocapConfig, {"height": "--height", "every": "--every"}, height=args.height, every=args.every
    )
    joints = mocap_joints(args.clips, config)
    path = write_mocap_joints(joints, args.output)
    print(f"wrote {len(joints)} frames of {len(joints.clips)} clips to {path}")
    for skeleton in sorted(set(joints.skeleton.tolist())):
        rows = joints.skeleton == skeleton
        clips = len(set(joints.clip[rows].tolist()))
        mapped = int(joints.present[rows][0].sum())
        print(f"  {skeleton}: {clips} clips, {int(rows.sum())} frames, {mapped} of 24 SMPL joints mapped")
    return 0


def _from_openpose(args: argparse.Namespace) -> int:
    config = make_config(
        OpenPoseFolderConfig,
        OPENPOSE_FLAGS,
        min_keypoints=args.min_keypoints,
        detection_threshold=args.detection_threshold,
    )
    return write_converted(convert_openpose_folder(args.keypoints, args.images, config), args.output)


def _from_coco(args: argparse.Namespace) -> int:
    config = make_config(CocoConfig, COCO_FLAGS, min_body_joints=args.min_body_joints)
    return write_converted(convert_coco(args.annotations, args.images, config), args.output)


def _from_mmpose_3dhp(args: argparse.Namespace) -> int:
    config = make_config(
        Mmpose3dhpConfig, MMPOSE_3DHP_FLAGS, min_visible_joints=args.min_visible_joints, s_unit=args.s_unit
    )
    return write_converted(convert_mmpose_3dhp(args.npz, args.images, config), args.output)


def _make_synthetic(args: argparse.Namespace) -> int:
    files = load_body_model_files(args.model_dir)
    path = write_synthetic_dataset(
        args.output,
        files,
        make_config(
            SyntheticConfig,
            {"mocap_fraction": "--mocap-fraction"},
            rows=args.n,
            seed=args.seed,
            mocap_fraction=args.mocap_fraction,
        ),
        images_dir=args.images,
    )
    print(f"wrote {args.n} synthetic people to {path}, drawn with {files.description}")
    print(
        f"  poses: {args.mocap_fraction:.0%} (on average) from CMU motion capture, the rest from the anatomy sampler"
    )
    if args.images is not None:
        print(
            f"  rendered their {CROP_RES}-px crops to {args.images}/synthetic/*.png "
            f"(the images are the crops: images_are_crops=True)"
        )
    return 0


def _info(args: argparse.Namespace) -> int:
    from spinfits.fitting.converters.image_files import listing
    from spinfits.fitting.data.npz_members import NpzMembers

    dataset = load_spin_npz(args.dataset)
    confident = dataset.keypoints[..., 2] > 0
    print(f"{dataset.source}: {len(dataset)} rows, fingerprint {dataset.fingerprint}")
    with NpzMembers(args.dataset, "SPIN's dataset npz") as members:
        shapes = {name: members.header(name) for name in members.names}
    print("  members: " + ", ".join(f"{name} {h.shape} {h.dtype}" for name, h in shapes.items()))
    print(
        f"  confident keypoints per row: median {np.median(confident.sum(1)):.0f} of 49, "
        f"rows with SMPL ground truth: {int(dataset.has_smpl.sum())}"
    )
    if "S" in shapes:
        with np.load(args.dataset) as arrays:
            rows_3d = int(arrays["has_pose_3d"].sum()) if "has_pose_3d" in arrays else len(dataset)
        print(f"  3D joints (S {shapes['S'].shape}): present, {rows_3d} rows with has_pose_3d")
    else:
        print("  3D joints (S): absent")
    if args.images is not None:
        names = list(dict.fromkeys(str(name) for name in dataset.imgname))
        missing = [name for name in names if not (args.images / name).is_file()]
        if missing:
            print(f"  images: {len(missing)} of {len(names)} missing in {args.images} ({listing(missing)})")
        else:
            print(f"  images: all {len(names)} present in {args.images}")
    return 0
