"""SPIN's augmentation: sampling, exact inverses, and 2D (keypoints) vs 3D (pose) agreement."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from spinfits.errors import InputError
from spinfits.fitting.body.body_model import SpinBodyModel
from spinfits.fitting.body.joints import spin_index
from spinfits.fitting.body.rotations import matrix_to_axis_angle
from spinfits.fitting.smplify.camera import perspective_projection
from spinfits.fitting.synthetic.people import SyntheticConfig, make_synthetic_dataset
from spinfits.training.augmentation import (
    Augmentation,
    AugmentationConfig,
    augment_keypoints,
    augment_pose,
    rotation_z,
    unaugment_keypoints,
    unaugment_pose,
)


def _aug(flip, rotation, scale=None, noise=None):
    batch = len(flip)
    return Augmentation(
        flip=torch.as_tensor(flip, dtype=torch.bool),
        rotation=torch.as_tensor(rotation, dtype=torch.float32),
        scale=torch.ones(batch) if scale is None else torch.as_tensor(scale, dtype=torch.float32),
        pixel_noise=torch.ones(batch, 3) if noise is None else noise,
    )


def _random_aug(batch, seed):
    return Augmentation.sample(AugmentationConfig(), batch, torch.Generator().manual_seed(seed))


def _random_pose(batch, seed):
    rng = np.random.default_rng(seed)
    pose = rng.normal(0.0, 0.4, (batch, 72))
    pose[:, :3] = Rotation.random(batch, random_state=seed).as_rotvec()  # angle <= pi
    return torch.as_tensor(pose)


# ----------------------------------------------------------------------------- sampling


def test_sample_is_reproducible_for_a_seeded_generator():
    first, again, other = _random_aug(64, 0), _random_aug(64, 0), _random_aug(64, 1)
    for name in ("flip", "rotation", "scale", "pixel_noise"):
        assert torch.equal(getattr(first, name), getattr(again, name))
    assert not torch.equal(first.rotation, other.rotation)
    assert first.to("cpu").flip.device.type == "cpu" and len(first) == 64


def test_sample_follows_spins_distribution():
    aug = _random_aug(4000, 7)
    assert aug.flip.dtype == torch.bool
    assert abs(aug.flip.float().mean().item() - 0.5) < 0.04
    zero = aug.rotation == 0
    assert abs(zero.float().mean().item() - 0.6) < 0.04
    assert aug.rotation.abs().max() <= 60.0
    assert (aug.rotation.abs() == 60.0).any()  # clipped at 2 * 30 degrees (~1.8% of rows)
    assert 25.0 < aug.rotation[~zero].std().item() < 30.0  # N(0, 30²) clipped at ±60
    assert aug.scale.min() >= 0.75 and aug.scale.max() <= 1.25
    assert (aug.scale == 0.75).any() and (aug.scale == 1.25).any()
    assert abs(aug.scale.mean().item() - 1.0) < 0.02
    assert aug.pixel_noise.shape == (4000, 3)
    assert aug.pixel_noise.min() >= 0.6 and aug.pixel_noise.max() <= 1.4
    assert aug.pixel_noise.min() < 0.61 and aug.pixel_noise.max() > 1.39  # uniform, not clipped
    assert not torch.equal(aug.pixel_noise[:, 0], aug.pixel_noise[:, 1])  # per channel


def test_no_augmentation_is_the_identity():
    drawn = Augmentation.sample(AugmentationConfig.none(), 32, torch.Generator().manual_seed(0))
    identity = Augmentation.identity(32)
    for name in ("flip", "rotation", "scale", "pixel_noise"):
        assert torch.equal(getattr(drawn, name), getattr(identity, name))
    keypoints = torch.rand(32, 49, 3, dtype=torch.float64) * 224
    pose = _random_pose(32, 0)
    np.testing.assert_allclose(augment_keypoints(keypoints, identity), keypoints, atol=1e-12)
    assert torch.equal(augment_pose(pose, identity), pose)


def test_config_and_augmentation_errors():
    with pytest.raises(
        InputError,
        match=r"flip_probability must be a probability within "
        r"\[0, 1\], got 1.5",
    ):
        AugmentationConfig(flip_probability=1.5)
    with pytest.raises(
        InputError,
        match=r"scale_factor must be within \[0, 1\), got 1.0: "
        r"scales .* must stay positive",
    ):
        AugmentationConfig(scale_factor=1.0)
    with pytest.raises(InputError, match=r"noise_factor must be within \[0, 1\), got -0.1"):
        AugmentationConfig(noise_factor=-0.1)
    with pytest.raises(InputError, match=r"rotation_factor must be within \[0, 90\] degrees"):
        AugmentationConfig(rotation_factor=120.0)
    with pytest.raises(InputError, match=r"pixel_noise must be a tensor of shape \(2, 3\)"):
        Augmentation(torch.zeros(2, dtype=torch.bool), torch.zeros(2), torch.ones(2), torch.ones(2))
    with pytest.raises(InputError, match="flip must be a bool tensor"):
        Augmentation(torch.zeros(2), torch.zeros(2), torch.ones(2), torch.ones(2, 3))
    with pytest.raises(InputError, match="scale must be > 0"):
        _aug([False], [0.0], scale=[0.0])


def test_keypoint_and_pose_shape_errors():
    aug = _aug([True, False], [0.0, 10.0])
    with pytest.raises(InputError, match=r"keypoints has 3 rows but the augmentation has 2"):
        augment_keypoints(torch.zeros(3, 49, 3), aug)
    with pytest.raises(InputError, match=r"keypoints must be a \(B, K, 3\) tensor, got \(49, 3\)"):
        augment_keypoints(torch.zeros(49, 3), aug)
    with pytest.raises(InputError, match=r"keypoints has 24 joints; flipping .* SPIN's 49"):
        augment_keypoints(torch.zeros(2, 24, 3), aug)
    # without flips any joint set works
    assert augment_keypoints(torch.zeros(2, 24, 3), _aug([False, False], [5.0, 0.0])).shape == (2, 24, 3)
    with pytest.raises(InputError, match=r"pose must be a \(B, 72\) tensor, got \(2, 24, 3\)"):
        augment_pose(torch.zeros(2, 24, 3), aug)


# ----------------------------------------------------------------------------- geometry


def test_keypoints_follow_the_documented_convention():
    """u = c + (10, 4), θ = 90°, sc = 2: R(θ)(10, 4) = (-4, 10), / 2 = (-2, 5)."""
    keypoints = torch.zeros(2, 49, 3, dtype=torch.float64)
    nose, left_hip, right_hip = spin_index("OP Nose"), spin_index("OP LHip"), spin_index("OP RHip")
    keypoints[:, nose] = torch.tensor([122.0, 116.0, 0.7], dtype=torch.float64)
    keypoints[:, left_hip] = torch.tensor([100.0, 150.0, 0.9], dtype=torch.float64)
    out = augment_keypoints(keypoints, _aug([False, True], [90.0, 90.0], scale=[2.0, 2.0]))
    np.testing.assert_allclose(out[0, nose].numpy(), [110.0, 117.0, 0.7], atol=1e-5)
    np.testing.assert_allclose(out[1, nose].numpy(), [114.0, 117.0, 0.7], atol=1e-5)  # mirrored
    # flipped: the left hip's keypoint becomes the right hip's (and mirrored)
    left = 112 + np.array([-(150 - 112) / 2, (100 - 112) / 2])  # R(90°)(-12, 38) / 2 = (-19, -6)
    np.testing.assert_allclose(out[0, left_hip].numpy(), [*left, 0.9], atol=1e-5)
    np.testing.assert_allclose(out[1, right_hip].numpy(), [224 - left[0], left[1], 0.9], atol=1e-5)
    assert out[1, left_hip, 2] == 0  # the (missing) right hip's confidence


def test_keypoints_round_trip_and_flip_twice():
    keypoints = torch.rand(256, 49, 3, dtype=torch.float64) * 300 - 40
    aug = _random_aug(256, 3)
    assert aug.flip.any() and (~aug.flip).any() and (aug.scale != 1).all()
    moved = augment_keypoints(keypoints, aug)
    assert (moved - keypoints).abs().max() > 10
    np.testing.assert_allclose(unaugment_keypoints(moved, aug).numpy(), keypoints.numpy(), atol=1e-6)
    np.testing.assert_array_equal(moved[..., 2].sort(-1).values, keypoints[..., 2].sort(-1).values)
    flip = _aug([True] * 256, [0.0] * 256)
    twice = augment_keypoints(augment_keypoints(keypoints, flip), flip)
    np.testing.assert_allclose(twice.numpy(), keypoints.numpy(), atol=1e-12)


def test_pose_round_trip_and_flip_twice():
    pose = _random_pose(256, 4)
    aug = _random_aug(256, 5)
    moved = augment_pose(pose, aug)
    assert (moved - pose).abs().max() > 0.1
    np.testing.assert_allclose(unaugment_pose(moved, aug).numpy(), pose.numpy(), atol=1e-6)
    flip = _aug([True] * 256, [0.0] * 256)
    np.testing.assert_array_equal(augment_pose(augment_pose(pose, flip), flip), pose)
    # scale does not touch the pose; rows without rotation keep their orientation bit for bit
    rows = aug.rotation == 0
    same_scale = Augmentation(aug.flip, aug.rotation, torch.ones(256), aug.pixel_noise)
    np.testing.assert_array_equal(augment_pose(pose, same_scale), moved)
    unflipped = augment_pose(pose, _aug([False] * 256, aug.rotation))
    np.testing.assert_array_equal(unflipped[rows], pose[rows])


def test_pose_orientation_is_rotated_about_the_optical_axis():
    pose = _random_pose(6, 6)
    aug = _aug([False] * 3 + [True] * 3, [30.0, -50.0, 60.0] * 2)
    moved = augment_pose(pose, aug)
    rz = Rotation.from_euler("z", aug.rotation.double().numpy()[:, None], degrees=True)
    expected = rz * Rotation.from_rotvec(pose[:, :3].numpy())
    mirror = np.diag([-1.0, 1.0, 1.0])
    matrices = expected.as_matrix()
    matrices[3:] = mirror @ matrices[3:] @ mirror  # SPIN's flip of the orientation: M R M
    np.testing.assert_allclose(Rotation.from_rotvec(moved[:, :3].numpy()).as_matrix(), matrices, atol=1e-12)
    np.testing.assert_allclose(
        rotation_z(torch.tensor([30.0]), torch.float64)[0].numpy(),
        Rotation.from_euler("z", 30, degrees=True).as_matrix(),
        atol=1e-7,
    )


def test_matrix_to_axis_angle_is_accurate_near_zero_and_pi():
    """fitting.body.rotations.matrix_to_axis_angle, which augment_pose relies on."""
    rotations = Rotation.random(500, random_state=0)
    back = matrix_to_axis_angle(torch.as_tensor(rotations.as_matrix()))
    np.testing.assert_allclose(back.numpy(), rotations.as_rotvec(), atol=1e-12)
    axes = np.random.default_rng(0).normal(size=(50, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    for angle in (1e-9, 1e-4, np.pi - 1e-7):
        back = matrix_to_axis_angle(torch.as_tensor(Rotation.from_rotvec(axes * angle).as_matrix())).numpy()
        sign = np.sign((back * axes).sum(1, keepdims=True))  # at pi, w and -w are the same
        np.testing.assert_allclose(back * sign, axes * angle, atol=1e-7 * angle + 1e-14)


# ----------------------------------------------------------------------------- 2D vs 3D


@pytest.fixture(scope="module")
def posed_bodies(standin_files):
    """Eight synthetic people (stand-in body, float64): pose, betas, cam_t, keypoints."""
    arrays = make_synthetic_dataset(standin_files, SyntheticConfig(rows=8, seed=3))
    model = SpinBodyModel(standin_files, dtype=torch.float64)
    pose, betas, cam_t = (torch.as_tensor(arrays[k]) for k in ("pose", "shape", "gt_cam_t"))
    output = model(pose, betas)
    center = torch.full((8, 2), 112.0, dtype=torch.float64)
    keypoints = torch.cat(
        [
            perspective_projection(output.joints, cam_t, 5000.0, center),
            torch.ones(8, 49, 1, dtype=torch.float64),
        ],
        dim=-1,
    )
    return model, pose, betas, cam_t, output, keypoints


def _reprojection_error(posed_bodies, aug, pose_aug=None):
    """Pixels between augment_keypoints (with ``aug``) and the projection of the body with
    augment_pose (with ``pose_aug``, default ``aug``), camera t' = M Rz(θ) (j0 + t) - j0
    (j0 the root joint): (B, 49)."""
    model, pose, betas, cam_t, output, keypoints = posed_bodies
    keypoint_aug, aug = aug, pose_aug or aug
    root = output.smpl_joints[:, 0]
    mirror = torch.ones(len(aug), 3, dtype=torch.float64)
    mirror[aug.flip, 0] = -1.0
    moved_t = mirror * (rotation_z(aug.rotation, torch.float64) @ (root + cam_t)[..., None])[..., 0] - root
    joints = model(augment_pose(pose, aug), betas).joints
    center = torch.full((len(aug), 2), 112.0, dtype=torch.float64)
    projected = perspective_projection(joints, moved_t, 5000.0, center)
    return (projected - augment_keypoints(keypoints, keypoint_aug)[..., :2]).norm(dim=-1)


def test_rotated_pose_projects_onto_rotated_keypoints(posed_bodies):
    aug = _aug([False] * 8, [-60.0, -45.0, -20.0, -5.0, 5.0, 20.0, 45.0, 60.0])
    error = _reprojection_error(posed_bodies, aug)
    assert error.max() < 1e-4  # exact: a rotation about the optical axis
    # the body rotated the other way would be far off
    wrong = _reprojection_error(posed_bodies, aug, _aug([False] * 8, -aug.rotation))
    assert wrong.max(1).values.min() > 5


def test_flipped_pose_projects_onto_flipped_keypoints(posed_bodies):
    """Exact up to the stand-in's left/right asymmetry (measured: max 1.8 px, mean 0.2 px, the
    worst at the heels; the rest joints of the mirrored stand-in differ by up to 8 mm)."""
    aug = _aug([True] * 8, [0.0, 0.0, 30.0, -30.0, 60.0, -60.0, 15.0, -45.0])
    error = _reprojection_error(posed_bodies, aug)
    assert error.max() < 3.0 and error.mean() < 0.4
    # flipping before rotating (the same as rotating by -θ, then flipping) would not match
    wrong = _reprojection_error(posed_bodies, aug, _aug([True] * 8, -aug.rotation))
    assert wrong[2:].max(1).values.min() > 5


def test_scale_is_about_a_depth_change(posed_bodies):
    """sc = Z' / Z: moving the body to sc times its depth shrinks it by about 1 / sc."""
    model, pose, betas, cam_t, output, keypoints = posed_bodies
    for sc in (0.75, 1.25):
        aug = _aug([False] * 8, [0.0] * 8, scale=[sc] * 8)
        depth = output.joints[..., 2].mean(1)
        moved_t = cam_t.clone()
        moved_t[:, 2] = sc * (cam_t[:, 2] + depth) - depth
        center = torch.full((8, 2), 112.0, dtype=torch.float64)
        projected = perspective_projection(output.joints, moved_t, 5000.0, center)
        error = (projected - augment_keypoints(keypoints, aug)[..., :2]).norm(dim=-1)
        assert error.mean() < 0.3 and error.max() < 3.0  # perspective: body depth / distance
