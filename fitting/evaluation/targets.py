"""What an evaluation compares with: a dataset's ground truth, read from its SPIN npz.

3D ground truth is either the file's ``S`` (SPIN's 24 joints, metres + confidence), as SPIN
evaluates Human3.6M and MPI-INF-3DHP, or its ground-truth SMPL parameters (``pose``, ``shape``
where ``has_smpl``) put through the body model, as SPIN evaluates 3DPW. ``ground_truth="auto"``
takes ``S`` when the file has it, else SMPL, else none (2D PCK only). 2D ground truth is the
file's ``part`` (SPIN's 24 joints), in the crop frame of each row's box.

With the stand-in body model, SMPL ground truth goes through the stand-in: its joints are not
those of the real SMPL, so they do not match a real dataset's ``S``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from spinfits.errors import InputError
from spinfits.fitting.body.joints import NUM_GT_JOINTS, NUM_OPENPOSE_JOINTS
from spinfits.fitting.data.dataset import KeypointDataset, load_spin_npz

GroundTruth = Literal["auto", "S", "smpl"]
GROUND_TRUTHS: tuple[str, ...] = ("auto", "S", "smpl")


@dataclass(frozen=True, eq=False)
class EvalTargets:
    """Ground truth of N dataset rows.

    Fields:
        rows: (N,) int64 dataset rows.
        imgname: (N,) str image names (Human3.6M actions are read from them).
        keypoints_2d: (N, 24, 3) float32 crop pixels x, y, visibility: SPIN's 24 ground-truth
            joints (``part``; zeros where the file has none).
        joints_3d: (N, 24, 4) float32 metres x, y, z, confidence (``S``), or None.
        pose: (N, 72) float32 axis-angle, betas: (N, 10) float32 (zeros where absent).
        has_smpl: (N,) bool rows whose pose/betas are ground truth.
        source_3d: where 3D ground truth comes from: "S", "smpl" or None (2D only).
        crop_res: crop side in px; focal_length: crop-frame focal length in px.
        source: the dataset file; fingerprint: the dataset's (``KeypointDataset.fingerprint``).
    """

    rows: np.ndarray
    imgname: np.ndarray
    keypoints_2d: np.ndarray
    joints_3d: np.ndarray | None
    pose: np.ndarray
    betas: np.ndarray
    has_smpl: np.ndarray
    source_3d: Literal["S", "smpl"] | None
    crop_res: int
    focal_length: float
    source: Path | None = None
    fingerprint: str = ""

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def take(self, index: np.ndarray | slice) -> EvalTargets:
        """The rows at ``index`` (a slice, integer or boolean index into these N rows)."""
        return replace(
            self,
            rows=self.rows[index],
            imgname=self.imgname[index],
            keypoints_2d=self.keypoints_2d[index],
            joints_3d=None if self.joints_3d is None else self.joints_3d[index],
            pose=self.pose[index],
            betas=self.betas[index],
            has_smpl=self.has_smpl[index],
        )

    @property
    def describe_3d(self) -> str:
        """One line: what 3D ground truth these rows are compared with."""
        if self.source_3d == "S":
            return "S (the dataset's 3D joints)"
        if self.source_3d == "smpl":
            return "the dataset's SMPL parameters (pose/shape where has_smpl) through the body model"
        return "none (no S, no SMPL parameters with has_smpl): 2D PCK only"


def eval_targets(
    dataset: KeypointDataset, joints_3d: np.ndarray | None, ground_truth: GroundTruth = "auto"
) -> EvalTargets:
    """Ground truth of a loaded dataset and its ``S`` ((N, 24, 4) or None)."""
    if ground_truth not in GROUND_TRUTHS:
        raise InputError(f"ground_truth must be one of {', '.join(GROUND_TRUTHS)}, got {ground_truth!r}")
    n = len(dataset)
    where = dataset.source or "the dataset"
    if joints_3d is not None and joints_3d.shape != (n, NUM_GT_JOINTS, 4):
        raise InputError(f"{where}: S must be ({n}, 24, 4) x, y, z, confidence, got {joints_3d.shape}")
    has_smpl = (
        np.asarray(dataset.has_smpl, dtype=bool)
        if dataset.gt_pose is not None and dataset.has_smpl is not None
        else np.zeros(n, dtype=bool)
    )
    has_s = joints_3d is not None and bool((joints_3d[..., 3] > 0).any())
    if ground_truth == "S" and not has_s:
        raise InputError(
            f"{where} has no S (3D joints with confidence > 0) to evaluate against; use "
            "ground truth 'smpl' (its pose/shape) or 'auto'"
        )
    if ground_truth == "smpl" and not has_smpl.any():
        raise InputError(
            f"{where} has no ground-truth SMPL (pose and shape with has_smpl = 1) to evaluate "
            "against; use ground truth 'S' (its 3D joints) or 'auto'"
        )
    source: Literal["S", "smpl"] | None
    if ground_truth == "auto":
        source = "S" if has_s else ("smpl" if has_smpl.any() else None)
    else:
        source = ground_truth
    keypoints_2d = np.asarray(dataset.keypoints[:, NUM_OPENPOSE_JOINTS:], dtype=np.float32)
    if source is None and not (keypoints_2d[..., 2] > 0).any():
        raise InputError(
            f"{where} has no ground truth to evaluate against: no S (3D joints), no SMPL "
            "parameters with has_smpl, and no 'part' 2D keypoints (only OpenPose detections, "
            "which are not ground truth)"
        )
    return EvalTargets(
        rows=np.arange(n, dtype=np.int64),
        imgname=np.asarray(dataset.imgname).astype(str),
        keypoints_2d=keypoints_2d,
        joints_3d=None if joints_3d is None else np.asarray(joints_3d, dtype=np.float32),
        pose=np.zeros((n, 72), np.float32) if dataset.gt_pose is None else dataset.gt_pose.astype(np.float32),
        betas=(
            np.zeros((n, 10), np.float32) if dataset.gt_betas is None else dataset.gt_betas.astype(np.float32)
        ),
        has_smpl=has_smpl,
        source_3d=source,
        crop_res=dataset.crop_res,
        focal_length=dataset.focal_length,
        source=dataset.source,
        fingerprint=dataset.fingerprint,
    )


def load_eval_targets(path: str | Path, ground_truth: GroundTruth = "auto") -> EvalTargets:
    """Ground truth of the SPIN dataset npz at ``path`` (see the module docstring)."""
    dataset = load_spin_npz(path)
    with np.load(path, allow_pickle=False) as data:
        joints_3d = np.asarray(data["S"], dtype=np.float64) if "S" in data.files else None
    if joints_3d is not None:
        confident = joints_3d[..., 3] > 0
        if not np.isfinite(joints_3d[..., :3][confident]).all():
            raise InputError(
                f"{path}: S has NaN or infinite coordinates at joints with confidence > 0; set "
                "their confidence to 0 or fix them"
            )
        joints_3d = np.where(confident[..., None], joints_3d, 0.0)
    return eval_targets(dataset, joints_3d, ground_truth)
