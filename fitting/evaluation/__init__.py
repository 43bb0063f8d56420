"""How good fits are: SPIN's metrics (MPJPE, PA-MPJPE, PCK), the ground truth they compare with,
per-row scores, reported summaries, Human3.6M's regressor, and fits drawn over their images.

Imports ``spinfits.fitting.body``, ``data`` and ``smplify``.

- ``metrics``: SPIN's evaluation metrics and joint selections: MPJPE, PA-MPJPE (batched Procrustes) and PCK.
- ``targets``: What an evaluation compares with: a dataset's ground truth, read from its SPIN npz.
- ``summary``: The reported figures of an evaluation: per protocol, per Human3.6M action, and 2D PCK.
- ``fit_evaluation``: Score SMPL bodies against a dataset's ground truth, batched on any device: per-row metrics.
- ``h36m_regressor``: SPIN's Human3.6M joint regressor file: ``J_regressor_h36m.npy``, (17, V) weights over vertices.
- ``overlay``: Fits drawn over their images: meshes in SMPL part colours, alpha-blended, depth-correct.
"""

from spinfits.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".metrics": "M_TO_MM H36M_JOINT_NAMES NUM_H36M_JOINTS H36M_PELVIS H36M_TO_GT24 H36M_TO_J17 H36M_TO_J14 J24_TO_J17 J24_TO_J14 J17_JOINT_NAMES LSP14_JOINT_NAMES GT24_PELVIS GT24_HIPS JointProtocol LSP14 H36M14 H36M17 PROTOCOLS root_relative select_predicted select_gt24 mpjpe similarity_align pa_mpjpe pck H36M_ACTIONS h36m_action",
        ".targets": "GroundTruth GROUND_TRUTHS EvalTargets eval_targets load_eval_targets",
        ".summary": "ProtocolFigures PckFigures EvalSummary summarise summary_of",
        ".fit_evaluation": "DEFAULT_PCK_ALPHA RowMetrics Evaluator",
        ".h36m_regressor": "H36M_REGRESSOR_NAME STANDIN_H36M_REGRESSOR_NAME H36mRegressor load_h36m_regressor find_h36m_regressor",
        ".overlay": "OPENPOSE_KEYPOINT_COLOUR GT_KEYPOINT_COLOUR ImageCamera shaded_colours overlay_meshes side_view_vertices draw_keypoints FitViews FitRenderer",
    },
)
