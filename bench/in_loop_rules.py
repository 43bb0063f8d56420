"""Why training's in-loop fits change the store's 3D error, and what other rules would have kept.

    python bench/in_loop_rules.py [--demo out/demo] [--static SNAPSHOT] [--tip main]

Reads a finished demo (``scripts/demo.sh``): its store at ``--static`` (default: the last
precompute commit, the static fits) and at ``--tip`` (after training), the dataset's ground truth
and the body model. For the rows training replaced it prints their 3D error (H36M-14 PA-MPJPE,
``spinfits store eval``'s) before and after, the 2D fit loss, the ground truth's own fit loss
(the keypoints' noise floor), the GMM pose NLL, the angle and shape priors and SMPLify's whole
objective (49 x fit loss + priors at SPIN's weights), and rows whose OpenPose left/right is
swapped (found from the keypoints, as precompute finds them).

Then it replays candidate rules offline on those fits: the tip's fit lands only where a rule
accepts it (it always has a lower 2D loss: SPIN's rule let it in). No rule looks at the ground
truth; they have no free parameter, except the minimum relative 2D improvement, whose threshold
is chosen on the even rows and checked on the odd ones. Printed per rule: rows replaced, the
store's PA-MPJPE mean / median over all rows, and its 2D fit loss mean / median (the cost).
A replay is not a rerun: under another rule training supervises with other fits and proposes
other ones; rerun the demo to see that.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from spinfits.fitting.body.joints_only import JointsOnlyBody
from spinfits.fitting.body.model_files import load_body_model_files
from spinfits.fitting.data.dataset import load_spin_npz
from spinfits.fitting.evaluation.fit_evaluation import Evaluator
from spinfits.fitting.evaluation.h36m_regressor import find_h36m_regressor, load_h36m_regressor
from spinfits.fitting.evaluation.targets import load_eval_targets
from spinfits.fitting.offline.swap_check import openpose_swapped, swap_openpose_back
from spinfits.fitting.smplify.fit_loss import fit_loss
from spinfits.fitting.smplify.losses import LossWeights, angle_prior
from spinfits.fitting.smplify.priors import GmmPosePrior
from spinfits.store import FitStore

JOINTS = 49  # SMPLify's data term sums over SPIN's 49 joints; the fit loss is their mean


def last_precompute_snapshot(store_path: Path) -> str:
    """The newest commit whose message starts with "precompute" (the demo's static fits)."""
    log = subprocess.run(
        [sys.executable, "-m", "spinfits", "store", "log", str(store_path), "--limit", "1000"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in log.splitlines():
        parts = line.split()  # id, date, time, UTC, message...
        if len(parts) > 4 and parts[4] == "precompute":
            return parts[0]
    raise SystemExit(f"{store_path}: no precompute commit in its log; pass --static")


def priors(prior: GmmPosePrior, pose: np.ndarray, betas: np.ndarray) -> dict[str, np.ndarray]:
    """Unweighted prior terms per row: GMM NLL, angle prior, |betas|^2."""
    body = torch.as_tensor(pose[:, 3:], dtype=torch.float64)
    return {
        "nll": prior(body).numpy(),
        "angle": angle_prior(body).sum(-1).numpy(),
        "shape": (np.asarray(betas, np.float64) ** 2).sum(-1),
    }


def weighted(terms: dict[str, np.ndarray], weights: LossWeights) -> np.ndarray:
    return (
        weights.pose_prior_weight**2 * terms["nll"]
        + weights.angle_prior_weight**2 * terms["angle"]
        + weights.shape_prior_weight**2 * terms["shape"]
    )


def stats(values: np.ndarray) -> str:
    return f"mean {np.mean(values):7.2f}, median {np.median(values):7.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, default=Path("out/demo"))
    parser.add_argument("--static", help="snapshot of the static fits (default: the last precompute commit)")
    parser.add_argument("--tip", default="main", help="version after training (default main)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    demo = args.demo
    static = args.static or last_precompute_snapshot(demo / "store")

    files = load_body_model_files(demo / "model")
    evaluator = Evaluator(files, load_h36m_regressor(find_h36m_regressor(files), files.smpl.num_vertices))
    targets = load_eval_targets(demo / "synthetic.npz")
    keypoints = torch.as_tensor(load_spin_npz(demo / "synthetic.npz").keypoints, dtype=torch.float32)
    truth = np.load(demo / "synthetic.npz")
    store = FitStore.open(str(demo / "store"), body_model=files.fingerprint)
    before = store.read("synthetic", store.resolve(static))
    after = store.read("synthetic", store.resolve(args.tip))
    prior, weights = GmmPosePrior(files.gmm, dtype=torch.float64), LossWeights()
    scorer = JointsOnlyBody(files, torch.device("cpu"), torch.float32)

    def pa_mpjpe(fits) -> np.ndarray:
        return evaluator.score_fits(fits.pose, fits.betas, fits.cam_t, targets).pa_mpjpe["h36m14"] * 1000

    def loss_against(pose, betas, kp) -> np.ndarray:
        with torch.no_grad():
            as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
            return fit_loss(scorer, as_tensor(pose), as_tensor(betas), kp)[0].numpy().astype(np.float64)

    pa_a, pa_b = pa_mpjpe(before), pa_mpjpe(after)
    la, lb = before.loss.astype(np.float64), after.loss.astype(np.float64)
    ta, tb = priors(prior, before.pose, before.betas), priors(prior, after.pose, after.betas)
    tt = priors(prior, truth["pose"], truth["shape"])
    obj_a, obj_b = JOINTS * la + weighted(ta, weights), JOINTS * lb + weighted(tb, weights)
    truth_loss = loss_against(truth["pose"], truth["shape"], keypoints)
    swapped = openpose_swapped(keypoints).numpy()
    unswapped = swap_openpose_back(keypoints, torch.as_tensor(swapped))
    ca = loss_against(before.pose, before.betas, unswapped)
    cb = loss_against(after.pose, after.betas, unswapped)
    changed = np.flatnonzero((before.pose != after.pose).any(1))
    ch = changed
    d3 = pa_b[ch] - pa_a[ch]

    print(f"{demo}: {len(la)} rows; static {static}, tip {args.tip}; H36M-14 PA-MPJPE (mm)")
    print(f"all rows            static {stats(pa_a)} | tip {stats(pa_b)}")
    print(f"replaced rows: {len(ch)}; static {stats(pa_a[ch])} | tip {stats(pa_b[ch])}")
    print(
        f"  worse in 3D: {np.mean(d3 > 0):.0%} (by > 10 mm: {np.mean(d3 > 10):.0%}); mean change {d3.mean():+.1f} mm"
    )
    print(f"  2D fit loss (px^2): static {stats(la[ch])} | tip {stats(lb[ch])}")
    print(f"  the ground truth's own fit loss: {stats(truth_loss[ch])} (all rows: {stats(truth_loss)})")
    print(f"  tip fits below the ground truth's 2D loss: {np.mean(lb[ch] < truth_loss[ch]):.0%}")
    for name in ("nll", "angle", "shape"):
        print(
            f"  {name:5s} static {stats(ta[name][ch])} | tip {stats(tb[name][ch])} | truth {stats(tt[name][ch])}"
        )
    print(
        f"  SMPLify objective higher at the tip in {np.mean(obj_b[ch] > obj_a[ch]):.0%}: data part "
        f"{stats(JOINTS * (lb - la)[ch])}, prior part {stats((obj_b - obj_a - JOINTS * (lb - la))[ch])}"
    )
    rel = 1 - lb / la
    for lo, hi in ((0, 0.05), (0.05, 0.1), (0.1, 0.2), (0.2, 0.4), (0.4, 1.01)):
        m = (rel[ch] >= lo) & (rel[ch] < hi)
        if m.any():
            print(
                f"  2D loss lower by {lo:4.0%}-{hi:4.0%}: {m.sum():4d} rows, 3D change mean {d3[m].mean():+6.1f}, median {np.median(d3[m]):+6.1f} mm"
            )
    sw = swapped[ch]
    print(
        f"  OpenPose left/right swapped: {sw.sum()} of the replaced rows ({sw.mean():.0%}; all rows "
        f"{swapped.mean():.0%}), 3D change {d3[sw].mean() if sw.any() else float('nan'):+.1f} vs others {d3[~sw].mean():+.1f} mm"
    )
    better = d3 < 0
    print(
        f"  truth-picked bound (not a rule): keeping only the {better.sum()} replacements better in 3D "
        f"gives {(pa_a.sum() + d3[better].sum()) / len(pa_a):.2f} mm mean"
    )

    even = np.arange(len(la)) % 2 == 0

    def replay(accept: np.ndarray, rows: np.ndarray | None = None) -> tuple[float, float, float, float, int]:
        take = np.zeros(len(la), bool)
        take[ch[accept[ch]]] = True
        pa, loss = np.where(take, pa_b, pa_a), np.where(take, lb, la)
        m = np.ones(len(la), bool) if rows is None else rows
        return pa[m].mean(), np.median(pa[m]), loss[m].mean(), np.median(loss[m]), int(take[m].sum())

    thresholds = np.arange(0.0, 0.95, 0.05)
    chosen = min(thresholds, key=lambda t: (replay(rel >= t, even)[0], t))
    rules = {
        "static fits (before training)": np.zeros(len(la), bool),
        "SPIN: 2D fit loss lower": np.ones(len(la), bool),
        "+ SMPLify objective lower": obj_b < obj_a,
        "+ weighted priors not higher": weighted(tb, weights) <= weighted(ta, weights),
        "+ GMM pose NLL not higher (the default)": tb["nll"] <= ta["nll"],
        f"+ 2D lower by >= {chosen:.0%} (chosen on even rows)": rel >= chosen,
        "2D lower on un-swapped keypoints too": cb < ca,
        "  and SMPLify objective lower": (cb < ca)
        & (JOINTS * cb + weighted(tb, weights) < JOINTS * ca + weighted(ta, weights)),
    }
    print(
        "\nrule (replayed on the tip's fits)              replaced  PA-MPJPE mean / median  2D loss mean / median  even / odd rows PA mean"
    )
    for name, accept in rules.items():
        pa_mean, pa_median, loss_mean, loss_median, count = replay(accept)
        print(
            f"{name:46s} {count:8d}  {pa_mean:8.2f} / {pa_median:6.2f}     {loss_mean:7.3f} / {loss_median:6.3f}"
            f"       {replay(accept, even)[0]:6.2f} / {replay(accept, ~even)[0]:6.2f}"
        )


if __name__ == "__main__":
    main()
