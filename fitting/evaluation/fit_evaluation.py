"""Score SMPL bodies against a dataset's ground truth, batched on any device: per-row metrics.

``Evaluator.score`` takes a batch of evaluated bodies (a regressor's prediction, or stored fits
through ``score_fits``) with their cameras, and returns per-row MPJPE and PA-MPJPE for each
protocol it runs (``LSP14`` always; ``H36M14`` and ``H36M17`` with a Human3.6M regressor) and
the 2D PCK counts of the 14 LSP joints. Rows without ground truth for a figure get NaN (3D) or
zero visible joints (2D). ``eval_summary.summarise`` turns the rows into the reported figures.

Convention: metres, SPIN's crop frame (camera at the origin looking down +z, focal length and
crop size of the targets); ``cam_t`` (B, 3) is the body's translation in that frame. A camera
that cannot project (non-finite, or depth <= 0, e.g. SPIN's imported static fits, stored
without one) is replaced by SPIN's least-squares camera from the ground-truth 2D keypoints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from spinfits.errors import InputError
from spinfits.fitting.body.body_model import BodyOutput, SpinBodyModel
from spinfits.fitting.body.joints import NUM_OPENPOSE_JOINTS, NUM_SPIN_JOINTS
from spinfits.fitting.body.model_files import BodyModelFiles
from spinfits.fitting.evaluation.h36m_regressor import H36mRegressor
from spinfits.fitting.evaluation.metrics import (
    H36M14,
    H36M17,
    J24_TO_J14,
    LSP14,
    JointProtocol,
    mpjpe,
    pa_mpjpe,
    pck,
    select_gt24,
    select_predicted,
)
from spinfits.fitting.evaluation.targets import EvalTargets
from spinfits.fitting.smplify.camera import estimate_translation, perspective_projection

#: PCK's alpha by default: correct within 5% of the box side (mmpose's default threshold).
DEFAULT_PCK_ALPHA = 0.05
#: SPIN's 49 joints of the 14 LSP joints (the 2D PCK joints).
_PCK_JOINTS = [NUM_OPENPOSE_JOINTS + i for i in J24_TO_J14]


@dataclass(frozen=True)
class RowMetrics:
    """Per-row figures of N rows.

    Fields:
        rows: (N,) int64 dataset rows.
        mpjpe, pa_mpjpe: protocol name -> (N,) float64 metres, NaN where the row has no 3D
            ground truth for that protocol.
        pck_correct: (N,) int64 LSP-14 joints projected within the PCK threshold;
        pck_visible: (N,) int64 LSP-14 joints with 2D ground truth.
    """

    rows: np.ndarray
    mpjpe: dict[str, np.ndarray]
    pa_mpjpe: dict[str, np.ndarray]
    pck_correct: np.ndarray
    pck_visible: np.ndarray

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    @classmethod
    def concat(cls, parts: list[RowMetrics]) -> RowMetrics:
        if not parts:
            raise InputError("RowMetrics.concat needs at least one part")
        names = list(parts[0].mpjpe)
        return cls(
            rows=np.concatenate([p.rows for p in parts]),
            mpjpe={n: np.concatenate([p.mpjpe[n] for p in parts]) for n in names},
            pa_mpjpe={n: np.concatenate([p.pa_mpjpe[n] for p in parts]) for n in names},
            pck_correct=np.concatenate([p.pck_correct for p in parts]),
            pck_visible=np.concatenate([p.pck_visible for p in parts]),
        )


class Evaluator:
    """Scores bodies against ground truth (see the module docstring).

    files: the body model; h36m: a Human3.6M regressor (adds the H36M-14 and H36M-17
    protocols); pck_alpha: PCK threshold as a fraction of the box side (crop_res px).
    """

    def __init__(
        self,
        files: BodyModelFiles,
        h36m: H36mRegressor | None = None,
        device: torch.device | str = "cpu",
        pck_alpha: float = DEFAULT_PCK_ALPHA,
    ) -> None:
        if not 0.0 < pck_alpha <= 1.0:
            raise InputError(
                f"pck_alpha must be in (0, 1] (a fraction of the box side), got {pck_alpha}; "
                f"mmpose's default is {DEFAULT_PCK_ALPHA}"
            )
        self.device = torch.device(device)
        self.body = SpinBodyModel(files, self.device)
        self.files = files
        self.h36m = h36m
        self.pck_alpha = pck_alpha
        self.protocols: tuple[JointProtocol, ...] = (LSP14,) if h36m is None else (LSP14, H36M14, H36M17)
        self._h36m_weights = None
        if h36m is not None:
            if h36m.weights.shape[1] != files.smpl.num_vertices:
                raise InputError(
                    f"{h36m.path} regresses from {h36m.weights.shape[1]} vertices, the body model "
                    f"has {files.smpl.num_vertices}: use the regressor of this body model"
                )
            self._h36m_weights = torch.as_tensor(h36m.weights, dtype=torch.float32, device=self.device)

    def _joints(self, body: BodyOutput, protocol: JointProtocol) -> torch.Tensor:
        """(B, 49 or 17, 3) the joints a protocol selects from."""
        if protocol.predicted_from == "spin49":
            return body.joints
        if body.vertices is None:
            raise InputError("bodies must be evaluated with return_vertices=True for Human3.6M joints")
        return torch.einsum("jv,bvc->bjc", self._h36m_weights, body.vertices)

    @torch.no_grad()
    def score(self, pred: BodyOutput, cam_t: torch.Tensor, targets: EvalTargets) -> RowMetrics:
        """Per-row metrics of B bodies.

        Args:
            pred: the bodies, (B, 49, 3) joints and, with a Human3.6M regressor, (B, V, 3)
                vertices (``SpinBodyModel(..., return_vertices=True)``).
            cam_t: (B, 3) their translation in the crop frame, metres.
            targets: the B rows' ground truth.
        """
        batch = pred.joints.shape[0]
        if len(targets) != batch or tuple(cam_t.shape) != (batch, 3):
            raise InputError(
                f"score needs B bodies, cam_t (B, 3) and B target rows, got {batch} bodies, cam_t "
                f"{tuple(cam_t.shape)} and {len(targets)} rows"
            )
        mpjpes, pa_mpjpes = {}, {}
        wide = torch.float32 if self.device.type == "mps" else torch.float64
        gt_body = self._ground_truth_bodies(targets)
        for protocol in self.protocols:
            predicted = select_predicted(protocol, self._joints(pred, protocol))
            if targets.source_3d == "S":
                joints_3d = torch.as_tensor(targets.joints_3d, device=self.device)
                truth, valid = select_gt24(protocol, joints_3d)
            elif targets.source_3d == "smpl":
                truth = select_predicted(protocol, self._joints(gt_body, protocol))
                valid = torch.as_tensor(targets.has_smpl, device=self.device)
            else:
                truth, valid = predicted, torch.zeros(batch, dtype=torch.bool, device=self.device)
            nan = torch.full((batch,), float("nan"), dtype=wide, device=self.device)
            error = mpjpe(predicted.to(wide), truth.to(wide))
            aligned = pa_mpjpe(predicted.to(wide), truth.to(wide))
            mpjpes[protocol.name] = torch.where(valid, error, nan).cpu().numpy().astype(np.float64)
            pa_mpjpes[protocol.name] = torch.where(valid, aligned, nan).cpu().numpy().astype(np.float64)
        correct, visible = self._pck(pred, cam_t, targets)
        return RowMetrics(
            rows=np.asarray(targets.rows, dtype=np.int64),
            mpjpe=mpjpes,
            pa_mpjpe=pa_mpjpes,
            pck_correct=correct.sum(1).cpu().numpy().astype(np.int64),
            pck_visible=visible.sum(1).cpu().numpy().astype(np.int64),
        )

    def _ground_truth_bodies(self, targets: EvalTargets) -> BodyOutput | None:
        if targets.source_3d != "smpl":
            return None
        return self.body(
            torch.as_tensor(targets.pose, dtype=torch.float32, device=self.device),
            torch.as_tensor(targets.betas, dtype=torch.float32, device=self.device),
            return_vertices=self.h36m is not None,
        )

    def _pck(
        self, pred: BodyOutput, cam_t: torch.Tensor, targets: EvalTargets
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keypoints = torch.zeros(len(targets), NUM_SPIN_JOINTS, 3, device=self.device)
        keypoints[:, NUM_OPENPOSE_JOINTS:] = torch.as_tensor(targets.keypoints_2d, device=self.device)
        cam_t = cam_t.to(device=self.device, dtype=torch.float32)
        unusable = ~torch.isfinite(cam_t).all(-1) | (cam_t[:, 2] <= 0)
        if unusable.any():
            estimated, _ = estimate_translation(pred.joints, keypoints, targets.focal_length)
            cam_t = torch.where(unusable[:, None], estimated, cam_t)
        centre = torch.full((len(targets), 2), targets.crop_res / 2.0, device=self.device)
        projected = perspective_projection(pred.joints[:, _PCK_JOINTS], cam_t, targets.focal_length, centre)
        projected = torch.nan_to_num(projected, nan=float("inf"))
        return pck(projected, keypoints[:, _PCK_JOINTS], self.pck_alpha * targets.crop_res)

    def score_fits(
        self,
        pose: np.ndarray,
        betas: np.ndarray,
        cam_t: np.ndarray,
        targets: EvalTargets,
        batch_size: int = 256,
        progress: bool = False,
    ) -> RowMetrics:
        """Per-row metrics of SMPL fits (one per target row), ``batch_size`` rows at a time.

        Args:
            pose: (N, 72) axis-angle; betas: (N, 10); cam_t: (N, 3) crop-frame translation.
            targets: the N rows' ground truth.
        """
        n = len(targets)
        if pose.shape != (n, 72) or betas.shape != (n, 10) or cam_t.shape != (n, 3):
            raise InputError(
                f"fits must be pose ({n}, 72), betas ({n}, 10), cam_t ({n}, 3) for {n} target rows, "
                f"got {pose.shape}, {betas.shape}, {cam_t.shape}"
            )
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        parts = []
        starts = range(0, n, batch_size)
        for start in tqdm(starts, desc="eval fits", unit="batch", disable=not progress or n == 0):
            part = slice(start, start + batch_size)

            def tensor(array: np.ndarray, part: slice = part) -> torch.Tensor:
                return torch.as_tensor(np.asarray(array[part]), dtype=torch.float32, device=self.device)

            with torch.no_grad():
                body = self.body(tensor(pose), tensor(betas), return_vertices=self.h36m is not None)
            parts.append(self.score(body, tensor(cam_t), targets.take(part)))
        if not parts:
            return RowMetrics(
                rows=np.zeros(0, np.int64),
                mpjpe={p.name: np.zeros(0) for p in self.protocols},
                pa_mpjpe={p.name: np.zeros(0) for p in self.protocols},
                pck_correct=np.zeros(0, np.int64),
                pck_visible=np.zeros(0, np.int64),
            )
        return RowMetrics.concat(parts)
