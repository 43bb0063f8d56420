"""Fit quality against ground truth on a synthetic dataset: SPIN's configuration vs the default.

Same noisy keypoints (OpenPose-like and GT-like annotation noise, missing joints, swaps,
truncation) and initialisation for both. Metrics per configuration:
- 2D error: per sample, mean pixel distance between the fit's projected joints and the
  noise-free keypoints (SMPLify's non-ignored joints inside the crop); median over samples;
- PA-MPJPE: per sample, mean distance (mm) of the 24 SMPL joints to ground truth after a
  similarity Procrustes alignment; mean and median over samples;
- failed: not fitted, or 2D error > 10 px, or PA-MPJPE > 150 mm.

    python bench/fit_quality.py [--model-dir DIR] [--rows 264] [--threads 2]

Body model: the stand-in by default, with its pose-corrective blend shapes (issue 15; the
synthetic people are drawn and fitted with the same body). Figures are stand-in figures,
not SMPL's. ``--model-dir toy`` (the tests' random model) is no body: use it for speed, never
for quality.

``--mode offline``: fits from keypoints alone (no prediction), on harder synthetic keypoints
(``OFFLINE_DATA``: 3 px detection noise, 20 % missing joints, 5 % truncated people, 5 %
left/right swaps, 10 % of people with one or two detections 30-80 px off), SPIN's configuration
from the mean pose (``OfflineConfig.spin_from_mean``) side by side with ``OfflineFitter``'s
default. Adds: wrong-facing (global orientation off by > 90 degrees), failed = loss +inf/NaN on
rows with >= 6 confident torso/limb joints (must be 0), fits/s (both timed in this run).

    python bench/fit_quality.py --mode offline [--rows 300]
"""

from __future__ import annotations

import argparse
import logging

import torch
from _common import body_files, synthetic_rows

from spinfits.fitting.body.body_model import SpinBodyModel
from spinfits.fitting.body.joints import SMPLIFY_IGNORED_JOINTS
from spinfits.fitting.data.spin_crop import CROP_CENTER, FOCAL_LENGTH
from spinfits.fitting.smplify.config import SmplifyConfig
from spinfits.fitting.smplify.fitter import SMPLify


def procrustes_error(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, J, 3), (B, J, 3) -> (B,) mean joint distance after similarity alignment."""
    mu_p, mu_t = predicted.mean(1, keepdim=True), target.mean(1, keepdim=True)
    p, t = predicted - mu_p, target - mu_t
    u, s, vh = torch.linalg.svd(p.transpose(1, 2) @ t)
    sign = torch.sign(torch.linalg.det(u @ vh))
    d = torch.ones_like(s)
    d[:, -1] = sign
    rotation = u @ torch.diag_embed(d) @ vh  # p @ rotation ~ t
    scale = (s * d).sum(1) / (p**2).sum((1, 2))
    aligned = scale[:, None, None] * p @ rotation + mu_t
    return (aligned - target).norm(dim=-1).mean(1)


def evaluate(name, files, config, rows, model):
    result = SMPLify(files, config).fit(rows.init_pose, rows.init_betas, rows.init_cam_t, rows.keypoints)
    with torch.no_grad():
        fit = model(result.pose, result.betas)
        truth = model(rows.gt_pose, rows.gt_betas)
    camera = fit.joints + result.cam_t[:, None]
    pixels = FOCAL_LENGTH * camera[..., :2] / camera[..., 2:3] + CROP_CENTER
    used = torch.ones(49, dtype=torch.bool)
    used[list(SMPLIFY_IGNORED_JOINTS)] = False
    visible = (rows.gt_keypoints[..., 2] > 0) & used
    distance = (pixels - rows.gt_keypoints[..., :2]).norm(dim=-1)
    error_2d = (distance * visible).sum(1) / visible.sum(1).clamp_min(1)
    pa_mpjpe = 1000 * procrustes_error(fit.smpl_joints.double(), truth.smpl_joints.double())
    failed = ~result.fitted | (error_2d > 10) | (pa_mpjpe > 150) | ~torch.isfinite(result.loss)
    ok = result.fitted
    print(
        f"{name:<22} 2D err median {error_2d[ok].median():6.2f} px   PA-MPJPE mean "
        f"{pa_mpjpe[ok].mean():6.1f} mm median {pa_mpjpe[ok].median():6.1f} mm   failed "
        f"{failed.float().mean():6.1%}   fit loss mean {result.loss[ok].mean():8.3f} "
        f"median {result.loss[ok].median():7.3f}"
    )


OFFLINE_DATA = dict(
    openpose_noise_px=3.0,
    gt_noise_px=2.0,
    missing_fraction=0.2,
    truncated_fraction=0.05,
    swap_fraction=0.05,
    outlier_fraction=0.1,
)


def orientation_error(pose: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """(B, 72), (B, 72) -> (B,) angle (radians) between the global orientations."""
    from spinfits.fitting.body.rotations import axis_angle_to_matrix

    relative = axis_angle_to_matrix(pose[:, :3].double()).transpose(1, 2) @ axis_angle_to_matrix(
        truth[:, :3].double()
    )
    cosine = ((relative.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1)
    return torch.arccos(cosine)


def offline(options, files) -> None:
    import tempfile
    import time
    from pathlib import Path

    import numpy as np

    from spinfits.fitting.body.joints import TORSO_LIMB_JOINTS
    from spinfits.fitting.data.dataset import load_spin_npz
    from spinfits.fitting.offline.config import OfflineConfig
    from spinfits.fitting.offline.fitter import OfflineFitter
    from spinfits.fitting.synthetic.people import SyntheticConfig, write_synthetic_dataset

    with tempfile.TemporaryDirectory() as tmp:
        path = write_synthetic_dataset(
            Path(tmp) / "synthetic.npz",
            files,
            SyntheticConfig(rows=options.rows, seed=options.seed, **OFFLINE_DATA),
        )
        dataset = load_spin_npz(path)
        raw = dict(np.load(path))
    keypoints = torch.as_tensor(dataset.keypoints, dtype=torch.float32)
    gt_keypoints = torch.as_tensor(raw["gt_keypoints"])
    gt_pose = torch.as_tensor(dataset.gt_pose, dtype=torch.float32)
    gt_betas = torch.as_tensor(dataset.gt_betas, dtype=torch.float32)
    model = SpinBodyModel(files)
    enough = (keypoints[:, list(TORSO_LIMB_JOINTS), 2] > 0).sum(1) >= 6
    print(
        f"{files.description}\n{options.rows} synthetic rows (seed {options.seed}, "
        f"{OFFLINE_DATA}), {int(enough.sum())} with >= 6 confident torso/limb joints; "
        f"{int(raw['truncated'].sum())} truncated, {int(raw['swapped'].sum())} swapped, "
        f"{int(raw['outliers'].any(1).sum())} with outliers; {torch.get_num_threads()} "
        f"threads on a shared CPU"
    )
    print(
        "| configuration | 2D err median (px) | PA-MPJPE mean / median (mm) | wrong-facing "
        "| failed (loss inf/NaN, >= 6 joints) | fit loss median | fits/s |"
    )
    print("|---|---|---|---|---|---|---|")
    configs = [
        ("SPIN config from mean pose", OfflineConfig.spin_from_mean()),
        ("offline default", OfflineConfig()),
    ]
    if options.learned:
        from dataclasses import replace

        from spinfits.fitting.offline.keypoint_regressor import (
            REGRESSOR_FILE,
            RegressorTraining,
            save_keypoint_regressor,
        )
        from spinfits.fitting.synthetic.regressor_training import train_keypoint_regressor

        if not (Path(files.directory) / REGRESSOR_FILE).is_file():
            training = RegressorTraining(steps=options.learned_steps)
            start = time.perf_counter()
            network, figures = train_keypoint_regressor(files, training)
            save_keypoint_regressor(network, files, training, figures)
            print(
                f"trained the keypoint regressor ({training.steps} steps, "
                f"{time.perf_counter() - start:.0f} s, held-out {figures})"
            )
        configs += [
            ("default + learned hypothesis", OfflineConfig(learned_hypothesis=True)),
            (
                "learned + front only",
                replace(OfflineConfig(learned_hypothesis=True), back_hypothesis=False, side_hypotheses=False),
            ),
        ]
    for name, config in configs:
        fitter = OfflineFitter(files, config)
        start = time.perf_counter()
        result = fitter.fit(keypoints)
        seconds = time.perf_counter() - start
        with torch.no_grad():
            fit = model(result.pose, result.betas)
            truth = model(gt_pose, gt_betas)
        camera = fit.joints + result.cam_t[:, None]
        pixels = FOCAL_LENGTH * camera[..., :2] / camera[..., 2:3] + CROP_CENTER
        used = torch.ones(49, dtype=torch.bool)
        used[list(SMPLIFY_IGNORED_JOINTS)] = False
        visible = (keypoints[..., 2] > 0) & used  # confident joints, vs noise-free positions
        distance = (pixels - gt_keypoints[..., :2]).norm(dim=-1)
        error_2d = (distance * visible).sum(1) / visible.sum(1).clamp_min(1)
        pa_mpjpe = 1000 * procrustes_error(fit.smpl_joints.double(), truth.smpl_joints.double())
        wrong = orientation_error(result.pose, gt_pose) > torch.pi / 2
        failed = ~torch.isfinite(result.loss) & enough
        ok = result.fitted
        print(
            f"| {name} | {error_2d[ok].median():.2f} | {pa_mpjpe[ok].mean():.1f} / "
            f"{pa_mpjpe[ok].median():.1f} | {wrong[ok].float().mean():.1%} | "
            f"{failed.float().mean():.1%} | {result.loss[ok].median():.2f} | "
            f"{options.rows / seconds:.1f} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir")
    parser.add_argument("--rows", type=int, default=264)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--init-noise", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mode", choices=("engine", "offline"), default="engine")
    parser.add_argument(
        "--learned",
        action="store_true",
        help="offline mode: also measure the learned initialiser (trains one "
        "beside the model files if missing)",
    )
    parser.add_argument("--learned-steps", type=int, default=3000)
    options = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(options.threads)
    files = body_files(options.model_dir)
    if options.mode == "offline":
        offline(options, files)
        return
    rows = synthetic_rows(files, options.rows, options.seed, options.init_noise)
    model = SpinBodyModel(files)
    print(f"{files.description}\n{options.rows} synthetic rows, init noise {options.init_noise} rad")
    evaluate("SPIN configuration", files, SmplifyConfig.spin_reference(), rows, model)
    evaluate("engine default", files, SmplifyConfig(), rows, model)


if __name__ == "__main__":
    main()
