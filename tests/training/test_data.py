"""Training batches: rows per step, images and keypoints under one augmentation, 3D joints."""

import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from spinfits.errors import InputError
from spinfits.fitting.body.body_model import SpinBodyModel
from spinfits.fitting.body.joints import GT_JOINTS_FLIP_PERM
from spinfits.training.augmentation import (
    Augmentation,
    AugmentationConfig,
    augment_joints_3d,
    augment_keypoints,
    augment_pose,
)
from spinfits.training.data import (
    MixedTrainingData,
    StepBatches,
    TrainingData,
    concat_batches,
    step_generator,
    training_loader,
)
from spinfits.training.mixture import MixedSampler

pytestmark = pytest.mark.usefixtures("one_torch_thread")


_aug = Augmentation.geometric


def test_step_generator_is_reproducible_per_seed_step_and_rank():
    def draw(seed, step, rank):
        return Augmentation.sample(AugmentationConfig(), 16, step_generator(seed, step, rank))

    same, again = draw(0, 3, 1), draw(0, 3, 1)
    assert torch.equal(same.rotation, again.rotation) and torch.equal(same.flip, again.flip)
    for other in (draw(1, 3, 1), draw(0, 4, 1), draw(0, 3, 0)):
        assert not torch.equal(same.scale, other.scale)


# ----------------------------------------------------------------------------- batches


@pytest.fixture(scope="module")
def data(training_set):
    return TrainingData.load(training_set.path, training_set.images, input_res=64)


def test_batch_shapes_dtypes_and_keypoints(data, training_set):
    rows = np.array([5, 0, 17, 3, 5])
    aug = _aug(
        [False, True, False, True, True], [0.0, 20.0, -30.0, 0.0, 45.0], scale=[1.0, 1.2, 0.8, 1.0, 0.9]
    )
    batch = data.batch(rows, aug)
    assert len(data) == 24
    np.testing.assert_array_equal(batch.rows, rows)
    assert batch.rows.dtype == np.int64
    assert batch.images.shape == (5, 3, 64, 64) and batch.images.dtype == torch.float32
    assert torch.isfinite(batch.images).all()
    assert batch.keypoints.shape == batch.keypoints_crop.shape == (5, 49, 3)
    assert batch.keypoints.dtype == batch.keypoints_crop.dtype == torch.float32
    np.testing.assert_array_equal(batch.keypoints_crop.numpy(), training_set.dataset.keypoints[rows])
    np.testing.assert_allclose(
        batch.keypoints.numpy(), augment_keypoints(batch.keypoints_crop, aug).numpy(), atol=1e-5
    )
    assert (batch.keypoints - batch.keypoints_crop).abs().max() > 10  # really augmented
    assert torch.equal(batch.augmentation.rotation, aug.rotation)
    # ground truth (un-augmented), used rows: the fixture's even rows
    assert batch.has_smpl.dtype == torch.bool
    np.testing.assert_array_equal(batch.has_smpl.numpy(), rows % 2 == 0)
    assert batch.gt_pose.shape == (5, 72) and batch.gt_betas.shape == (5, 10)
    assert batch.gt_pose.dtype == batch.gt_betas.dtype == torch.float32
    np.testing.assert_allclose(batch.gt_pose.numpy(), training_set.arrays["pose"][rows], atol=1e-6)
    np.testing.assert_allclose(batch.gt_betas.numpy(), training_set.arrays["shape"][rows], atol=1e-6)
    # 3D joints from the npz's S, augmented
    assert batch.joints_3d.shape == (5, 24, 4) and batch.has_joints_3d.all()
    np.testing.assert_allclose(
        batch.joints_3d.numpy(),
        augment_joints_3d(torch.as_tensor(training_set.arrays["S"][rows], dtype=torch.float32), aug).numpy(),
        atol=1e-6,
    )


def test_without_ground_truth_smpl_no_row_uses_it(training_set):
    data = TrainingData.load(training_set.path, training_set.images, input_res=64, use_gt_smpl=False)
    assert not data.batch(np.arange(6), Augmentation.identity(6)).has_smpl.any()


def test_images_and_keypoints_get_the_same_augmentation(data):
    """Mirrored rows: the crop is the mirror image of the un-flipped one and x -> 224 - x."""
    rows = np.array([1, 2, 4])
    plain = data.batch(rows, Augmentation.identity(3))
    flipped = data.batch(rows, _aug([True] * 3, [0.0] * 3))
    np.testing.assert_allclose(flipped.images.numpy(), plain.images.flip(-1).numpy(), atol=1e-4)
    # the person is in the picture: the rendered crops are not blank
    assert plain.images.std() > 0.1
    assert not torch.allclose(plain.images, flipped.images, atol=1e-2)
    from spinfits.fitting.body.joints import SPIN_JOINTS_FLIP_PERM

    mirrored = plain.keypoints[:, list(SPIN_JOINTS_FLIP_PERM)]
    np.testing.assert_allclose(flipped.keypoints[..., 0].numpy(), (224 - mirrored[..., 0]).numpy(), atol=1e-4)


def test_batch_on_a_device_keeps_numpy_rows(data):
    batch = data.batch([0, 1], Augmentation.identity(2), device="cpu")
    assert isinstance(batch.rows, np.ndarray) and batch.images.device.type == "cpu"


# ----------------------------------------------------------------------------- errors


def test_missing_image_folder_names_the_path(training_set, tmp_path):
    missing = tmp_path / "no_such_images"
    with pytest.raises(InputError, match=rf"image folder {missing} does not exist"):
        TrainingData.load(training_set.path, missing)


def test_wrong_image_folder_names_row_0s_image(training_set, tmp_path):
    with pytest.raises(
        InputError,
        match=rf"{tmp_path}/synthetic/0000000.png \(row 0's image\) "
        r"is missing",
    ):
        TrainingData.load(training_set.path, tmp_path)


def test_missing_image_file_names_the_path(training_set, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(training_set.images, images)
    gone = images / "synthetic" / "0000007.png"
    gone.unlink()
    data = TrainingData.load(training_set.path, images, input_res=64)
    data.batch(np.array([0, 6]), Augmentation.identity(2))  # other rows are fine
    with pytest.raises(InputError, match=rf"image file {gone} does not exist"):
        data.batch(np.array([6, 7]), Augmentation.identity(2))


def test_bad_input_res_and_bad_3d_joints(training_set, tmp_path):
    with pytest.raises(InputError, match="input_res must be >= 32 pixels, got 16"):
        TrainingData.load(training_set.path, training_set.images, input_res=16)
    arrays = dict(training_set.arrays)
    arrays["S"] = arrays["S"][:, :, :3]
    path = tmp_path / "bad_s.npz"
    np.savez(path, **arrays)
    with pytest.raises(
        InputError,
        match=r"'S' has shape \(24, 24, 3\), expected \(24, 24, 4\): one "
        r"entry per dataset row",
    ):
        TrainingData.load(path, training_set.images)


# ----------------------------------------------------------------------------- 3D joints


@pytest.fixture(scope="module")
def bodies(standin_files, training_set):
    model = SpinBodyModel(standin_files, dtype=torch.float64)
    rows = np.arange(8)
    pose = torch.as_tensor(training_set.arrays["pose"][rows])
    betas = torch.as_tensor(training_set.arrays["shape"][rows])
    return model, pose, betas


def _centred(joints):
    """(B, 24, >=3) -> pelvis (mid-hip) centred positions (B, 24, 3)."""
    xyz = joints[..., :3]
    return xyz - (xyz[:, 2] + xyz[:, 3])[:, None] / 2


def _joints_3d(model, pose, betas):
    joints = model(pose, betas).joints[:, 25:]
    return torch.cat(
        [
            joints + torch.tensor([0.1, -0.2, 8.0], dtype=joints.dtype),
            torch.rand(joints.shape[0], 24, 1, dtype=joints.dtype),
        ],
        -1,
    )


def test_augment_joints_3d_agrees_with_augment_pose_under_rotation(bodies):
    model, pose, betas = bodies
    aug = _aug(
        [False] * 8,
        [-60.0, -30.0, -10.0, 0.0, 5.0, 25.0, 45.0, 60.0],
        scale=[0.8, 1.2, 1.0, 1.0, 0.9, 1.1, 1.0, 1.25],
    )
    joints = _joints_3d(model, pose, betas)
    moved = augment_joints_3d(joints, aug)
    expected = model(augment_pose(pose, aug), betas).joints[:, 25:]
    np.testing.assert_allclose(_centred(moved).numpy(), _centred(expected).numpy(), atol=1e-6)
    np.testing.assert_array_equal(moved[..., 3].numpy(), joints[..., 3].numpy())
    wrong = model(augment_pose(pose, _aug([False] * 8, -aug.rotation)), betas).joints[:, 25:]
    assert (_centred(moved) - _centred(wrong)).norm(dim=-1).amax(1)[aug.rotation != 0].min() > 0.05


def test_augment_joints_3d_agrees_with_augment_pose_under_flips(bodies):
    """Up to the stand-in body's left/right asymmetry (rest joints differ by up to 8 mm)."""
    model, pose, betas = bodies
    aug = _aug([True] * 8, [0.0, 0.0, 30.0, -30.0, 60.0, -60.0, 15.0, -45.0])
    joints = _joints_3d(model, pose, betas)
    moved = augment_joints_3d(joints, aug)
    expected = model(augment_pose(pose, aug), betas).joints[:, 25:]
    error = (_centred(moved) - _centred(expected)).norm(dim=-1)
    assert error.max() < 0.03 and error.mean() < 0.01
    # confidences are relabelled with the joints
    np.testing.assert_array_equal(moved[..., 3].numpy(), joints[:, list(GT_JOINTS_FLIP_PERM), 3].numpy())
    # mirroring without relabelling left/right would be far off
    unlabelled = joints.clone()
    unlabelled[..., 0] *= -1
    error = (_centred(unlabelled[:2]) - _centred(expected[:2])).norm(dim=-1)
    assert error.max() > 0.1


# ----------------------------------------------------------------------------- mixes and loaders


@pytest.fixture(scope="module")
def mixed(training_set, shared_data):
    """The synthetic set (crops as files, no 3D joints) and the four real H36M frames (JPEGs
    of about 1000 px, ground-truth SMPL and 3D joints S)."""
    synthetic = TrainingData.load(training_set.path, training_set.images, input_res=64)
    h36m = TrainingData.load(shared_data / "h36m_spin_sample.npz", shared_data / "h36m_images", input_res=64)
    return MixedTrainingData(["people", "h36m"], [synthetic, h36m])


def test_mixed_batch_keeps_each_datasets_annotations(mixed, training_set, shared_data):
    dataset = np.array([0, 0, 1, 1, 1])
    rows = np.array([2, 5, 0, 3, 1])
    batch = mixed.batch(dataset, rows, _aug([False, True, False, True, False], [0.0, 0.0, 20.0, 0.0, -10.0]))
    assert batch.images.shape == (5, 3, 64, 64) and batch.keypoints.shape == (5, 49, 3)
    np.testing.assert_array_equal(batch.dataset, dataset)
    np.testing.assert_array_equal(batch.rows, rows)
    # H36M rows carry 3D joints (S) and SMPL
    assert batch.has_joints_3d[2:].all() and batch.joints_3d[2:, :, 3].sum() > 0
    assert batch.has_smpl[2:].all()
    # a dataset without S beside one with it: zeros there, has_joints_3d False (SPIN's has_pose_3d)
    no_3d = replace(
        mixed.datasets[0].batch(rows[:2], Augmentation.identity(2)), joints_3d=None, has_joints_3d=None
    )
    both = concat_batches(
        [no_3d, mixed.datasets[1].batch(rows[2:], Augmentation.identity(3), dataset_index=1)]
    )
    assert both.has_joints_3d.tolist() == [False, False, True, True, True]
    assert both.joints_3d[:2].abs().sum() == 0 and both.joints_3d[2:, :, 3].sum() > 0
    h36m = np.load(shared_data / "h36m_spin_sample.npz")
    np.testing.assert_allclose(batch.gt_pose[2:].numpy(), h36m["pose"][[0, 3, 1]], atol=1e-6)
    # the real frames' keypoints are SPIN's 24 ground-truth joints in the crop frame
    assert (batch.keypoints_crop[2:, 25:, 2] > 0).sum() >= 3 * 14
    # each part equals its dataset's own batch
    alone = mixed.datasets[1].batch(rows[2:], _aug([False, True, False], [20.0, 0.0, -10.0]))
    torch.testing.assert_close(batch.images[2:], alone.images)
    with pytest.raises(InputError, match="dataset indices must come grouped"):
        mixed.batch(np.array([1, 0]), np.array([0, 0]), Augmentation.identity(2))


def test_loader_workers_build_the_same_batches_as_the_training_process(mixed):
    """DataLoader worker processes (decoding the real JPEGs) give exactly the batches built in
    the training process, step by step, from (seed, step, rank) alone; a loader that starts at
    step 3 (a resumed run) gives steps 3.. of the full sequence."""
    sampler = MixedSampler(mixed.sizes, [0.5, 0.5], batch_size=4, world_size=2, seed=7)
    config = AugmentationConfig()

    def batches(workers, first=0):
        loader = training_loader(
            StepBatches(mixed, sampler, config, 7, 1, first, 5), workers, pin_memory=False
        )
        return list(loader)

    inline, loaded, resumed = batches(0), batches(2), batches(1, first=3)
    assert len(inline) == len(loaded) == 5 and len(resumed) == 2
    for a, b in zip(inline, loaded):
        np.testing.assert_array_equal(a.rows, b.rows)
        np.testing.assert_array_equal(a.dataset, b.dataset)
        torch.testing.assert_close(a.images, b.images)
        torch.testing.assert_close(a.augmentation.rotation, b.augmentation.rotation)
    for a, b in zip(inline[3:], resumed):
        np.testing.assert_array_equal(a.rows, b.rows)
        torch.testing.assert_close(a.images, b.images)
    drawn = np.concatenate([b.dataset for b in inline])
    assert 0 < drawn.sum() < len(drawn)  # both datasets came up
