"""One SPIN training step with the store's best fits in the loop (plain torch, no Ray).

Per batch (B samples, augmented as the network sees them):
1. the regressor predicts rotations, betas and a camera;
2. SMPLify (the engine, in-loop configuration) fits the augmented keypoints from that prediction;
3. the new fit is un-augmented (``unaugment_pose``) and re-scored by the store's fit loss
   (``fit_loss``: SPIN's loss, camera by SPIN's least squares) against the un-augmented keypoints,
   so its loss is comparable with the stored one whatever augmentation it was found under;
4. per sample, the better of the new and the stored fit by the store's merge rule
   (``spinfits.store.merge_rule.replaces``), guarded by the pose prior unless
   ``TrainConfig.in_loop_rule`` is SPIN's ``"fit_loss"`` (``training.in_loop_rule``), is the
   best fit; new fits that replace the stored one become ``Proposals`` for the store writer;
5. the network is supervised with the best fit seen through the batch's augmentation (SPIN's
   losses). Fits with loss above ``smplify_threshold`` are not used; implausible betas are
   replaced by zeros; rows with ground-truth SMPL use it when ``use_gt_smpl`` (SPIN).

Without ``run_smplify`` (SPIN's static-fits mode) steps 2-4 are skipped: the stored fit is the
best fit and nothing is proposed. The network's forward runs under bf16 autocast where
``TrainConfig.autocast_dtype`` says so; its outputs, SMPLify and the losses are float32.
A batch may mix datasets (``TrainingBatch.dataset``); proposals come back per dataset name.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from spinfits.fitting.body.body_model import SpinBodyModel
from spinfits.fitting.body.joints_only import JointsOnlyBody
from spinfits.fitting.body.model_files import BodyModelFiles
from spinfits.fitting.body.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from spinfits.fitting.data.spin_crop import CROP_RES, FOCAL_LENGTH
from spinfits.fitting.smplify.fit_loss import fit_loss
from spinfits.fitting.smplify.fitter import SMPLify
from spinfits.store import Fits, Proposals, Source
from spinfits.store.merge_rule import replaces
from spinfits.training.augmentation import Augmentation, augment_pose, unaugment_pose
from spinfits.training.data import TrainingBatch
from spinfits.training.in_loop_rule import not_swapped, pose_prior_not_worse
from spinfits.training.regressor import RegressorOutput, camera_translation
from spinfits.training.spin_losses import SupervisionTargets, spin_losses
from spinfits.training.train_config import TrainConfig


@dataclass(frozen=True)
class UnaugmentedFits:
    """Fits brought back to the store's frame. pose (B, 72), betas (B, 10), cam_t (B, 3) by
    SPIN's least squares, loss (B,) the store's fit loss (+inf: not a fit)."""

    pose: torch.Tensor
    betas: torch.Tensor
    cam_t: torch.Tensor
    loss: torch.Tensor


def unaugmented_fits(
    scorer: JointsOnlyBody,
    pose: torch.Tensor,
    betas: torch.Tensor,
    keypoints_crop: torch.Tensor,
    augmentation: Augmentation,
    focal_length: float = FOCAL_LENGTH,
) -> UnaugmentedFits:
    """Fits found in the augmented crop (pose (B, 72), betas (B, 10)) as the store sees them:
    pose un-augmented, scored against the un-augmented keypoints (B, 49, 3)."""
    pose_crop = unaugment_pose(pose, augmentation)
    loss, cam_t = fit_loss(scorer, pose_crop, betas, keypoints_crop, focal_length)
    bad = ~(torch.isfinite(pose_crop).all(1) & torch.isfinite(betas).all(1) & torch.isfinite(cam_t).all(1))
    loss = torch.where(bad, torch.full_like(loss, float("inf")), loss)
    return UnaugmentedFits(pose_crop, betas, cam_t, loss)


@dataclass(frozen=True)
class StepOutcome:
    """losses: SPIN's terms (floats); proposals: per dataset name, new fits better than the
    stored ones (only datasets with some);
    best_loss: (B,) fit loss of each sample's best fit (store frame); valid: (B,) bool used as
    supervision; seconds: time per phase; visuals (when asked): ``pred_vertices`` and
    ``opt_vertices`` (B, V, 3) untranslated, ``cam_t`` (B, 3) the predicted camera, all detached on
    the CPU (SPIN draws both meshes with the predicted camera)."""

    losses: dict[str, float]
    proposals: dict[str, Proposals]
    best_loss: np.ndarray
    valid: np.ndarray
    seconds: dict[str, float]
    visuals: dict[str, torch.Tensor] | None = None


class SpinTrainingStep:
    """Holds the body model and SMPLify on ``device``; ``model`` may be wrapped in DDP.
    Proposals are named by ``config.names`` (``TrainingBatch.dataset`` indexes them)."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        files: BodyModelFiles,
        config: TrainConfig,
        device: torch.device | str = "cpu",
    ) -> None:
        self.model, self.optimizer, self.config = model, optimizer, config
        self.device = torch.device(device)
        self.body = SpinBodyModel(files, self.device)
        self.smplify = SMPLify(files, config.smplify, self.device)
        self.scorer = self.smplify.joints_model
        self.focal_length = config.smplify.focal_length

    def __call__(self, batch: TrainingBatch, stored: Fits, step: int, visuals: bool = False) -> StepOutcome:
        clock = time.perf_counter()
        seconds: dict[str, float] = {}

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            seconds[name] = now - clock
            clock = now

        self.model.train()
        dtype = self.config.autocast_dtype(self.device)
        with torch.autocast(self.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            out = self.model(batch.images)
        if dtype is not None:  # the body model, SMPLify and the losses stay float32
            out = RegressorOutput(out.rotmat.float(), out.betas.float(), out.camera.float())
        pred = self.body.forward_rotmat(out.rotmat, out.betas, return_vertices=True)
        pred_cam_t = camera_translation(out.camera, self.focal_length, CROP_RES)
        lap("forward")

        stored_loss = torch.as_tensor(stored.loss, device=self.device)
        stored_loss = torch.where(torch.isnan(stored_loss), float("inf"), stored_loss)  # NaN: no fit
        best_pose = torch.as_tensor(stored.pose, device=self.device)
        best_betas = torch.as_tensor(stored.betas, device=self.device)
        best_loss = stored_loss
        proposals: dict[str, Proposals] = {}
        if self.config.run_smplify:
            best_pose, best_betas, best_loss, proposals = self._fit_and_compare(
                batch, out, pred_cam_t, stored, step
            )
            lap("smplify")

        targets, valid = self._targets(batch, best_pose, best_betas, best_loss)
        losses = spin_losses(
            out.rotmat,
            out.betas,
            out.camera,
            pred_cam_t,
            pred.joints,
            pred.vertices,
            targets,
            self.config.losses,
            self.focal_length,
        )
        lap("targets")
        self.optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        self.optimizer.step()
        lap("backward")
        return StepOutcome(
            losses={k: float(v.detach()) for k, v in losses.items()},
            proposals=proposals,
            best_loss=best_loss.cpu().numpy(),
            valid=valid.cpu().numpy(),
            seconds=seconds,
            visuals=None
            if not visuals
            else {
                "pred_vertices": pred.vertices.detach().cpu(),
                "opt_vertices": targets.opt_vertices.detach().cpu(),
                "cam_t": pred_cam_t.detach().cpu(),
            },
        )

    def _fit_and_compare(
        self,
        batch: TrainingBatch,
        out: RegressorOutput,
        pred_cam_t: torch.Tensor,
        stored: Fits,
        step: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Proposals]]:
        """SMPLify from the prediction, un-augmented and compared with ``stored`` by the store's
        merge rule (and the pose-prior guard of ``config.in_loop_rule``): the best fits' pose
        (B, 72), betas (B, 10), loss (B,) and the new fits that replace stored ones."""
        size = out.rotmat.shape[0]
        stored_loss = torch.as_tensor(stored.loss, device=self.device)
        stored_loss = torch.where(torch.isnan(stored_loss), float("inf"), stored_loss)  # NaN: no fit
        stored_pose = torch.as_tensor(stored.pose, device=self.device)
        fit = self.smplify.fit(
            matrix_to_axis_angle(out.rotmat.detach()).reshape(size, 72),
            out.betas.detach(),
            pred_cam_t.detach(),
            batch.keypoints,
        )
        new = unaugmented_fits(
            self.scorer, fit.pose, fit.betas, batch.keypoints_crop, batch.augmentation, self.focal_length
        )
        candidates = self._candidates(batch.rows, new, step)
        keep = replaces(stored, candidates)  # the store's merge rule, per sample
        if self.config.in_loop_rule == "fit_loss_and_prior":
            keep &= pose_prior_not_worse(self.smplify.prior, new.pose, stored_pose, stored_loss).cpu().numpy()
        if self.config.in_loop_swap_check:
            keep &= not_swapped(batch.keypoints_crop, stored_loss).cpu().numpy()
        better = torch.as_tensor(keep, device=self.device)
        best_pose = torch.where(better[:, None], new.pose, stored_pose)
        best_betas = torch.where(
            better[:, None], new.betas, torch.as_tensor(stored.betas, device=self.device)
        )
        best_loss = torch.where(better, new.loss, stored_loss)
        return best_pose, best_betas, best_loss, self._by_dataset(batch, candidates, keep)

    def _by_dataset(
        self, batch: TrainingBatch, candidates: Proposals, keep: np.ndarray
    ) -> dict[str, Proposals]:
        """The candidates that ``keep`` ((B,) bool) marks, per name of each dataset in the batch
        (an empty ``Proposals`` for a dataset with none)."""
        dataset = batch.dataset if batch.dataset is not None else np.zeros(len(keep), dtype=np.int64)
        names = self.config.names
        out = {}
        for index in np.unique(dataset):
            out[names[index]] = candidates.take(np.flatnonzero(keep & (dataset == index)))
        return out

    @staticmethod
    def _candidates(rows: np.ndarray, new: UnaugmentedFits, step: int) -> Proposals:
        """Every sample's new fit as a proposal (the store's rule picks the ones that land)."""
        as_numpy = lambda t: t.detach().cpu().numpy()  # noqa: E731
        return Proposals(
            rows=rows,
            pose=as_numpy(new.pose),
            betas=as_numpy(new.betas),
            cam_t=as_numpy(new.cam_t),
            loss=as_numpy(new.loss),
            source=Source.IN_LOOP,
            step=step,
        )

    @torch.no_grad()
    def _targets(
        self, batch: TrainingBatch, best_pose: torch.Tensor, best_betas: torch.Tensor, best_loss: torch.Tensor
    ) -> tuple[SupervisionTargets, torch.Tensor]:
        config = self.config
        betas = torch.where(
            (best_betas.abs() > config.max_abs_betas).any(1, keepdim=True),
            torch.zeros_like(best_betas),
            best_betas,
        )
        valid = best_loss < config.smplify_threshold
        gt = batch.has_smpl
        pose = torch.where(gt[:, None], batch.gt_pose, best_pose)
        betas = torch.where(gt[:, None], batch.gt_betas, betas)
        valid = valid | gt
        pose = torch.where(valid[:, None], pose, torch.zeros_like(pose))  # finite placeholders
        betas = torch.where(valid[:, None], betas, torch.zeros_like(betas))
        pose = augment_pose(pose, batch.augmentation)
        vertices = self.body(pose, betas, return_vertices=True).vertices
        rotmat = axis_angle_to_matrix(pose.reshape(-1, 24, 3))
        return SupervisionTargets(
            batch.keypoints, rotmat, betas, vertices, valid, batch.joints_3d, batch.has_joints_3d
        ), valid
