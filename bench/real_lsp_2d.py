"""2D error of fits of real people: the 1000 LSP training people's annotated keypoints, per model folder.

    cd bench && python real_lsp_2d.py --model-dir DIR [--model-dir DIR2]... [--rows 1000]
        [--method default]... [--threads 1]

``../shared/data/lsp_train_keypoints.npz`` holds real annotations (LSP's 14 joints, all marked
visible) and no 3D truth: only how well a fit explains them can be measured. Each model folder
(e.g. the same stand-in with two pose priors as ``gmm_08.pkl``) fits the first ``--rows`` people
with each method (``real_motion.method_config``: ``default``, ``spin``, ``mean``, variants), in
this process, on the same keypoints. Printed per folder and method: the 2D error (crop px, the
fitted body's joints projected against the annotated ones SMPLify uses, mean per person; median
and mean over people, and the share above 10 px) and the fit loss median (SPIN's, against the keypoints as given).
A stronger prior pulls fits away from the keypoints: lower is "explains the annotations better",
not "is the right 3D pose".
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from precompute_common import describe, model_folder
from real_motion import method_config

from spinfits.fitting.body.body_model import SpinBodyModel
from spinfits.fitting.body.joints import SMPLIFY_IGNORED_JOINTS
from spinfits.fitting.body.model_files import load_body_model_files
from spinfits.fitting.data.dataset import load_spin_npz
from spinfits.fitting.data.spin_crop import CROP_CENTER, FOCAL_LENGTH
from spinfits.fitting.offline.config import default_offline_config
from spinfits.fitting.offline.fitter import OfflineFitter

LSP_FILE = "lsp_train_keypoints.npz"


def error_2d(model: SpinBodyModel, fit, keypoints: torch.Tensor) -> np.ndarray:
    """(B,) mean distance (crop px) of the fit's projected joints from the confident keypoints
    SMPLify uses (``keypoints``: (B, 49, 3) crop x, y, confidence); NaN where not fitted."""
    with torch.no_grad():
        joints = model(fit.pose.float(), fit.betas.float()).joints.double()
    camera = joints + fit.cam_t.double()[:, None]
    pixels = FOCAL_LENGTH * camera[..., :2] / camera[..., 2:3] + CROP_CENTER
    used = torch.ones(joints.shape[1], dtype=torch.bool)
    used[list(SMPLIFY_IGNORED_JOINTS)] = False
    visible = (keypoints[..., 2] > 0) & used
    distance = (pixels - keypoints[..., :2].double()).norm(dim=-1)
    error = ((distance * visible).sum(1) / visible.sum(1).clamp_min(1)).numpy()
    error[~np.isfinite(fit.loss.numpy())] = np.nan
    return error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", action="append", default=None, help="repeatable; default: standin")
    parser.add_argument(
        "--shared-data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--method", action="append", default=None, help="as real_motion.py's (default)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    dataset = load_spin_npz(args.shared_data / LSP_FILE)
    keypoints = torch.as_tensor(dataset.keypoints[: args.rows], dtype=torch.float32)
    print(f"{len(keypoints)} real LSP people ({LSP_FILE}, first rows); {args.threads} thread(s)")
    print(
        "| model folder | pose prior | method | 2D err median / mean (px) | > 10 px | fit loss median | fits/s |"
    )
    print("|---|---|---|---|---|---|---|")
    work = Path(tempfile.mkdtemp(prefix="spinfits-lsp-2d-"))
    started = time.perf_counter()
    for choice in args.model_dir or ["standin"]:
        files = load_body_model_files(model_folder(choice, work))
        model = SpinBodyModel(files)
        default = default_offline_config(files)
        prior = f"gmm_08.pkl [means {hashlib.sha256(files.gmm.means.tobytes()).hexdigest()[:12]}]"
        print(f"{choice}: {describe(files)}")
        for name in args.method or ["default"]:
            start = time.perf_counter()
            fit = OfflineFitter(files, method_config(name, default)).fit(keypoints)
            speed = len(keypoints) / (time.perf_counter() - start)
            error = error_2d(model, fit, keypoints)
            loss = fit.loss.numpy()
            print(
                f"| {choice} | {prior} | {name} | {np.nanmedian(error):.2f} / {np.nanmean(error):.2f} | "
                f"{np.nanmean(error > 10):.1%} | {np.nanmedian(loss[np.isfinite(loss)]):.1f} | {speed:.1f} |",
                flush=True,
            )
    print(f"run time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
