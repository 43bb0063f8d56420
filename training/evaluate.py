"""Run a trained regressor over a dataset as SPIN's eval.py does, batched on any device.

Each batch of rows is cropped from its images without augmentation (``TrainingData.batch`` with
``Augmentation.identity``: SPIN's test-time crop of the row's box), the regressor predicts
rotations, betas and a weak-perspective camera, the body model evaluates them (vertices
included for the Human3.6M regressor), and ``fitting.evaluation.fit_evaluation.Evaluator`` scores them
against the dataset's ground truth. Returns the per-row predictions beside per-row metrics and
the summary (MPJPE / PA-MPJPE per protocol, per Human3.6M action, 2D PCK).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from spinfits.errors import InputError
from spinfits.fitting.body.rotations import matrix_to_axis_angle
from spinfits.fitting.evaluation.fit_evaluation import Evaluator, RowMetrics
from spinfits.fitting.evaluation.summary import EvalSummary, summary_of
from spinfits.fitting.evaluation.targets import EvalTargets
from spinfits.training.augmentation import Augmentation
from spinfits.training.data import TrainingData
from spinfits.training.regressor import camera_translation

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegressorEvaluation:
    """A regressor's predictions on N rows and how good they are.

    Fields:
        rows: (N,) int64 dataset rows.
        pose: (N, 72) float32 axis-angle (from the predicted rotations); betas: (N, 10) float32;
        camera: (N, 3) float32 SPIN's weak-perspective (s, tx, ty); cam_t: (N, 3) float32 the
            translation it stands for in the crop frame, metres.
        metrics: per-row figures; summary: the reported ones.
    """

    rows: np.ndarray
    pose: np.ndarray
    betas: np.ndarray
    camera: np.ndarray
    cam_t: np.ndarray
    metrics: RowMetrics
    summary: EvalSummary


def evaluate_regressor(
    model: torch.nn.Module,
    data: TrainingData,
    targets: EvalTargets,
    evaluator: Evaluator,
    batch_size: int = 32,
    rows: np.ndarray | None = None,
    progress: bool = False,
) -> RegressorEvaluation:
    """Predict and score ``rows`` (default: all) of ``data``; ``targets`` are the dataset's ground
    truth (``fitting.evaluation.targets.load_eval_targets``, all N rows). The model runs in eval mode on
    the evaluator's device (its training mode is restored afterwards)."""
    if len(targets) != len(data):
        raise InputError(
            f"targets have {len(targets)} rows, the dataset {len(data)}: load both from the same npz"
        )
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    rows = np.arange(len(data), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    if rows.ndim != 1 or rows.size == 0 or rows.min() < 0 or rows.max() >= len(data):
        raise InputError(f"rows must be a non-empty (N,) array of rows in [0, {len(data)}), got {rows!r}")
    device = evaluator.device
    model_device = next(iter(model.parameters()), torch.empty(0, device=device)).device
    if model_device != device and not (model_device.type == device.type == "cuda"):
        raise InputError(
            f"the model is on {model_device}, the evaluator on {device}: move it with model.to(device) "
            "or build the Evaluator on the model's device"
        )
    was_training = model.training
    model.eval()
    outputs: dict[str, list[np.ndarray]] = {"pose": [], "betas": [], "camera": [], "cam_t": []}
    parts = []
    try:
        starts = range(0, rows.size, batch_size)
        for start in tqdm(starts, desc="eval", unit="batch", disable=not progress):
            chunk = rows[start : start + batch_size]
            batch = data.batch(chunk, Augmentation.identity(chunk.size), device)
            with torch.no_grad():
                out = model(batch.images)
                body = evaluator.body.forward_rotmat(
                    out.rotmat, out.betas, return_vertices=evaluator.h36m is not None
                )
                cam_t = camera_translation(out.camera, targets.focal_length, targets.crop_res)
                parts.append(evaluator.score(body, cam_t, targets.take(chunk)))
                outputs["pose"].append(matrix_to_axis_angle(out.rotmat).reshape(-1, 72).cpu().numpy())
            outputs["betas"].append(out.betas.cpu().numpy())
            outputs["camera"].append(out.camera.cpu().numpy())
            outputs["cam_t"].append(cam_t.cpu().numpy())
    finally:
        model.train(was_training)
    metrics = RowMetrics.concat(parts)
    summary = summary_of(metrics, targets.take(rows), evaluator)
    logger.info("evaluated %d rows on %s", rows.size, device)
    return RegressorEvaluation(
        rows=rows,
        **{name: np.concatenate(arrays).astype(np.float32) for name, arrays in outputs.items()},
        metrics=metrics,
        summary=summary,
    )
