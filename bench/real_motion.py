"""Real motion seen from every direction: precompute's fitting against SPIN's loop, per view.

    python bench/real_motion.py [--model-dir DIR] [--sources h36m-smpl,h36m-joints,3dhp-joints]
        [--keypoints lsp,openpose] [--azimuth-step 30] [--elevations 0,30] [--threads 1]
        [--method NAME]... [--seed 5]

Real people (``real_motion_people``: four Human3.6M and four MPI-INF-3DHP frames from
../shared/data, each also mirrored) from a ring of virtual cameras (every ``--azimuth-step``
degrees about the person, at each of ``--elevations``), given keypoints that look like
annotations, and fitted in this process by each method on the same keypoints:

- ``spin``: SPIN's own loop (``OfflineConfig.spin_from_mean``: Adam 100 + 100, from the mean pose);
- ``default``: precompute's default fitting (``default_offline_config``: the learned initialiser
  when one sits beside the model files, else mean-pose orientation hypotheses);
- ``mean``: ``OfflineConfig()``, orientation hypotheses from the mean pose, no initialiser;
- ``mean+learned``: both, every hypothesis (``OfflineConfig(learned_hypothesis=True)``);
- ``truth`` (``h36m-smpl`` only): SMPLify with the default's engine started at the ground truth
  itself (pose, shape, and the camera fitted to them): how far the objective's own minimum lies
  from the truth, a floor no initialisation beats;
- any other ``OfflineConfig`` preset method name (``--method with_learned``) or
  ``FIELD=VALUE`` on the default (``--method back_hypothesis=True``);
- ``BASE:FIELD=VALUE[;FIELD=VALUE]...``: method ``BASE`` (any of the above but ``spin``) with
  fields set (``precompute_common.config_variant``: dotted paths into nested fields, tuples of
  stages), e.g. ``--method 'mean:smplify.weights.pose_prior_weight=2.39'``, or
  ``--method 'truth:stages=SMPLIFY_2016_STAGES'`` (the truth floor of that objective; ``truth``'s
  base is the default's configuration).

Keypoints: ``lsp``: the 14 joints SPIN's LSP protocol compares (SPIN's ground-truth slots 0-12 and
"Head (H36M)"), all visible, 2 px annotation noise; ``openpose`` (``h36m-smpl`` only: the body
model's own OpenPose joints): 25 detections, 3 px noise, confidences 0.4-0.95, 20 % missing.

Scores, per view: PA-MPJPE (mm, LSP-14 protocol: ``fitting.evaluation.metrics``) against the recorded 3D
joints (``-joints`` sources) or the exact joints of the posed body model (``h36m-smpl``), and the
2D error (px, fitted joints against the noise-free keypoints given). The ratio column is a method's
PA-MPJPE over SPIN's loop's in the same views; issue 15's target is <= 0.7 in every direction.
Figures on the stand-in body are stand-in figures.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from precompute_common import config_variant, describe, model_folder
from real_motion_people import SOURCES, SeenPeople, View, load_real_people, project, see_from

from spinfits.fitting.body.body_model import SpinBodyModel
from spinfits.fitting.body.joints import NUM_OPENPOSE_JOINTS
from spinfits.fitting.body.model_files import load_body_model_files
from spinfits.fitting.evaluation.metrics import LSP14, pa_mpjpe, select_gt24, select_predicted
from spinfits.fitting.offline.config import OfflineConfig, default_offline_config
from spinfits.fitting.offline.fitter import OfflineFitter
from spinfits.fitting.offline.initial_camera import initial_camera

#: Azimuth groups (degrees; 0 faces the camera).
GROUPS = {
    "front (330-30)": lambda a: (a <= 30) | (a >= 330),
    "side (60-120, 240-300)": lambda a: ((a >= 60) & (a <= 120)) | ((a >= 240) & (a <= 300)),
    "back (150-210)": lambda a: (a >= 150) & (a <= 210),
}


def keypoints_for(seen: SeenPeople, kind: str, rng: np.random.Generator) -> np.ndarray | None:
    """(N, 49, 3) crop keypoints of ``kind`` (module doc), or None where the source has none."""
    count = len(seen.crop)
    keypoints = np.zeros((count, 49, 3))
    if kind == "lsp":
        slots = [NUM_OPENPOSE_JOINTS + i for i in LSP14.gt24]
        keypoints[:, slots, :2] = seen.crop[:, slots] + rng.normal(0, 2.0, (count, len(slots), 2))
        keypoints[:, slots, 2] = seen.present[:, slots]
    elif kind == "openpose":
        if seen.joints49 is None:
            return None
        slots = list(range(NUM_OPENPOSE_JOINTS))
        keypoints[:, slots, :2] = seen.crop[:, slots] + rng.normal(0, 3.0, (count, len(slots), 2))
        confidence = rng.uniform(0.4, 0.95, (count, len(slots)))
        confidence[rng.random((count, len(slots))) < 0.2] = 0.0
        keypoints[:, slots, 2] = confidence
    else:
        raise ValueError(f"keypoints must be lsp or openpose, got {kind!r}")
    return keypoints


def method_config(name: str, default: OfflineConfig) -> OfflineConfig:
    """The configuration of method ``name`` (module doc); ``truth`` fits with the default's."""
    if ":" in name:
        base, changes = name.split(":", 1)
        config = method_config(base, default)
        for change in changes.split(";"):
            config = config_variant(config, change)
        return config
    if name in ("default", "truth"):
        return default
    if name == "spin":
        return OfflineConfig.spin_from_mean()
    if name == "mean":
        return OfflineConfig()
    if name == "mean+learned":
        return OfflineConfig(learned_hypothesis=True)
    if "=" in name:
        return config_variant(default, name)
    return getattr(OfflineConfig, name)()


def from_truth(fitter: OfflineFitter, seen: SeenPeople, keypoints: np.ndarray):
    """SMPLify (``fitter``'s engine) started at the ground-truth pose and shape of ``seen``."""
    smplify = fitter.smplify
    given, center = smplify.checked_keypoints(torch.as_tensor(keypoints, dtype=torch.float32), None)
    pose = torch.as_tensor(seen.pose, dtype=torch.float32)
    betas = torch.as_tensor(seen.betas, dtype=torch.float32)
    cam_t = initial_camera(smplify, pose, betas, given, center)
    return smplify.fit(pose, betas, cam_t, given, center)


def scores(
    model: SpinBodyModel, seen: SeenPeople, keypoints: np.ndarray, fit
) -> tuple[np.ndarray, np.ndarray]:
    """(N,) PA-MPJPE mm and (N,) 2D error px of fits of ``seen`` (NaN where not fitted)."""
    with torch.no_grad():
        joints = torch.cat(
            [
                model(fit.pose[i : i + 512].float(), fit.betas[i : i + 512].float()).joints
                for i in range(0, len(fit.pose), 512)
            ]
        ).double()
    predicted = select_predicted(LSP14, joints)
    if seen.joints49 is not None:
        truth = select_predicted(LSP14, torch.as_tensor(seen.joints49))
    else:
        truth, valid = select_gt24(LSP14, torch.as_tensor(seen.joints24))
        assert bool(valid.all()), "every recorded person has the LSP-14 joints and the hips"
    pa = 1000 * pa_mpjpe(predicted, truth).numpy()
    pixels = project(joints.numpy(), fit.cam_t.double().numpy())
    given = keypoints[..., 2] > 0
    distance = np.linalg.norm(pixels - seen.crop, axis=-1)
    error_2d = (distance * given).sum(1) / np.maximum(given.sum(1), 1)
    bad = ~np.isfinite(fit.loss.numpy())
    pa[bad] = np.nan
    error_2d[bad] = np.nan
    return pa, error_2d


def table(seen: SeenPeople, results: dict[str, tuple[np.ndarray, np.ndarray, float]]) -> None:
    names = list(results)
    print(
        "| azimuth | "
        + " | ".join(f"{n}: PA-MPJPE mm / 2D px" for n in names)
        + " | "
        + " | ".join(f"{n} / spin" for n in names if n != "spin")
        + " |"
    )
    print("|---" * (1 + 2 * len(names) - 1) + "|")

    def line(label: str, chosen: np.ndarray) -> None:
        cells = [
            f"{np.nanmean(results[n][0][chosen]):.1f} / {np.nanmedian(results[n][1][chosen]):.2f}"
            for n in names
        ]
        spin = np.nanmean(results["spin"][0][chosen])
        ratios = [f"{np.nanmean(results[n][0][chosen]) / spin:.2f}" for n in names if n != "spin"]
        print(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")

    for azimuth in np.unique(seen.azimuth):
        line(f"{azimuth:.0f}", seen.azimuth == azimuth)
    for label, rule in GROUPS.items():
        line(f"**{label}**", rule(seen.azimuth))
    for elevation in np.unique(seen.elevation):
        line(f"elevation {elevation:.0f}", seen.elevation == elevation)
    line("**all views**", np.ones(len(seen.azimuth), dtype=bool))
    print("fits/s (this process): " + ", ".join(f"{n} {results[n][2]:.1f}" for n in names))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-dir", help="standin (default) or a model folder (with keypoint_regressor.pt)"
    )
    parser.add_argument(
        "--shared-data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    parser.add_argument("--sources", default=",".join(SOURCES))
    parser.add_argument("--keypoints", default="lsp,openpose")
    parser.add_argument("--azimuth-step", type=float, default=30.0)
    parser.add_argument("--elevations", default="0,30")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--method",
        action="append",
        default=None,
        help="spin, default, mean, truth, a preset, FIELD=VALUE, BASE:FIELD=VALUE[;FIELD=VALUE]",
    )
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="spinfits-real-motion-"))
    files = load_body_model_files(model_folder(args.model_dir, work))
    model = SpinBodyModel(files)
    default = default_offline_config(files)
    methods = ["spin"] + [m for m in (args.method or ["default", "mean"]) if m != "spin"]
    if default == OfflineConfig() and "mean" in methods and "default" in methods:
        methods.remove("mean")  # the same configuration twice
    views = [
        View(azimuth, float(elevation))
        for elevation in args.elevations.split(",")
        for azimuth in np.arange(0.0, 360.0, args.azimuth_step)
    ]
    print(
        f"{describe(files)}; default fitting: "
        f"{'learned initialiser + mean' if default.learned_hypothesis else 'mean-pose orientation hypotheses'}; "
        f"{len(views)} views; {args.threads} thread(s)"
    )
    rng = np.random.default_rng(args.seed)
    for source in args.sources.split(","):
        seen = see_from(load_real_people(args.shared_data, source, model), views, model)
        for kind in args.keypoints.split(","):
            keypoints = keypoints_for(seen, kind, rng)
            if keypoints is None:
                continue
            results = {}
            for name in methods:
                truth = name.split(":")[0] == "truth"
                if truth and seen.pose is None:
                    continue
                start = time.perf_counter()
                if truth:
                    fit = from_truth(OfflineFitter(files, method_config(name, default)), seen, keypoints)
                else:
                    fitter = OfflineFitter(files, method_config(name, default))
                    fit = fitter.fit(torch.as_tensor(keypoints, dtype=torch.float32))
                speed = len(keypoints) / (time.perf_counter() - start)
                results[name] = (*scores(model, seen, keypoints, fit), speed)
            people = len(np.unique(seen.person))
            print(
                f"\n{source}, {kind}-like keypoints: {people} people (half of them mirrored) x {len(views)} views"
            )
            table(seen, results)


if __name__ == "__main__":
    main()
