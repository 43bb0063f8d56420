"""``spinfits demo``: SPIN's demo: one image, a box, the regressor's body over it (and SMPLify's)."""

from __future__ import annotations

import argparse
from pathlib import Path

from spinfits.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="regress SMPL for the person in an image and draw it over the image (SPIN's demo)",
        description="Crops the person's box (from --bbox, or placed on --openpose detections), runs "
        "the trained regressor, optionally refines it with SMPLify on the OpenPose keypoints, and "
        "writes the body over the original image (PREFIX_shape.png) and a side view "
        "(PREFIX_shape_side.png); with --refine also PREFIX_smplify.png and PREFIX_smplify_side.png.",
    )
    parser.add_argument("--image", required=True, type=Path, help="the image (PNG or JPEG)")
    box = parser.add_mutually_exclusive_group(required=True)
    box.add_argument("--bbox", type=Path, help='box JSON {"bbox": [x, y, width, height]} (SPIN\'s format)')
    box.add_argument(
        "--openpose", type=Path, help="OpenPose BODY_25 JSON: the box is placed on its keypoints"
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        type=Path,
        help="spinfits training run folder (runs/<run>), checkpoint folder or training_state.pt",
    )
    parser.add_argument("--model-dir", required=True, type=Path, help="body model folder")
    parser.add_argument("--person", type=int, default=0, help="which person of --openpose (default 0)")
    parser.add_argument(
        "--refine", action="store_true", help="also fit SMPLify to the --openpose keypoints from the estimate"
    )
    parser.add_argument("--iterations", type=int, help="SMPLify's iteration cap per stage (with --refine)")
    parser.add_argument(
        "--out", type=Path, help="prefix of the PNGs written (default: the image's name, here)"
    )
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    parser.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from spinfits.fitting.body.model_files import load_body_model_files
    from spinfits.fitting.data.person_box import box_from_openpose_json, read_bbox_json
    from spinfits.fitting.evaluation.overlay import FitRenderer, ImageCamera
    from spinfits.report.png import add_caption, write_png
    from spinfits.training.images import load_images
    from spinfits.training.single_image import openpose_crop_keypoints, refine_person, regress_person
    from spinfits.training.trained_regressor import load_regressor

    if args.refine and args.openpose is None:
        raise InputError(
            "--refine fits SMPLify to OpenPose keypoints: give --openpose JSON instead of --bbox"
        )
    if args.iterations is not None and not args.refine:
        raise InputError("--iterations sets SMPLify's iterations: add --refine, or drop --iterations")
    files = load_body_model_files(args.model_dir)
    box = read_bbox_json(args.bbox) if args.bbox else box_from_openpose_json(args.openpose, args.person)
    (image,) = load_images([args.image])
    trained = load_regressor(args.checkpoint, args.device)
    person = regress_person(trained.model, image, box.center, box.scale, trained.state.input_res, args.device)
    print(
        f"box: center ({box.center[0]:.1f}, {box.center[1]:.1f}) px, side {box.scale * 200:.1f} px; "
        f"regressor: {trained.source} (step {trained.state.step}, {trained.state.backbone})"
    )

    renderer = FitRenderer(files, args.device)
    camera = ImageCamera.from_box(box.center, box.scale)
    prefix = args.out if args.out is not None else Path(args.image.stem)
    image_keypoints = box.keypoints
    results = [("shape", person, f"SPIN regressor, step {trained.state.step}")]
    if args.refine:
        keypoints = openpose_crop_keypoints(box.keypoints, box.center, box.scale)
        scored, refined = refine_person(files, person, keypoints, args.iterations, args.device)
        print(f"SMPLify on the OpenPose keypoints: loss {scored.loss:.4g} (regressor) -> {refined.loss:.4g}")
        results.append(("smplify", refined, f"SMPLify from the regressor, loss {refined.loss:.4g}"))
    for name, estimate, what in results:
        vertices = renderer.vertices(estimate.pose[None], estimate.betas[None])
        views = renderer.views(image, vertices, estimate.cam_t[None], camera, image_keypoints)
        caption = f"{renderer.note}: {what}"
        for suffix, picture in (("", views.front), ("_side", views.side)):
            path = write_png(f"{prefix}_{name}{suffix}.png", add_caption(picture, caption), caption)
            print(f"wrote {path} ({picture.shape[1]}x{picture.shape[0]})")
    if files.is_standin:
        print("note: stand-in body model (not SMPL): these pictures are for tests and demos only")
    return 0
