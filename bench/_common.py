"""Shared set-up of the fitting benchmarks: body model, synthetic rows, initialisation."""

from __future__ import annotations

import logging
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spinfits.errors import InputError
from spinfits.fitting.body.joints_only import JointsOnlyBody
from spinfits.fitting.body.model_files import BodyModelFiles, load_body_model_files
from spinfits.fitting.data.dataset import load_spin_npz
from spinfits.fitting.smplify.camera import estimate_translation
from spinfits.fitting.synthetic.people import SyntheticConfig, write_synthetic_dataset

logger = logging.getLogger("bench")


def toy_files() -> BodyModelFiles:
    """The tests' RANDOM SMPL-format model (random geometry, random pose correctives): not a
    body. Since the stand-in has pose correctives (issue 15) the benches' default covers their
    cost; the toy model stays for the rows recorded before that and as a heavier case of the
    joints-only path (211 (joint, bone) pairs against the stand-in's 86)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fitting"))
    from toy_model import toy_body_model_files

    return toy_body_model_files()


def body_files(model_dir: str | None) -> BodyModelFiles:
    """--model-dir (a folder, or "toy" for the tests' random model), else the stand-in (with its
    pose correctives) written to a tmp dir."""
    if model_dir == "toy":
        return toy_files()
    if model_dir:
        return load_body_model_files(model_dir)
    from spinfits.fitting.synthetic.standin import write_standin_files

    directory = Path(tempfile.mkdtemp(prefix="spinfits-bench-"))
    try:
        write_standin_files(directory)
        return load_body_model_files(directory)
    except InputError as error:
        logger.warning(
            "stand-in body model unavailable (%s): using the RANDOM TOY model of "
            "the tests; figures compare solvers, not body models",
            error,
        )
        return toy_files()


@dataclass(frozen=True)
class Rows:
    """Synthetic rows: keypoints (N, 49, 3) noisy crop keypoints, gt_* ground truth, init_*."""

    keypoints: torch.Tensor
    gt_keypoints: torch.Tensor
    gt_pose: torch.Tensor
    gt_betas: torch.Tensor
    init_pose: torch.Tensor
    init_betas: torch.Tensor
    init_cam_t: torch.Tensor


def synthetic_rows(files: BodyModelFiles, rows: int, seed: int, init_noise: float) -> Rows:
    """A synthetic dataset (written and read back as SPIN's npz), initialised like SPIN's
    in-the-loop fits: a noisy 'prediction' of the pose (noise ``init_noise`` rad per parameter),
    mean shape, camera by SPIN's estimate_translation from the prediction's joints."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write_synthetic_dataset(
            Path(tmp) / "synthetic.npz", files, SyntheticConfig(rows=rows, seed=seed)
        )
        dataset = load_spin_npz(path)
        gt_keypoints = np.load(path)["gt_keypoints"]
    keypoints = torch.as_tensor(dataset.keypoints, dtype=torch.float32)
    gt_pose = torch.as_tensor(dataset.gt_pose, dtype=torch.float32)
    gt_betas = torch.as_tensor(dataset.gt_betas, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed + 1)
    init_pose = gt_pose + init_noise * torch.randn(gt_pose.shape, generator=generator)
    init_betas = torch.zeros_like(gt_betas)
    joints = JointsOnlyBody(files)(init_pose, init_betas)
    init_cam_t, solvable = estimate_translation(joints, keypoints)
    init_cam_t[~solvable] = torch.tensor([0.0, 0.0, 40.0])
    init_cam_t[:, 2] = init_cam_t[:, 2].clamp_min(1.0)
    return Rows(
        keypoints, torch.as_tensor(gt_keypoints), gt_pose, gt_betas, init_pose, init_betas, init_cam_t
    )
