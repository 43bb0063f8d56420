"""The stand-in's pose prior learned from CMU motion capture, and the mocap poses it ships.

Two package files, both rebuilt by ``tools/build_standin_prior.py`` (its default, ``--prior
mocap``) from ``../shared/data/mocap`` (``MOCAP_BUILD_COMMAND``):

- ``standin_mocap_poses.npz``: the MoSh-lite body poses (``mocap.mosh``, fitted to the stand-in's
  skeleton) of every 4th frame of the CMU clips that are NOT held out
  (``mocap/held_out_clips.txt``). ``body_pose`` (N, 69) float64 axis-angle, ``clip`` (N,) str
  ``folder/stem``, ``frame`` (N,) int64 frame of the BVH file, ``held_out`` the clips left out,
  ``provenance``. Synthetic people draw real poses from it (``people.SyntheticConfig.mocap_fraction``).
- ``standin_mocap_prior.npz``: the 8-component Gaussian mixture learned from exactly those poses
  (and their mirror images) by ``mocap.prior.mixture_of``: ``means`` (8, 69), ``covars`` (8, 69,
  69), ``weights`` (8,) float64, ``clips``, ``provenance``. Written out as the stand-in's
  ``gmm_08.pkl`` by default (``write_standin_files(prior="mocap")``).

The prior is a function of the shipped poses (seeded), so ``prior_from_poses(load_mocap_poses())``
gives the shipped arrays bit for bit (on one machine and library build), and a test checks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spinfits.errors import InputError
from spinfits.fitting.mocap.mosh import MoshFit
from spinfits.fitting.mocap.prior import LearnedPrior, mixture_of
from spinfits.fitting.synthetic.standin.package_data import MOCAP_POSES, MOCAP_PRIOR, packaged

#: Every how many BVH frames a pose is taken (15 fps clips: ~4 poses a second).
MOCAP_EVERY = 4
MOCAP_COMPONENTS = 8
MOCAP_SEED = 0
#: The command that rebuilds both files from the shared data (run in a checkout).
MOCAP_BUILD_COMMAND = "python tools/build_standin_prior.py --prior mocap --mocap ../shared/data/mocap"


@dataclass(frozen=True)
class MocapPoses:
    """Body poses of real people (MoSh-lite fits of CMU mocap frames).

    Fields: body_pose (N, 69) float64 axis-angle of joints 1..23; clip (N,) str ``folder/stem``;
    frame (N,) int64 frame in its BVH file; held_out: the clips left out when they were chosen.
    """

    body_pose: np.ndarray
    clip: np.ndarray
    frame: np.ndarray
    held_out: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.body_pose)


def held_in_poses(fit: MoshFit, held_out: tuple[str, ...]) -> MocapPoses:
    """The poses of ``fit`` whose clips are not in ``held_out`` (split by clip, never by frame)."""
    keep = ~np.isin(fit.clip, list(held_out))
    if not keep.any():
        raise InputError(f"every clip of the {len(fit)} fitted frames is held out: no poses left to ship")
    return MocapPoses(
        np.ascontiguousarray(fit.pose[keep, 3:], dtype=np.float64),
        fit.clip[keep].astype(str),
        fit.frame[keep].astype(np.int64),
        tuple(held_out),
    )


def prior_from_poses(poses: MocapPoses) -> LearnedPrior:
    """The shipped prior's mixture, learned from ``poses`` (module doc)."""
    return mixture_of(poses.body_pose, poses.clip, MOCAP_COMPONENTS, MOCAP_SEED)


def write_mocap_files(poses: MocapPoses, directory: str | Path) -> tuple[Path, Path]:
    """Write ``MOCAP_POSES`` and ``MOCAP_PRIOR`` (learned from ``poses``) into ``directory``."""
    directory = Path(directory)
    prior = prior_from_poses(poses)
    clips = sorted(set(poses.clip.tolist()))
    source = (
        f"MoSh-lite fits (stand-in skeleton) of every {MOCAP_EVERY}th frame of {len(clips)} CMU motion "
        f"capture clips in ../shared/data/mocap, {len(poses.held_out)} held-out clips left out"
    )
    poses_path = directory / MOCAP_POSES
    np.savez_compressed(
        poses_path,
        body_pose=poses.body_pose,
        clip=poses.clip.astype(str),
        frame=poses.frame,
        held_out=np.array(poses.held_out, dtype=str),
        provenance=np.array(f"{source}; rebuilt by `{MOCAP_BUILD_COMMAND}`"),
    )
    prior_path = directory / MOCAP_PRIOR
    np.savez_compressed(
        prior_path,
        means=prior.means,
        covars=prior.covars,
        weights=prior.weights,
        clips=np.array(prior.clips, dtype=str),
        provenance=np.array(
            f"spinfits stand-in GMM pose prior learned from CMU motion capture: {MOCAP_COMPONENTS} "
            f"full-covariance Gaussians (scikit-learn, seed {MOCAP_SEED}) fitted to {len(poses)} "
            f"{source}, and their mirror images; rebuilt by `{MOCAP_BUILD_COMMAND}`. NOT SMPLify's "
            "gmm_08.pkl (learned by its authors from CMU mocap with SMPL's body)."
        ),
    )
    return poses_path, prior_path


def read_mocap_poses(path: str | Path) -> MocapPoses:
    """Read a ``MOCAP_POSES`` file (``load_mocap_poses`` reads the shipped one)."""
    try:
        with np.load(path) as data:
            poses = MocapPoses(
                data["body_pose"].astype(np.float64),
                data["clip"].astype(str),
                data["frame"].astype(np.int64),
                tuple(data["held_out"].tolist()),
            )
    except (OSError, KeyError, ValueError) as error:
        raise InputError(
            f"{path} is not a mocap poses file (npz of body_pose, clip, frame, held_out): {error}; "
            f"rebuild it with `{MOCAP_BUILD_COMMAND}`"
        ) from None
    if poses.body_pose.ndim != 2 or poses.body_pose.shape[1] != 69 or len(poses.clip) != len(poses.body_pose):
        raise InputError(
            f"{path}: body_pose {poses.body_pose.shape} and {len(poses.clip)} clip names; expected "
            f"(N, 69) and N; rebuild it with `{MOCAP_BUILD_COMMAND}`"
        )
    return poses


def load_mocap_poses() -> MocapPoses:
    """The mocap poses shipped with the stand-in (``MOCAP_POSES``)."""
    return read_mocap_poses(packaged(MOCAP_POSES))
