"""Fits from keypoints alone (offline dictionary initialisation, precompute's default): the initial
camera, orientation hypotheses, the learned keypoint regressor, outlier rejection, left/right swap
checks, and ``OfflineFitter`` that runs them around ``SMPLify``.

Imports ``spinfits.fitting.body``, ``data`` and ``smplify``.

- ``initial_camera``: The camera a fit starts from: least squares of a body's joints against the keypoints.
- ``hypotheses``: Orientation hypotheses (SMPLify, ECCV 2016): several starts per row, the best one kept.
- ``keypoint_regressor``: A learned initialiser: a small network from 2D keypoints to SMPL pose and shape.
- ``outliers``: Outlier rejection after a fit: keypoints far off the fitted body are dropped, the row refit.
- ``swap_check``: OpenPose left/right swaps, found against the ground-truth joints of the same row.
- ``config``: How fits are made from keypoints alone: ``OfflineConfig`` and its presets.
- ``fitter``: Fits from keypoints alone (offline dictionary initialisation, precompute's default).
- ``refine``: Refine given fits (SPIN static fits, or the store's current ones) with SMPLify.
"""

from spinfits.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".initial_camera": "MEAN_CAMERA_SCALE initial_camera",
        ".hypotheses": "turned_mean_orient mean_initialisation shoulder_to_torso_ratio orientation_hypotheses best_hypothesis",
        ".keypoint_regressor": "REGRESSOR_FILE RegressorTraining KeypointRegressor save_keypoint_regressor has_keypoint_regressor load_keypoint_regressor",
        ".outliers": "reject_outliers",
        ".swap_check": "openpose_swapped swap_openpose_back",
        ".config": "SMPLIFY_2016_STAGES OFFLINE_ENGINE OfflineConfig default_offline_config",
        ".fitter": "OfflineFitter",
        ".refine": "refine_fits",
    },
)
