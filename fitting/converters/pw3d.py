"""3DPW sequence files (``sequenceFiles/{train,validation,test}/*.pkl``) -> SPIN's dataset rows,
as SPIN's ``pw3d.py``, with each row's gender for the gendered SMPL models.

A sequence file is a Python 2 pickle (read as latin1, numpy data only: ``restricted_pickle``) of
a dict: ``sequence`` (name), per person p: ``genders[p]`` ('m'/'f'), ``betas[p]`` (10+,),
``poses[p]`` (F, 72) SMPL pose in the world frame, ``poses2d[p]`` (F, 3, 18) OpenPose COCO-18
detections x, y, confidence, ``campose_valid[p]`` (F,); and ``cam_poses`` (F, 4, 4) world ->
camera.

SPIN's rows: one per person and frame with ``campose_valid``; ``pose`` with the global rotation
turned into the camera frame (``R_cam @ R_global``), ``shape`` the first 10 betas, ``gender``;
the box around the confident 2D joints (x 1.2); ``imgname`` ``imageFiles/SEQ/image_00042.jpg``
(relative to 3DPW's folder). Also (SPIN keeps none): ``openpose`` the 18 COCO-18 detections in
their BODY_25 slots (``OPENPOSE_COCO18_TO_BODY25``), so precompute has keypoints to fit. ``part``
zeros. Frames whose detections place no box are skipped and counted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from spinfits.errors import InputError
from spinfits.fitting.body.joints import NUM_GT_JOINTS, NUM_OPENPOSE_JOINTS
from spinfits.fitting.converters.image_files import check_folder, check_images_exist, listing
from spinfits.fitting.converters.restricted_pickle import load_data_pickle
from spinfits.fitting.converters.spin_rows import ConvertedDataset, box_around_joints
from spinfits.fitting.data.dataset_joint_maps import OPENPOSE_COCO18_TO_BODY25

logger = logging.getLogger(__name__)

_EXPECTED = "a 3DPW sequence file (sequenceFiles/*/SEQUENCE.pkl)"
#: 3DPW's genders, as SPIN's npz keeps them.
GENDERS = ("m", "f")
NUM_COCO18_JOINTS = len(OPENPOSE_COCO18_TO_BODY25)


def sequence_files(paths: Sequence[str | Path]) -> list[Path]:
    """The .pkl files named, folders expanded to their .pkl files (sorted)."""
    files: list[Path] = []
    for given in map(Path, paths):
        if given.is_dir():
            found = sorted(given.glob("*.pkl"))
            if not found:
                raise InputError(
                    f"{given} holds no .pkl files; expected 3DPW's sequenceFiles/test/ or one of them"
                )
            files.extend(found)
        elif given.is_file():
            files.append(given)
        else:
            raise InputError(f"{given} does not exist; expected {_EXPECTED} or a folder of them")
    return files


def _array(value: Any, where: str, shape: tuple[int | None, ...]) -> np.ndarray:
    """``value`` as float64 of ``shape`` (None: any length there)."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{where} is {type(value).__name__}, expected numbers of shape {shape}") from None
    if array.ndim != len(shape) or any(
        want is not None and got != want for got, want in zip(array.shape, shape)
    ):
        expected = tuple("F" if want is None else want for want in shape)
        raise InputError(f"{where} has shape {array.shape}, expected {expected}; expected {_EXPECTED}")
    if not np.isfinite(array).all():
        raise InputError(f"{where} has NaN or infinite values")
    return array


def _people(data: dict, path: Path) -> int:
    for key in ("sequence", "genders", "betas", "poses", "poses2d", "campose_valid", "cam_poses"):
        if key not in data:
            raise InputError(f"{path} has no '{key}' (it has {sorted(map(str, data))}); expected {_EXPECTED}")
    people = len(data["poses"])
    for key in ("genders", "betas", "poses2d", "campose_valid"):
        if len(data[key]) != people:
            raise InputError(
                f"{path}: '{key}' lists {len(data[key])} people, 'poses' {people}; expected one per person"
            )
    return people


def read_sequence(path: Path) -> tuple[dict[str, list[np.ndarray]], dict[str, int]]:
    """One sequence file's rows, as blocks (one per person) of imgname, pose (n, 72), shape
    (n, 10), gender and openpose (n, 25, 3); and the frames skipped, "invalid" and "no box"."""
    data = load_data_pickle(path, str(path), _EXPECTED)
    if not isinstance(data, dict):
        raise InputError(f"{path} holds a {type(data).__name__}, expected a dict; expected {_EXPECTED}")
    people = _people(data, path)
    sequence = str(data["sequence"])
    cam_poses = _array(data["cam_poses"], f"{path}: 'cam_poses'", (None, 4, 4))  # (F, 4, 4)
    frames = len(cam_poses)
    names = np.asarray([f"imageFiles/{sequence}/image_{frame:05d}.jpg" for frame in range(frames)])
    rows: dict[str, list[np.ndarray]] = {
        key: [] for key in ("imgname", "pose", "shape", "gender", "openpose")
    }
    counts = {"invalid": 0, "no box": 0}
    for person in range(people):
        at = f"{path}: person {person}"
        gender = str(data["genders"][person])
        if gender not in GENDERS:
            raise InputError(f"{at}: 'genders' is {gender!r}, expected 'm' or 'f'")
        poses = _array(data["poses"][person], f"{at} 'poses'", (frames, 72))  # (F, 72)
        betas = _array(data["betas"][person], f"{at} 'betas'", (None,))
        if len(betas) < 10:
            raise InputError(f"{at}: 'betas' has {len(betas)} values, expected at least 10 (SMPL's shape)")
        coco18 = _array(data["poses2d"][person], f"{at} 'poses2d'", (frames, 3, NUM_COCO18_JOINTS))
        valid = _array(data["campose_valid"][person], f"{at} 'campose_valid'", (frames,)) > 0
        counts["invalid"] += int((~valid).sum())
        openpose = np.zeros((frames, NUM_OPENPOSE_JOINTS, 3))
        openpose[:, list(OPENPOSE_COCO18_TO_BODY25)] = np.transpose(coco18, (0, 2, 1))
        _, _, placed = box_around_joints(openpose)
        counts["no box"] += int((valid & ~placed).sum())
        keep = valid & placed
        rotation = cam_poses[keep, :3, :3] @ Rotation.from_rotvec(poses[keep, :3]).as_matrix()  # (n, 3, 3)
        pose = poses[keep].copy()
        pose[:, :3] = Rotation.from_matrix(rotation).as_rotvec() if keep.any() else pose[:, :3]
        rows["imgname"].append(names[keep])
        rows["pose"].append(pose)
        rows["shape"].append(np.tile(betas[:10], (int(keep.sum()), 1)))
        rows["gender"].append(np.full(int(keep.sum()), gender))
        rows["openpose"].append(openpose[keep])
    return rows, counts


def convert_pw3d(
    paths: Sequence[str | Path], images_dir: str | Path | None = None, rescale: float = 1.2
) -> ConvertedDataset:
    """SPIN's rows of 3DPW sequence files or folders of them (see the module docstring); with
    ``images_dir`` (3DPW's folder, holding imageFiles/), every row's image must exist there."""
    if not rescale > 0:
        raise InputError(f"rescale must be > 0 (box side / joint extent), got {rescale}")
    files = sequence_files(paths)
    parts: dict[str, list[np.ndarray]] = {}
    invalid = no_box = 0
    for path in files:
        rows, counts = read_sequence(path)
        for key, blocks in rows.items():
            parts.setdefault(key, []).extend(blocks)
        invalid += counts["invalid"]
        no_box += counts["no box"]
    arrays = {key: np.concatenate(blocks) if blocks else np.zeros(0) for key, blocks in parts.items()}
    if len(arrays.get("imgname", ())) == 0:
        raise InputError(
            f"no frame of {listing([str(path) for path in files])} has a valid camera pose and 2D "
            f"joints to place a box ({invalid} frames without campose_valid, {no_box} without joints)"
        )
    skipped = tuple(
        (reason, count)
        for reason, count in (
            ("frames of people without a valid camera pose (campose_valid 0)", invalid),
            ("frames whose 2D joints place no box", no_box),
        )
        if count
    )
    for reason, count in skipped:
        logger.debug("skipped %d %s", count, reason)  # the command line says it
    if images_dir is not None:
        check_images_exist(
            check_folder(images_dir, "--images", "3DPW (holding imageFiles/)"), arrays["imgname"], "3DPW"
        )
    rows = len(arrays["imgname"])
    center, scale, _ = box_around_joints(arrays["openpose"], rescale)
    return ConvertedDataset(
        imgname=arrays["imgname"].astype(str),
        center=center,
        scale=scale,
        part=np.zeros((rows, NUM_GT_JOINTS, 3)),
        openpose=arrays["openpose"],
        pose=arrays["pose"],
        shape=arrays["shape"],
        gender=arrays["gender"].astype(str),
        skipped=skipped,
    )
