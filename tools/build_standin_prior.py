"""Build the stand-in's GMM pose priors shipped in ``fitting/synthetic/standin/``.

``--prior mocap`` (the default, the prior ``spinfits model make-standin`` writes): from the CMU clips
of ``../shared/data/mocap``, in a checkout::

    python tools/build_standin_prior.py --prior mocap --mocap ../shared/data/mocap

fits the stand-in's skeleton to every 4th frame of every clip (MoSh-lite, ``fitting.mocap.mosh``;
about 10 minutes on 2 CPU cores, cached in ``--cache``), keeps the clips not held out
(``fitting/mocap/held_out_clips.txt``) and writes their body poses to ``standin_mocap_poses.npz``
and the 8-component mixture learned from them to ``standin_mocap_prior.npz``
(``fitting.synthetic.standin.mocap_prior``). The same inputs give the same arrays.

``--prior anatomy``: the older prior, fitted to 40,000 poses of the anatomy sampler
``fitting.synthetic.natural_poses`` (no motion capture), into ``standin_pose_prior.npz``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from sklearn.mixture import GaussianMixture

from spinfits.fitting.body.model_files import load_body_model_files
from spinfits.fitting.mocap.joints import MocapConfig
from spinfits.fitting.mocap.prior import cached_fits, read_held_out
from spinfits.fitting.synthetic.natural_poses import mirror_body_pose, sample_body_poses
from spinfits.fitting.synthetic.standin import write_standin_files
from spinfits.fitting.synthetic.standin.mocap_prior import MOCAP_EVERY, held_in_poses, write_mocap_files

STANDIN = Path(__file__).resolve().parents[1] / "fitting" / "synthetic" / "standin"
MOCAP = Path(__file__).resolve().parents[2] / "shared" / "data" / "mocap"
CLIP_SETS = ("cmu_aclstm", "cmu_iclone")


def build_mocap(mocap: Path, cache: Path, output: Path) -> None:
    with tempfile.TemporaryDirectory() as model_dir:  # the skeleton fitted; no prior is used
        write_standin_files(model_dir, prior="anatomy")
        files = load_body_model_files(model_dir)
        fit, cached = cached_fits(
            [mocap / name for name in CLIP_SETS], files, cache, MocapConfig(every=MOCAP_EVERY)
        )
    poses = held_in_poses(fit, read_held_out())
    poses_path, prior_path = write_mocap_files(poses, output)
    print(
        f"{'read' if cached else 'fitted'} {len(fit)} frames ({cache}); wrote {poses_path} "
        f"({len(poses)} poses of {len(set(poses.clip.tolist()))} clips, {len(poses.held_out)} clips "
        f"held out) and {prior_path}"
    )


def build_anatomy(samples: int, seed: int, output: Path) -> None:
    rng = np.random.default_rng(seed)
    poses = sample_body_poses(samples // 2, rng)
    poses = np.concatenate([poses, mirror_body_pose(poses)])
    gmm = GaussianMixture(
        n_components=8,
        covariance_type="full",
        reg_covar=1e-4,
        random_state=seed,
        max_iter=300,
    ).fit(poses)
    provenance = (
        "spinfits stand-in GMM pose prior: 8 full-covariance Gaussians fitted with scikit-learn "
        f"to {len(poses)} poses of spinfits.fitting.synthetic.natural_poses (anatomy-based sampler, no "
        f"motion capture; seed {seed}). NOT SMPLify's CMU-learned prior."
    )
    path = output / "standin_pose_prior.npz"
    np.savez_compressed(
        path,
        means=gmm.means_.astype(np.float64),
        covars=gmm.covariances_.astype(np.float64),
        weights=gmm.weights_.astype(np.float64),
        provenance=np.array(provenance),
    )
    print(
        f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB); "
        f"mean log-likelihood {gmm.score(poses):.2f}, converged={gmm.converged_}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prior", choices=("mocap", "anatomy"), default="mocap")
    parser.add_argument(
        "--mocap", type=Path, default=MOCAP, help="folder holding cmu_aclstm/ and cmu_iclone/"
    )
    parser.add_argument(
        "--cache", type=Path, default=None, help="MoSh-lite fits cache (default: a file in the temp folder)"
    )
    parser.add_argument("--samples", type=int, default=40000, help="anatomy poses drawn (--prior anatomy)")
    parser.add_argument("--seed", type=int, default=8, help="anatomy sampler seed (--prior anatomy)")
    parser.add_argument("--output", type=Path, default=STANDIN, help="folder to write into")
    args = parser.parse_args()
    if args.prior == "mocap":
        cache = args.cache or Path(tempfile.gettempdir()) / "spinfits_standin_mocap.fits.npz"
        build_mocap(args.mocap, cache, args.output)
    else:
        build_anatomy(args.samples, args.seed, args.output)


if __name__ == "__main__":
    main()
