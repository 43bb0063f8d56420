"""A pose prior learned from motion capture, in SMPLify's ``gmm_08.pkl`` format.

``learn_pose_prior``: the MoSh-lite poses (``mosh.fit_mocap``) of the clips not held out, each
also mirrored (SPIN's pose flip) so the prior is left/right symmetric, fitted by scikit-learn's
full-covariance Gaussian mixture (seeded: the same data give the same bytes on one machine and
library build). The result has the fields SPIN's ``MaxMixturePrior`` reads: ``means`` (G, 69),
``covars`` (G, 69, 69), ``weights`` (G,). Split by clip, never by frame: a clip named in the
held-out list contributes no frame.

``cached_fits`` keeps the MoSh-lite fits in an npz keyed by the BVH files' bytes, the body model's
fingerprint and the configurations, so the prior tool does not refit what it fitted before.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from spinfits.errors import InputError
from spinfits.fitting.body.joints import SMPL_POSE_FLIP_PERM
from spinfits.fitting.body.model_files import BodyModelFiles
from spinfits.fitting.mocap.joints import MocapConfig, bvh_files, clip_name, mocap_joints
from spinfits.fitting.mocap.mosh import MoshConfig, MoshFit, fit_mocap

logger = logging.getLogger(__name__)

#: The clips held out of everything learned (a few per motion type), shipped with the package.
HELD_OUT_FILE = "held_out_clips.txt"


@dataclass(frozen=True)
class LearnedPrior:
    """A Gaussian mixture over the 69 body-pose values (G components).

    Fields: means (G, 69), covars (G, 69, 69), weights (G,) float64; clips: the clips learned
    from; frames: how many frames (before mirroring); log_likelihood: mean per pose, training set.
    """

    means: np.ndarray
    covars: np.ndarray
    weights: np.ndarray
    clips: tuple[str, ...]
    frames: int
    log_likelihood: float


def read_held_out(path: str | Path | None = None) -> tuple[str, ...]:
    """Clip names (``folder/stem``) of a held-out list: one a line, ``#`` comments; default: the
    package's list."""
    if path is None:
        text = (resources.files("spinfits.fitting.mocap") / HELD_OUT_FILE).read_text()
    else:
        try:
            text = Path(path).read_text()
        except OSError as error:
            raise InputError(f"cannot read the held-out clip list {path}: {error.strerror}") from None
    names = [line.split("#")[0].strip() for line in text.splitlines()]
    return tuple(n for n in names if n)


def mirror_body_pose(body_pose: np.ndarray) -> np.ndarray:
    """(N, 69) -> the mirror image (SPIN's flip_pose: permute joints, negate y and z)."""
    full = np.concatenate([np.zeros((len(body_pose), 3)), body_pose], axis=1)
    mirrored = full[:, list(SMPL_POSE_FLIP_PERM)]
    mirrored[:, 1::3] *= -1
    mirrored[:, 2::3] *= -1
    return mirrored[:, 3:]


def learn_pose_prior(
    fit: MoshFit, held_out: tuple[str, ...], components: int = 8, seed: int = 0
) -> LearnedPrior:
    """The mixture of the held-in poses of ``fit`` (module doc)."""
    if components < 1:
        raise InputError(f"components must be >= 1, got {components}")
    keep = ~np.isin(fit.clip, list(held_out))
    if keep.sum() < components * 10:
        raise InputError(
            f"{int(keep.sum())} frames left after holding out {len(held_out)} clips: too few for "
            f"{components} components; give more clips"
        )
    return mixture_of(fit.pose[keep, 3:], fit.clip[keep], components, seed)


def mixture_of(body_poses: np.ndarray, clips: np.ndarray, components: int = 8, seed: int = 0) -> LearnedPrior:
    """The mixture of ``body_poses`` (N, 69) and their mirror images; ``clips`` (N,) names the
    clip of each pose (recorded, not filtered: ``learn_pose_prior`` holds clips out)."""
    from sklearn.mixture import GaussianMixture

    body_poses = np.asarray(body_poses, dtype=np.float64)
    if body_poses.ndim != 2 or body_poses.shape[1] != 69 or len(body_poses) != len(clips):
        raise InputError(
            f"expected body poses (N, 69) and N clip names, got poses {body_poses.shape} and "
            f"{len(clips)} clip names"
        )
    data = np.concatenate([body_poses, mirror_body_pose(body_poses)])
    gmm = GaussianMixture(
        n_components=components, covariance_type="full", reg_covar=1e-3, random_state=seed, max_iter=300
    ).fit(data)
    return LearnedPrior(
        means=gmm.means_.astype(np.float64),
        covars=gmm.covariances_.astype(np.float64),
        weights=gmm.weights_.astype(np.float64),
        clips=tuple(dict.fromkeys(np.asarray(clips).tolist())),
        frames=len(body_poses),
        log_likelihood=float(gmm.score(data)),
    )


def _cache_key(paths: list[Path], files: BodyModelFiles, mocap: MocapConfig, mosh: MoshConfig) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(clip_name(path).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    for array in (files.smpl.J_regressor, files.smpl.v_template, files.smpl.shapedirs):  # the skeleton
        digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    digest.update(repr(dataclasses.astuple(mocap)).encode())
    digest.update(repr(dataclasses.astuple(mosh)).encode())
    return digest.hexdigest()[:16]


def cached_fits(
    paths: list[str | Path],
    files: BodyModelFiles,
    cache: str | Path,
    mocap: MocapConfig = MocapConfig(),
    mosh: MoshConfig = MoshConfig(),
) -> tuple[MoshFit, bool]:
    """MoSh-lite fits of the clips in ``paths``, read from ``cache`` when it holds these exact
    inputs, else fitted and written there. Returns the fits and whether the cache served them."""
    found = bvh_files(paths)
    key = _cache_key(found, files, mocap, mosh)
    cache = Path(cache)
    if cache.is_file():
        with np.load(cache) as data:
            if str(data["key"]) == key:
                fields = ("pose", "betas", "transl", "residual", "clip", "frame")
                return MoshFit(*(data[f] for f in fields)), True
        logger.info("%s holds fits of other inputs: refitting", cache)
    fit = fit_mocap(mocap_joints(found, mocap), files, mosh)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        cache,
        key=np.array(key),
        pose=fit.pose,
        betas=fit.betas,
        transl=fit.transl,
        residual=fit.residual,
        clip=fit.clip.astype(str),
        frame=fit.frame,
    )
    return fit, False


def write_gmm_pickle(prior: LearnedPrior, path: str | Path, provenance: str) -> Path:
    """Write ``prior`` as SMPLify's ``gmm_08.pkl`` (a dict of means, covars, weights; protocol 2),
    with ``provenance`` and the clips under the keys ``spinfits_provenance``, ``spinfits_clips``."""
    import pickle

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {
        "means": prior.means,
        "covars": prior.covars,
        "weights": prior.weights,
        "spinfits_provenance": provenance,
        "spinfits_clips": list(prior.clips),
    }
    path.write_bytes(pickle.dumps(content, protocol=2))
    return path
