"""A person's box in an image, SPIN's way: from a box JSON file or from OpenPose's detections.

A box is ``center`` (2,) image px and ``scale`` = side / 200 px (SPIN's convention, see
``fitting.data.dataset``). SPIN's demo reads ``{"bbox": [x, y, width, height]}`` (top-left corner,
size; the box made square by its longer side, ``bbox_from_json``), or places the box on the
OpenPose keypoints with confidence > 0.2, 1.2 times their largest extent (``bbox_from_openpose``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spinfits.errors import InputError
from spinfits.fitting.data.dataset import box_from_keypoints, read_openpose_json
from spinfits.fitting.data.spin_crop import BOX_SCALE_PX


@dataclass(frozen=True)
class PersonBox:
    """center: (2,) float64 image px; scale: box side / 200 px; keypoints: (25, 3) OpenPose
    BODY_25 image px x, y, confidence when the box came from detections, else None."""

    center: np.ndarray
    scale: float
    keypoints: np.ndarray | None = None


def read_bbox_json(path: str | Path) -> PersonBox:
    """SPIN's box file ``{"bbox": [x, y, width, height]}``: centre of that rectangle, side = its
    longer side."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f'box file {path} does not exist; expected JSON like {{"bbox": [17, 37, 117, 142]}}')
    try:
        box = np.asarray(json.loads(path.read_text())["bbox"], dtype=np.float64)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as error:
        raise InputError(
            f"{path} is not a box file ({type(error).__name__}: {error}); expected JSON "
            f'{{"bbox": [x, y, width, height]}} in image pixels (top-left corner, size), as SPIN\'s '
            f"examples/im1010_bbox.json"
        ) from None
    if box.shape != (4,) or not np.isfinite(box).all() or box[2] <= 0 or box[3] <= 0:
        raise InputError(
            f"{path}: bbox is {box.tolist()}, expected 4 finite numbers [x, y, width, height] with "
            f"width and height > 0 (pixels)"
        )
    return PersonBox(center=box[:2] + 0.5 * box[2:], scale=float(box[2:].max() / BOX_SCALE_PX))


def box_from_openpose_json(
    path: str | Path, person: int = 0, threshold: float = 0.2, rescale: float = 1.2
) -> PersonBox:
    """The box of person ``person`` of an OpenPose BODY_25 JSON file (SPIN's ``bbox_from_openpose``),
    with that person's keypoints."""
    people = read_openpose_json(path)
    if not 0 <= person < len(people):
        raise InputError(
            f"{path} holds {len(people)} people, asked for person {person}; pick one in 0..{len(people) - 1}"
            if len(people)
            else f"{path} holds no detected person"
        )
    center, scale = box_from_keypoints(people[person : person + 1], threshold, rescale)
    return PersonBox(center=center[0], scale=float(scale[0]), keypoints=people[person])
