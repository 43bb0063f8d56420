"""fitting.data.mean_params: SPIN's mean pose and shape, and its 6D rotations."""

import numpy as np

from spinfits.fitting.data.mean_params import rot6d_to_axis_angle, spin_mean_params


def test_rot6d_round_trip():
    from scipy.spatial.transform import Rotation

    rotations = Rotation.random(20, random_state=1)
    matrices = rotations.as_matrix()
    rot6d = matrices[:, :, :2].reshape(20, 6)  # SPIN's layout: columns interleaved per row
    np.testing.assert_allclose(
        Rotation.from_rotvec(rot6d_to_axis_angle(rot6d)).as_matrix(), matrices, atol=1e-10
    )


def test_spin_mean_params_face_the_camera(shared_data):
    pose, betas = spin_mean_params(shared_data / "smpl_mean_params.npz")
    assert pose.shape == (72,) and betas.shape == (10,)
    # SPIN's mean global orientation turns SMPL (y up, facing +z) upright towards the camera
    np.testing.assert_allclose(abs(pose[0]), np.pi, atol=0.05)
    assert np.abs(pose[3:]).max() < 1.2  # a mild average pose, not a contortion
    packaged, _ = spin_mean_params()
    np.testing.assert_array_equal(packaged, pose)
