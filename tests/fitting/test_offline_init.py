"""Fits from keypoints alone: SPIN's mean parameters, camera from keypoints, SMPLify."""

import numpy as np
import pytest
import torch

from spinfits.fitting.camera import perspective_projection
from spinfits.fitting.body_joints import body_joints
from spinfits.fitting.dataset import load_spin_npz
from spinfits.fitting.offline_init import (
    OfflineFitter,
    mean_initialisation,
    rot6d_to_axis_angle,
    spin_mean_params,
)
from spinfits.fitting.synthetic import SyntheticConfig, write_synthetic_dataset


def test_rot6d_round_trip():
    from scipy.spatial.transform import Rotation

    rotations = Rotation.random(20, random_state=1)
    matrices = rotations.as_matrix()
    rot6d = matrices[:, :, :2].reshape(20, 6)  # SPIN's layout: columns interleaved per row
    np.testing.assert_allclose(Rotation.from_rotvec(rot6d_to_axis_angle(rot6d)).as_matrix(),
                               matrices, atol=1e-10)


def test_spin_mean_params_face_the_camera(shared_data):
    pose, betas = spin_mean_params(shared_data / "smpl_mean_params.npz")
    assert pose.shape == (72,) and betas.shape == (10,)
    # SPIN's mean global orientation turns SMPL (y up, facing +z) upright towards the camera
    np.testing.assert_allclose(abs(pose[0]), np.pi, atol=0.05)
    assert np.abs(pose[3:]).max() < 1.2  # a mild average pose, not a contortion
    packaged, _ = spin_mean_params()
    np.testing.assert_array_equal(packaged, pose)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory, standin_files):
    path = tmp_path_factory.mktemp("offline") / "d.npz"
    write_synthetic_dataset(path, standin_files, SyntheticConfig(rows=64, seed=11))
    return load_spin_npz(path), np.load(path)


def test_mean_initialisation_places_the_body_over_the_keypoints(standin_files, synthetic):
    dataset, raw = synthetic
    fitter = OfflineFitter(standin_files)
    keypoints = torch.as_tensor(dataset.keypoints)
    pose, betas, cam_t = mean_initialisation(fitter.smplify, keypoints)
    assert (cam_t[:, 2] > 0).all()
    projected = perspective_projection(body_joints(fitter.smplify.joints_model, pose, betas),
                                       cam_t, 5000.0, torch.full((64, 2), 112.0))
    confident = keypoints[..., 2] > 0
    centroid_error = ((projected - keypoints[..., :2]) * confident[..., None]).sum(1) / \
        confident.sum(1, keepdim=True)
    assert centroid_error.norm(dim=-1).median() < 15  # px: the body starts where the person is
    np.testing.assert_allclose(cam_t[:, 2].median(), np.median(raw["gt_cam_t"][:, 2]), rtol=0.3)


def test_offline_fits_are_good_and_finite(standin_files, synthetic):
    dataset, _ = synthetic
    result = OfflineFitter(standin_files).fit(dataset.keypoints)
    assert result.fitted.all() and torch.isfinite(result.loss).all()
    assert torch.isfinite(result.pose).all()
    assert result.loss.median() < 30  # SPIN's fit loss; mean-pose start is ~1000s
