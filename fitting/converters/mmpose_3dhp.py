"""mmpose's MPI-INF-3DHP npz (17 joints) -> SPIN's dataset rows (24 joints), as SPIN's
``datasets/preprocess/mpi_inf_3dhp.py``.

mmpose's file (``tools/dataset_converters/preprocess_mpi_inf_3dhp.py``): ``imgname`` (N,),
``center`` (N, 2), ``scale`` (N,) (SPIN's rule: the joints' bounds x 1.2 / 200), ``part``
(N, 17, 3) pixel x, y, visibility (1 = inside the image) and ``S`` (N, 17, 4) x, y, z in metres
in the camera frame + the same visibility, in mmpose's 17-joint order
(``MMPOSE_3DHP_JOINT_NAMES``).

SPIN's rows: ``part`` (N, 24, 3) and ``S`` (N, 24, 4) in SPIN's order (``MMPOSE_3DHP_TO_SPIN_GT``),
``S`` in metres relative to the pelvis (SPIN: ``S17 - S17[root]``), center and scale kept;
a frame is kept when at least ``min_visible_joints`` joints are inside the image (SPIN: all 17).
``has_pose_3d`` 1, ``has_smpl`` 0, no OpenPose detections (``openpose`` zeros).
"""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from spinfits.errors import InputError
from spinfits.fitting.body.joints import NUM_GT_JOINTS, NUM_OPENPOSE_JOINTS
from spinfits.fitting.converters.image_files import check_folder, check_images_exist
from spinfits.fitting.converters.spin_rows import ConvertedDataset
from spinfits.fitting.data.dataset import check_keypoints
from spinfits.fitting.data.dataset_joint_maps import (
    MMPOSE_3DHP_JOINT_NAMES,
    MMPOSE_3DHP_ROOT,
    MMPOSE_3DHP_TO_SPIN_GT,
)

logger = logging.getLogger(__name__)

NUM_3DHP_JOINTS = len(MMPOSE_3DHP_JOINT_NAMES)

#: Metres per unit of ``S``.
UNIT_METRES = {"m": 1.0, "mm": 0.001}

#: No joint of a person lies this far (metres) from the pelvis: ``S`` farther is not in metres.
MAX_JOINT_DISTANCE_M = 3.0


@dataclass(frozen=True)
class Mmpose3dhpConfig:
    """Which frames become rows, and the unit of the file's ``S``.

    min_visible_joints: joints (of 17) a frame needs inside the image (SPIN's 17: all).
    s_unit: "m" (mmpose's) or "mm" (the raw dataset's) for the file's 3D joints.
    """

    min_visible_joints: int = NUM_3DHP_JOINTS
    s_unit: Literal["m", "mm"] = "m"

    def __post_init__(self) -> None:
        if not 1 <= self.min_visible_joints <= NUM_3DHP_JOINTS:
            raise InputError(
                f"min_visible_joints must be in [1, {NUM_3DHP_JOINTS}], got {self.min_visible_joints}"
            )
        if self.s_unit not in UNIT_METRES:
            raise InputError(f"s_unit must be one of {sorted(UNIT_METRES)}, got {self.s_unit!r}")


def read_mmpose_3dhp(path: str | Path) -> dict[str, np.ndarray]:
    """mmpose's 3DHP npz, its arrays' shapes checked: imgname, center, scale, part, S."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--npz {path} does not exist; expected mmpose's mpi_inf_3dhp_*.npz")
    try:
        with np.load(path, allow_pickle=False) as archive:
            data = {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
        raise InputError(
            f"{path} is not a readable npz ({type(error).__name__}: {error}); expected mmpose's "
            f"mpi_inf_3dhp_*.npz"
        ) from None
    missing = [key for key in ("imgname", "center", "scale", "part", "S") if key not in data]
    if missing:
        raise InputError(
            f"{path} has no {', '.join(repr(key) for key in missing)} (it has {sorted(data)}); "
            f"expected mmpose's 3DHP layout: imgname, center, scale, part (N, 17, 3), S (N, 17, 4)"
        )
    rows = len(np.atleast_1d(data["scale"]))
    expected = {
        "imgname": (rows,),
        "center": (rows, 2),
        "scale": (rows,),
        "part": (rows, NUM_3DHP_JOINTS, 3),
        "S": (rows, NUM_3DHP_JOINTS, 4),
    }
    for key, shape in expected.items():
        if data[key].shape != shape:
            hint = (
                " (24 joints: already SPIN's layout, use it as it is)"
                if data[key].shape[1:2] == (NUM_GT_JOINTS,)
                else ""
            )
            raise InputError(
                f"{path}: '{key}' has shape {data[key].shape}, expected {shape}{hint}: mmpose's "
                f"17 MPI-INF-3DHP joints for each of the {rows} rows"
            )
    return data


def convert_mmpose_3dhp(
    npz: str | Path, images_dir: str | Path | None = None, config: Mmpose3dhpConfig | None = None
) -> ConvertedDataset:
    """SPIN's rows of mmpose's 3DHP npz (see the module docstring); with ``images_dir``, every
    kept row's image must exist there."""
    config = config or Mmpose3dhpConfig()
    path = Path(npz)
    data = read_mmpose_3dhp(path)
    part17 = check_keypoints(data["part"], f"{path} 'part'")  # (N, 17, 3)
    joints3d = np.asarray(data["S"], dtype=np.float64)  # (N, 17, 4)
    if not np.isfinite(joints3d).all():
        bad = np.unique(np.nonzero(~np.isfinite(joints3d))[0])
        raise InputError(
            f"{path}: 'S' has NaN or infinite values in rows {bad[:10].tolist()}; fix or drop them"
        )
    keep = (part17[..., 2] > 0).sum(axis=1) >= config.min_visible_joints
    few = int((~keep).sum())
    reason = f"frames with fewer than {config.min_visible_joints} joints inside the image"
    skipped = ((reason, few),) if few else ()
    for reason, count in skipped:
        logger.info("skipped %d %s", count, reason)
    if not keep.any():
        raise InputError(
            f"no frame of {path} has {config.min_visible_joints} of its {NUM_3DHP_JOINTS} joints inside "
            f"the image ({len(keep)} frames); lower --min-visible-joints to keep them"
        )
    part17, joints3d = part17[keep], joints3d[keep]
    root = joints3d[:, MMPOSE_3DHP_ROOT : MMPOSE_3DHP_ROOT + 1, :3]  # (N, 1, 3) the pelvis
    relative = (joints3d[..., :3] - root) * UNIT_METRES[config.s_unit]  # (N, 17, 3) metres
    _check_metres(relative, config.s_unit, path)
    rows = int(keep.sum())
    part = np.zeros((rows, NUM_GT_JOINTS, 3))
    part[:, list(MMPOSE_3DHP_TO_SPIN_GT)] = part17
    joints = np.zeros((rows, NUM_GT_JOINTS, 4))
    joints[:, list(MMPOSE_3DHP_TO_SPIN_GT)] = np.concatenate([relative, joints3d[..., 3:]], axis=-1)
    imgname = np.asarray(data["imgname"]).astype(str)[keep]
    if images_dir is not None:
        check_images_exist(check_folder(images_dir, "--images", "the 3DHP frames"), imgname, str(path))
    return ConvertedDataset(
        imgname=imgname,
        center=np.asarray(data["center"], dtype=np.float64)[keep],
        scale=np.asarray(data["scale"], dtype=np.float64)[keep],
        part=part,
        openpose=np.zeros((rows, NUM_OPENPOSE_JOINTS, 3)),
        S=joints,
        skipped=skipped,
    )


def _check_metres(relative: np.ndarray, unit: str, path: Path) -> None:
    """(N, 17, 3) pelvis-relative joints, converted to metres, must look like a person."""
    farthest = float(np.abs(relative).max())
    if farthest > MAX_JOINT_DISTANCE_M:
        raise InputError(
            f"{path}: with 'S' in {unit}, a joint lies {farthest:.4g} m from the pelvis (a person's "
            f"joints lie within {MAX_JOINT_DISTANCE_M} m); 'S' is not in {unit}"
            + ("; pass --s-unit mm for millimetres" if unit == "m" else "")
        )
    if farthest < MAX_JOINT_DISTANCE_M / 1000:
        raise InputError(
            f"{path}: with 'S' in {unit}, every joint lies within {farthest:.3g} m of the pelvis; "
            f"'S' is not in {unit}" + ("; pass --s-unit m for metres (mmpose's unit)" if unit == "mm" else "")
        )
