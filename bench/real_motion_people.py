"""Real people seen from every direction: recorded 3D poses put in front of virtual cameras.

Sources (``../shared/data``, see its README), each person also mirrored left/right:

- ``h36m-smpl``: the MoSh SMPL pose and shape of the four Human3.6M frames of
  ``h36m_spin_sample.npz`` (SPIN's layout), posed on the body model given (the stand-in here): the
  ground truth is exact in the model's own skeleton, and every keypoint layout can be projected.
- ``h36m-joints``: the same frames' recorded 3D joints ``S`` (SPIN's 24 ground-truth slots);
- ``3dhp-joints``: the four MPI-INF-3DHP frames' 17 recorded joints (mmpose's npz), put in SPIN's
  slots. For both ``-joints`` sources the fitted body's skeleton is not the recorded one: scores
  include that mismatch, the same for every method compared.
- ``mocap-heldout`` (``load_mocap_people``, not mirrored): the MoSh-lite bodies (pose and shape
  fitted to the recorded joints, ``spinfits model fit-prior``'s cached fits npz) of the clips in
  ``fitting/mocap/held_out_clips.txt``, which no learned prior or synthetic pose saw; a number of
  frames spread evenly over the clips and over each clip's frames. Posed on the body model given,
  like ``h36m-smpl`` (exact ground truth in the model's skeleton, every keypoint layout). How far
  those bodies are from the recorded joints is the MoSh residual (``MocapPeople.residual_mm``).

Views (``View``): the person's own facing (from the hips, in the horizontal plane of the
recording, whose cameras are level: up is -y) is turned to face the camera, then turned by
``azimuth`` about the vertical (0: facing the camera, 90 and 270: side views, 180: from behind)
and seen from ``elevation`` degrees above. The camera frames the person in SPIN's crop as the
synthetic people are framed (joints spanning 85 % of the 224 px crop, focal 5000).

None of these poses comes from the pose sampler that drew the learned initialiser's training
people, the stand-in's pose prior and the synthetic test people (``fitting.synthetic.natural_poses``):
every pose here is held out from all three.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from spinfits.fitting.body.body_model import SpinBodyModel
from spinfits.fitting.body.joints import (
    GT_JOINTS_FLIP_PERM,
    NUM_GT_JOINTS,
    NUM_OPENPOSE_JOINTS,
    SMPL_POSE_FLIP_PERM,
)
from spinfits.fitting.data.dataset_joint_maps import MMPOSE_3DHP_TO_SPIN_GT
from spinfits.fitting.data.spin_crop import CROP_CENTER, CROP_RES, FOCAL_LENGTH

SOURCES = ("h36m-smpl", "h36m-joints", "3dhp-joints")
#: The source of held-out motion capture (``load_mocap_people``).
MOCAP_SOURCE = "mocap-heldout"
#: Mocap's frame (y up) to a camera's (y down, z forward): a half turn about x.
_Y_UP_TO_CAMERA = Rotation.from_euler("x", 180, degrees=True)
#: SPIN's 24 ground-truth slots of the hips (right, left).
_HIPS = (2, 3)
#: Share of the crop the person's joints span.
_FILL = 0.85


@dataclass(frozen=True)
class RealPeople:
    """P recorded people of one source, in their recording camera's frame (y down, z forward).

    joints: (P, 24, 4) metres x, y, z + confidence, SPIN's 24 ground-truth slots;
    pose, betas: (P, 72), (P, 10) SMPL parameters (``h36m-smpl`` only, else None).
    """

    name: str
    joints: np.ndarray
    pose: np.ndarray | None = None
    betas: np.ndarray | None = None


@dataclass(frozen=True)
class View:
    """A virtual camera: ``azimuth`` degrees about the person's vertical (0 faces the camera),
    ``elevation`` degrees above them."""

    azimuth: float
    elevation: float

    def rotation(self) -> np.ndarray:
        """(3, 3): from the person facing the camera to the person seen from this view."""
        return Rotation.from_euler("xy", [self.elevation, self.azimuth], degrees=True).as_matrix()


def mirror_joints(joints: np.ndarray) -> np.ndarray:
    """(P, 24, 4) -> the left/right mirror image: x negated, left and right slots exchanged."""
    mirrored = joints[:, list(GT_JOINTS_FLIP_PERM)].copy()
    mirrored[..., 0] *= -1
    return mirrored


def mirror_pose(pose: np.ndarray) -> np.ndarray:
    """(P, 72) SMPL pose -> its mirror image (SPIN's ``flip_pose``: permute, negate y and z)."""
    mirrored = pose[:, list(SMPL_POSE_FLIP_PERM)].copy()
    mirrored[:, 1::3] *= -1
    mirrored[:, 2::3] *= -1
    return mirrored


def load_real_people(shared_data: Path, source: str, model: SpinBodyModel) -> RealPeople:
    """The people of ``source`` (module doc), mirrored copies after the originals."""
    h36m = np.load(shared_data / "h36m_spin_sample.npz")
    if source == "h36m-smpl":
        pose = np.concatenate([h36m["pose"], mirror_pose(h36m["pose"])])
        betas = np.concatenate([h36m["shape"], h36m["shape"]])
        joints = _model_joints(model, pose, betas)[:, NUM_OPENPOSE_JOINTS:]
        joints = np.concatenate([joints, np.ones((*joints.shape[:2], 1))], axis=-1)
        return RealPeople(source, joints, pose, betas)
    if source == "h36m-joints":
        joints = np.asarray(h36m["S"], dtype=np.float64)
    elif source == "3dhp-joints":
        parts = [
            np.load(shared_data / "mpi_inf_3dhp_sample" / f"test_3dhp_{s}.npz") for s in ("train", "test")
        ]
        recorded = np.concatenate([np.asarray(p["S"], dtype=np.float64) for p in parts])  # (P, 17, 4)
        # the 4th column says "inside the image"; every one of the 17 joints was recorded in 3D
        recorded[..., 3] = np.isfinite(recorded[..., :3]).all(-1) & (recorded[..., :3] != 0).any(-1)
        joints = np.zeros((len(recorded), NUM_GT_JOINTS, 4))
        joints[:, list(MMPOSE_3DHP_TO_SPIN_GT)] = recorded
    else:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    return RealPeople(source, np.concatenate([joints, mirror_joints(joints)]))


@dataclass(frozen=True)
class MocapPeople:
    """The held-out mocap people of ``load_mocap_people``: the people and where they came from.

    clip: (P,) str clip names; frame: (P,) int frame numbers (the BVH's);
    residual_mm: (P,) mean distance (mm) of the MoSh body's skeleton joints from the recorded
        ones, over the joints the rig has: how far the ground truth here is from the recording.
    """

    people: RealPeople
    clip: np.ndarray
    frame: np.ndarray
    residual_mm: np.ndarray


def spread_rows(clip: np.ndarray, frame: np.ndarray, clips: tuple[str, ...], count: int) -> np.ndarray:
    """Indices of ``count`` rows spread over ``clips`` (as evenly as counts allow, earlier clips
    get the remainder) and, within a clip, evenly over its frames in order (first and last
    included). Clips with fewer rows than their share give all they have.

    clip, frame: (N,) each row's clip and frame number. Returns (<= count,) int indices.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1 frames, got {count}")
    missing = [c for c in clips if not np.any(clip == c)]
    if missing:
        raise ValueError(
            f"clips {missing} have no rows in the fits given; fit them first (spinfits model "
            "fit-prior fits every clip, held-out ones included)"
        )
    chosen = []
    for k, name in enumerate(clips):
        share = count // len(clips) + (1 if k < count % len(clips) else 0)
        if share == 0:
            continue
        rows = np.flatnonzero(clip == name)
        rows = rows[np.argsort(frame[rows], kind="stable")]
        picks = np.unique(np.round(np.linspace(0, len(rows) - 1, min(share, len(rows)))).astype(int))
        chosen.append(rows[picks])
    return np.concatenate(chosen)


def load_mocap_people(fits: Path, held_out: tuple[str, ...], count: int, model: SpinBodyModel) -> MocapPeople:
    """``count`` frames of the ``held_out`` clips' MoSh bodies in ``fits`` (module doc), turned
    from mocap's frame (y up) to a camera's (y down) like the recorded sources."""
    with np.load(fits) as data:
        missing = {"pose", "betas", "residual", "clip", "frame"} - set(data.files)
        if missing:
            raise ValueError(
                f"{fits} is not a MoSh fits npz (spinfits model fit-prior's cache): no {sorted(missing)}"
            )
        clip, frame = data["clip"].astype(str), data["frame"]
        rows = spread_rows(clip, frame, held_out, count)
        pose, betas = data["pose"][rows].astype(np.float64), data["betas"][rows].astype(np.float64)
        residual = data["residual"][rows]
    pose[:, :3] = (_Y_UP_TO_CAMERA * Rotation.from_rotvec(pose[:, :3])).as_rotvec()
    joints = _model_joints(model, pose, betas)[:, NUM_OPENPOSE_JOINTS:]
    joints = np.concatenate([joints, np.ones((*joints.shape[:2], 1))], axis=-1)
    return MocapPeople(
        RealPeople(MOCAP_SOURCE, joints, pose, betas),
        clip[rows],
        frame[rows],
        1000 * np.nanmean(residual, axis=1),
    )


def _model_joints(model: SpinBodyModel, pose: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """(P, 72), (P, 10) -> (P, 49, 3) the body model's joints, float64."""
    with torch.no_grad():
        out = model(torch.as_tensor(pose, dtype=torch.float32), torch.as_tensor(betas, dtype=torch.float32))
    return out.joints.double().numpy()


def facing_camera(joints: np.ndarray) -> np.ndarray:
    """(P, 24, 4) recorded joints -> (P, 3, 3) the turn about the vertical (-y) that makes each
    person face the camera (their forward, from the hips, along -z)."""
    hips = joints[:, _HIPS[1], :3] - joints[:, _HIPS[0], :3]  # right -> left hip
    forward = np.cross(hips, [0.0, -1.0, 0.0])  # (P, 3) horizontal: perpendicular to up
    angle = np.arctan2(forward[:, 0], forward[:, 2])  # from +z towards +x
    return Rotation.from_euler("y", (np.pi - angle)[:, None]).as_matrix()


def frame_in_crop(points: np.ndarray) -> np.ndarray:
    """(N, J, 3) joints (root-relative, any scale) -> (N, 3) camera translation framing them in
    SPIN's crop: their larger image extent spans ``_FILL`` of it, centred."""
    extent = (points[..., :2].max(1) - points[..., :2].min(1)).max(1)
    middle = (points[..., :2].max(1) + points[..., :2].min(1)) / 2
    depth = FOCAL_LENGTH * extent / (CROP_RES * _FILL)
    return np.stack([-middle[:, 0], -middle[:, 1], depth - points[..., 2].mean(1)], axis=1)


def project(points: np.ndarray, cam_t: np.ndarray) -> np.ndarray:
    """(N, J, 3) joints + (N, 3) camera translation -> (N, J, 2) crop pixels."""
    camera = points + cam_t[:, None]
    return FOCAL_LENGTH * camera[..., :2] / camera[..., 2:3] + CROP_CENTER


@dataclass(frozen=True)
class SeenPeople:
    """N = P x V rows: every person of a source from every view.

    joints49: (N, 49, 3) camera-frame joints of SPIN's 49 (``h36m-smpl``; None otherwise: only
        the 24 ground-truth slots were recorded);
    joints24: (N, 24, 4) camera-frame ground-truth slots + confidence (the 3D ground truth);
    crop: (N, 49, 2) noise-free crop pixels (slots without a recorded joint are 0);
    present: (N, 49) bool, the slots that exist for the source;
    pose, betas: (N, 72), (N, 10) ground-truth SMPL parameters (``h36m-smpl``) or None;
    person, azimuth, elevation: (N,) which person, from where.
    """

    source: str
    joints49: np.ndarray | None
    joints24: np.ndarray
    crop: np.ndarray
    present: np.ndarray
    pose: np.ndarray | None
    betas: np.ndarray | None
    person: np.ndarray
    azimuth: np.ndarray
    elevation: np.ndarray


def see_from(people: RealPeople, views: list[View], model: SpinBodyModel) -> SeenPeople:
    """Every person of ``people`` from every view (module doc)."""
    count, n_views = len(people.joints), len(views)
    turn = facing_camera(people.joints)  # (P, 3, 3)
    rotations = np.stack([view.rotation() for view in views])  # (V, 3, 3)
    total = np.einsum("vij,pjk->pvik", rotations, turn).reshape(-1, 3, 3)  # (P*V, 3, 3)
    person = np.repeat(np.arange(count), n_views)
    azimuth = np.tile([v.azimuth for v in views], count)
    elevation = np.tile([v.elevation for v in views], count)
    present = np.zeros((count * n_views, NUM_OPENPOSE_JOINTS + NUM_GT_JOINTS), dtype=bool)
    pose = betas = joints49 = None
    if people.pose is not None:
        pose = np.repeat(people.pose, n_views, axis=0)
        betas = np.repeat(people.betas, n_views, axis=0)
        orient = Rotation.from_matrix(total) * Rotation.from_rotvec(pose[:, :3])
        pose[:, :3] = orient.as_rotvec()
        joints49 = _model_joints(model, pose, betas)
        joints49 -= joints49[:, [NUM_OPENPOSE_JOINTS + h for h in _HIPS]].mean(1, keepdims=True)
        joints24 = np.concatenate([joints49[:, NUM_OPENPOSE_JOINTS:], np.ones((len(pose), 24, 1))], -1)
        present[:] = True
        points = joints49
    else:
        recorded = np.repeat(people.joints, n_views, axis=0)
        root = recorded[:, list(_HIPS), :3].mean(1, keepdims=True)
        moved = np.einsum("nij,nkj->nki", total, recorded[..., :3] - root)
        joints24 = np.concatenate([moved * (recorded[..., 3:] > 0), recorded[..., 3:]], -1)
        present[:, NUM_OPENPOSE_JOINTS:] = recorded[..., 3] > 0
        points = np.zeros((len(recorded), present.shape[1], 3))
        points[:, NUM_OPENPOSE_JOINTS:] = joints24[..., :3]
    framed = np.where(present[..., None], points, np.nan)
    cam_t = frame_in_crop(_filled(framed))
    crop = np.where(present[..., None], project(points, cam_t), 0.0)
    return SeenPeople(people.name, joints49, joints24, crop, present, pose, betas, person, azimuth, elevation)


def _filled(points: np.ndarray) -> np.ndarray:
    """(N, J, 3) with NaN for absent joints -> each absent joint replaced by the mean of the row's
    present ones (extents and means then see present joints only)."""
    first = np.nanmean(points, axis=1, keepdims=True)
    return np.where(np.isnan(points), first, points)
