"""The body model: SMPL's files, SMPL with SPIN's 49 joints, the joints-only fast path, joint tables, rotations.

The base of ``spinfits.fitting``: imports nothing from its sibling packages.

- ``model_files``: Body model files: SMPL's pickle, SPIN's ``J_regressor_extra.npy`` and SMPLify's GMM pose prior.
- ``body_model``: SMPL with SPIN's 49 joints, on top of ``smplx.SMPL``.
- ``body_joints``: One way to get SPIN's 49 joints from either body model implementation.
- ``joints``: Joint names, orders, maps and flip permutations, as data (SPIN's conventions).
- ``joints_only``: SMPL's 49 SPIN joints without the mesh: exact joints-only evaluation with analytic Jacobian.
- ``rotations``: Axis-angle rotations and the right Jacobian of SO(3)'s exponential map, batched.
"""

from spinfits.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".model_files": "SMPL_RELATIVE_PATH EXTRA_REGRESSOR_NAME GMM_NAME STANDIN_KEY STANDIN_README NUM_BODY_POSE NUM_POSE_BASIS NUM_EXTRA_JOINTS SmplArrays GmmPrior BodyModelFiles read_pickle smpl_arrays_from_dict read_gmm read_extra_regressor load_body_model_files convert_smpl_pickle",
        ".body_model": "BodyOutput SpinBodyModel",
        ".body_joints": "BodyModel body_joints",
        ".joints": "SMPL_JOINT_NAMES SMPL_PARENTS OPENPOSE_BODY25_NAMES SPIN_GT_JOINT_NAMES SPIN_JOINT_NAMES NUM_SPIN_JOINTS NUM_OPENPOSE_JOINTS NUM_GT_JOINTS NUM_SMPL_JOINTS SMPL_VERTEX_KEYPOINTS EXTRA_REGRESSED_JOINT_NAMES SPIN_JOINT_SOURCE SMPL_JOINTS_FLIP_PERM SMPL_POSE_FLIP_PERM GT_JOINTS_FLIP_PERM SPIN_JOINTS_FLIP_PERM spin_index SMPLIFY_IGNORED_JOINTS OPENPOSE_TORSO_JOINTS GT_TORSO_JOINTS TORSO_LIMB_JOINTS",
        ".joints_only": "NUM_BONES NUM_POSE_PARAMS NUM_BETAS NUM_PARAMS JointsEvaluation JointsOnlyBody",
        ".rotations": "skew axis_angle_to_matrix axis_angle_to_matrix_and_right_jacobian rot6d_to_rotmat matrix_to_axis_angle wrap_axis_angle",
    },
)
