"""Synthetic datasets in SPIN's npz layout, with known ground truth.

People are drawn with real poses (``mocap_fraction`` of them, 0.75 by default: body poses of CMU
motion capture shipped with the stand-in, ``standin.mocap_prior``, from held-in clips only; each
mirrored with probability 1/2) and the rest from the anatomy sampler (``natural_poses``, for
coverage of what the clips lack), plausible shapes (betas ~ N(0, 0.8²),
clipped to ±2.5), orientations mostly towards the camera (some side-on, some from behind), and
a camera that frames them in SPIN's crop (224 px, focal 5000). Keypoints are the body model's
49 joints projected into the crop, then mapped to an image through a random box (center, scale)
and given annotation noise: ``part`` (24 GT joints) and ``openpose`` (25 detections with
confidences, some missing, a few left/right swaps). A few people are truncated: the crop cuts
their legs off, and the keypoints outside it are missing.

Ground truth is kept in the file: ``pose`` (N, 72), ``shape`` (N, 10), ``has_smpl``,
``gt_cam_t`` (N, 3) crop-frame camera translation, ``gt_keypoints`` (N, 49, 3) noise-free crop
keypoints, ``S`` (N, 24, 4) GT joints in the camera frame (metres) + visibility,
``truncated`` (N,), ``swapped`` (N,), ``outliers`` (N, 49) keypoints moved far off (with
``outlier_fraction`` > 0), and ``body_model`` (fingerprint and stand-in flag of the model used).

Images (optional, ``write_synthetic_dataset(..., images_dir=DIR)`` / ``spinfits data
make-synthetic --images DIR``): each person is rendered (``fitting.synthetic.render``: the body mesh in
SMPL part colours, Lambert-shaded, on a white background) into ``DIR/<imgname>`` as a 224x224
PNG. **The image file is the 224-px crop itself** (focal 5000, principal point (112, 112), the
camera of ``gt_cam_t``), not a full image: ``center``/``scale`` still describe the random box the
keypoints were mapped through, and SPIN's crop of (center, scale) would NOT reproduce the file.
Such datasets carry ``images_are_crops = True``; loaders must then use the image as the crop
directly (keypoints in the crop frame: ``image_to_crop(keypoints, center, scale)``, or
``gt_keypoints``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from spinfits.errors import InputError
from spinfits.fitting.body.body_model import SpinBodyModel
from spinfits.fitting.body.joints import (
    NUM_OPENPOSE_JOINTS,
    NUM_SPIN_JOINTS,
    SPIN_JOINT_NAMES,
    SPIN_JOINTS_FLIP_PERM,
)
from spinfits.fitting.body.model_files import BodyModelFiles
from spinfits.fitting.data.dataset import CROP_RES, FOCAL_LENGTH, crop_to_image
from spinfits.fitting.mocap.prior import mirror_body_pose
from spinfits.fitting.synthetic.natural_poses import sample_body_poses
from spinfits.fitting.synthetic.render import part_face_colours, render
from spinfits.fitting.synthetic.standin.mocap_prior import load_mocap_poses

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyntheticConfig:
    """How synthetic people and annotations are drawn (pixel figures are in the 224 px crop)."""

    rows: int = 1000
    seed: int = 0
    betas_std: float = 0.8
    gt_noise_px: float = 1.0
    openpose_noise_px: float = 2.5
    missing_fraction: float = 0.12
    truncated_fraction: float = 0.04
    swap_fraction: float = 0.02
    outlier_fraction: float = 0.0
    outlier_px: tuple[float, float] = (30.0, 80.0)
    facing_away_fraction: float = 0.1
    side_fraction: float = 0.2
    image_size: int = 1000
    mocap_fraction: float = 0.75

    def __post_init__(self) -> None:
        if self.rows < 1:
            raise InputError(f"rows must be >= 1, got {self.rows}")
        for name in (
            "missing_fraction",
            "truncated_fraction",
            "swap_fraction",
            "outlier_fraction",
            "facing_away_fraction",
            "side_fraction",
            "mocap_fraction",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(f"{name} must be within [0, 1], got {value}")


def _global_orients(count: int, config: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    """(count, 3) axis-angle: upright in the camera frame (y down), facing it, then yawed."""
    kind = rng.random(count)
    yaw = rng.uniform(-0.8, 0.8, count)  # towards the camera
    side = kind < config.side_fraction
    yaw[side] = rng.choice([-1.0, 1.0], side.sum()) * rng.uniform(0.8, 2.0, side.sum())
    away = (kind >= config.side_fraction) & (kind < config.side_fraction + config.facing_away_fraction)
    yaw[away] = np.pi + rng.uniform(-0.6, 0.6, away.sum())
    tilt = rng.normal(0.0, 0.08, (count, 2))
    rotation = (
        Rotation.from_rotvec(np.stack([np.full(count, np.pi), np.zeros(count), np.zeros(count)], 1))
        * Rotation.from_euler("xz", tilt)
        * Rotation.from_euler("y", yaw[:, None])
    )
    return rotation.as_rotvec()


def _mix_mocap_poses(body_pose: np.ndarray, config: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
    """Replace ``mocap_fraction`` of the (N, 69) anatomy poses by shipped mocap poses (held-in
    clips), half of them mirrored; returns the poses and each row's source (``anatomy`` or
    ``mocap:folder/stem:frame``, ``+mirror`` when mirrored)."""
    poses = load_mocap_poses()
    rng = np.random.default_rng([config.seed, 23])
    count = len(body_pose)
    chosen = np.nonzero(rng.random(count) < config.mocap_fraction)[0]
    rows = rng.integers(0, len(poses), len(chosen))
    mirrored = rng.random(len(chosen)) < 0.5
    drawn = poses.body_pose[rows]
    drawn[mirrored] = mirror_body_pose(drawn[mirrored])
    mixed = body_pose.copy()
    mixed[chosen] = drawn
    source = np.full(count, "anatomy", dtype=object)
    source[chosen] = [
        f"mocap:{poses.clip[r]}:{poses.frame[r]}{'+mirror' if m else ''}" for r, m in zip(rows, mirrored)
    ]
    return mixed, source


def _project(points: np.ndarray, cam_t: np.ndarray) -> np.ndarray:
    camera = points + cam_t[:, None, :]
    return FOCAL_LENGTH * camera[..., :2] / camera[..., 2:3] + CROP_RES / 2.0


@torch.no_grad()
def make_synthetic_dataset(files: BodyModelFiles, config: SyntheticConfig) -> dict[str, np.ndarray]:
    """Draw a synthetic dataset; returns the arrays of SPIN's npz layout (+ ground truth)."""
    rng = np.random.default_rng(config.seed)
    count = config.rows
    pose = np.zeros((count, 72))
    pose[:, 3:] = sample_body_poses(count, rng)
    pose_source = np.full(count, "anatomy", dtype=object)
    if config.mocap_fraction > 0:  # its own stream: everything else is drawn as without mocap
        pose[:, 3:], pose_source = _mix_mocap_poses(pose[:, 3:], config)
    pose[:, :3] = _global_orients(count, config, rng)
    betas = np.clip(rng.normal(0.0, config.betas_std, (count, 10)), -2.5, 2.5)
    joints = _posed_joints(SpinBodyModel(files), pose, betas)  # (N, 49, 3) metres

    # Camera: the person's joints span ~75-95% of the crop, root near its centre.
    extent = (joints[..., :2].max(1) - joints[..., :2].min(1)).max(1)  # metres
    depth = FOCAL_LENGTH * extent / (CROP_RES * rng.uniform(0.75, 0.95, count))
    middle = (joints[..., :2].max(1) + joints[..., :2].min(1)) / 2
    offset = rng.normal(0.0, 0.03, (count, 2)) * extent[:, None]
    truncated = rng.random(count) < config.truncated_fraction
    # truncated people are enlarged and moved down (camera y points down): legs leave the crop
    depth[truncated] *= rng.uniform(0.5, 0.6, truncated.sum())
    offset[truncated, 1] -= 0.25 * extent[truncated]
    cam_t = np.stack(
        [-(middle[:, 0] + offset[:, 0]), -(middle[:, 1] + offset[:, 1]), depth - joints[..., 2].mean(1)],
        axis=1,
    )

    crop_points = _project(joints, cam_t)  # (N, 49, 2)
    inside = ((crop_points >= 0) & (crop_points < CROP_RES)).all(-1)
    gt_keypoints = np.concatenate([crop_points, inside[..., None].astype(np.float64)], -1)

    noisy = crop_points.copy()
    noisy[:, :NUM_OPENPOSE_JOINTS] += rng.normal(0, config.openpose_noise_px, (count, NUM_OPENPOSE_JOINTS, 2))
    noisy[:, NUM_OPENPOSE_JOINTS:] += rng.normal(
        0, config.gt_noise_px, (count, NUM_SPIN_JOINTS - NUM_OPENPOSE_JOINTS, 2)
    )
    confidence = inside.astype(np.float64)
    confidence[:, :NUM_OPENPOSE_JOINTS] *= rng.uniform(0.4, 0.95, (count, NUM_OPENPOSE_JOINTS))
    confidence[rng.random((count, NUM_SPIN_JOINTS)) < config.missing_fraction] = 0.0
    swapped = rng.random(count) < config.swap_fraction
    openpose_flip = list(SPIN_JOINTS_FLIP_PERM[:NUM_OPENPOSE_JOINTS])
    noisy[swapped, :NUM_OPENPOSE_JOINTS] = noisy[swapped][:, openpose_flip]
    outliers = _add_outliers(noisy, confidence, config, rng)

    # An image box per person: the crop is a square of side 200*scale around `center`.
    scale = rng.uniform(1.0, 3.0, count)
    center = rng.uniform(0.3, 0.7, (count, 2)) * config.image_size
    image_points = crop_to_image(noisy, center, scale, CROP_RES)
    keypoints = np.concatenate([image_points, confidence[..., None]], -1)
    keypoints[confidence == 0] = 0.0

    camera_joints = joints + cam_t[:, None, :]
    gt3d = np.concatenate([camera_joints[:, NUM_OPENPOSE_JOINTS:], np.ones((count, 24, 1))], -1)
    logger.info("drew %d synthetic people with %s", count, files.description)
    return {
        "imgname": np.array([f"synthetic/{i:07d}.png" for i in range(count)]),
        "center": center,
        "scale": scale,
        "part": keypoints[:, NUM_OPENPOSE_JOINTS:],
        "openpose": keypoints[:, :NUM_OPENPOSE_JOINTS],
        "S": gt3d,
        "pose": pose,
        "shape": betas,
        "has_smpl": np.ones(count, dtype=np.int64),
        "gt_cam_t": cam_t,
        "gt_keypoints": gt_keypoints.astype(np.float32),
        "truncated": truncated,
        "swapped": swapped,
        "outliers": outliers,
        "body_model": np.array(f"{'STAND-IN ' if files.is_standin else ''}fingerprint {files.fingerprint}"),
        "joint_names": np.array(SPIN_JOINT_NAMES),
        "pose_source": pose_source.astype(str),
    }


def _posed_joints(model: SpinBodyModel, pose: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """(N, 49, 3) float64 SPIN joints of the body posed by ``pose`` (N, 72) and ``betas``
    (N, 10), in float32 batches of 512."""
    return np.concatenate(
        [
            model(
                torch.as_tensor(pose[i : i + 512], dtype=torch.float32),
                torch.as_tensor(betas[i : i + 512], dtype=torch.float32),
            ).joints.numpy()
            for i in range(0, len(pose), 512)
        ]
    ).astype(np.float64)


def _add_outliers(
    noisy: np.ndarray, confidence: np.ndarray, config: SyntheticConfig, rng: np.random.Generator
) -> np.ndarray:
    """Move one or two confident keypoints of ``config.outlier_fraction`` of the people 30-80 px
    away, in place in ``noisy`` (N, 49, 2) crop pixels; returns (N, 49) bool, the moved ones."""
    count = noisy.shape[0]
    outliers = np.zeros((count, NUM_SPIN_JOINTS), dtype=bool)
    if config.outlier_fraction > 0:  # (no draws otherwise: older datasets stay identical)
        # one or two wildly wrong detections: confident keypoints moved 30-80 px away
        chosen = rng.random(count) < config.outlier_fraction
        for row in np.nonzero(chosen)[0]:
            candidates = np.nonzero(confidence[row] > 0)[0]
            if candidates.size:
                picked = rng.choice(candidates, min(candidates.size, rng.integers(1, 3)), replace=False)
                angle = rng.uniform(0, 2 * np.pi, picked.size)
                distance = rng.uniform(*config.outlier_px, picked.size)
                noisy[row, picked] += distance[:, None] * np.stack([np.cos(angle), np.sin(angle)], 1)
                outliers[row, picked] = True
    return outliers


@torch.no_grad()
def render_synthetic_crops(
    files: BodyModelFiles, arrays: dict[str, np.ndarray], rows: slice | None = None, batch_size: int = 32
) -> np.ndarray:
    """Render the 224-px crops of a synthetic dataset's people (its ``pose``, ``shape``,
    ``gt_cam_t``; focal 5000, principal point (112, 112)).

    Returns:
        (N, 224, 224, 3) uint8 RGB, white background, faces in SMPL part colours.
    """
    rows = rows if rows is not None else slice(0, len(arrays["pose"]))
    pose, betas, cam_t = (arrays[key][rows] for key in ("pose", "shape", "gt_cam_t"))
    model = SpinBodyModel(files)
    colours = part_face_colours(files.smpl.faces, files.smpl.weights)
    images = []
    for start in range(0, len(pose), batch_size):
        part = slice(start, start + batch_size)
        vertices = model(
            torch.as_tensor(pose[part], dtype=torch.float32),
            torch.as_tensor(betas[part], dtype=torch.float32),
            return_vertices=True,
        ).vertices
        vertices = vertices + torch.as_tensor(cam_t[part], dtype=torch.float32)[:, None]
        images.append(
            render(
                vertices,
                files.smpl.faces,
                colours,
                FOCAL_LENGTH,
                (CROP_RES / 2.0, CROP_RES / 2.0),
                (CROP_RES, CROP_RES),
            ).numpy()
        )
    return np.concatenate(images) if images else np.zeros((0, CROP_RES, CROP_RES, 3), np.uint8)


def write_synthetic_dataset(
    path: str | Path, files: BodyModelFiles, config: SyntheticConfig, images_dir: str | Path | None = None
) -> Path:
    """Draw a synthetic dataset and write it to ``path`` (npz, SPIN's layout).

    With ``images_dir``, also render each person's 224-px crop to ``images_dir/<imgname>`` (PNG)
    and store ``images_are_crops = True`` in the npz (see the module docstring: the files are
    crops, not full images).
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise InputError(f"the output must be a .npz file, got {path}; e.g. synthetic.npz")
    arrays = make_synthetic_dataset(files, config)
    if images_dir is not None:
        from PIL import Image  # pillow: a dependency of matplotlib (RGB PNG, no alpha)

        images_dir = Path(images_dir)
        chunk = 256
        for start in range(0, config.rows, chunk):
            images = render_synthetic_crops(files, arrays, slice(start, start + chunk))
            for name, image in zip(arrays["imgname"][start : start + chunk], images):
                target = images_dir / str(name)
                target.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(target, format="PNG")
        arrays["images_are_crops"] = np.array(True)
        logger.info("rendered %d crops to %s", config.rows, images_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path
