"""Synthetic datasets: SPIN's layout, known ground truth, realistic defects."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from spinfits.cli import main
from spinfits.errors import InputError
from spinfits.fitting.body.body_model import SpinBodyModel
from spinfits.fitting.data.dataset import CROP_RES, FOCAL_LENGTH, load_spin_npz
from spinfits.fitting.synthetic.people import SyntheticConfig, write_synthetic_dataset


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory, standin_files):
    path = tmp_path_factory.mktemp("synthetic") / "synthetic.npz"
    write_synthetic_dataset(path, standin_files, SyntheticConfig(rows=300, seed=3))
    return path


def test_reads_back_as_a_spin_dataset(synthetic):
    raw = np.load(synthetic)
    dataset = load_spin_npz(synthetic)
    assert len(dataset) == 300 and dataset.has_smpl.all()
    confident = dataset.keypoints[..., 2] > 0
    error = np.linalg.norm(dataset.keypoints[..., :2] - raw["gt_keypoints"][..., :2], axis=-1)
    # annotation noise is a few pixels (2.5 px OpenPose, 1 px GT) except for left/right swaps
    unswapped = ~raw["swapped"]
    assert np.median(error[confident]) < 4.0
    assert np.percentile(error[unswapped][confident[unswapped]], 99) < 12.0
    assert 0.05 < 1 - confident[~raw["truncated"]].mean() < 0.25  # some keypoints missing


def test_ground_truth_reprojects_onto_the_keypoints(synthetic, standin_files):
    raw = np.load(synthetic)
    model = SpinBodyModel(standin_files, dtype=torch.float64)
    with torch.no_grad():
        joints = model(torch.as_tensor(raw["pose"]), torch.as_tensor(raw["shape"])).joints.numpy()
    camera = joints + raw["gt_cam_t"][:, None]
    projected = FOCAL_LENGTH * camera[..., :2] / camera[..., 2:] + CROP_RES / 2
    np.testing.assert_allclose(projected, raw["gt_keypoints"][..., :2], atol=1e-2)
    assert (camera[..., 2] > 5).all()  # in front of the camera, far away (focal 5000)


def test_people_fill_the_crop_and_some_are_truncated(synthetic):
    raw = np.load(synthetic)
    gt = raw["gt_keypoints"]
    whole = ~raw["truncated"]
    extent = (gt[whole, :, :2].max(1) - gt[whole, :, :2].min(1)).max(1)
    assert np.median(extent) > 0.6 * CROP_RES
    assert raw["truncated"].any()
    ankles = [11, 14, 25, 30]  # OpenPose and GT ankles
    assert (gt[raw["truncated"]][:, ankles, 2] == 0).mean() > 0.5  # legs out of the crop
    assert (gt[whole][:, ankles, 2] == 1).mean() > 0.95


def test_orientation_mostly_facing_the_camera(synthetic):
    raw = np.load(synthetic)
    forward = Rotation.from_rotvec(raw["pose"][:, :3]).apply([0.0, 0.0, 1.0])
    towards_camera = forward[:, 2] < 0  # camera looks down +z
    assert 0.6 < towards_camera.mean() < 0.95
    up = Rotation.from_rotvec(raw["pose"][:, :3]).apply([0.0, 1.0, 0.0])
    assert (up[:, 1] < -0.9).all()  # upright: the body's up is the image's up (y down)


def test_named_as_standin_and_reproducible(tmp_path, standin_files, synthetic):
    raw = np.load(synthetic)
    assert "STAND-IN" in str(raw["body_model"])
    again = write_synthetic_dataset(tmp_path / "again.npz", standin_files, SyntheticConfig(rows=300, seed=3))
    np.testing.assert_array_equal(np.load(again)["openpose"], raw["openpose"])


def test_bad_config_and_output(tmp_path, standin_files):
    with pytest.raises(InputError, match="rows must be >= 1, got 0"):
        SyntheticConfig(rows=0)
    with pytest.raises(InputError, match=r"missing_fraction must be within \[0, 1\], got 1.5"):
        SyntheticConfig(missing_fraction=1.5)
    with pytest.raises(InputError, match="must be a .npz file"):
        write_synthetic_dataset(tmp_path / "x.csv", standin_files, SyntheticConfig(rows=2))


def test_cli_make_synthetic(tmp_path, standin_dir, capsys):
    out = tmp_path / "d.npz"
    assert main(["data", "make-synthetic", str(out), "--n", "20", "--model-dir", str(standin_dir)]) == 0
    assert "STAND-IN" in capsys.readouterr().out
    assert np.load(out)["part"].shape == (20, 24, 3)
    assert main(["data", "info", str(out)]) == 0
    assert "20 rows" in capsys.readouterr().out
    assert main(["data", "make-synthetic", str(out), "--n", "5", "--model-dir", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_poses_mix_mocap_of_held_in_clips_and_the_anatomy_sampler(standin_files, synthetic):
    from spinfits.fitting.mocap.prior import mirror_body_pose, read_held_out
    from spinfits.fitting.synthetic.natural_poses import sample_body_poses
    from spinfits.fitting.synthetic.people import make_synthetic_dataset
    from spinfits.fitting.synthetic.standin.mocap_prior import load_mocap_poses

    raw = np.load(synthetic)
    source = raw["pose_source"]
    mocap = np.char.startswith(source, "mocap:")
    assert 0.65 < mocap.mean() < 0.85  # default 0.75 of 300 people
    assert set(source[~mocap]) == {"anatomy"}
    held_out = set(read_held_out())
    clips = {name.split(":")[1] for name in source[mocap]}
    assert clips and not clips & held_out
    # each mocap person carries the shipped pose of its clip and frame (mirrored when it says so)
    shipped = load_mocap_poses()
    index = {f"{c}:{f}": i for i, (c, f) in enumerate(zip(shipped.clip, shipped.frame))}
    for row in np.nonzero(mocap)[0][:20]:
        name = source[row].removeprefix("mocap:")
        body = shipped.body_pose[index[name.removesuffix("+mirror")]]
        if name.endswith("+mirror"):
            body = mirror_body_pose(body[None])[0]
        np.testing.assert_array_equal(raw["pose"][row, 3:], body)
    # without mocap, the poses are the anatomy sampler's and everything else is drawn as with it
    plain = make_synthetic_dataset(standin_files, SyntheticConfig(rows=300, seed=3, mocap_fraction=0.0))
    assert set(plain["pose_source"]) == {"anatomy"}
    np.testing.assert_array_equal(plain["pose"][:, 3:], sample_body_poses(300, np.random.default_rng(3)))
    np.testing.assert_array_equal(plain["pose"][:, :3], raw["pose"][:, :3])
    np.testing.assert_array_equal(plain["shape"], raw["shape"])


def test_cli_mocap_fraction_is_checked(tmp_path, standin_dir, capsys):
    out = tmp_path / "d.npz"
    argv = ["data", "make-synthetic", str(out), "--n", "20", "--model-dir", str(standin_dir)]
    assert main([*argv, "--mocap-fraction", "1"]) == 0
    assert "100% (on average) from CMU motion capture" in capsys.readouterr().out
    assert all(name.startswith("mocap:") for name in np.load(out)["pose_source"])
    assert main([*argv, "--mocap-fraction", "1.5"]) == 2
    assert "--mocap-fraction must be within [0, 1], got 1.5" in capsys.readouterr().err
