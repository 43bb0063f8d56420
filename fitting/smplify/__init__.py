"""Batched SMPLify (SPIN's objective): loss terms, priors, camera, the two stages as least-squares
problems, the Levenberg-Marquardt solver, SPIN's Adam loop, configuration and the fit loss.

Imports ``spinfits.fitting.body`` and ``spinfits.fitting.data``.

- ``fitter``: Batched SMPLify (SPIN's objective) on any torch device.
- ``config``: SMPLify's configuration and result types.
- ``stages``: SMPLify's two stages as per-sample least-squares problems (residuals + analytic Jacobians).
- ``levenberg_marquardt``: Batched Levenberg-Marquardt with per-sample damping, convergence and continuous batching.
- ``spin_adam``: SPIN's SMPLify loop (Adam, fixed iteration counts): the reference the fast path is held to.
- ``losses``: SMPLify's loss terms, per sample, exactly as SPIN defines them (smplify/losses.py).
- ``priors``: SMPLify's priors: GMM pose prior (SMPLify-X's max-mixture form), elbow/knee angle prior.
- ``fit_loss``: The fit loss of SPIN's fits dictionary: one definition for the store, precompute and training.
- ``camera``: SMPLify's camera: perspective projection and SPIN's closed-form camera translation.
"""

from spinfits.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".fitter": "Progress SMPLify",
        ".config": "ANGLE_TO_POSE_WEIGHT PriorStage SmplifyConfig FitResult",
        ".stages": "projection_jacobian CameraStage BodyStage",
        ".levenberg_marquardt": "LeastSquaresProblem LmOutcome solve_pool",
        ".spin_adam": "spin_adam_fit",
        ".losses": "DEFAULT_SIGMA LossWeights gmof fitting_confidence reprojection_loss torso_joints_openpose_valid camera_fitting_loss body_prior_loss body_fitting_loss",
        ".priors": "ANGLE_PRIOR_INDICES ANGLE_PRIOR_SIGNS angle_prior GmmPosePrior",
        ".fit_loss": "fit_loss_from_joints fit_loss_at fit_loss score_fits",
        ".camera": "perspective_projection estimate_translation",
    },
)
