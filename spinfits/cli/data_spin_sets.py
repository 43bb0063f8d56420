"""``spinfits data from-lsp | from-mpii | from-3dpw | from-humandata | attach-openpose``: the
datasets SPIN trains and evaluates on, from their original files, to SPIN's npz."""

from __future__ import annotations

import argparse
from collections import Counter

from spinfits.cli.options import default_of, make_config
from spinfits.fitting.converters.human_data import HumanDataConfig, convert_human_data
from spinfits.fitting.converters.lsp import LspConfig, convert_lsp
from spinfits.fitting.converters.mpii import MpiiConfig, convert_mpii
from spinfits.fitting.converters.openpose_attach import AttachConfig, attach_openpose
from spinfits.fitting.converters.pw3d import convert_pw3d
from spinfits.fitting.converters.spin_rows import ConvertedDataset, write_spin_arrays, write_spin_npz

LSP_FLAGS = {"split": "--split", "name_format": "--name-format"}
MPII_FLAGS = {"min_joints": "--min-joints", "rescale": "--rescale"}
HUMAN_DATA_FLAGS = {"rescale": "--rescale"}
ATTACH_FLAGS = {"max_distance": "--max-distance", "min_shared_joints": "--min-shared-joints"}


def register(commands: argparse._SubParsersAction) -> None:
    """The converters of SPIN's training and evaluation sets (one parser each)."""
    _register_lsp(commands)
    _register_mpii(commands)
    _register_3dpw(commands)
    _register_humandata(commands)
    _register_attach_openpose(commands)


def _register_lsp(commands: argparse._SubParsersAction) -> None:
    lsp = commands.add_parser(
        "from-lsp",
        help="LSP / LSP-extended joints.mat -> SPIN's npz (as SPIN's lsp_dataset*.py)",
        description="LSP's 14 joints (joints.mat: 3 x 14 x N for LSP, 14 x 3 x N for LSP-extended, "
        "told by the shape) in SPIN's first 14 slots, every joint of confidence 1, the box around "
        "them x 1.2; one row per image, named im0001.jpg (LSP) or im00001.jpg (LSP-extended).",
    )
    lsp.add_argument("--joints", required=True, metavar="MAT", help="LSP's joints.mat")
    lsp.add_argument("output", help="output .npz (SPIN's dataset layout)")
    lsp.add_argument("--images", metavar="DIR", default=None, help="check that every image is in DIR")
    lsp.add_argument(
        "--split",
        choices=("all", "train", "test"),
        default=default_of(LspConfig, "split"),
        help="LSP's SPIN split: train = images 1-1000, test = 1001-2000 (default %(default)s)",
    )
    lsp.add_argument(
        "--name-format",
        metavar="PATTERN",
        default=None,
        help="image name from its number, e.g. im{:05d}.png for SPIN's hr-lspet "
        "(default im{:04d}.jpg for LSP, im{:05d}.jpg for LSP-extended)",
    )
    lsp.set_defaults(func=_from_lsp)


def _register_mpii(commands: argparse._SubParsersAction) -> None:
    mpii = commands.add_parser(
        "from-mpii",
        help="MPII's mpii_human_pose_v1_u12_1.mat -> SPIN's npz (as SPIN's mpii.py)",
        description="One row per annotated person: MPII's 16 joints in SPIN's slots (confidence 1), "
        "center = objpos, scale = MPII's person scale; people with fewer than --min-joints "
        "labelled (SPIN: all 16) and test images' people (no joints) are skipped and counted.",
    )
    mpii.add_argument("--annotations", required=True, metavar="MAT", help="mpii_human_pose_v1_u12_1.mat")
    mpii.add_argument("output", help="output .npz (SPIN's dataset layout)")
    mpii.add_argument("--images", metavar="DIR", default=None, help="check that every image is in DIR")
    mpii.add_argument(
        "--min-joints",
        type=int,
        metavar="K",
        default=default_of(MpiiConfig, "min_joints"),
        help="labelled joints (of 16) a person needs (SPIN's %(default)s)",
    )
    mpii.add_argument(
        "--rescale",
        type=float,
        default=default_of(MpiiConfig, "rescale"),
        help="box side / MPII's person scale (SPIN's %(default)s)",
    )
    mpii.set_defaults(func=_from_mpii)


def _register_3dpw(commands: argparse._SubParsersAction) -> None:
    pw3d = commands.add_parser(
        "from-3dpw",
        help="3DPW sequence pickles -> SPIN's npz with SMPL ground truth and gender (as SPIN's pw3d.py)",
        description="One row per person and frame with a valid camera pose: SMPL pose (global "
        "rotation in the camera frame) and betas, gender (m/f, for the gendered models), the box "
        "around the 2D joints x 1.2, and those OpenPose COCO-18 joints as openpose. The pickles "
        "are read as numpy data only: a file that asks to run code is refused.",
    )
    pw3d.add_argument("sequences", nargs="+", metavar="PKL", help="sequence .pkl files or folders of them")
    pw3d.add_argument("output", help="output .npz (SPIN's dataset layout)")
    pw3d.add_argument(
        "--images", metavar="DIR", default=None, help="3DPW's folder (holding imageFiles/): check"
    )
    pw3d.set_defaults(func=_from_3dpw)


def _register_humandata(commands: argparse._SubParsersAction) -> None:
    human_data = commands.add_parser(
        "from-humandata",
        help="mmhuman3d's HumanData .npz -> SPIN's npz (keypoints, boxes, SMPL, gender)",
        description="human_data keypoints to SPIN's 24 joints (part, S) and OpenPose's 25, the box "
        "from bbox_xywh, SMPL ground truth from smpl, gender from meta; the keypoints SPIN does not "
        "use are listed. Pickled members are read as numpy data only.",
    )
    human_data.add_argument("--npz", required=True, help="the HumanData file")
    human_data.add_argument("output", help="output .npz (SPIN's dataset layout)")
    human_data.add_argument("--images", metavar="DIR", default=None, help="check that every image is in DIR")
    human_data.add_argument(
        "--rescale",
        type=float,
        default=default_of(HumanDataConfig, "rescale"),
        help="box side / bbox_xywh's longer side (default %(default)s: mmhuman3d's boxes are enlarged)",
    )
    human_data.set_defaults(func=_from_humandata)


def _register_attach_openpose(commands: argparse._SubParsersAction) -> None:
    attach = commands.add_parser(
        "attach-openpose",
        help="add OpenPose detections to the rows of a SPIN npz (its openpose member), by image name",
        description="For each row, the JSON file of its image (NAME.json, NAME_keypoints.json or "
        "NAME_openpose.json) and in it the person closest to the row (its annotated limbs, or its "
        "box centre); rows without one get zeros and are counted.",
    )
    attach.add_argument("dataset", help="SPIN dataset .npz")
    attach.add_argument("--keypoints", required=True, metavar="DIR", help="folder of OpenPose JSON files")
    attach.add_argument("output", help="output .npz (the dataset with openpose)")
    attach.add_argument(
        "--max-distance",
        type=float,
        metavar="D",
        default=default_of(AttachConfig, "max_distance"),
        help="farthest a detection may be from its row, in box sides (default %(default)s)",
    )
    attach.add_argument(
        "--min-shared-joints",
        type=int,
        metavar="K",
        default=default_of(AttachConfig, "min_shared_joints"),
        help="limb joints annotated and detected to match by joints, else by box centre (default %(default)s)",
    )
    attach.add_argument("--overwrite", action="store_true", help="replace the npz's own openpose detections")
    attach.set_defaults(func=_attach_openpose)


def write_converted(converted: ConvertedDataset, output: str) -> int:
    """Write a conversion and say what it holds and what it left out."""
    dataset = write_spin_npz(converted, output)
    images = len(set(converted.imgname.tolist()))
    print(
        f"wrote {len(dataset)} rows ({images} images) to {dataset.source}, fingerprint {dataset.fingerprint}"
    )
    for reason, count in converted.skipped:
        print(f"  skipped {count} {reason}")
    has_3d = "with 3D joints (S)" if converted.S is not None else "no 3D joints"
    if converted.pose is None:
        print(f"  no SMPL ground truth (has_smpl 0), {has_3d}")
    else:
        print(f"  SMPL ground truth for {len(converted)} rows (has_smpl 1), {has_3d}")
    if converted.gender is not None:
        counts = Counter(converted.gender.tolist())
        print("  gender: " + ", ".join(f"{gender} {counts[gender]}" for gender in sorted(counts)))
    return 0


def _from_lsp(args: argparse.Namespace) -> int:
    config = make_config(LspConfig, LSP_FLAGS, split=args.split, name_format=args.name_format)
    return write_converted(convert_lsp(args.joints, args.images, config), args.output)


def _from_mpii(args: argparse.Namespace) -> int:
    config = make_config(MpiiConfig, MPII_FLAGS, min_joints=args.min_joints, rescale=args.rescale)
    return write_converted(convert_mpii(args.annotations, args.images, config), args.output)


def _from_3dpw(args: argparse.Namespace) -> int:
    return write_converted(convert_pw3d(args.sequences, args.images), args.output)


def _from_humandata(args: argparse.Namespace) -> int:
    config = make_config(HumanDataConfig, HUMAN_DATA_FLAGS, rescale=args.rescale)
    return write_converted(convert_human_data(args.npz, args.images, config), args.output)


def _attach_openpose(args: argparse.Namespace) -> int:
    config = make_config(
        AttachConfig,
        ATTACH_FLAGS,
        max_distance=args.max_distance,
        min_shared_joints=args.min_shared_joints,
        overwrite=args.overwrite,
    )
    attached = attach_openpose(args.dataset, args.keypoints, config)
    dataset = write_spin_arrays(attached.arrays, args.output)
    print(
        f"wrote {len(dataset)} rows to {dataset.source}: {attached.matched} with an OpenPose detection, "
        f"fingerprint {dataset.fingerprint}"
    )
    if attached.no_file:
        print(f"  {attached.no_file} rows have no JSON file of their image: openpose zeros")
    if attached.no_person:
        print(
            f"  {attached.no_person} rows have no person within {config.max_distance} box sides: openpose zeros"
        )
    if attached.unused_files:
        print(f"  {attached.unused_files} JSON files name no row's image")
    return 0
