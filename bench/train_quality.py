"""What training taught the regressor: held-out people, before and after ``spinfits train``.

    python bench/train_quality.py [--demo out/demo] [--run demo] [--rows 300] [--seed 4242]

Draws --rows new synthetic people (a seed the demo did not use) with rendered crops, and
compares on them, side by side: the regressor as training starts (SPIN's mean parameters, the
head's output at initialisation) and the run's latest checkpoint. Printed: 2D error of the
predicted joints projected with the predicted camera against the noise-free ground-truth
keypoints (px, 224-px crop), and PA-MPJPE of the 24 SMPL joints against the ground truth (mm).
Stand-in body model; both models see the images only (no keypoints).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from fit_quality import procrustes_error

from spinfits.fitting.body.body_model import SpinBodyModel
from spinfits.fitting.body.joints import NUM_OPENPOSE_JOINTS
from spinfits.fitting.body.model_files import load_body_model_files
from spinfits.fitting.data.dataset import load_spin_npz
from spinfits.fitting.data.mean_params import spin_mean_params_path
from spinfits.fitting.data.spin_crop import CROP_CENTER, FOCAL_LENGTH
from spinfits.fitting.smplify.camera import perspective_projection
from spinfits.fitting.synthetic.people import SyntheticConfig, write_synthetic_dataset
from spinfits.training.augmentation import Augmentation
from spinfits.training.checkpoint import latest_checkpoint_dir, load_training_state
from spinfits.training.data import TrainingData
from spinfits.training.regressor import HMR, RegressorConfig, camera_translation


@torch.no_grad()
def evaluate(
    model: HMR, body: SpinBodyModel, data: TrainingData, gt_keypoints: np.ndarray, batch: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: 2D error (px) over visible ground-truth joints, PA-MPJPE (mm)."""
    model.eval()
    errors_2d, pa_mpjpe = [], []
    for start in range(0, len(data), batch):
        rows = np.arange(start, min(start + batch, len(data)))
        inputs = data.batch(rows, Augmentation.identity(len(rows)))
        out = model(inputs.images)
        pred = body.forward_rotmat(out.rotmat, out.betas)
        cam_t = camera_translation(out.camera)
        pixels = perspective_projection(
            pred.joints, cam_t, FOCAL_LENGTH, torch.full((len(rows), 2), CROP_CENTER)
        )
        truth_2d = torch.as_tensor(gt_keypoints[rows], dtype=torch.float32)
        visible = truth_2d[:, NUM_OPENPOSE_JOINTS:, 2] > 0
        distance = (pixels - truth_2d[..., :2])[:, NUM_OPENPOSE_JOINTS:].norm(dim=-1)
        errors_2d.append(((distance * visible).sum(1) / visible.sum(1).clamp_min(1)).numpy())
        truth = body(inputs.gt_pose, inputs.gt_betas)
        pa_mpjpe.append(
            1000 * procrustes_error(pred.smpl_joints.double(), truth.smpl_joints.double()).numpy()
        )
    return np.concatenate(errors_2d), np.concatenate(pa_mpjpe)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=Path("out/demo"))
    parser.add_argument("--run", default="demo")
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument(
        "--backbone",
        choices=("small", "resnet50"),
        help="override the checkpoint's (for checkpoints that do not record it)",
    )
    parser.add_argument("--input-res", type=int, help="override the checkpoint's")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(2)
    checkpoint = latest_checkpoint_dir(args.demo / "runs" / args.run)
    if checkpoint is None:
        raise SystemExit(
            f"no checkpoint of run {args.run} in {args.demo / 'runs'}: run `bash scripts/demo.sh` first"
        )
    state = load_training_state(checkpoint)
    if args.backbone or args.input_res:
        state = replace(
            state, backbone=args.backbone or state.backbone, input_res=args.input_res or state.input_res
        )
    files = load_body_model_files(args.demo / "model")
    body = SpinBodyModel(files)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "heldout.npz"
        write_synthetic_dataset(
            path, files, SyntheticConfig(rows=args.rows, seed=args.seed), images_dir=Path(scratch) / "images"
        )
        gt_keypoints = np.load(path)["gt_keypoints"]
        data = TrainingData(load_spin_npz(path), Path(scratch) / "images", state.input_res)
        config = RegressorConfig(backbone=state.backbone)
        torch.manual_seed(0)
        start = HMR(str(spin_mean_params_path()), config)
        trained = HMR(str(spin_mean_params_path()), config)
        trained.load_state_dict(state.model)
        print(f"{args.rows} held-out synthetic people (seed {args.seed}), {files.description}")
        print(
            f"run {args.run}: checkpoint at step {state.step}, backbone {state.backbone}, "
            f"input {state.input_res} px"
        )
        for name, model in (("at the start (mean params)", start), (f"after {state.step} steps", trained)):
            error_2d, pa = evaluate(model, body, data, gt_keypoints)
            print(
                f"  {name:<28} 2D err median {np.median(error_2d):6.2f} px (mean "
                f"{error_2d.mean():6.2f})   PA-MPJPE median {np.median(pa):6.1f} mm (mean "
                f"{pa.mean():6.1f})"
            )


if __name__ == "__main__":
    main()
