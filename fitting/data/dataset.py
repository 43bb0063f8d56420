"""Datasets in SPIN's npz layout, and OpenPose BODY_25 JSON, as the keypoints SMPLify fits to.

SPIN's dataset npz holds, per row i: ``imgname``, ``center`` (2,) and ``scale`` (box side / 200)
of the person's box in the original image, ``part`` (24, 3) ground-truth keypoints in SPIN's
24-joint order and/or ``openpose`` (25, 3) OpenPose keypoints (x, y, confidence in image pixels),
and optionally ``S``, ``pose``, ``shape``, ``has_smpl``. SMPLify fits in the crop frame:
a ``crop_res`` (224) px square around the box, focal length 5000 px, principal point at the crop
centre. ``load_spin_npz`` returns the 49 keypoints (OpenPose 25, then GT 24) in that frame;
``load_spin_rows`` returns only the rows a caller keeps (with the file's fingerprint and every
row's count of confident keypoints), for a driver that must not hold a million rows. Both read the file's
arrays ``_BLOCK_ROWS`` rows at a time (``NpzMembers``) and run the same checks.

Convention: crop = crop_res / (200 * scale) * (image - center) + crop_res / 2. SPIN itself also
truncates crop coordinates to integers (up to 1 px of quantisation); here they stay sub-pixel.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

import numpy as np

from spinfits.errors import InputError
from spinfits.fitting.body.joints import NUM_GT_JOINTS, NUM_OPENPOSE_JOINTS, NUM_SPIN_JOINTS
from spinfits.fitting.data.npz_members import NpzMembers, unreadable
from spinfits.fitting.data.spin_crop import BOX_SCALE_PX, CROP_RES, FOCAL_LENGTH


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
        digest = _DatasetDigest()
        keypoints = np.asarray(self.keypoints)
        for start in range(0, len(keypoints), _BLOCK_ROWS):
            digest.add_keypoints(keypoints[start : start + _BLOCK_ROWS])
        fingerprint = digest.hexdigest(self.center, self.scale, self.crop_res, self.focal_length)
        object.__setattr__(self, "fingerprint", fingerprint)

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    @property
    def camera_center(self) -> np.ndarray:
        """(2,) principal point of the crop frame, pixels."""
        return np.full(2, self.crop_res / 2.0)


@dataclass(frozen=True, eq=False)
class DatasetRows:
    """What precompute's driver keeps of a dataset npz: a few rows' keypoints, not N rows.

    Fields:
        source: the file it came from.
        n_rows: N, the dataset's row count.
        fingerprint: ``load_spin_npz(source).fingerprint`` (same crop settings), computed while
            reading.
        confident: (N,) int16 per row, the keypoints with confidence > 0 among the counted joints.
        rows: (K,) int64 sorted dataset rows kept.
        keypoints: (K, 49, 3) float32 crop pixels x, y, confidence of those rows, as
            ``load_spin_npz(source).keypoints[rows]``.
    """

    source: Path
    n_rows: int
    fingerprint: str
    confident: np.ndarray
    rows: np.ndarray
    keypoints: np.ndarray


class _DatasetDigest:
    """A dataset's fingerprint: SHA-256 (16 hex) of its keypoints as float64 in row order (fed a
    block at a time), then center, scale and the crop convention."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()

    def add_keypoints(self, block: np.ndarray) -> None:
        """Hash the next rows' (B, 49, 3) keypoints."""
        self._sha.update(np.ascontiguousarray(block, dtype=np.float64))

    def hexdigest(self, center: np.ndarray, scale: np.ndarray, crop_res: int, focal_length: float) -> str:
        """Finish with boxes center (N, 2), scale (N,) and the crop convention."""
        for array in (center, scale):
            self._sha.update(np.ascontiguousarray(array, dtype=np.float64))
        self._sha.update(f"{crop_res}/{focal_length}".encode())
        return self._sha.hexdigest()[:16]


def image_to_crop(
    points: np.ndarray, center: np.ndarray, scale: np.ndarray, crop_res: int = CROP_RES
) -> np.ndarray:
    """Map (N, K, 2) image pixels to crop pixels for boxes center (N, 2), scale (N,)."""
    factor = (crop_res / (BOX_SCALE_PX * scale))[:, None, None]
    return factor * (points - center[:, None, :]) + crop_res / 2.0


def crop_to_image(
    points: np.ndarray, center: np.ndarray, scale: np.ndarray, crop_res: int = CROP_RES
) -> np.ndarray:
    """Inverse of ``image_to_crop``: (N, K, 2) crop pixels to image pixels."""
    factor = ((BOX_SCALE_PX * scale) / crop_res)[:, None, None]
    return factor * (points - crop_res / 2.0) + center[:, None, :]


#: What a dataset npz is, in messages about a file that is not one.
_EXPECTED = "SPIN's dataset npz"


def _open_dataset(path: Path) -> NpzMembers:
    """The dataset file's members (nothing read yet); a missing file says how to make one."""
    if path.is_dir():
        raise InputError(f"dataset file {path} is a directory; give the SPIN dataset .npz file inside it")
    if not path.is_file():
        raise InputError(
            f"dataset file {path} does not exist; expected a SPIN dataset npz "
            f"(make one with `spinfits data make-synthetic OUT.npz`)"
        )
    return NpzMembers(path, expected=_EXPECTED)


def npz_row_count(path: str | Path) -> int | None:
    """The rows of the SPIN dataset npz at ``path`` by the header of its ``scale`` (nothing else
    read); None when the file cannot say (the loaders then tell what is wrong with it)."""
    try:
        with _open_dataset(Path(path)) as members:
            shape = members.shape("scale") if "scale" in members else ()
    except InputError:
        return None
    return int(np.prod(shape)) if shape else None


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


def _check_row_counts(members: NpzMembers, rows: int, path: Path) -> None:
    """Every per-row array present has ``rows`` rows (and its row shape, where known), by the
    arrays' headers."""
    for key, row_shape in ROW_ARRAYS.items():
        if key not in members:
            continue
        shape = members.shape(key)
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


def _check_imgnames(blocks: Iterable[tuple[int, np.ndarray]], path: Path) -> None:
    """imgname entries must be relative paths that stay inside the images folder.

    ``blocks``: ``(first_row, (B,) str names)`` in row order; every block is checked before the
    message (which counts the bad rows of the whole file) is raised."""
    bad_rows: list[int] = []
    shown: list[str] = []
    for start, names in blocks:
        bad = np.flatnonzero([_escapes_folder(str(name)) for name in names])
        shown += [f"row {start + r}: {str(names[r])!r}" for r in bad[: 5 - len(shown)]]
        bad_rows += (start + bad).tolist()
    if bad_rows:
        raise InputError(
            f"{path}: {len(bad_rows)} 'imgname' entries are absolute paths or contain '..' "
            f"({', '.join(shown)}{', ...' if len(bad_rows) > 5 else ''}); imgname must be relative "
            f"paths inside the images folder (e.g. 'S1_Directions_1.54138969_000001.jpg'): rewrite "
            f"those rows"
        )


def _imgname_blocks(members: NpzMembers) -> Iterator[tuple[int, np.ndarray]]:
    """``(first_row, (B,) str)`` blocks of 'imgname' (none when the file has none)."""
    if "imgname" in members:
        for start, names in members.blocks("imgname", _BLOCK_ROWS):
            yield start, names.astype(str)


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


def _flag(members: NpzMembers, key: str, path: Path) -> bool:
    if key not in members:
        return False
    shape, dtype = members.shape(key), members.dtype(key)
    if math.prod(shape) != 1 or dtype.kind not in "biu":
        raise InputError(
            f"{path}: '{key}' is {dtype} of shape {shape}, expected one boolean "
            f"(np.array(True) or np.array(False)); rewrite it as a single value"
        )
    return bool(members.read(key).item())


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


#: Rows read and converted at a time: the loaders' peak memory is a few blocks of float64
#: (19 MB each) beyond what they keep (at 1M rows, reading whole members peaked at +4.4 GB;
#: whole-array conversions before that at +6.7 GB).
_BLOCK_ROWS = 1 << 14


def _checked_boxes(members: NpzMembers, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Check the file's layout by its headers (every member readable, the arrays SMPLify needs,
    one entry per row) and read its boxes: center (N, 2), scale (N,) float64, checked."""
    for name in members.names:
        if members.dtype(name).hasobject:  # np.load(allow_pickle=False) refuses the whole file
            raise unreadable(
                path, f"'{name}' holds Python objects (dtype object), read only by unpickling", _EXPECTED
            )
    for key in ("center", "scale"):
        if key not in members:
            raise InputError(
                f"{path} has no '{key}' array (it has {sorted(members.names)}); expected SPIN's "
                f"dataset layout: imgname, center (N, 2), scale (N,), part (N, 24, 3) and/or openpose"
            )
    if "part" not in members and "openpose" not in members:
        raise InputError(
            f"{path} has neither 'part' (N, 24, 3) nor 'openpose' (N, 25, 3) keypoints "
            f"(it has {sorted(members.names)}); SMPLify needs 2D keypoints to fit"
        )
    center = np.asarray(members.read("center"), dtype=np.float64)
    scale = np.asarray(members.read("scale"), dtype=np.float64).reshape(-1)
    _check_row_counts(members, scale.shape[0], path)
    _check_boxes(center, scale, path)
    return center, scale


def _image_keypoint_blocks(
    members: NpzMembers, key: str, rows: int, joints: int
) -> Iterator[tuple[int, np.ndarray]]:
    """``(first_row, (B, joints, 3) float64)`` blocks of image keypoints 'part' or 'openpose'
    (row counts and shapes already checked); zeros (all missing) when the file lacks ``key``."""
    if key not in members:
        for start in range(0, rows, _BLOCK_ROWS):
            yield start, np.zeros((min(_BLOCK_ROWS, rows - start), joints, 3))
        return
    for start, block in members.blocks(key, _BLOCK_ROWS):
        yield start, np.asarray(block, dtype=np.float64)


def _crop_frame(image: np.ndarray, center: np.ndarray, scale: np.ndarray, crop_res: int) -> np.ndarray:
    """(B, 49, 3) image keypoints, checked (missing ones zero), to crop pixels for boxes center
    (B, 2), scale (B,), in place; missing keypoints stay zero (an overflow is checked after)."""
    with np.errstate(over="ignore", invalid="ignore"):
        image[..., :2] = image_to_crop(image[..., :2], center, scale, crop_res)
    image[image[..., 2] == 0] = 0.0
    return image


def _crop_keypoint_blocks(
    members: NpzMembers, center: np.ndarray, scale: np.ndarray, crop_res: int, path: Path
) -> Iterator[tuple[int, np.ndarray]]:
    """``(first_row, (B, 49, 3) float32)`` blocks of crop keypoints, in row order: 'openpose'
    (N, 25, 3) + 'part' (N, 24, 3) image keypoints mapped by boxes center (N, 2), scale (N,),
    checked, missing ones zero. A bad keypoint is told by its row in the file; after the last
    block, a file without any confident keypoint is refused."""
    rows = scale.shape[0]
    any_confident = False
    in_crop = f"{path} (in the {crop_res}-px crop frame of each row's center/scale box)"
    openpose = _image_keypoint_blocks(members, "openpose", rows, NUM_OPENPOSE_JOINTS)
    part = _image_keypoint_blocks(members, "part", rows, NUM_GT_JOINTS)
    for (start, openpose_block), (_, part_block) in zip(openpose, part, strict=True):
        block = slice(start, start + len(part_block))
        image = check_keypoints(np.concatenate([openpose_block, part_block], axis=1), str(path), start)
        del openpose_block, part_block  # one (B, 49, 3) float64 block alive while converting
        any_confident = any_confident or bool((image[..., 2] > 0).any())
        crop = _crop_frame(image, center[block], scale[block], crop_res)
        del image
        yield start, check_keypoints(crop, in_crop, start).astype(np.float32)
    if not any_confident:
        raise InputError(
            f"{path}: no row has a keypoint with confidence > 0; a dataset needs usable 2D "
            f"keypoints to fit (check the confidence column of 'part'/'openpose')"
        )


def load_spin_npz(
    path: str | Path, crop_res: int = CROP_RES, focal_length: float = FOCAL_LENGTH
) -> KeypointDataset:
    """Read a SPIN dataset npz into SMPLify's 49 crop-frame keypoints (see module docstring).

    Memory: the result (keypoints (N, 49, 3) float32, boxes, imgname, ground truth) and a few
    blocks of ``_BLOCK_ROWS`` rows: 'part' and 'openpose' are read a block at a time."""
    path = Path(path)
    with _open_dataset(path) as members:
        center, scale = _checked_boxes(members, path)
        rows = scale.shape[0]
        keypoints = np.empty((rows, NUM_SPIN_JOINTS, 3), dtype=np.float32)
        for start, block in _crop_keypoint_blocks(members, center, scale, crop_res, path):
            keypoints[start : start + len(block)] = block

        imgname = np.full(rows, "", dtype=str)
        if "imgname" in members:
            imgname = members.read("imgname").astype(str)
        _check_imgnames([(0, imgname)], path)
        gt_pose = gt_betas = None
        has_smpl = np.zeros(rows, dtype=bool)
        if "pose" in members and "shape" in members:
            gt_pose = np.asarray(members.read("pose"), dtype=np.float64)
            gt_betas = np.asarray(members.read("shape"), dtype=np.float64)
            if gt_pose.shape != (rows, 72) or gt_betas.shape != (rows, 10):
                raise InputError(
                    f"{path}: 'pose' {gt_pose.shape} / 'shape' {gt_betas.shape} expected "
                    f"({rows}, 72) / ({rows}, 10)"
                )
            has_smpl = np.asarray(
                members.read("has_smpl") if "has_smpl" in members else np.ones(rows), dtype=bool
            )
        images_are_crops = _flag(members, "images_are_crops", path)
    return KeypointDataset(
        keypoints=keypoints,
        center=center,
        scale=scale,
        imgname=imgname,
        gt_pose=gt_pose,
        gt_betas=gt_betas,
        has_smpl=has_smpl,
        images_are_crops=images_are_crops,
        crop_res=crop_res,
        focal_length=focal_length,
        source=path,
    )


def load_spin_rows(
    path: str | Path,
    keep: np.ndarray | None = None,
    *,
    counted_joints: Sequence[int] | np.ndarray | None = None,
    crop_res: int = CROP_RES,
    focal_length: float = FOCAL_LENGTH,
) -> DatasetRows:
    """Read a SPIN dataset npz keeping only the keypoints of the rows ``keep`` selects.

    Runs every check ``load_spin_npz`` runs, with its messages, and gives its fingerprint; keeps
    the crop keypoints of the rows in ``keep`` ((N,) bool, None = all rows) and, for every row,
    the number of keypoints with confidence > 0 among ``counted_joints`` (indices into the 49,
    None = all). Keeps no imgname or ground truth.

    Memory: center/scale (N x 24 bytes), ``confident`` (N x 2 bytes), the kept keypoints
    (K x 588 bytes) and a few blocks of ``_BLOCK_ROWS`` rows.
    """
    path = Path(path)
    counted = _joint_index(counted_joints)
    with _open_dataset(path) as members:
        center, scale = _checked_boxes(members, path)
        rows = scale.shape[0]
        keep = _row_mask(keep, rows, path)
        kept_rows = np.flatnonzero(keep).astype(np.int64)
        keypoints = np.empty((len(kept_rows), NUM_SPIN_JOINTS, 3), dtype=np.float32)
        confident = np.empty(rows, dtype=np.int16)
        digest = _DatasetDigest()
        filled = 0
        for start, block in _crop_keypoint_blocks(members, center, scale, crop_res, path):
            stop = start + len(block)
            digest.add_keypoints(block)
            confident[start:stop] = (block[:, counted, 2] > 0).sum(axis=1)
            kept = block[keep[start:stop]]
            keypoints[filled : filled + len(kept)] = kept
            filled += len(kept)
        _check_imgnames(_imgname_blocks(members), path)
        _flag(members, "images_are_crops", path)  # checked as load_spin_npz checks it
    return DatasetRows(
        source=path,
        n_rows=rows,
        fingerprint=digest.hexdigest(center, scale, crop_res, focal_length),
        confident=confident,
        rows=kept_rows,
        keypoints=keypoints,
    )


def _row_mask(keep: np.ndarray | None, rows: int, path: Path) -> np.ndarray:
    """``keep`` checked as an (N,) bool mask over the file's ``rows`` rows (None: every row)."""
    if keep is None:
        return np.ones(rows, dtype=bool)
    mask = np.asarray(keep)
    if mask.dtype != bool or mask.ndim != 1:
        raise InputError(
            f"keep must be an (N,) bool mask over the {rows} rows of {path}, got {mask.dtype} of "
            f"shape {mask.shape}; to keep rows by index, pass a mask: "
            f"keep = np.zeros({rows}, dtype=bool); keep[indices] = True"
        )
    if len(mask) != rows:
        raise InputError(
            f"keep has {len(mask)} entries but {path} has {rows} rows; expected one bool per "
            f"dataset row: build the mask from this file's row count (np.zeros({rows}, dtype=bool))"
        )
    return mask


def _joint_index(joints: Sequence[int] | np.ndarray | None) -> np.ndarray | slice:
    """``counted_joints`` checked as indices into SPIN's 49 joints (None: all of them)."""
    if joints is None:
        return slice(None)
    index = np.asarray(joints)
    if index.size == 0:
        return index.astype(np.intp).reshape(0)
    if (
        index.ndim != 1
        or index.dtype.kind not in "iu"
        or (index < 0).any()
        or (index >= NUM_SPIN_JOINTS).any()
    ):
        raise InputError(
            f"counted_joints must be indices into SPIN's {NUM_SPIN_JOINTS} joints "
            f"(ints 0..{NUM_SPIN_JOINTS - 1}), got {joints!r}; e.g. every joint SMPLify fits: "
            f"[j for j in range({NUM_SPIN_JOINTS}) if j not in SMPLIFY_IGNORED_JOINTS]"
        )
    return index


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
        scales.append((valid.max(axis=0) - valid.min(axis=0)).max() / BOX_SCALE_PX * rescale)
    return np.asarray(centers).reshape(-1, 2), np.asarray(scales)
