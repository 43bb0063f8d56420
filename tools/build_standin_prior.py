"""Build the stand-in GMM pose prior shipped in
``fitting/synthetic/standin/standin_pose_prior.npz``.

Run once (needs the ``standin-build`` extra for scikit-learn)::

    python tools/build_standin_prior.py

Fits an 8-component full-covariance Gaussian mixture (SMPLify's ``gmm_08.pkl`` layout) to
poses drawn from ``spinfits.fitting.synthetic.natural_poses`` (an anatomy-based sampler: no motion
capture is used), mirrored so the prior is left/right symmetric. The result is a STAND-IN for
SMPLify's prior, which was learned from CMU motion capture and is licensed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.mixture import GaussianMixture

from spinfits.fitting.synthetic.natural_poses import mirror_body_pose, sample_body_poses

OUTPUT = Path(__file__).resolve().parents[1] / "fitting" / "synthetic" / "standin" / "standin_pose_prior.npz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=40000)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    poses = sample_body_poses(args.samples // 2, rng)
    poses = np.concatenate([poses, mirror_body_pose(poses)])
    gmm = GaussianMixture(
        n_components=8,
        covariance_type="full",
        reg_covar=1e-4,
        random_state=args.seed,
        max_iter=300,
    ).fit(poses)
    provenance = (
        "spinfits stand-in GMM pose prior: 8 full-covariance Gaussians fitted with scikit-learn "
        f"to {len(poses)} poses of spinfits.fitting.synthetic.natural_poses (anatomy-based sampler, no "
        f"motion capture; seed {args.seed}). NOT SMPLify's CMU-learned prior."
    )
    np.savez_compressed(
        args.output,
        means=gmm.means_.astype(np.float64),
        covars=gmm.covariances_.astype(np.float64),
        weights=gmm.weights_.astype(np.float64),
        provenance=np.array(provenance),
    )
    print(
        f"wrote {args.output} ({args.output.stat().st_size / 1e3:.0f} kB); "
        f"mean log-likelihood {gmm.score(poses):.2f}, converged={gmm.converged_}"
    )


if __name__ == "__main__":
    main()
