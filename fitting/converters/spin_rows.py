"""A converted dataset: rows in SPIN's dataset npz layout, and its writer.

SPIN's masks, as its ``datasets/base_dataset.py`` reads them: ``has_smpl`` is 1 for the rows
with ground-truth SMPL ``pose``/``shape`` (3DPW, HumanData's ``smpl``), 0 else (without
``pose``/``shape`` SPIN reads 0 anyway); ``gender`` ('m', 'f' or 'n') says which SMPL model the
ground truth belongs to (SPIN evaluates 3DPW with the gendered models);
``has_pose_3d`` is 1 for rows with 3D joints ``S`` (SPIN: 1 when the file has ``S``), 0 else;
missing OpenPose detections or ground-truth joints have confidence 0 (SPIN's zeros when the file
lacks ``openpose`` or ``part``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spinfits.errors import InputError
from spinfits.fitting.body.joints import NUM_GT_JOINTS, NUM_OPENPOSE_JOINTS
from spinfits.fitting.data.dataset import KeypointDataset, load_spin_npz
from spinfits.fitting.data.spin_crop import BOX_SCALE_PX


@dataclass(frozen=True, eq=False)
class ConvertedDataset:
    """N rows in SPIN's dataset npz layout (image pixels), and what the conversion left out.

    Fields:
        imgname: (N,) str image path relative to the images folder.
        center: (N, 2) float64 box centre, image pixels.
        scale: (N,) float64 box side / 200 px.
        part: (N, 24, 3) float64 ground-truth joints in SPIN's 24-joint order, pixel x, y,
            confidence (0 = missing).
        openpose: (N, 25, 3) float64 OpenPose BODY_25 pixel x, y, confidence (0 = missing).
        S: (N, 24, 4) float64 3D joints, metres, x, y, z, confidence, or None.
        pose: (N, 72) float64 ground-truth SMPL pose, axis-angle, or None.
        shape: (N, 10) float64 ground-truth SMPL betas (with ``pose``), or None.
        has_smpl: (N,) bool rows whose pose/shape are ground truth (all, with ``pose``), or None.
        gender: (N,) str 'm', 'f' or 'n' (neutral): the SMPL model of the ground truth, or None.
        skipped: (reason, count) pairs of what was left out, e.g. people with too few keypoints.
    """

    imgname: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    part: np.ndarray
    openpose: np.ndarray
    S: np.ndarray | None = None
    pose: np.ndarray | None = None
    shape: np.ndarray | None = None
    has_smpl: np.ndarray | None = None
    gender: np.ndarray | None = None
    skipped: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        rows = len(self.imgname)
        expected = {
            "imgname": (rows,),
            "center": (rows, 2),
            "scale": (rows,),
            "part": (rows, NUM_GT_JOINTS, 3),
            "openpose": (rows, NUM_OPENPOSE_JOINTS, 3),
        }
        optional = {"S": (rows, NUM_GT_JOINTS, 4), "pose": (rows, 72), "shape": (rows, 10)}
        optional |= {"has_smpl": (rows,), "gender": (rows,)}
        expected |= {name: shape for name, shape in optional.items() if getattr(self, name) is not None}
        if (self.pose is None) != (self.shape is None):
            raise InputError("ConvertedDataset: pose and shape come together (SPIN's SMPL ground truth)")
        for name, shape in expected.items():
            if np.shape(getattr(self, name)) != shape:
                raise InputError(
                    f"ConvertedDataset.{name} has shape {np.shape(getattr(self, name))}, expected "
                    f"{shape}: one entry per row of the {rows} in imgname"
                )

    def __len__(self) -> int:
        return len(self.imgname)

    def arrays(self) -> dict[str, np.ndarray]:
        """The npz's arrays: SPIN's keys, with ``has_smpl`` and ``has_pose_3d`` per row."""
        rows = len(self)
        arrays = {
            "imgname": np.asarray(self.imgname, dtype=str),
            "center": np.asarray(self.center, dtype=np.float64),
            "scale": np.asarray(self.scale, dtype=np.float64),
            "part": np.asarray(self.part, dtype=np.float64),
            "openpose": np.asarray(self.openpose, dtype=np.float64),
            "has_smpl": np.zeros(rows, dtype=np.float64),
            "has_pose_3d": np.zeros(rows, dtype=np.float64),
        }
        if self.S is not None:
            arrays["S"] = np.asarray(self.S, dtype=np.float64)
            arrays["has_pose_3d"] = (self.S[..., 3] > 0).any(axis=1).astype(np.float64)
        if self.pose is not None:
            arrays["pose"] = np.asarray(self.pose, dtype=np.float64)
            arrays["shape"] = np.asarray(self.shape, dtype=np.float64)
            has_smpl = np.ones(rows) if self.has_smpl is None else np.asarray(self.has_smpl)
            arrays["has_smpl"] = has_smpl.astype(np.float64)
        if self.gender is not None:
            arrays["gender"] = np.asarray(self.gender, dtype=str)
        return arrays


def write_spin_npz(dataset: ConvertedDataset, path: str | Path) -> KeypointDataset:
    """Write ``dataset`` to ``path`` (.npz) and load it back with ``load_spin_npz`` (its checks).

    The file appears whole or not at all (written beside it, then renamed).
    """
    if len(dataset) == 0:
        raise InputError(f"nothing to write to {path}: the conversion kept no rows")
    return write_spin_arrays(dataset.arrays(), path)


def write_spin_arrays(arrays: dict[str, np.ndarray], path: str | Path) -> KeypointDataset:
    """Write the arrays of a SPIN dataset npz to ``path`` whole or not at all (written beside
    it, then renamed) and load it back with ``load_spin_npz`` (its checks)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise InputError(f"the output must be a .npz file (SPIN's dataset layout), got {path}; e.g. coco.npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with open(partial, "wb") as file:
            np.savez(file, **arrays)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return load_spin_npz(path)


def box_around_joints(joints: np.ndarray, rescale: float = 1.2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SPIN's box of annotated joints (its ``lsp_dataset.py``, ``pw3d.py``): centred on the middle
    of the joints' bounding rectangle, side = ``rescale`` x its longer side.

    Args:
        joints: (N, K, 3) pixel x, y, confidence; joints of confidence 0 are left out.
    Returns:
        center (N, 2), scale (N,) (side / 200 px), placed (N,) bool: False for rows whose joints
        span no box (fewer than 2 joints, or all on one point); their center and scale are 0.
    """
    labelled = joints[..., 2] > 0  # (N, K)
    low = np.where(labelled[..., None], joints[..., :2], np.inf).min(axis=1)  # (N, 2)
    high = np.where(labelled[..., None], joints[..., :2], -np.inf).max(axis=1)  # (N, 2)
    with np.errstate(invalid="ignore"):
        side = (high - low).max(axis=1)  # (N,) inf - inf = nan for rows with no joint
    placed = (labelled.sum(axis=1) >= 2) & np.isfinite(side) & (side > 0)
    center = np.where(placed[:, None], (low + high) / 2, 0.0)
    scale = np.where(placed, rescale * np.where(placed, side, 0.0) / BOX_SCALE_PX, 0.0)
    return center, scale, placed
