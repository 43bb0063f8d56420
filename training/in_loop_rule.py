"""Which in-loop fits replace the stored ones: SPIN's rule, or SPIN's rule guarded by the pose prior.

SPIN replaces a stored fit whenever SMPLify in the loop finds one with a lower fit loss (2D
reprojection alone; ``spinfits.store.merge_rule``). Offline fits are already near the keypoints'
noise floor, and in the loop SMPLify (fewer iterations, one start: the network's guess) lowers
the 2D loss further by bending the pose away from what the prior deems likely: on the demo
(issue 23) 313 of 2000 rows were replaced, 64 % of them worse in 3D (their H36M-14 PA-MPJPE
53.0 -> 73.9 mm mean), and the new fits' GMM pose NLL was higher in most of them.

Rules (``TrainConfig.in_loop_rule``):

- ``"fit_loss"``: SPIN's: a new fit replaces the stored one when its fit loss is lower.
- ``"fit_loss_and_prior"`` (default): it must also be at least as likely a pose: its body pose's
  negative log-likelihood under SMPLify's GMM pose prior (``GmmPosePrior``, the objective's own
  prior) is not higher than the stored fit's. A fit replaces another only if it is better on the
  keypoints and no worse on the prior. Rows whose stored fit is not scored (loss +inf or NaN)
  take any new fit, as under SPIN's rule.

Rows whose OpenPose left/right looks swapped against their ground-truth joints
(``fitting.offline.swap_check``; ``TrainConfig.in_loop_swap_check``, on by default) keep a scored
stored fit: precompute fitted them with the swap undone, while the fit loss is against the
keypoints as given, so an in-loop fit of the swapped keypoints always wins on 2D and loses in 3D
(on the demo: 2 % of the rows, 12 % of SPIN's replacements, +97 mm each; with the prior guard
alone, 5 of 63 replacements and nearly all of the store's remaining 3D loss).

The store's merge rule stays SPIN's (2D loss, commutative, torch-free): this guard decides only
what training proposes and supervises with.
"""

from __future__ import annotations

from typing import Literal

import torch

from spinfits.fitting.offline.swap_check import openpose_swapped
from spinfits.fitting.smplify.priors import GmmPosePrior

InLoopRule = Literal["fit_loss", "fit_loss_and_prior"]

#: Every ``InLoopRule``, SPIN's first.
IN_LOOP_RULES: tuple[str, ...] = ("fit_loss", "fit_loss_and_prior")


@torch.no_grad()
def pose_prior_not_worse(
    prior: GmmPosePrior, new_pose: torch.Tensor, stored_pose: torch.Tensor, stored_loss: torch.Tensor
) -> torch.Tensor:
    """(B,) bool: the new fit's body pose is at least as likely as the stored fit's, or the
    stored fit is not scored.

    Args:
        prior: SMPLify's GMM pose prior (on the poses' device and dtype).
        new_pose, stored_pose: (B, 72) axis-angle, radians (global orientation, then the 23
            body joints; the prior sees the 69 body values).
        stored_loss: (B,) the stored fits' fit loss; +inf or NaN: no scored fit.
    """
    unscored = ~torch.isfinite(stored_loss)
    new_nll = prior(new_pose[:, 3:].to(prior.means.dtype))
    stored_nll = prior(stored_pose[:, 3:].to(prior.means.dtype))
    return unscored | (new_nll <= stored_nll)


@torch.no_grad()
def not_swapped(keypoints: torch.Tensor, stored_loss: torch.Tensor) -> torch.Tensor:
    """(B,) bool: the row's OpenPose left/right does not look swapped against its ground-truth
    joints (``openpose_swapped``, precompute's check), or its stored fit is not scored.

    Args:
        keypoints: (B, 49, 3) the rows' keypoints as stored (un-augmented), pixels + confidence.
        stored_loss: (B,) the stored fits' fit loss; +inf or NaN: no scored fit.
    """
    return ~torch.isfinite(stored_loss) | ~openpose_swapped(keypoints)
