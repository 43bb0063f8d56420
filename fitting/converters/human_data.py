"""mmhuman3d's HumanData ``.npz`` -> SPIN's dataset rows.

A HumanData file (``mmhuman3d.data.data_structures.HumanData.dump``, ``np.savez``) holds per row
``image_path`` (N,), ``bbox_xywh`` (N, 4 or 5) x, y, width, height (, confidence) in pixels,
``keypoints2d`` (N, 190, 3) and ``keypoints3d`` (N, 190, 4) in mmhuman3d's ``human_data``
keypoint order (``HUMAN_DATA_KEYPOINTS``) with ``keypoints2d_mask`` / ``keypoints3d_mask``
(190,) saying which keypoints the dataset has (``__keypoints_compressed__``: only those are
stored), and dicts pickled as object members: ``smpl`` (``global_orient`` (N, 3),
``body_pose`` (N, 23, 3) or (N, 69), ``betas`` (N, 10)) and ``meta`` (``gender``). The dicts are
read with ``restricted_pickle`` (numpy data only, never code).

SPIN's rows: ``part`` (N, 24, 3) from the keypoints named in ``SPIN_GT_HUMAN_DATA_NAMES``
(SPIN's LSP hips, neck and head top are ``*_extra``/``headtop``, not SMPL's joints), ``openpose``
(N, 25, 3) from the ``*_openpose`` keypoints, ``S`` (N, 24, 4) likewise from ``keypoints3d``
(the file's unit, metres in mmhuman3d), each confidence times its mask; every other keypoint is
dropped and the command says which (SMPL's joints, hands, face...). The box from ``bbox_xywh``
(centre, longer side x ``rescale``: 1, mmhuman3d's converters already enlarge their boxes);
``pose`` = global_orient + body_pose, ``shape`` = betas, ``has_smpl`` 1, when ``smpl`` is there;
``gender`` 'm'/'f'/'n' from ``meta['gender']`` when given.
"""

from __future__ import annotations

import logging
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spinfits.errors import InputError
from spinfits.fitting.converters.image_files import check_folder, check_images_exist, listing
from spinfits.fitting.converters.restricted_pickle import load_data_pickle
from spinfits.fitting.converters.spin_rows import ConvertedDataset
from spinfits.fitting.data.human_data_keypoints import (
    HUMAN_DATA_KEYPOINTS,
    OPENPOSE_HUMAN_DATA_NAMES,
    SPIN_GT_HUMAN_DATA_NAMES,
)
from spinfits.fitting.data.spin_crop import BOX_SCALE_PX

logger = logging.getLogger(__name__)

NUM_HUMAN_DATA_KEYPOINTS = len(HUMAN_DATA_KEYPOINTS)
_EXPECTED = "mmhuman3d's HumanData .npz (image_path, bbox_xywh, keypoints2d, smpl, ...)"
_SPIN_GT = [HUMAN_DATA_KEYPOINTS.index(name) for name in SPIN_GT_HUMAN_DATA_NAMES]
_OPENPOSE = [HUMAN_DATA_KEYPOINTS.index(name) for name in OPENPOSE_HUMAN_DATA_NAMES]
#: HumanData's genders -> SPIN's.
#: .npy format version -> its header reader ((shape, fortran_order, dtype)).
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
_GENDERS = {"m": "m", "male": "m", "f": "f", "female": "f", "n": "n", "neutral": "n"}


@dataclass(frozen=True)
class HumanDataConfig:
    """rescale: box side / the longer side of ``bbox_xywh`` (1: mmhuman3d's boxes are enlarged)."""

    rescale: float = 1.0

    def __post_init__(self) -> None:
        if not self.rescale > 0:
            raise InputError(f"rescale must be > 0 (box side / bbox side), got {self.rescale}")


def read_npz_members(path: Path, expected: str) -> dict[str, Any]:
    """Every member of the npz at ``path``; object members (pickled) read as numpy data only."""
    if not path.is_file():
        raise InputError(f"{path} does not exist; expected {expected}")
    members: dict[str, Any] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for entry in archive.namelist():
                name = entry[: -len(".npy")] if entry.endswith(".npy") else entry
                with archive.open(entry) as stream:
                    version = np.lib.format.read_magic(stream)
                    read_header = _HEADER_READERS.get(version)
                    if read_header is None:
                        raise ValueError(f"member '{name}' has .npy format version {version}")
                    _, _, dtype = read_header(stream)
                    if dtype.hasobject:
                        members[name] = load_data_pickle(stream, f"{path} member '{name}'", expected)
                        continue
                with archive.open(entry) as stream:
                    members[name] = np.lib.format.read_array(stream, allow_pickle=False)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as error:
        raise InputError(
            f"{path} is not a readable npz archive ({type(error).__name__}: {error}); expected {expected}"
        ) from None
    return members


def _dict_member(members: dict[str, Any], key: str, path: Path) -> dict | None:
    if key not in members:
        return None
    value = members[key]
    if isinstance(value, np.ndarray) and value.dtype.hasobject and value.shape == ():
        value = value.item()
    if not isinstance(value, dict):
        raise InputError(f"{path}: '{key}' is {type(value).__name__}, expected a dict; expected {_EXPECTED}")
    return value


def _numbers(value: Any, where: str, shape: tuple[int, ...]) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{where} is {type(value).__name__}, expected numbers of shape {shape}") from None
    if array.shape != shape:
        raise InputError(f"{where} has shape {array.shape}, expected {shape}; expected {_EXPECTED}")
    if not np.isfinite(array).all():
        bad = np.unique(np.nonzero(~np.isfinite(array))[0])
        raise InputError(f"{where} has NaN or infinite values in rows {bad[:10].tolist()}; fix or drop them")
    return array


def _keypoints(members: dict[str, Any], key: str, rows: int, columns: int, path: Path) -> np.ndarray | None:
    """(N, 190, columns) keypoints, zeros where the mask is 0, or None when the file has none."""
    if key not in members:
        return None
    mask_key = f"{key}_mask"
    mask = (
        _numbers(members[mask_key], f"{path}: '{mask_key}'", (NUM_HUMAN_DATA_KEYPOINTS,))
        if mask_key in members
        else np.ones(NUM_HUMAN_DATA_KEYPOINTS)
    )
    stored = np.asarray(members[key])
    compressed = bool(np.asarray(members.get("__keypoints_compressed__", False)))
    if compressed:
        kept = np.flatnonzero(mask)
        values = _numbers(stored, f"{path}: '{key}' (compressed)", (rows, len(kept), columns))
        full = np.zeros((rows, NUM_HUMAN_DATA_KEYPOINTS, columns))
        full[:, kept] = values
    else:
        if stored.shape[1:2] != (NUM_HUMAN_DATA_KEYPOINTS,) and stored.ndim == 3:
            raise InputError(
                f"{path}: '{key}' has {stored.shape[1]} keypoints per row, expected "
                f"{NUM_HUMAN_DATA_KEYPOINTS}: mmhuman3d's 'human_data' convention (convert with "
                f"mmhuman3d's convert_kps(..., dst='human_data'))"
            )
        full = _numbers(stored, f"{path}: '{key}'", (rows, NUM_HUMAN_DATA_KEYPOINTS, columns))
    full[:, mask <= 0] = 0.0  # keypoints the dataset lacks: zeros, as compressed files store them
    return full


def _smpl(members: dict[str, Any], rows: int, path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """pose (N, 72) and betas (N, 10) of the ``smpl`` dict, or None without one."""
    smpl = _dict_member(members, "smpl", path)
    if smpl is None:
        return None
    missing = [key for key in ("global_orient", "body_pose", "betas") if key not in smpl]
    if missing:
        raise InputError(
            f"{path}: 'smpl' has no {', '.join(map(repr, missing))} (it has {sorted(map(str, smpl))}); "
            f"expected global_orient (N, 3), body_pose (N, 23, 3) and betas (N, 10)"
        )
    body = np.asarray(smpl["body_pose"])
    if body.shape == (rows, 23, 3):
        body = body.reshape(rows, 69)
    pose = np.concatenate(
        [
            _numbers(smpl["global_orient"], f"{path}: smpl['global_orient']", (rows, 3)),
            _numbers(body, f"{path}: smpl['body_pose'] (as (N, 69))", (rows, 69)),
        ],
        axis=1,
    )
    return pose, _numbers(smpl["betas"], f"{path}: smpl['betas']", (rows, 10))


def _gender(members: dict[str, Any], rows: int, path: Path) -> np.ndarray | None:
    meta = _dict_member(members, "meta", path)
    if meta is None or "gender" not in meta:
        return None
    genders = [str(value).lower() for value in np.asarray(meta["gender"]).reshape(-1)]
    if len(genders) != rows:
        raise InputError(f"{path}: meta['gender'] has {len(genders)} entries, expected one per row ({rows})")
    unknown = sorted(set(genders) - set(_GENDERS))
    if unknown:
        raise InputError(
            f"{path}: meta['gender'] has {unknown}, expected 'male', 'female', 'neutral' (or m/f/n)"
        )
    return np.asarray([_GENDERS[gender] for gender in genders])


def convert_human_data(
    npz: str | Path, images_dir: str | Path | None = None, config: HumanDataConfig | None = None
) -> ConvertedDataset:
    """SPIN's rows of a HumanData file (see the module docstring); with ``images_dir``, every
    row's image must exist there."""
    config = config or HumanDataConfig()
    path = Path(npz)
    members = read_npz_members(path, _EXPECTED)
    missing = [key for key in ("image_path", "bbox_xywh") if key not in members]
    if missing:
        raise InputError(
            f"{path} has no {', '.join(map(repr, missing))} (it has {sorted(members)}); expected {_EXPECTED}"
        )
    imgname = np.asarray(members["image_path"]).astype(str).reshape(-1)
    rows = len(imgname)
    box = np.asarray(members["bbox_xywh"])
    box = _numbers(box, f"{path}: 'bbox_xywh'", (rows, 5 if box.shape[1:] == (5,) else 4))[:, :4]
    if (box[:, 2:].max(axis=1) <= 0).any():
        bad = np.flatnonzero(box[:, 2:].max(axis=1) <= 0)
        raise InputError(f"{path}: 'bbox_xywh' rows {bad[:10].tolist()} have no width or height")
    keypoints2d = _keypoints(members, "keypoints2d", rows, 3, path)
    if keypoints2d is None:
        raise InputError(f"{path} has no 'keypoints2d'; SPIN fits 2D keypoints: expected {_EXPECTED}")
    keypoints3d = _keypoints(members, "keypoints3d", rows, 4, path)
    present = (keypoints2d[..., 2] > 0).any(axis=0)  # (190,) keypoints the file has
    used = set(_SPIN_GT) | set(_OPENPOSE)
    dropped = [HUMAN_DATA_KEYPOINTS[k] for k in np.flatnonzero(present) if k not in used]
    absent = [name for name, k in zip(SPIN_GT_HUMAN_DATA_NAMES, _SPIN_GT) if not present[k]]
    notes = (
        (f"human_data keypoints SPIN's 24 + 25 joints do not use ({listing(dropped, 6)})", len(dropped)),
        (
            f"of SPIN's 24 ground-truth joints the file lacks, left at confidence 0 ({listing(absent, 6)})",
            len(absent),
        ),
    )
    smpl = _smpl(members, rows, path)
    S = None
    if keypoints3d is not None and (keypoints3d[:, _SPIN_GT, 3] > 0).any():
        S = keypoints3d[:, _SPIN_GT]
    if images_dir is not None:
        check_images_exist(check_folder(images_dir, "--images", "the dataset's images"), imgname, str(path))
    return ConvertedDataset(
        imgname=imgname,
        center=box[:, :2] + box[:, 2:] / 2,
        scale=config.rescale * box[:, 2:].max(axis=1) / BOX_SCALE_PX,
        part=keypoints2d[:, _SPIN_GT],
        openpose=keypoints2d[:, _OPENPOSE],
        S=S,
        pose=None if smpl is None else smpl[0],
        shape=None if smpl is None else smpl[1],
        gender=_gender(members, rows, path),
        skipped=tuple((reason, count) for reason, count in notes if count),
    )
