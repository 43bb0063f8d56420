"""A converted dataset: rows in SPIN's dataset npz layout, and its writer.

SPIN's masks, as its ``datasets/base_dataset.py`` reads them: ``has_smpl`` is 0 for every row
(no converter has ground-truth SMPL; without ``pose``/``shape`` SPIN reads 0 anyway);
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
        skipped: (reason, count) pairs of what was left out, e.g. people with too few keypoints.
    """

    imgname: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    part: np.ndarray
    openpose: np.ndarray
    S: np.ndarray | None = None
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
        if self.S is not None:
            expected["S"] = (rows, NUM_GT_JOINTS, 4)
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
        return arrays


def write_spin_npz(dataset: ConvertedDataset, path: str | Path) -> KeypointDataset:
    """Write ``dataset`` to ``path`` (.npz) and load it back with ``load_spin_npz`` (its checks).

    The file appears whole or not at all (written beside it, then renamed).
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise InputError(f"the output must be a .npz file (SPIN's dataset layout), got {path}; e.g. coco.npz")
    if len(dataset) == 0:
        raise InputError(f"nothing to write to {path}: the conversion kept no rows")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with open(partial, "wb") as file:
            np.savez(file, **dataset.arrays())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return load_spin_npz(path)
