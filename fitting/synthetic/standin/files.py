"""Write the stand-in body model in the exact file formats and names SPIN uses.

Output (``DIR`` is SPIN's ``data/`` folder)::

    DIR/smpl/SMPL_NEUTRAL.pkl   keys and dtypes of the official SMPL pickle (no chumpy),
                                plus the key ``spinfits_standin`` naming it a stand-in; its
                                ``posedirs`` are the stand-in's pose correctives (expanded by
                                ``standin_correctives``)
    DIR/J_regressor_extra.npy   (9, 6890) float64
    DIR/gmm_08.pkl              {'means' (8, 69), 'covars' (8, 69, 69), 'weights' (8,)} + marker
    DIR/J_regressor_h36m_standin.npy  (17, 6890) float64 in the layout of SPIN's
                                J_regressor_h36m.npy (built by ``standin_h36m_regressor``)
    DIR/STANDIN.md              provenance and licence
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse
from scipy.spatial import cKDTree

from spinfits.errors import InputError
from spinfits.fitting.body.joints import NUM_OPENPOSE_JOINTS, SMPL_VERTEX_KEYPOINTS, SPIN_JOINT_SOURCE
from spinfits.fitting.body.model_files import (
    EXTRA_REGRESSOR_NAME,
    GMM_NAME,
    NUM_POSE_BASIS,
    SMPL_RELATIVE_PATH,
    STANDIN_KEY,
    STANDIN_README,
)
from spinfits.fitting.evaluation.h36m_regressor import STANDIN_H36M_REGRESSOR_NAME
from spinfits.fitting.evaluation.metrics import H36M_TO_GT24
from spinfits.fitting.synthetic.standin.mocap_prior import MOCAP_BUILD_COMMAND, MOCAP_EVERY
from spinfits.fitting.synthetic.standin.package_data import (
    BODY_SOURCE,
    CORRECTIVES_SOURCE,
    MOCAP_POSES,
    MOCAP_PRIOR,
    PRIOR_SOURCE,
    PROVENANCE,
    packaged,
)

logger = logging.getLogger(__name__)

_ROOT_PARENT = np.int64(4294967295)  # how SMPL's pickle stores the root's parent (uint32 -1)


@dataclass(frozen=True)
class StandinPaths:
    smpl: Path
    extra_regressor: Path
    gmm: Path
    readme: Path
    h36m_regressor: Path


def _mirror_indices(vertices: np.ndarray) -> np.ndarray:
    """(V,) index of each vertex's left/right mirror (SMPL's ``vert_sym_idxs``)."""
    mirrored = vertices * np.array([-1.0, 1.0, 1.0])
    return cKDTree(vertices).query(mirrored)[1].astype(np.int64)


@dataclass(frozen=True)
class StandinCorrectives:
    """The stand-in's pose-corrective blend shapes, expanded from their shipped factors.

    Fields:
        posedirs: (V, 3, 207) float64 in SMPL's pickle layout: the unposed offset of vertex v
            along axis c is ``sum_f posedirs[v, c, f] * feature[f]``, feature = R_j - I of joints
            1..23 (SMPL's order, each 3x3 row-major); smplx reshapes it to (207, V*3).
        training_info: what the pickle's ``pose_training_info`` holds: that they are a stand-in,
            how they were learned, their rank and held-out figures (``figure_*`` of the source file).
    """

    posedirs: np.ndarray
    training_info: dict[str, object]


def standin_correctives(num_vertices: int) -> StandinCorrectives:
    """Expand ``standin_correctives.npz`` (built by tools/build_standin_correctives.py).

    The file holds posedirs (207, V*3) = 2**scale_exponent * feature_weights (207, k) int32 @
    vertex_basis (k, V*3) int16 with k <= 128: every partial sum of that product is an integer
    below 2**53, so the float64 expansion is exact, the same with any BLAS on any machine (the
    body model's fingerprint hashes posedirs).
    """
    with np.load(packaged(CORRECTIVES_SOURCE)) as source:
        weights = source["feature_weights"]
        basis = source["vertex_basis"]
        exponent = int(source["scale_exponent"])
        provenance = str(source["provenance"])
        figures = {
            "held_out_" + k.removeprefix("figure_"): float(source[k])
            for k in source.files
            if k.startswith("figure_")
        }
    rank = weights.shape[-1]
    if (
        weights.dtype != np.int32
        or basis.dtype != np.int16
        or weights.shape != (NUM_POSE_BASIS, rank)
        or basis.shape != (rank, num_vertices, 3)
        or not 0 < rank <= 128
    ):
        raise InputError(
            f"{CORRECTIVES_SOURCE} holds feature_weights {weights.dtype} {weights.shape} and "
            f"vertex_basis {basis.dtype} {basis.shape}; expected int32 ({NUM_POSE_BASIS}, k) and "
            f"int16 (k, {num_vertices}, 3) with k <= 128; rebuild it with tools/build_standin_correctives.py"
        )
    product = weights.astype(np.float64) @ basis.reshape(rank, -1).astype(np.float64)
    posedirs = np.ldexp(product, exponent).T.reshape(num_vertices, 3, NUM_POSE_BASIS)
    info: dict[str, object] = {"standin": provenance, "rank": rank, **figures}
    return StandinCorrectives(np.ascontiguousarray(posedirs), info)


def standin_smpl_dict() -> dict[str, object]:
    """The stand-in SMPL model as the dict the official pickle holds (same keys and dtypes)."""
    with np.load(packaged(BODY_SOURCE)) as source:
        v_template = source["v_template"].astype(np.float64)
        shapedirs = source["shapedirs"].astype(np.float64)
        weights = source["weights"].astype(np.float64)
        regressor = source["J_regressor"].astype(np.float64)
        faces = source["faces"].astype(np.uint32)
        kintree = source["kintree_table"].astype(np.int64)
        provenance = str(source["provenance"])
    kintree[0, 0] = _ROOT_PARENT
    correctives = standin_correctives(v_template.shape[0])
    sparse_regressor = scipy.sparse.csc_matrix(regressor)
    return {
        "J_regressor_prior": sparse_regressor.copy(),
        "f": faces,
        "J_regressor": sparse_regressor,
        "kintree_table": kintree,
        "J": regressor @ v_template,
        "weights_prior": weights.copy(),
        "weights": weights,
        "vert_sym_idxs": _mirror_indices(v_template),
        "posedirs": correctives.posedirs,
        "pose_training_info": correctives.training_info,
        "bs_style": "lbs",
        "v_template": v_template,
        "shapedirs": shapedirs,
        "bs_type": "lrotmin",
        STANDIN_KEY: provenance,
    }


def standin_h36m_regressor(j_regressor: np.ndarray, j_regressor_extra: np.ndarray) -> np.ndarray:
    """The stand-in's Human3.6M regressor: (17, V), in the layout of SPIN's J_regressor_h36m.npy.

    Row k regresses the Human3.6M joint k (``evaluation.H36M_JOINT_NAMES``) with the body's own
    regressor of the ground-truth joint SPIN files it under (``evaluation.H36M_TO_GT24``): a row
    of ``J_regressor`` (24, V) for a skeleton joint (knees, ankles, shoulders, elbows, wrists), of
    ``J_regressor_extra`` (9, V) for SPIN's extra joints (hips, pelvis, spine, neck, jaw, head), or
    a one-hot vertex for a vertex keypoint. Rows are non-negative and sum to 1. Applied to the
    posed mesh, as SPIN applies its regressor, a skeleton row gives the centre of the ring of
    vertices around that joint: exactly the joint at rest, within millimetres when posed.
    """
    rows = []
    for gt_joint in H36M_TO_GT24:
        source = SPIN_JOINT_SOURCE[NUM_OPENPOSE_JOINTS + gt_joint]
        if source < len(j_regressor):
            rows.append(j_regressor[source])
        elif source < len(j_regressor) + len(SMPL_VERTEX_KEYPOINTS):
            row = np.zeros(j_regressor.shape[1])
            row[SMPL_VERTEX_KEYPOINTS[source - len(j_regressor)][1]] = 1.0
            rows.append(row)
        else:
            rows.append(j_regressor_extra[source - len(j_regressor) - len(SMPL_VERTEX_KEYPOINTS)])
    return np.stack(rows).astype(np.float64)


#: The stand-in's pose priors by name: the shipped file written out as ``gmm_08.pkl``.
PRIORS = {"mocap": MOCAP_PRIOR, "anatomy": PRIOR_SOURCE}
DEFAULT_PRIOR = "mocap"


def write_standin_files(
    directory: str | Path, overwrite: bool = False, prior: str = DEFAULT_PRIOR
) -> StandinPaths:
    """Write the complete stand-in set into ``directory`` (SPIN's ``data/`` layout).

    ``prior`` names the GMM written as ``gmm_08.pkl``: ``mocap`` (learned from CMU motion capture,
    ``mocap_prior``) or ``anatomy`` (fitted to the anatomy sampler ``natural_poses``, the stand-in's
    prior before motion capture came in).
    """
    if prior not in PRIORS:
        raise InputError(f"unknown stand-in prior {prior!r}; choose one of {', '.join(PRIORS)}")
    directory = Path(directory)
    paths = StandinPaths(
        smpl=directory / SMPL_RELATIVE_PATH,
        extra_regressor=directory / EXTRA_REGRESSOR_NAME,
        gmm=directory / GMM_NAME,
        readme=directory / STANDIN_README,
        h36m_regressor=directory / STANDIN_H36M_REGRESSOR_NAME,
    )
    existing = [p for p in (paths.smpl, paths.extra_regressor, paths.gmm) if p.exists()]
    if existing and not overwrite:
        raise InputError(
            f"{directory} already holds model files ({', '.join(str(p) for p in existing)}); "
            f"choose an empty folder or pass --overwrite"
        )
    paths.smpl.parent.mkdir(parents=True, exist_ok=True)

    with open(paths.smpl, "wb") as handle:
        pickle.dump(standin_smpl_dict(), handle, protocol=2)
    with np.load(packaged(BODY_SOURCE)) as source:
        regressor = source["J_regressor"].astype(np.float64)
        extra = source["J_regressor_extra"].astype(np.float64)
    np.save(paths.extra_regressor, extra)
    np.save(paths.h36m_regressor, standin_h36m_regressor(regressor, extra))
    with np.load(packaged(PRIORS[prior])) as source:
        gmm = {
            "means": source["means"],
            "covars": source["covars"],
            "weights": source["weights"],
            STANDIN_KEY: str(source["provenance"]),
        }
    with open(paths.gmm, "wb") as handle:
        pickle.dump(gmm, handle, protocol=2)
    paths.readme.write_text(_readme_text(prior))
    logger.info("wrote STAND-IN body model files (not SMPL, %s prior) to %s", prior, directory)
    return paths


def _readme_text(prior: str) -> str:
    provenance = packaged(PROVENANCE).read_text()
    if prior == "mocap":
        with np.load(packaged(MOCAP_PRIOR)) as source:
            clips = [str(c) for c in source["clips"]]
        with np.load(packaged(MOCAP_POSES)) as source:
            held_out = [str(c) for c in source["held_out"]]
        gmm_text = (
            f"`gmm_08.pkl` here is the stand-in's pose prior learned from CMU motion capture "
            f"(`{MOCAP_PRIOR}`, provenance below). Rebuilt bit for bit from ../shared/data/mocap, "
            f"in a spinfits checkout, by\n\n    {MOCAP_BUILD_COMMAND}\n\n"
            f"Learned from these {len(clips)} clips (every {MOCAP_EVERY}th frame): "
            + ", ".join(clips)
            + f".\n\nNever learned from (held out for evaluation, spinfits/fitting/mocap/"
            f"held_out_clips.txt): {', '.join(held_out)}.\n\n"
            "`spinfits model make-standin --prior anatomy` writes the older anatomy prior instead.\n\n"
        )
    else:
        gmm_text = (
            f"`gmm_08.pkl` here is the stand-in's anatomy prior (`{PRIOR_SOURCE}`, fitted to the "
            "anatomy sampler, no motion capture), written by `--prior anatomy`; the default "
            "(`--prior mocap`) is learned from CMU motion capture.\n\n"
        )
    return (
        "# STAND-IN body model files (not SMPL)\n\n"
        "Written by `spinfits model make-standin`. These files have the formats and names of "
        "SPIN's SMPL_NEUTRAL.pkl, J_regressor_extra.npy and gmm_08.pkl, but they are NOT the "
        "licensed SMPL model or SMPLify's prior: fits, losses and reports made with them are "
        "stand-in results. Point `--model-dir` at the real files for real results.\n\n"
        + gmm_text
        + "The pose-corrective blend shapes (`posedirs`) are stand-ins too: learned from this body "
        "posed with a richer rig, not from scans of people (see the provenance of "
        "`standin_correctives.npz` below).\n\n"
        f"`{STANDIN_H36M_REGRESSOR_NAME}` is a STAND-IN for SPIN's J_regressor_h36m.npy (the 17 "
        "Human3.6M joints regressed from the mesh for evaluation; `spinfits eval` and `spinfits "
        "store eval` find it here): its rows are this body's own joint regressors of the joints "
        "SPIN files the Human3.6M joints under, so H36M figures computed with it are stand-in "
        "figures, not comparable with published ones.\n\n" + provenance
    )
