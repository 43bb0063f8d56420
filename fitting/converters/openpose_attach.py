"""OpenPose detections attached to the rows of an existing SPIN dataset npz (SPIN's ``openpose``
member, as its ``read_openpose.py`` adds them to LSP, MPII, COCO...).

Each row's image is matched to its JSON file by name: the JSON file at the image's relative path
without suffix, plus ``.json``, OpenPose's ``_keypoints.json`` or SPIN's ``_openpose.json``;
failing that, a JSON file of the image's base name anywhere in the folder (SPIN keeps its
detections in flat folders while ``imgname`` is ``images/im0001.jpg``), when only one has it.

Of the people in the file, the row gets the one closest to it: with at least
``min_shared_joints`` of SPIN's 12 limb joints both annotated (``part``) and detected, the mean
distance between them (SPIN's match, ``OPENPOSE_FOR_SPIN_GT_LIMBS``); else the distance between
the row's box centre and the detection's (rows without ground truth). Distances are relative to
the row's box side (scale x 200 px); the closest person is taken when within ``max_distance``.
Rows without a JSON file, or without a person close enough, get zeros (no detection: SPIN's
rule) and are counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from spinfits.errors import InputError
from spinfits.fitting.body.joints import NUM_OPENPOSE_JOINTS
from spinfits.fitting.converters.image_files import check_folder
from spinfits.fitting.converters.openpose_folder import OPENPOSE_JSON_SUFFIXES
from spinfits.fitting.data.dataset import load_spin_npz, read_openpose_json
from spinfits.fitting.data.dataset_joint_maps import OPENPOSE_FOR_SPIN_GT_LIMBS
from spinfits.fitting.data.npz_members import NpzMembers
from spinfits.fitting.data.spin_crop import BOX_SCALE_PX

_LIMB_SLOTS = list(range(len(OPENPOSE_FOR_SPIN_GT_LIMBS)))


@dataclass(frozen=True)
class AttachConfig:
    """How a row's person is chosen among a JSON file's detections.

    max_distance: largest distance (box sides) between a row and the person given to it.
    min_shared_joints: limb joints (of 12) annotated and detected for the joint match; fewer:
        the box centres are compared.
    overwrite: replace the npz's own non-zero ``openpose`` (else an error).
    """

    max_distance: float = 0.15
    min_shared_joints: int = 4
    overwrite: bool = False

    def __post_init__(self) -> None:
        if not self.max_distance > 0:
            raise InputError(f"max_distance must be > 0 (box sides), got {self.max_distance}")
        if not 1 <= self.min_shared_joints <= len(_LIMB_SLOTS):
            raise InputError(
                f"min_shared_joints must be in [1, {len(_LIMB_SLOTS)}], got {self.min_shared_joints}"
            )


@dataclass(frozen=True)
class AttachedOpenPose:
    """The dataset's arrays with ``openpose`` (N, 25, 3) set, and how the rows fared.

    matched: rows given a detection; no_file: rows whose image has no JSON file; no_person: rows
    whose JSON file has nobody within ``max_distance``. unused_files: JSON files no row named.
    """

    arrays: dict[str, np.ndarray]
    matched: int
    no_file: int
    no_person: int
    unused_files: int


def _json_index(keypoints_dir: Path) -> tuple[dict[str, Path], dict[str, list[Path]]]:
    """JSON files by image key (relative path without suffix) and by base name."""
    by_key: dict[str, Path] = {}
    by_base: dict[str, list[Path]] = {}
    for path in sorted(keypoints_dir.rglob("*.json")):
        key = path.relative_to(keypoints_dir).with_suffix("").as_posix()
        for suffix in OPENPOSE_JSON_SUFFIXES:
            if key.endswith(suffix):
                key = key[: -len(suffix)]
                break
        if key in by_key:
            raise InputError(f"{by_key[key]} and {path} are both the detections of image {key}; keep one")
        by_key[key] = path
        by_base.setdefault(PurePosixPath(key).name, []).append(path)
    if not by_key:
        raise InputError(f"--keypoints {keypoints_dir} holds no .json files; expected OpenPose's output")
    return by_key, by_base


def _distances(
    people: np.ndarray, part: np.ndarray, center: np.ndarray, side: float, config: AttachConfig
) -> np.ndarray:
    """(P,) distance of each detected person (P, 25, 3) to the row, in box sides."""
    detected = people[:, list(OPENPOSE_FOR_SPIN_GT_LIMBS)]  # (P, 12, 3)
    shared = (detected[..., 2] > 0) & (part[_LIMB_SLOTS, 2] > 0)  # (P, 12)
    distances = np.full(len(people), np.inf)
    for index, person in enumerate(people):
        if shared[index].sum() >= config.min_shared_joints:
            gaps = np.linalg.norm(
                detected[index, shared[index], :2] - part[_LIMB_SLOTS][shared[index], :2], axis=1
            )
            distances[index] = gaps.mean() / side
        elif (person[:, 2] > 0).any():
            distances[index] = np.linalg.norm(person[person[:, 2] > 0, :2].mean(axis=0) - center) / side
    return distances


def attach_openpose(
    dataset_npz: str | Path, keypoints_dir: str | Path, config: AttachConfig | None = None
) -> AttachedOpenPose:
    """The arrays of ``dataset_npz`` with each row's OpenPose detection (module docstring)."""
    config = config or AttachConfig()
    path = Path(dataset_npz)
    keypoints_dir = check_folder(keypoints_dir, "--keypoints", "OpenPose JSON files")
    load_spin_npz(path)  # its checks: rows, boxes, keypoints
    with NpzMembers(path, "SPIN's dataset npz") as members:
        arrays = {name: members.read(name) for name in members.names}
    if "imgname" not in arrays:
        raise InputError(
            f"{path} has no 'imgname' (it has {sorted(arrays)}); the detections are matched to rows by image name"
        )
    imgname = arrays["imgname"].astype(str)
    rows = len(imgname)
    part = arrays.get("part", np.zeros((rows, 24, 3)))
    if "openpose" in arrays and (np.asarray(arrays["openpose"])[..., 2] > 0).any() and not config.overwrite:
        had = int((np.asarray(arrays["openpose"])[..., 2] > 0).any(axis=-1).sum())
        raise InputError(
            f"{path} already has OpenPose detections for {had} rows; pass --overwrite to replace them"
        )
    by_key, by_base = _json_index(keypoints_dir)
    openpose = np.zeros((rows, NUM_OPENPOSE_JOINTS, 3))
    used: set[Path] = set()
    cache: dict[Path, np.ndarray] = {}
    no_file = no_person = 0
    for row, name in enumerate(imgname):
        key = PurePosixPath(name).with_suffix("").as_posix()
        candidates = by_base.get(PurePosixPath(key).name, [])
        json_path = by_key.get(key) or (candidates[0] if len(candidates) == 1 else None)
        if json_path is None:
            no_file += 1
            continue
        used.add(json_path)
        if json_path not in cache:
            cache[json_path] = read_openpose_json(json_path)  # (P, 25, 3); names the file on bad input
        people = cache[json_path]
        side = float(arrays["scale"][row]) * BOX_SCALE_PX
        distances = (
            _distances(people, part[row], arrays["center"][row], side, config) if len(people) else np.zeros(0)
        )
        if len(distances) == 0 or distances.min() > config.max_distance:
            no_person += 1
            continue
        openpose[row] = people[int(distances.argmin())]
    arrays["openpose"] = openpose
    return AttachedOpenPose(
        arrays, rows - no_file - no_person, no_file, no_person, len(set(by_key.values()) - used)
    )
