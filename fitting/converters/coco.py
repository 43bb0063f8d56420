"""COCO person keypoint annotations -> SPIN's dataset rows, as SPIN's own ``coco.py``.

Per annotation (in the file's order): the 17 COCO keypoints go to SPIN's 24-joint ``part``
(``COCO_TO_SPIN_GT``; labelled keypoints, visible or not, get confidence 1); the annotation is
kept only when at least ``min_body_joints`` of the 12 body joints (shoulders to ankles) are
labelled (SPIN: all 12); the box is the annotation's ``bbox`` [x, y, w, h]: center its middle,
scale = ``rescale`` x max(w, h) / 200 (SPIN's 1.2). ``imgname`` is the image's ``file_name``,
relative to the images folder, whose files must exist. No OpenPose detections (``openpose``
zeros: SPIN matches its own, which these annotations do not have), ``has_smpl`` 0.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spinfits.errors import InputError
from spinfits.fitting.body.joints import NUM_GT_JOINTS, NUM_OPENPOSE_JOINTS
from spinfits.fitting.converters.image_files import check_folder, check_images_exist
from spinfits.fitting.converters.spin_rows import ConvertedDataset
from spinfits.fitting.data.dataset import check_keypoints
from spinfits.fitting.data.dataset_joint_maps import COCO_BODY_JOINTS, COCO_KEYPOINT_NAMES, COCO_TO_SPIN_GT
from spinfits.fitting.data.spin_crop import BOX_SCALE_PX

logger = logging.getLogger(__name__)

NUM_COCO_KEYPOINTS = len(COCO_KEYPOINT_NAMES)


@dataclass(frozen=True)
class CocoConfig:
    """Which annotations become rows, and their boxes.

    min_body_joints: labelled body joints (of the 12, shoulders to ankles) an annotation needs
        (SPIN's 12: all of them); fewer are skipped and counted.
    rescale: box side / the bbox's longer side (SPIN's 1.2).
    """

    min_body_joints: int = len(COCO_BODY_JOINTS)
    rescale: float = 1.2

    def __post_init__(self) -> None:
        if not 0 <= self.min_body_joints <= len(COCO_BODY_JOINTS):
            raise InputError(
                f"min_body_joints must be in [0, {len(COCO_BODY_JOINTS)}] (COCO's body joints, "
                f"shoulders to ankles), got {self.min_body_joints}"
            )
        if not self.rescale > 0:
            raise InputError(f"rescale must be > 0 (box side / bbox side), got {self.rescale}")


def read_coco_json(path: str | Path) -> tuple[dict[int, str], list[dict]]:
    """A COCO keypoint annotation file: (image id -> file_name, annotations)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"--annotations {path} does not exist; expected a COCO person keypoint file "
            f"(e.g. person_keypoints_train2014.json)"
        )
    try:
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(
            f"{path} is not JSON ({error}); expected COCO's person keypoint annotations"
        ) from None
    if (
        not isinstance(document, dict)
        or not isinstance(document.get("images"), list)
        or not isinstance(document.get("annotations"), list)
    ):
        keys = sorted(document) if isinstance(document, dict) else type(document).__name__
        raise InputError(
            f"{path} is not a COCO annotation file: expected an object with 'images' and "
            f"'annotations' lists, got {keys}"
        )
    try:
        images = {int(image["id"]): str(image["file_name"]) for image in document["images"]}
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(
            f"{path}: every entry of 'images' needs an 'id' and a 'file_name' ({type(error).__name__}: {error})"
        ) from None
    return images, document["annotations"]


def convert_coco(
    annotations: str | Path, images_dir: str | Path, config: CocoConfig | None = None
) -> ConvertedDataset:
    """SPIN's rows of a COCO keypoint annotation file (see the module docstring)."""
    config = config or CocoConfig()
    path = Path(annotations)
    images_dir = check_folder(images_dir, "--images", "the COCO images (e.g. train2014/)")
    file_names, entries = read_coco_json(path)
    imgnames, centers, scales, parts = [], [], [], []
    few = 0
    for index, entry in enumerate(entries):
        where = f"{path}: annotation {index} (id {entry.get('id') if isinstance(entry, dict) else '?'})"
        keypoints = _keypoints(entry, where)
        labelled = keypoints[:, 2] > 0
        keypoints[labelled, 2] = 1.0
        if labelled[list(COCO_BODY_JOINTS)].sum() < config.min_body_joints:
            few += 1
            continue
        image_id = entry.get("image_id")
        if image_id not in file_names:
            raise InputError(f"{where} has image_id {image_id!r}, which no entry of 'images' has")
        center, scale = _box(entry.get("bbox"), config.rescale, where)
        part = np.zeros((NUM_GT_JOINTS, 3))
        part[list(COCO_TO_SPIN_GT)] = keypoints
        imgnames.append(file_names[image_id])
        centers.append(center)
        scales.append(scale)
        parts.append(part)
    reason = f"annotations with fewer than {config.min_body_joints} of 12 body joints labelled"
    skipped = ((reason, few),) if few else ()
    for reason, count in skipped:
        logger.debug("skipped %d %s", count, reason)  # the command line says it
    if not parts:
        raise InputError(
            f"no annotation of {path} has {config.min_body_joints} of the 12 body joints (shoulders to "
            f"ankles) labelled ({len(entries)} annotations); lower --min-body-joints to keep them"
        )
    check_images_exist(images_dir, imgnames, str(path))
    rows = len(parts)
    return ConvertedDataset(
        imgname=np.asarray(imgnames, dtype=str),
        center=np.asarray(centers),
        scale=np.asarray(scales),
        part=check_keypoints(np.stack(parts), str(path)),
        openpose=np.zeros((rows, NUM_OPENPOSE_JOINTS, 3)),
        skipped=skipped,
    )


def _keypoints(entry: object, where: str) -> np.ndarray:
    """(17, 3) x, y, visibility of one annotation."""
    values = entry.get("keypoints") if isinstance(entry, dict) else None
    try:
        keypoints = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        keypoints = np.zeros(0)
    if keypoints.shape != (NUM_COCO_KEYPOINTS * 3,):
        raise InputError(
            f"{where}: 'keypoints' is {_short(values)}, expected {NUM_COCO_KEYPOINTS * 3} numbers "
            f"(COCO's 17 keypoints x (x, y, visibility)); is this a person keypoint file?"
        )
    return keypoints.reshape(NUM_COCO_KEYPOINTS, 3)


def _box(bbox: object, rescale: float, where: str) -> tuple[np.ndarray, float]:
    """SPIN's center (2,) and scale of a COCO bbox [x, y, w, h]."""
    try:
        x, y, width, height = (float(value) for value in bbox)
    except (TypeError, ValueError):
        raise InputError(f"{where}: 'bbox' is {_short(bbox)}, expected [x, y, width, height]") from None
    if not (np.isfinite([x, y, width, height]).all() and max(width, height) > 0):
        raise InputError(
            f"{where}: 'bbox' {[x, y, width, height]} must be finite with width or height > 0 "
            f"(SPIN's box side is the longer of the two)"
        )
    return np.array([x + width / 2, y + height / 2]), rescale * max(width, height) / BOX_SCALE_PX


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
