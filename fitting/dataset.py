"""Datasets in SPIN's npz layout, and OpenPose BODY_25 JSON, as the keypoints SMPLify fits to.

SPIN's dataset npz holds, per row i: ``imgname``, ``center`` (2,) and ``scale`` (box side / 200)
of the person's box in the original image, ``part`` (24, 3) ground-truth keypoints in SPIN's
24-joint order and/or ``openpose`` (25, 3) OpenPose keypoints (x, y, confidence in image pixels),
and optionally ``S``, ``pose``, ``shape``, ``has_smpl``. SMPLify fits in the crop frame:
a ``crop_res`` (224) px square around the box, focal length 5000 px, principal point at the crop
centre. ``load_spin_npz`` returns the 49 keypoints (OpenPose 25, then GT 24) in that frame.

Convention: crop = crop_res / (200 * scale) * (image - center) + crop_res / 2. SPIN itself also
truncates crop coordinates to integers (up to 1 px of quantisation); here they stay sub-pixel.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

import numpy as np

from spinfits.errors import InputError
from spinfits.fitting.joints import NUM_GT_JOINTS, NUM_OPENPOSE_JOINTS, NUM_SPIN_JOINTS
from spinfits.fitting.spin_crop import CROP_RES, FOCAL_LENGTH  # noqa: F401 (re-exported)


@dataclass(frozen=True, eq=False)
class KeypointDataset:
    """A dataset's keypoints in SMPLify's crop frame (N rows).

    Fields:
        keypoints: (N, 49, 3) float32 crop pixels x, y, confidence (0 = missing).
        center: (N, 2) float64 box centre in original image pixels.
        scale: (N,) float64 box side / 200 px.
        imgname: (N,) str image path relative to the dataset's image folder.
        gt_pose: (N, 72) float64 or None, ground-truth SMPL pose when the file has it.
        gt_betas: (N, 10) float64 or None.
        has_smpl: (N,) bool, rows whose gt_pose/gt_betas are valid.
        images_are_crops: True when the image files ARE the crop_res crops (synthetic datasets
            rendered with ``--images``): crop them with center (112, 112), scale 224/200, not
            with ``center``/``scale`` (``spinfits.training.images.crop_boxes``). Not part of
            the fingerprint.
        crop_res: crop side in pixels; focal_length: crop-frame focal length in pixels.
        source: the file it came from, or None.
        fingerprint: SHA-256 (16 hex) of the keypoints, boxes and crop convention.
    """

    keypoints: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    imgname: np.ndarray
    gt_pose: np.ndarray | None = None
    gt_betas: np.ndarray | None = None
    has_smpl: np.ndarray | None = None
    images_are_crops: bool = False
    crop_res: int = CROP_RES
    focal_length: float = FOCAL_LENGTH
    source: Path | None = None
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha256()
        for array in (self.keypoints, self.center, self.scale):
            digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
        digest.update(f"{self.crop_res}/{self.focal_length}".encode())
        object.__setattr__(self, "fingerprint", digest.hexdigest()[:16])

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    @property
    def camera_center(self) -> np.ndarray:
        """(2,) principal point of the crop frame, pixels."""
        return np.full(2, self.crop_res / 2.0)


def image_to_crop(
    points: np.ndarray, center: np.ndarray, scale: np.ndarray, crop_res: int = CROP_RES
) -> np.ndarray:
    """Map (N, K, 2) image pixels to crop pixels for boxes center (N, 2), scale (N,)."""
    factor = (crop_res / (200.0 * scale))[:, None, None]
    return factor * (points - center[:, None, :]) + crop_res / 2.0


def crop_to_image(
    points: np.ndarray, center: np.ndarray, scale: np.ndarray, crop_res: int = CROP_RES
) -> np.ndarray:
    """Inverse of ``image_to_crop``: (N, K, 2) crop pixels to image pixels."""
    factor = ((200.0 * scale) / crop_res)[:, None, None]
    return factor * (points - crop_res / 2.0) + center[:, None, :]


def _open_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise InputError(
            f"dataset file {path} does not exist; expected a SPIN dataset npz "
            f"(make one with `spinfits data make-synthetic OUT.npz`)"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as error:
        raise InputError(
            f"{path} is not a readable npz archive ({type(error).__name__}: {error}); the file "
            f"may be truncated or of another format: expected SPIN's dataset npz"
        ) from None


#: Per-row arrays of SPIN's dataset npz (and of ``spinfits data make-synthetic``'s), each with
#: the shape of one row (None: only the row count is checked). Every one present must have N rows.
ROW_ARRAYS: dict[str, tuple[int, ...] | None] = {
    "imgname": (),
    "center": (2,),
    "scale": None,
    "part": (NUM_GT_JOINTS, 3),
    "openpose": (NUM_OPENPOSE_JOINTS, 3),
    "S": (NUM_GT_JOINTS, 4),
    "pose": (72,),
    "shape": (10,),
    "has_smpl": (),
    "has_pose_3d": (),
    "gender": (),
    "maskname": (),
    "partname": (),
    "iuv_names": (),
    # synthetic datasets' ground truth
    "gt_cam_t": (3,),
    "gt_keypoints": (NUM_SPIN_JOINTS, 3),
    "truncated": None,
    "swapped": None,
    "outliers": None,
}

#: Largest magnitude a float32 holds: keypoints and boxes are used as float32 downstream.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _fits_float32(values: np.ndarray) -> np.ndarray:
    """Elementwise: finite and within float32's range (False for NaN and inf)."""
    with np.errstate(invalid="ignore"):
        return np.abs(values) <= FLOAT32_MAX


def _check_row_counts(data: dict[str, np.ndarray], rows: int, path: Path) -> None:
    """Every per-row array present has ``rows`` rows (and its row shape, where known)."""
    for key, row_shape in ROW_ARRAYS.items():
        if key not in data:
            continue
        shape = np.shape(data[key])
        if not shape or shape[0] != rows or (row_shape is not None and shape[1:] != row_shape):
            raise InputError(
                f"{path}: '{key}' has shape {shape}, expected {_row_shape_text(rows, row_shape)}: "
                f"one entry per dataset row, and the file has {rows} rows (the length of "
                f"'scale'); the arrays of the npz disagree, rewrite it with one entry per row in "
                f"every array"
            )


def _row_shape_text(rows: int, row_shape: tuple[int, ...] | None) -> str:
    if row_shape is None:
        return f"({rows}, ...)"
    return str((rows, *row_shape))


def _check_imgnames(imgname: np.ndarray, path: Path) -> None:
    """imgname entries must be relative paths that stay inside the images folder."""
    bad = np.array([_escapes_folder(str(name)) for name in imgname], dtype=bool)
    if bad.any():
        rows = np.nonzero(bad)[0]
        shown = ", ".join(f"row {r}: {str(imgname[r])!r}" for r in rows[:5])
        raise InputError(
            f"{path}: {len(rows)} 'imgname' entries are absolute paths or contain '..' "
            f"({shown}{', ...' if len(rows) > 5 else ''}); imgname must be relative paths inside "
            f"the images folder (e.g. 'S1_Directions_1.54138969_000001.jpg'): rewrite those rows"
        )


def _escapes_folder(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    windows = PureWindowsPath(name)
    return name.startswith(("/", "\\")) or bool(windows.drive) or ".." in parts


def _check_boxes(center: np.ndarray, scale: np.ndarray, path: Path) -> None:
    """center and scale: finite, within float32's range, scale > 0 (also as float32)."""
    with np.errstate(over="ignore"):
        scale32 = scale.astype(np.float32)
    bad = ~_fits_float32(center).all(axis=1) | ~_fits_float32(scale) | ~(scale32 > 0)
    if bad.any():
        raise InputError(
            f"{path}: 'center' and 'scale' must be finite, within float32's range "
            f"(|value| <= {FLOAT32_MAX:.3g}) and scale > 0 in every row; rows "
            f"{_rows(np.nonzero(bad)[0])} are not: fix or drop those rows"
        )


def _flag(data: dict[str, np.ndarray], key: str, path: Path) -> bool:
    value = np.asarray(data.get(key, False))
    if value.size != 1 or value.dtype.kind not in "biu":
        raise InputError(
            f"{path}: '{key}' is {value.dtype} of shape {value.shape}, expected one boolean "
            f"(np.array(True) or np.array(False)); rewrite it as a single value"
        )
    return bool(value.item())


def _keypoint_block(data: dict[str, np.ndarray], key: str, rows: int, joints: int, path: Path) -> np.ndarray:
    if key not in data:
        return np.zeros((rows, joints, 3))
    block = np.asarray(data[key], dtype=np.float64)
    if block.shape != (rows, joints, 3):
        raise InputError(
            f"{path}: '{key}' has shape {block.shape}, expected ({rows}, {joints}, 3) "
            f"(x, y, confidence per joint for each of the {rows} rows)"
        )
    return block


def check_keypoints(keypoints: np.ndarray, where: str, first_row: int = 0) -> np.ndarray:
    """Validate (N, K, 3) keypoints: finite as float32 where confident, confidence >= 0.

    Returns a copy whose missing keypoints (confidence 0) are zeroed, NaN there included.
    ``first_row``: the dataset row of ``keypoints[0]`` (a block of a larger file), for messages.
    """
    keypoints = np.array(keypoints, dtype=np.float64)
    confidence = keypoints[..., 2]
    if not _fits_float32(confidence).all() or (confidence < 0).any():
        bad = first_row + np.unique(np.nonzero(~_fits_float32(confidence) | (confidence < 0))[0])
        raise InputError(
            f"{where}: confidences must be finite (as float32) and >= 0, rows {_rows(bad)} "
            f"are not; set the confidence of a missing keypoint to 0"
        )
    bad_xy = ~_fits_float32(keypoints[..., :2]).all(axis=-1) & (confidence > 0)
    if bad_xy.any():
        rows = first_row + np.unique(np.nonzero(bad_xy)[0])
        raise InputError(
            f"{where}: {int(bad_xy.sum())} keypoints are NaN or infinite but have confidence > 0 "
            f"(rows {_rows(rows)}); expected finite x, y within float32's range "
            f"(|x|, |y| <= {FLOAT32_MAX:.3g}) wherever confidence > 0: set the confidence of "
            f"those keypoints to 0 or fix their coordinates"
        )
    keypoints[confidence == 0] = 0.0
    return keypoints


def _rows(rows: np.ndarray) -> str:
    shown = ", ".join(str(r) for r in rows[:10])
    return shown + (f", ... ({len(rows)} rows)" if len(rows) > 10 else "")


#: Rows converted at a time: the loader's peak memory is a few blocks of float64 beyond the
#: arrays read and the float32 result (at 1M rows, whole-array copies peaked at +6.7 GB).
_BLOCK_ROWS = 1 << 16


def _crop_keypoints(
    openpose: np.ndarray, part: np.ndarray, center: np.ndarray, scale: np.ndarray, crop_res: int, path: Path
) -> np.ndarray:
    """Image keypoints (N, 25, 3) + (N, 24, 3), boxes (N, 2), (N,) -> (N, 49, 3) float32 crop
    keypoints, checked, missing ones zero; converted in blocks of ``_BLOCK_ROWS`` rows (a
    message names the rows of the first block that has a bad one)."""
    rows = scale.shape[0]
    keypoints = np.empty((rows, NUM_SPIN_JOINTS, 3), dtype=np.float32)
    any_confident = False
    in_crop = f"{path} (in the {crop_res}-px crop frame of each row's center/scale box)"
    for start in range(0, rows, _BLOCK_ROWS):
        block = slice(start, start + _BLOCK_ROWS)
        image = check_keypoints(np.concatenate([openpose[block], part[block]], axis=1), str(path), start)
        any_confident = any_confident or bool((image[..., 2] > 0).any())
        crop = image.copy()
        with np.errstate(over="ignore", invalid="ignore"):
            crop[..., :2] = image_to_crop(image[..., :2], center[block], scale[block], crop_res)
        crop[image[..., 2] == 0] = 0.0
        keypoints[block] = check_keypoints(crop, in_crop, start)
    if not any_confident:
        raise InputError(
            f"{path}: no row has a keypoint with confidence > 0; a dataset needs usable 2D "
            f"keypoints to fit (check the confidence column of 'part'/'openpose')"
        )
    return keypoints


def load_spin_npz(
    path: str | Path, crop_res: int = CROP_RES, focal_length: float = FOCAL_LENGTH
) -> KeypointDataset:
    """Read a SPIN dataset npz into SMPLify's 49 crop-frame keypoints (see module docstring)."""
    path = Path(path)
    data = _open_npz(path)
    for key in ("center", "scale"):
        if key not in data:
            raise InputError(
                f"{path} has no '{key}' array (it has {sorted(data)}); expected SPIN's dataset "
                f"layout: imgname, center (N, 2), scale (N,), part (N, 24, 3) and/or openpose"
            )
    if "part" not in data and "openpose" not in data:
        raise InputError(
            f"{path} has neither 'part' (N, 24, 3) nor 'openpose' (N, 25, 3) keypoints "
            f"(it has {sorted(data)}); SMPLify needs 2D keypoints to fit"
        )
    center = np.asarray(data["center"], dtype=np.float64)
    scale = np.asarray(data["scale"], dtype=np.float64).reshape(-1)
    rows = scale.shape[0]
    _check_row_counts(data, rows, path)
    _check_boxes(center, scale, path)
    openpose = _keypoint_block(data, "openpose", rows, NUM_OPENPOSE_JOINTS, path)
    part = _keypoint_block(data, "part", rows, NUM_GT_JOINTS, path)
    keypoints = _crop_keypoints(openpose, part, center, scale, crop_res, path)

    imgname = np.asarray(data.get("imgname", np.full(rows, "", dtype=str))).astype(str)
    _check_imgnames(imgname, path)
    gt_pose = gt_betas = None
    has_smpl = np.zeros(rows, dtype=bool)
    if "pose" in data and "shape" in data:
        gt_pose = np.asarray(data["pose"], dtype=np.float64)
        gt_betas = np.asarray(data["shape"], dtype=np.float64)
        if gt_pose.shape != (rows, 72) or gt_betas.shape != (rows, 10):
            raise InputError(
                f"{path}: 'pose' {gt_pose.shape} / 'shape' {gt_betas.shape} expected "
                f"({rows}, 72) / ({rows}, 10)"
            )
        has_smpl = np.asarray(data.get("has_smpl", np.ones(rows)), dtype=bool)
    return KeypointDataset(
        keypoints=keypoints,
        center=center,
        scale=scale,
        imgname=imgname,
        gt_pose=gt_pose,
        gt_betas=gt_betas,
        has_smpl=has_smpl,
        images_are_crops=_flag(data, "images_are_crops", path),
        crop_res=crop_res,
        focal_length=focal_length,
        source=path,
    )


# ----------------------------------------------------------------------------- OpenPose


def read_openpose_json(path: str | Path) -> np.ndarray:
    """Read an OpenPose BODY_25 JSON file: (P, 25, 3) image pixels x, y, confidence per person."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"OpenPose file {path} does not exist")
    try:
        document = json.loads(path.read_text())
        people = document["people"]
        poses = [np.asarray(person["pose_keypoints_2d"], dtype=np.float64) for person in people]
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path} is not JSON ({error}); expected OpenPose's output") from None
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(
            f"{path} is not OpenPose output: expected {{'people': [{{'pose_keypoints_2d': "
            f"[x, y, c] * 25}}, ...]}} ({type(error).__name__}: {error})"
        ) from None
    for index, pose in enumerate(poses):
        if pose.shape != (NUM_OPENPOSE_JOINTS * 3,):
            raise InputError(
                f"{path}: person {index} has {pose.size} values in pose_keypoints_2d, expected "
                f"75 (BODY_25: 25 keypoints x (x, y, confidence)); COCO-18 output is not supported"
            )
    keypoints = (
        np.stack(poses).reshape(-1, NUM_OPENPOSE_JOINTS, 3)
        if poses
        else np.zeros((0, NUM_OPENPOSE_JOINTS, 3))
    )
    return check_keypoints(keypoints, str(path))


def box_from_keypoints(
    keypoints: np.ndarray, threshold: float = 0.2, rescale: float = 1.2
) -> tuple[np.ndarray, np.ndarray]:
    """SPIN's box from detections: (P, K, 3) -> center (P, 2), scale (P,).

    The box is centred on the mean of the keypoints with confidence > ``threshold``; its side is
    their largest extent times ``rescale`` (SPIN's ``bbox_from_openpose``).
    """
    centers, scales = [], []
    for index, person in enumerate(keypoints):
        valid = person[person[:, 2] > threshold, :2]
        if len(valid) < 2:
            raise InputError(
                f"person {index} has {len(valid)} keypoints with confidence > {threshold}; "
                f"at least 2 are needed to place a box"
            )
        centers.append(valid.mean(axis=0))
        scales.append((valid.max(axis=0) - valid.min(axis=0)).max() / 200.0 * rescale)
    return np.asarray(centers).reshape(-1, 2), np.asarray(scales)
