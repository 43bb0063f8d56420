"""MoSh-lite (spinfits.fitting.mocap.mosh) and the pose prior learned from it
(spinfits.fitting.mocap.prior, `spinfits model fit-prior`)."""

import pickle

import numpy as np
import pytest
import torch
from test_mocap_joints import RIG, rig_bvh

from spinfits.cli import main
from spinfits.errors import InputError
from spinfits.fitting.body.body_model import SpinBodyModel
from spinfits.fitting.body.joints import SMPL_JOINT_NAMES
from spinfits.fitting.mocap.joint_maps import CMU
from spinfits.fitting.mocap.joints import MocapJoints
from spinfits.fitting.mocap.mosh import SkeletonModel, fit_mocap, skeleton_jacobian, skeleton_joints
from spinfits.fitting.mocap.prior import learn_pose_prior, mirror_body_pose, read_held_out, write_gmm_pickle


def test_skeleton_joints_and_jacobian_are_exact(body_files):
    model = SkeletonModel.from_files(body_files)
    generator = torch.Generator().manual_seed(1)
    pose = 0.4 * torch.randn(3, 72, generator=generator, dtype=torch.float64)
    betas = torch.randn(3, 10, generator=generator, dtype=torch.float64)
    body = SpinBodyModel(body_files, dtype=torch.float64)
    joints, jacobian = skeleton_jacobian(pose, model.rest(betas), model.parents)
    np.testing.assert_allclose(joints, body(pose, betas).smpl_joints, atol=1e-9)
    numeric = torch.autograd.functional.jacobian(
        lambda p: skeleton_joints(p, model.rest(betas), model.parents), pose
    )
    numeric = torch.stack([numeric[i, :, :, i] for i in range(3)])
    np.testing.assert_allclose(jacobian, numeric, atol=1e-10)


def _mocap_of(body_files, pose: np.ndarray, betas: np.ndarray, transl: np.ndarray, clips) -> MocapJoints:
    model = SkeletonModel.from_files(body_files)
    rest = model.rest(torch.as_tensor(betas))
    joints = skeleton_joints(torch.as_tensor(pose), rest, model.parents).numpy() + transl[:, None]
    present = np.zeros((len(pose), 24), dtype=bool)
    present[:, list(CMU.smpl_indices)] = True
    joints[~present] = 0.0
    return MocapJoints(
        joints,
        present,
        np.asarray(clips),
        np.arange(len(pose)),
        np.full(len(pose), "cmu"),
        np.ones(len(pose)),
    )


def test_mosh_recovers_the_limbs_of_a_known_body(body_files):
    rng = np.random.default_rng(0)
    count = 6
    pose = np.zeros((count, 72))
    pose[:, :3] = rng.normal(0, 0.5, (count, 3))
    slot = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}
    for name, axis, low, high in (
        ("left_knee", 0, 0.2, 1.5),
        ("right_knee", 0, 0.2, 1.5),
        ("left_hip", 0, -1.0, 0.3),
        ("left_elbow", 1, 0.3, 1.5),
        ("right_shoulder", 2, 0.3, 1.0),
    ):
        pose[:, 3 * slot[name] + axis] = rng.uniform(low, high, count)
    betas = np.repeat(rng.normal(0, 0.8, (1, 10)), count, axis=0)
    transl = rng.normal(0, 1, (count, 3))
    mocap = _mocap_of(body_files, pose, betas, transl, ["a/clip"] * count)
    fit = fit_mocap(mocap, body_files)
    assert fit.pose.shape == (count, 72) and fit.betas.shape == (count, 10)
    assert np.isnan(fit.residual[:, slot["spine1"]]).all()
    present = mocap.present
    # the same skeleton as the truth: the joints come back within millimetres
    assert np.nanmax(fit.residual[present]) < 0.01, np.nanmax(fit.residual)
    for name in ("left_knee", "right_knee", "left_elbow"):
        column = 3 * slot[name] + (1 if name == "left_elbow" else 0)
        np.testing.assert_allclose(fit.pose[:, column], pose[:, column], atol=0.05)
    with pytest.raises(InputError, match="no mocap frames to fit"):
        fit_mocap(mocap.select(np.zeros(count, dtype=bool)), body_files)


def _fake_fit(clips: int, frames: int, seed: int = 0):
    from spinfits.fitting.mocap.mosh import MoshFit

    rng = np.random.default_rng(seed)
    count = clips * frames
    pose = rng.normal(0, 0.3, (count, 72))
    clip = np.repeat([f"set/clip{c}" for c in range(clips)], frames)
    return MoshFit(
        pose, np.zeros((count, 10)), np.zeros((count, 3)), np.zeros((count, 24)), clip, np.arange(count)
    )


def test_prior_is_split_by_clip_and_rebuilt_bit_for_bit(tmp_path):
    fit = _fake_fit(clips=4, frames=60)
    held_out = ("set/clip1",)
    first = learn_pose_prior(fit, held_out, components=2, seed=3)
    assert first.clips == ("set/clip0", "set/clip2", "set/clip3") and first.frames == 180
    assert first.means.shape == (2, 69) and first.covars.shape == (2, 69, 69)
    np.testing.assert_allclose(first.weights.sum(), 1.0)
    paths = [tmp_path / "a.pkl", tmp_path / "b.pkl"]
    for path in paths:
        write_gmm_pickle(learn_pose_prior(fit, held_out, components=2, seed=3), path, "test")
    assert paths[0].read_bytes() == paths[1].read_bytes()
    with open(paths[0], "rb") as handle:
        gmm = pickle.load(handle)
    assert set(gmm) >= {"means", "covars", "weights"}
    # the held-out clip changes nothing when it changes
    other = _fake_fit(clips=4, frames=60)
    other.pose[fit.clip == "set/clip1"] += 1.0
    np.testing.assert_array_equal(learn_pose_prior(other, held_out, components=2, seed=3).means, first.means)
    with pytest.raises(InputError, match="too few for 8 components"):
        learn_pose_prior(fit, ("set/clip0", "set/clip1", "set/clip2"), components=8)


def test_mirror_is_an_involution_and_the_shipped_list_reads():
    poses = np.random.default_rng(0).normal(size=(3, 69))
    np.testing.assert_array_equal(mirror_body_pose(mirror_body_pose(poses)), poses)
    held_out = read_held_out()
    assert "cmu_iclone/002_01" in held_out and "cmu_aclstm/salsa_16" in held_out
    assert all("/" in name and "#" not in name for name in held_out)


def test_fit_prior_command(capsys, tmp_path, standin_dir):
    rng = np.random.default_rng(0)
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("a", "b"):
        frames = []
        for _ in range(20):
            values = [0, 90, 0, *rng.uniform(-20, 20, 3)]
            values += list(rng.uniform(-15, 15, 3 * (len(RIG) - 1)))
            frames.append(values)
        (folder / f"{name}.bvh").write_text(rig_bvh(frames))
    held_out = tmp_path / "held_out.txt"
    held_out.write_text("clips/b  # the second\n")
    out = tmp_path / "prior" / "gmm.pkl"
    argv = ["model", "fit-prior", "--mocap", str(folder), "--model-dir", str(standin_dir)]
    argv += ["--out", str(out), "--components", "2", "--held-out", str(held_out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "fitted 40 frames of 2 clips" in printed
    assert "2 components learned from 20 frames of 1 clips (mirrored), 1 clips held out" in printed
    first = out.read_bytes()
    out.unlink()
    assert main(argv) == 0  # from the cache, the same bytes
    assert "read 40 frames of 2 clips" in capsys.readouterr().out
    assert out.read_bytes() == first
    assert main(argv) == 2
    assert f"{out} exists; pass --overwrite" in capsys.readouterr().err
