"""MPII Human Pose annotations (``mpii_human_pose_v1_u12_1.mat``) -> SPIN's dataset rows, as
SPIN's ``mpii.py``.

The file's ``RELEASE.annolist(i)`` is image i: ``image.name`` and ``annorect``, one struct per
person, whose ``annopoints.point`` lists the labelled joints (``id`` 0..15, ``MPII_JOINT_NAMES``;
``x``, ``y`` pixels; ``is_visible``), with the person's rough position ``objpos.x/y`` and
``scale`` (person height / 200 px). Test images' people carry no ``annopoints``.

SPIN's rows (it reads the same people from pose-hg's ``train.h5``, made from this file): one per
person with at least ``min_joints`` of the 16 joints labelled (SPIN: all 16); ``part`` (N, 24, 3)
with the joints in SPIN's slots (``MPII_TO_SPIN_GT``), labelled joints of confidence 1, visible
or not; ``center`` = ``objpos``, ``scale`` = MPII's ``scale`` x ``rescale`` (SPIN's 1: as the
file has it; people without them are skipped and counted); ``imgname`` the image's name, relative to MPII's ``images/`` folder. No OpenPose
detections (``spinfits data attach-openpose`` adds them), ``has_smpl`` 0.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spinfits.errors import InputError
from spinfits.fitting.body.joints import NUM_GT_JOINTS, NUM_OPENPOSE_JOINTS
from spinfits.fitting.converters.image_files import check_folder, check_images_exist
from spinfits.fitting.converters.mat_file import read_mat
from spinfits.fitting.converters.spin_rows import ConvertedDataset
from spinfits.fitting.data.dataset_joint_maps import MPII_JOINT_NAMES, MPII_TO_SPIN_GT

logger = logging.getLogger(__name__)

NUM_MPII_JOINTS = len(MPII_JOINT_NAMES)
_EXPECTED = "MPII's mpii_human_pose_v1_u12_1.mat (a struct RELEASE with annolist)"


@dataclass(frozen=True)
class MpiiConfig:
    """Which people become rows, and their boxes.

    min_joints: labelled joints (of 16) a person needs (SPIN's 16: all); fewer are skipped and
        counted.
    rescale: box side / MPII's person scale (SPIN's 1.0).
    """

    min_joints: int = NUM_MPII_JOINTS
    rescale: float = 1.0

    def __post_init__(self) -> None:
        if not 1 <= self.min_joints <= NUM_MPII_JOINTS:
            raise InputError(f"min_joints must be in [1, {NUM_MPII_JOINTS}], got {self.min_joints}")
        if not self.rescale > 0:
            raise InputError(f"rescale must be > 0 (box side / MPII's scale), got {self.rescale}")


def _items(value: Any) -> list[Any]:
    """A MATLAB struct array as a list: one struct (squeezed), an array of them, or empty."""
    if isinstance(value, np.ndarray):
        return list(value.reshape(-1))
    return [value]


def _empty(value: Any) -> bool:
    """A field MATLAB left empty (``[]``) or that the struct array lacks."""
    return value is None or (isinstance(value, np.ndarray) and value.size == 0)


def _field(struct: Any, name: str, where: str) -> Any:
    if not hasattr(struct, name):
        fields = getattr(struct, "_fieldnames", None)
        raise InputError(
            f"{where} has no field '{name}' (it has {fields if fields is not None else type(struct).__name__}); "
            f"expected {_EXPECTED}"
        )
    return getattr(struct, name)


def _number(value: Any, where: str) -> float:
    try:
        number = float(np.asarray(value, dtype=np.float64).reshape(()))
    except (TypeError, ValueError):
        raise InputError(f"{where} is {value!r}, expected a number; expected {_EXPECTED}") from None
    if not np.isfinite(number):
        raise InputError(f"{where} is {number}, expected a finite number")
    return number


def _joints(rect: Any, where: str) -> np.ndarray | None:
    """(16, 3) x, y, labelled of one person, or None when it has no ``annopoints``."""
    points_struct = getattr(rect, "annopoints", None)
    if _empty(points_struct):
        return None
    joints = np.zeros((NUM_MPII_JOINTS, 3))
    for point in _items(_field(points_struct, "point", f"{where}.annopoints")):
        joint = int(_number(_field(point, "id", f"{where}.annopoints.point"), f"{where}.annopoints.point.id"))
        if not 0 <= joint < NUM_MPII_JOINTS:
            raise InputError(f"{where}: joint id {joint} is not one of MPII's 16 (0..15)")
        if joints[joint, 2]:
            raise InputError(f"{where}: joint id {joint} ({MPII_JOINT_NAMES[joint]}) is labelled twice")
        x = _number(_field(point, "x", f"{where}.annopoints.point"), f"{where} joint {joint} x")
        y = _number(_field(point, "y", f"{where}.annopoints.point"), f"{where} joint {joint} y")
        joints[joint] = (x, y, 1.0)
    return joints


def convert_mpii(
    annotations: str | Path, images_dir: str | Path | None = None, config: MpiiConfig | None = None
) -> ConvertedDataset:
    """SPIN's rows of MPII's annotation file (see the module docstring); with ``images_dir``,
    every kept person's image must exist there."""
    config = config or MpiiConfig()
    path = Path(annotations)
    variables = read_mat(path, _EXPECTED)
    if "RELEASE" not in variables:
        raise InputError(f"{path} has no 'RELEASE' struct (it has {sorted(variables)}); expected {_EXPECTED}")
    annolist = _items(_field(variables["RELEASE"], "annolist", f"{path}: RELEASE"))
    imgnames, centers, scales, parts = [], [], [], []
    unlabelled = few = unplaced = 0
    for index, image in enumerate(annolist):
        where = f"{path}: RELEASE.annolist({index + 1})"
        name = str(_field(_field(image, "image", where), "name", f"{where}.image"))
        for person, rect in enumerate(_items(getattr(image, "annorect", np.zeros(0)))):
            at = f"{where}.annorect({person + 1}) of {name}"
            joints = _joints(rect, at)
            if joints is None:
                unlabelled += 1
                continue
            if joints[:, 2].sum() < config.min_joints:
                few += 1
                continue
            objpos, scale = getattr(rect, "objpos", None), getattr(rect, "scale", None)
            if _empty(objpos) or _empty(scale):
                unplaced += 1
                continue
            center = [_number(_field(objpos, axis, f"{at}.objpos"), f"{at}.objpos.{axis}") for axis in "xy"]
            scale = _number(scale, f"{at}.scale")
            if scale <= 0:
                raise InputError(f"{at}.scale is {scale}, expected > 0 (person height / 200 px)")
            part = np.zeros((NUM_GT_JOINTS, 3))
            part[list(MPII_TO_SPIN_GT)] = joints
            imgnames.append(name)
            centers.append(center)
            scales.append(scale * config.rescale)
            parts.append(part)
    skipped = tuple(
        (reason, count)
        for reason, count in (
            ("people without joint annotations (MPII's test images)", unlabelled),
            (f"people with fewer than {config.min_joints} of 16 joints labelled", few),
            ("people without a position (objpos) or scale", unplaced),
        )
        if count
    )
    for reason, count in skipped:
        logger.debug("skipped %d %s", count, reason)  # the command line says it
    if not parts:
        raise InputError(
            f"no person of {path} has {config.min_joints} of MPII's 16 joints labelled ({len(annolist)} "
            f"images, {unlabelled} people without joints); lower --min-joints to keep them"
        )
    if images_dir is not None:
        check_images_exist(check_folder(images_dir, "--images", "MPII's images/"), imgnames, str(path))
    return ConvertedDataset(
        imgname=np.asarray(imgnames, dtype=str),
        center=np.asarray(centers, dtype=np.float64),
        scale=np.asarray(scales, dtype=np.float64),
        part=np.stack(parts),
        openpose=np.zeros((len(parts), NUM_OPENPOSE_JOINTS, 3)),
        skipped=skipped,
    )
