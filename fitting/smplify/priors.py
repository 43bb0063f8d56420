"""SMPLify's priors: GMM pose prior (SMPLify-X's max-mixture form), elbow/knee angle prior.

Convention: body pose is SMPL's 69 axis-angle parameters (23 joints relative to their parent,
radians, the global orientation excluded).
"""

from __future__ import annotations

import math

import torch

from spinfits.fitting.body.model_files import GmmPrior

#: Body-pose indices of the angle prior: left elbow y, right elbow y, left knee x, right knee x.
ANGLE_PRIOR_INDICES: tuple[int, ...] = (52, 55, 9, 12)
#: Sign per index: the natural bending direction is penalised least.
ANGLE_PRIOR_SIGNS: tuple[float, ...] = (1.0, -1.0, -1.0, -1.0)


def angle_prior(body_pose: torch.Tensor) -> torch.Tensor:
    """SPIN's elbow/knee prior, unweighted: (B, 69) -> (B, 4) ``exp(sign * angle) ** 2``."""
    signs = torch.tensor(ANGLE_PRIOR_SIGNS, dtype=body_pose.dtype, device=body_pose.device)
    return torch.exp(body_pose[:, list(ANGLE_PRIOR_INDICES)] * signs) ** 2


class GmmPosePrior(torch.nn.Module):
    """Negative log-likelihood of the best Gaussian of SMPLify's mixture (G components, D = 69).

    ``nll_k(x) = 0.5 (x - mu_k)^T P_k (x - mu_k) - log(w_k / ((2 pi)^(D/2) sqrt|C_k| / m))``
    with ``P_k = C_k^-1`` and ``m = min_k sqrt|C_k|``; the prior is ``min_k nll_k`` (SMPLify-X's
    ``MaxMixturePrior`` with ``merge=True``, as SPIN uses it). Buffers:
    means (G, 69), precisions (G, 69, 69), precision_factors (G, 69, 69) upper-triangular ``U_k``
    with ``U_k^T U_k = P_k`` (so the quadratic is ``|U_k (x - mu_k)|^2``), constants (G,)
    ``-log`` of the weights above.
    """

    def __init__(
        self, gmm: GmmPrior, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> None:
        super().__init__()
        covars = torch.as_tensor(gmm.covars, dtype=torch.float64)
        weights = torch.as_tensor(gmm.weights, dtype=torch.float64)
        dim = covars.shape[-1]
        precisions = torch.linalg.inv(covars)
        sqrdets = torch.sqrt(torch.linalg.det(covars))
        const = (2 * math.pi) ** (dim / 2.0)
        nll_weights = weights / (const * (sqrdets / sqrdets.min()))
        # P = L L^T (Cholesky); U = L^T gives |U d|^2 = d^T P d.
        factors = torch.linalg.cholesky(precisions).transpose(-1, -2)
        self.register_buffer("means", torch.as_tensor(gmm.means, dtype=torch.float64).to(dtype))
        self.register_buffer("precisions", precisions.to(dtype))
        self.register_buffer("precision_factors", factors.to(dtype))
        self.register_buffer("constants", (-torch.log(nll_weights)).to(dtype))
        self.to(device)

    def component_nll(self, body_pose: torch.Tensor) -> torch.Tensor:
        """(B, 69) -> (B, G) negative log-likelihood under each component."""
        diff = body_pose[:, None, :] - self.means  # (B, G, 69)
        quadratic = torch.einsum("bgi,gij,bgj->bg", diff, self.precisions, diff)
        return 0.5 * quadratic + self.constants

    def forward(self, body_pose: torch.Tensor) -> torch.Tensor:
        """(B, 69) -> (B,) ``min_k nll_k``."""
        return self.component_nll(body_pose).min(dim=1).values
