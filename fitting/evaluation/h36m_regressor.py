"""SPIN's Human3.6M joint regressor file: ``J_regressor_h36m.npy``, (17, V) weights over vertices.

SPIN evaluates on Human3.6M with the 17 joints this matrix regresses from the mesh (see
``spinfits.fitting.evaluation.metrics``: ``H36M_TO_J14``). The real file comes with SPIN's data
(``data/J_regressor_h36m.npy``); for the stand-in body, ``spinfits model make-standin`` writes
``J_regressor_h36m_standin.npy``, named as the stand-in it is. ``find_h36m_regressor`` looks for
them in a model folder: the real name first; the stand-in one only beside a stand-in body.
"""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spinfits.errors import InputError
from spinfits.fitting.body.model_files import BodyModelFiles
from spinfits.fitting.evaluation.metrics import NUM_H36M_JOINTS

logger = logging.getLogger(__name__)

H36M_REGRESSOR_NAME = "J_regressor_h36m.npy"
#: The stand-in's regressor, in SPIN's layout, named so that nobody takes it for SPIN's file.
STANDIN_H36M_REGRESSOR_NAME = "J_regressor_h36m_standin.npy"


@dataclass(frozen=True, eq=False)
class H36mRegressor:
    """A Human3.6M joint regressor (V vertices).

    Fields:
        weights: (17, V) float64, joint j = sum_v weights[j, v] * vertex v (Human3.6M's order,
            ``evaluation.H36M_JOINT_NAMES``).
        path: the file it came from; is_standin: it is the stand-in body's, not SPIN's.
    """

    weights: np.ndarray
    path: Path
    is_standin: bool

    @property
    def description(self) -> str:
        kind = "STAND-IN Human3.6M regressor (not SPIN's)" if self.is_standin else "Human3.6M regressor"
        return f"{kind} {self.path}"


def load_h36m_regressor(path: str | Path, num_vertices: int) -> H36mRegressor:
    """Read a (17, ``num_vertices``) regressor in SPIN's ``J_regressor_h36m.npy`` layout."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"Human3.6M regressor {path} does not exist; expected SPIN's data/{H36M_REGRESSOR_NAME} "
            f"((17, {num_vertices}) .npy), or the stand-in's {STANDIN_H36M_REGRESSOR_NAME} written by "
            "`spinfits model make-standin DIR`"
        )
    try:
        weights = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise InputError(
            f"{path} is not a .npy array ({error}); expected SPIN's {H36M_REGRESSOR_NAME}, a "
            f"(17, {num_vertices}) float array"
        ) from None
    if weights.shape != (NUM_H36M_JOINTS, num_vertices) or weights.dtype.kind not in "fiu":
        raise InputError(
            f"{path} holds a {weights.dtype} array of shape {weights.shape}, expected (17, "
            f"{num_vertices}) floats: SPIN's {H36M_REGRESSOR_NAME} for a body of {num_vertices} "
            "vertices (is it the regressor of another body model?)"
        )
    weights = weights.astype(np.float64)
    if not np.isfinite(weights).all():
        raise InputError(f"{path} contains NaN or infinite weights; the file is damaged")
    regressor = H36mRegressor(weights, path, "standin" in path.name.lower())
    logger.info("loaded %s", regressor.description)
    return regressor


def find_h36m_regressor(files: BodyModelFiles) -> Path | None:
    """The Human3.6M regressor beside a body model's files, or None: ``J_regressor_h36m.npy``,
    else, for a stand-in body, ``J_regressor_h36m_standin.npy``."""
    real = files.directory / H36M_REGRESSOR_NAME
    if real.is_file():
        return real
    standin = files.directory / STANDIN_H36M_REGRESSOR_NAME
    if files.is_standin and standin.is_file():
        return standin
    return None
