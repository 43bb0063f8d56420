"""LSP and LSP-extended ``joints.mat`` -> SPIN's dataset rows, as SPIN's ``lsp_dataset*.py`` and
``hr_lspet.py``.

The file holds one MATLAB array ``joints`` of LSP's 14 joints (``LSP_JOINT_NAMES``) per image:
LSP (2000 images) stores it as 3 x 14 x N, LSP-extended (10000 images) as 14 x 3 x N; rows 0-1
(columns 0-1) are pixel x, y, the third a visibility flag. The layout is told by the shape.

SPIN's rows: one per image, in the file's order; ``part`` (N, 24, 3) with the 14 joints in SPIN's
first 14 slots (``LSP_TO_SPIN_GT``), every joint of confidence 1 (SPIN ignores the flag: LSP
labels occluded joints too); the box around the 14 joints (``box_around_joints``, x 1.2);
``imgname`` ``im0001.jpg``... (LSP) or ``im00001.jpg``... (LSP-extended), image number = column
+ 1; ``--name-format`` changes it (``im{:05d}.png`` for SPIN's hr-lspet). SPIN trains on LSP's
images 1-1000 (``--split train``) and tests on 1001-2000 (``--split test``). No OpenPose
detections (``spinfits data attach-openpose`` adds them), ``has_smpl`` 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from spinfits.errors import InputError
from spinfits.fitting.body.joints import NUM_GT_JOINTS, NUM_OPENPOSE_JOINTS
from spinfits.fitting.converters.image_files import check_folder, check_images_exist
from spinfits.fitting.converters.mat_file import read_mat
from spinfits.fitting.converters.spin_rows import ConvertedDataset, box_around_joints
from spinfits.fitting.data.dataset_joint_maps import LSP_JOINT_NAMES, LSP_TO_SPIN_GT

NUM_LSP_JOINTS = len(LSP_JOINT_NAMES)

#: LSP's images: SPIN's train split is images 1-1000, its test split 1001-2000.
LSP_IMAGES = 2000
LSP_TRAIN_IMAGES = 1000

#: Default image names per layout (image number = column + 1).
NAME_FORMATS = {"lsp": "im{:04d}.jpg", "lsp-extended": "im{:05d}.jpg"}


@dataclass(frozen=True)
class LspConfig:
    """Which images become rows, their names and boxes.

    split: "all", or LSP's (2000 images) SPIN split: "train" (images 1-1000), "test" (1001-2000).
    name_format: ``str.format`` pattern of an image's name from its number (1-based); None:
        ``NAME_FORMATS`` of the file's layout.
    rescale: box side / the joints' extent (SPIN's 1.2).
    """

    split: Literal["all", "train", "test"] = "all"
    name_format: str | None = None
    rescale: float = 1.2

    def __post_init__(self) -> None:
        if self.split not in ("all", "train", "test"):
            raise InputError(f"split must be 'all', 'train' or 'test', got {self.split!r}")
        if self.name_format is not None:
            try:
                self.name_format.format(1)
            except (IndexError, KeyError, ValueError) as error:
                raise InputError(
                    f"name_format {self.name_format!r} does not format an image number "
                    f"({type(error).__name__}: {error}); e.g. 'im{{:04d}}.jpg'"
                ) from None
        if not self.rescale > 0:
            raise InputError(f"rescale must be > 0 (box side / joint extent), got {self.rescale}")


def read_lsp_joints(path: str | Path) -> tuple[np.ndarray, Literal["lsp", "lsp-extended"]]:
    """``joints.mat``'s joints as (N, 14, 3) pixel x, y, visibility flag, and the file's layout."""
    path = Path(path)
    joints = read_mat(path, "LSP's joints.mat")
    if "joints" not in joints:
        raise InputError(
            f"{path} has no 'joints' array (it has {sorted(joints)}); expected LSP's joints.mat: "
            f"'joints' of 3 x 14 x N (LSP) or 14 x 3 x N (LSP-extended)"
        )
    array = np.asarray(joints["joints"])
    if array.ndim == 2 and array.shape in ((3, NUM_LSP_JOINTS), (NUM_LSP_JOINTS, 3)):
        array = array[..., None]  # MATLAB drops a trailing 1: one image
    if array.ndim != 3 or array.dtype.kind not in "biuf":
        raise InputError(
            f"{path}: 'joints' is {array.dtype} of shape {array.shape}, expected numbers of shape "
            f"3 x 14 x N (LSP) or 14 x 3 x N (LSP-extended)"
        )
    if array.shape[:2] == (3, NUM_LSP_JOINTS):
        layout, per_image = "lsp", np.transpose(array, (2, 1, 0))
    elif array.shape[:2] == (NUM_LSP_JOINTS, 3):
        layout, per_image = "lsp-extended", np.transpose(array, (2, 0, 1))
    else:
        raise InputError(
            f"{path}: 'joints' has shape {array.shape}, expected 3 x 14 x N (LSP) or 14 x 3 x N "
            f"(LSP-extended): LSP's 14 joints x (x, y, visibility) per image"
        )
    per_image = per_image.astype(np.float64)
    if not np.isfinite(per_image[..., :2]).all():
        bad = np.unique(np.nonzero(~np.isfinite(per_image[..., :2]))[0])
        raise InputError(
            f"{path}: 'joints' has NaN or infinite coordinates for images {(bad + 1)[:10].tolist()} "
            f"(1-based); fix or drop them"
        )
    return per_image, layout


def convert_lsp(
    joints_mat: str | Path, images_dir: str | Path | None = None, config: LspConfig | None = None
) -> ConvertedDataset:
    """SPIN's rows of LSP's or LSP-extended's ``joints.mat`` (see the module docstring); with
    ``images_dir``, every row's image must exist there."""
    config = config or LspConfig()
    path = Path(joints_mat)
    joints, layout = read_lsp_joints(path)  # (N, 14, 3)
    numbers = np.arange(1, len(joints) + 1)
    if config.split != "all":
        if layout != "lsp" or len(joints) != LSP_IMAGES:
            raise InputError(
                f"--split {config.split} is SPIN's split of LSP's {LSP_IMAGES} images (train 1-1000, "
                f"test 1001-2000); {path} is {layout} with {len(joints)} images: use --split all"
            )
        keep = numbers <= LSP_TRAIN_IMAGES if config.split == "train" else numbers > LSP_TRAIN_IMAGES
        joints, numbers = joints[keep], numbers[keep]
    part14 = np.concatenate([joints[..., :2], np.ones((*joints.shape[:2], 1))], axis=-1)
    center, scale, placed = box_around_joints(part14, config.rescale)
    if not placed.all():
        bad = numbers[~placed]
        raise InputError(
            f"{path}: the joints of images {bad[:10].tolist()} (1-based) all lie on one point, so "
            f"no box can be placed; is 'joints' in pixels?"
        )
    name_format = config.name_format or NAME_FORMATS[layout]
    imgname = np.asarray([name_format.format(int(number)) for number in numbers], dtype=str)
    if images_dir is not None:
        check_images_exist(check_folder(images_dir, "--images", "the LSP images"), imgname, str(path))
    part = np.zeros((len(joints), NUM_GT_JOINTS, 3))
    part[:, list(LSP_TO_SPIN_GT)] = part14
    return ConvertedDataset(
        imgname=imgname,
        center=center,
        scale=scale,
        part=part,
        openpose=np.zeros((len(joints), NUM_OPENPOSE_JOINTS, 3)),
    )
