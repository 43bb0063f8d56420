"""A folder of OpenPose BODY_25 JSON files plus their images -> SPIN's dataset rows.

Each JSON file (``people[i].pose_keypoints_2d``, 75 floats) matches the image of the same
relative path and name: ``frame1.json`` or OpenPose's own ``frame1_keypoints.json`` for
``frame1.jpg`` (``.jpeg``, ``.png``). Every detected person with at least ``min_keypoints``
keypoints of confidence > ``detection_threshold`` becomes a row: its box is SPIN's
``bbox_from_openpose`` (demo.py: centred on the mean of those keypoints, side = their largest
extent x ``rescale``), ``openpose`` its 25 detections as OpenPose gave them, ``part`` zeros (no
ground truth) and ``has_smpl`` 0.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spinfits.errors import InputError
from spinfits.fitting.body.joints import NUM_GT_JOINTS, NUM_OPENPOSE_JOINTS
from spinfits.fitting.converters.image_files import check_folder, find_images, listing
from spinfits.fitting.converters.spin_rows import ConvertedDataset
from spinfits.fitting.data.dataset import box_from_keypoints, read_openpose_json

logger = logging.getLogger(__name__)

#: The suffix OpenPose gives its JSON files (``--write_json``): ``frame1_keypoints.json``.
OPENPOSE_JSON_SUFFIX = "_keypoints"


@dataclass(frozen=True)
class OpenPoseFolderConfig:
    """Which detected people become rows, and their boxes.

    min_keypoints: keypoints of confidence > ``detection_threshold`` a person needs to become a
        row (2..25); fewer are skipped and counted.
    detection_threshold: SPIN's ``bbox_from_openpose`` threshold: the keypoints that place the
        box and count towards ``min_keypoints``.
    rescale: box side / extent of those keypoints (SPIN's 1.2).
    """

    min_keypoints: int = 8
    detection_threshold: float = 0.2
    rescale: float = 1.2

    def __post_init__(self) -> None:
        if not 2 <= self.min_keypoints <= NUM_OPENPOSE_JOINTS:
            raise InputError(
                f"min_keypoints must be in [2, {NUM_OPENPOSE_JOINTS}] (a box needs 2 keypoints), "
                f"got {self.min_keypoints}"
            )
        if not 0 <= self.detection_threshold < 1:
            raise InputError(
                f"detection_threshold must be in [0, 1) (OpenPose confidences), got {self.detection_threshold}"
            )
        if not self.rescale > 0:
            raise InputError(f"rescale must be > 0 (box side / keypoint extent), got {self.rescale}")


def match_openpose_files(keypoints_dir: str | Path, images_dir: str | Path) -> list[tuple[Path, str]]:
    """Each JSON file under ``keypoints_dir`` with its image: (json path, imgname relative to
    ``images_dir``), sorted by imgname. Any JSON file without an image, or image without a JSON
    file, is an error that lists them."""
    keypoints_dir = check_folder(keypoints_dir, "--keypoints", "OpenPose JSON files")
    images_dir = check_folder(images_dir, "--images", "images")
    json_files = sorted(path for path in keypoints_dir.rglob("*.json") if path.is_file())
    if not json_files:
        raise InputError(
            f"--keypoints {keypoints_dir} holds no .json files; expected OpenPose's output "
            f"(openpose --write_json DIR): one JSON file per image"
        )
    images = find_images(images_dir)
    claimed: dict[str, Path] = {}
    orphans: list[str] = []
    for path in json_files:
        key = _image_key(path.relative_to(keypoints_dir), images)
        if key is None:
            orphans.append(path.relative_to(keypoints_dir).as_posix())
        elif key in claimed:
            raise InputError(
                f"{claimed[key]} and {path} both match the image {images[key]}; keep one JSON file per image"
            )
        else:
            claimed[key] = path
    unmatched = sorted(set(images) - set(claimed))
    if orphans or unmatched:
        problems = []
        if orphans:
            problems.append(
                f"{len(orphans)} JSON files in {keypoints_dir} have no image in {images_dir} ({listing(orphans)})"
            )
        if unmatched:
            names = [images[key].relative_to(images_dir).as_posix() for key in unmatched]
            problems.append(
                f"{len(names)} images in {images_dir} have no JSON file in {keypoints_dir} ({listing(names)})"
            )
        raise InputError(
            f"{'; '.join(problems)}. Each image needs its OpenPose JSON file of the same name and "
            f"subfolder (frame1.jpg/.jpeg/.png: frame1.json or frame1_keypoints.json): add the "
            f"missing files or move the extra ones out"
        )
    pairs = [(path, images[key].relative_to(images_dir).as_posix()) for key, path in claimed.items()]
    return sorted(pairs, key=lambda pair: pair[1])


def _image_key(relative_json: Path, images: dict[str, Path]) -> str | None:
    """The key of ``images`` a JSON file (path relative to its folder) matches, or None."""
    exact = relative_json.with_suffix("").as_posix()
    if exact in images:
        return exact
    if exact.endswith(OPENPOSE_JSON_SUFFIX):
        stripped = exact[: -len(OPENPOSE_JSON_SUFFIX)]
        if stripped in images:
            return stripped
    return None


def convert_openpose_folder(
    keypoints_dir: str | Path, images_dir: str | Path, config: OpenPoseFolderConfig | None = None
) -> ConvertedDataset:
    """One row per detected person of every JSON file (see the module docstring)."""
    config = config or OpenPoseFolderConfig()
    imgnames: list[str] = []
    people: list[np.ndarray] = []
    few = degenerate = empty = 0
    for path, imgname in match_openpose_files(keypoints_dir, images_dir):
        detections = read_openpose_json(path)  # (P, 25, 3); names the file on bad input
        if len(detections) == 0:
            empty += 1
        for person in detections:
            confident = person[person[:, 2] > config.detection_threshold, :2]
            if len(confident) < config.min_keypoints:
                few += 1
            elif (np.ptp(confident, axis=0) == 0).all():
                degenerate += 1
            else:
                imgnames.append(imgname)
                people.append(person)
    skipped = tuple(
        (reason, count)
        for reason, count in (
            (
                f"people with fewer than {config.min_keypoints} keypoints of confidence > "
                f"{config.detection_threshold}",
                few,
            ),
            ("people whose confident keypoints all lie on one point", degenerate),
            ("images with no person detected", empty),
        )
        if count
    )
    for reason, count in skipped:
        logger.info("skipped %d %s", count, reason)
    openpose = np.stack(people) if people else np.zeros((0, NUM_OPENPOSE_JOINTS, 3))
    if len(openpose) == 0:
        raise InputError(
            f"no person in --keypoints {keypoints_dir} has {config.min_keypoints} keypoints of "
            f"confidence > {config.detection_threshold} ({', '.join(f'{c} {r}' for r, c in skipped)}); "
            f"lower --min-keypoints to keep people with fewer keypoints"
        )
    center, scale = box_from_keypoints(openpose, config.detection_threshold, config.rescale)
    return ConvertedDataset(
        imgname=np.asarray(imgnames, dtype=str),
        center=center,
        scale=scale,
        part=np.zeros((len(openpose), NUM_GT_JOINTS, 3)),
        openpose=openpose,
        skipped=skipped,
    )
