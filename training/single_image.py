"""One person in one image, SPIN's demo: crop the box, regress SMPL, optionally refine with SMPLify.

Convention: the box is SPIN's (``center`` (2,) image px, ``scale`` = side / 200); the regressor
sees the box's crop at its own input resolution (``TrainingState.input_res``), and its estimate
lives in SPIN's crop frame: ``crop_res`` (224) px, focal length 5000 px, principal point at the
crop's centre, body at ``vertices + cam_t`` (``fitting.evaluation.overlay.ImageCamera.from_box`` draws it
over the original image). Refinement fits SPIN's 49 keypoints in that crop frame, starting from
the network's estimate, as SPIN's training does in the loop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from spinfits.errors import InputError
from spinfits.fitting.body.joints import NUM_OPENPOSE_JOINTS, NUM_SPIN_JOINTS
from spinfits.fitting.body.model_files import BodyModelFiles
from spinfits.fitting.body.rotations import matrix_to_axis_angle
from spinfits.fitting.data.dataset import image_to_crop
from spinfits.fitting.data.spin_crop import CROP_RES, FOCAL_LENGTH
from spinfits.fitting.smplify.config import SmplifyConfig
from spinfits.fitting.smplify.fit_loss import fit_loss_at
from spinfits.fitting.smplify.fitter import SMPLify
from spinfits.training.augmentation import Augmentation
from spinfits.training.images import crop_images
from spinfits.training.regressor import HMR, camera_translation

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PersonEstimate:
    """One person's SMPL in the crop frame of its box (float32 numpy).

    pose: (72,) axis-angle radians; betas: (10,); cam_t: (3,) metres; loss: SPIN's fit loss
    against the keypoints it was scored on (``nan`` when there were none).
    """

    pose: np.ndarray
    betas: np.ndarray
    cam_t: np.ndarray
    loss: float = float("nan")


@torch.no_grad()
def regress_person(
    model: HMR,
    image: np.ndarray,
    center: np.ndarray,
    scale: float,
    input_res: int = CROP_RES,
    device: torch.device | str = "cpu",
) -> PersonEstimate:
    """The regressor's SMPL for the person in the box of ``image`` (an (H, W, 3) uint8 RGB array).

    The crop is SPIN's (``training.images.crop_images``, no augmentation), resampled to the
    network's ``input_res``.
    """
    center = np.asarray(center, dtype=np.float64).reshape(1, 2)
    crops = crop_images(
        [image], center, np.array([scale]), Augmentation.identity(1, device), out_res=input_res
    )  # (1, 3, input_res, input_res)
    model.eval()
    out = model(crops)
    cam_t = camera_translation(out.camera, FOCAL_LENGTH, CROP_RES)
    pose = matrix_to_axis_angle(out.rotmat).reshape(1, 72)
    return PersonEstimate(
        pose=pose[0].float().cpu().numpy(),
        betas=out.betas[0].float().cpu().numpy(),
        cam_t=cam_t[0].float().cpu().numpy(),
    )


def openpose_crop_keypoints(keypoints: np.ndarray, center: np.ndarray, scale: float) -> np.ndarray:
    """(49, 3) SPIN keypoints in the box's crop frame from OpenPose's (25, 3) image px x, y,
    confidence (the 24 ground-truth joints left missing: confidence 0)."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.shape != (NUM_OPENPOSE_JOINTS, 3):
        raise InputError(
            f"keypoints must be OpenPose BODY_25, (25, 3) image px x, y, confidence, got {keypoints.shape}"
        )
    out = np.zeros((NUM_SPIN_JOINTS, 3))
    out[:NUM_OPENPOSE_JOINTS, :2] = image_to_crop(
        keypoints[None, :, :2], np.asarray(center, dtype=np.float64).reshape(1, 2), np.array([scale])
    )[0]
    out[:NUM_OPENPOSE_JOINTS, 2] = keypoints[:, 2]
    out[out[:, 2] <= 0] = 0.0
    return out.astype(np.float32)


def score_person(smplify: SMPLify, person: PersonEstimate, keypoints: np.ndarray) -> float:
    """SPIN's fit loss of ``person`` against keypoints (49, 3) in its crop frame."""
    tensors = [
        torch.as_tensor(np.asarray(a)[None], dtype=smplify.dtype, device=smplify.device)
        for a in (person.pose, person.betas, person.cam_t, keypoints)
    ]
    loss = fit_loss_at(smplify.joints_model, *tensors, smplify.config.focal_length)
    return float(loss[0])


def refine_person(
    files: BodyModelFiles,
    person: PersonEstimate,
    keypoints: np.ndarray,
    iterations: int | None = None,
    device: torch.device | str = "cpu",
) -> tuple[PersonEstimate, PersonEstimate]:
    """SMPLify from the network's estimate on keypoints (49, 3) in its crop frame.

    iterations: the cap of each stage (camera, body); None = ``SmplifyConfig``'s. Per joint,
    whichever torso keypoints are confident place the camera (``confident_torso``): a demo's
    keypoints are OpenPose's alone.

    Returns:
        (the estimate scored on ``keypoints``, the refined estimate with its loss).
    """
    config = SmplifyConfig(confident_torso=True)
    if iterations is not None:
        if iterations < 1:
            raise InputError(f"iterations must be >= 1 (SMPLify's cap per stage), got {iterations}")
        config = SmplifyConfig(confident_torso=True, camera_iterations=iterations, body_iterations=iterations)
    smplify = SMPLify(files, config, device)
    scored = PersonEstimate(person.pose, person.betas, person.cam_t, score_person(smplify, person, keypoints))
    tensors = [
        torch.as_tensor(np.asarray(a)[None], dtype=torch.float32, device=smplify.device)
        for a in (person.pose, person.betas, person.cam_t, keypoints)
    ]
    fit = smplify.fit(*tensors)
    if not bool(fit.fitted[0]):
        raise InputError(
            f"SMPLify cannot refine this person: fewer than {config.min_keypoints} confident "
            f"keypoints, or the network placed the camera behind the image plane; drop --refine"
        )
    refined = PersonEstimate(
        pose=fit.pose[0].cpu().numpy(),
        betas=fit.betas[0].cpu().numpy(),
        cam_t=fit.cam_t[0].cpu().numpy(),
        loss=float(fit.loss[0]),
    )
    logger.info("SMPLify refined the estimate: loss %.4g -> %.4g", scored.loss, refined.loss)
    return scored, refined
