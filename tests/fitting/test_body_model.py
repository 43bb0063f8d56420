"""SpinBodyModel: SPIN's 49 joints from SMPL-format files (on the stand-in)."""

import numpy as np
import pytest
import smplx
import torch

from spinfits.errors import InputError
from spinfits.fitting.body.body_model import SpinBodyModel
from spinfits.fitting.body.joints import SPIN_JOINT_NAMES, spin_index


@pytest.fixture(scope="module")
def model(standin_files):
    return SpinBodyModel(standin_files)


def test_49_joints_match_spins_construction(model, standin_dir):
    """SPIN's recipe, done by hand: smplx's 45 joints + J_regressor_extra, then JOINT_MAP."""
    rng = np.random.default_rng(0)
    pose = torch.as_tensor(rng.normal(0, 0.3, (3, 72)), dtype=torch.float32)
    betas = torch.as_tensor(rng.normal(0, 1, (3, 10)), dtype=torch.float32)
    reference = smplx.SMPL(model_path=str(standin_dir / "smpl"))
    out = reference(global_orient=pose[:, :3], body_pose=pose[:, 3:], betas=betas)
    extra = torch.as_tensor(np.load(standin_dir / "J_regressor_extra.npy"), dtype=torch.float32)
    all_joints = torch.cat([out.joints, torch.einsum("jv,bvc->bjc", extra, out.vertices)], 1)
    spin_map = {  # SPIN's constants.JOINT_MAP for a few joints, spelled out
        "OP Nose": 24,
        "OP Neck": 12,
        "OP RAnkle": 8,
        "OP LBigToe": 29,
        "OP RHeel": 34,
        "Right Hip": 45,
        "Top of Head (LSP)": 48,
        "Head (H36M)": 53,
        "Left Ear": 28,
    }
    ours = model(pose, betas, return_vertices=True)
    for name, source in spin_map.items():
        torch.testing.assert_close(ours.joints[:, spin_index(name)], all_joints[:, source])
    torch.testing.assert_close(ours.vertices, out.vertices)
    assert ours.joints.shape == (3, 49, 3)


def test_zero_pose_joints_look_like_a_person(model):
    out = model(torch.zeros(1, 72), torch.zeros(1, 10), return_vertices=True)
    j = {name: out.joints[0, i].numpy() for i, name in enumerate(SPIN_JOINT_NAMES)}
    y = lambda name: j[name][1]  # noqa: E731
    assert y("Top of Head (LSP)") > y("OP Nose") > y("OP Neck") > y("OP MidHip")
    assert y("OP MidHip") > y("OP LKnee") > y("OP LAnkle") > y("OP LHeel") - 0.05
    for left, right in (
        ("OP LShoulder", "OP RShoulder"),
        ("OP LHip", "OP RHip"),
        ("OP LWrist", "OP RWrist"),
        ("OP LEye", "OP REye"),
    ):
        assert j[left][0] > 0 > j[right][0], (left, right)
    assert j["OP LBigToe"][2] > j["OP LHeel"][2]  # toes point forwards (+z)
    assert j["OP Nose"][2] > j["Head (H36M)"][2]  # the nose is in front of the head
    height = out.vertices[0, :, 1].max() - out.vertices[0, :, 1].min()
    assert 1.55 < float(height) < 1.85
    shoulders = np.linalg.norm(j["OP LShoulder"] - j["OP RShoulder"])
    assert 0.25 < shoulders < 0.5


def test_vertices_only_on_request(model):
    out = model(torch.zeros(2, 72), torch.zeros(2, 10))
    assert out.vertices is None and out.smpl_joints.shape == (2, 24, 3)


def test_bad_inputs_have_clear_messages(model):
    with pytest.raises(InputError, match=r"pose must be a \(B, 72\).*shape \(72,\).*pose\[None\]"):
        model(torch.zeros(72), torch.zeros(1, 10))
    with pytest.raises(InputError, match=r"betas must be a \(B, 10\)"):
        model(torch.zeros(1, 72), torch.zeros(1, 300))
    with pytest.raises(InputError, match="same batch size, got 2 and 3"):
        model(torch.zeros(2, 72), torch.zeros(3, 10))
    with pytest.raises(InputError, match="pose is torch.float64 on cpu.*to\\(device"):
        model(torch.zeros(1, 72, dtype=torch.float64), torch.zeros(1, 10))


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_device_and_dtype_are_honoured(standin_files, device, dtype):
    model = SpinBodyModel(standin_files, device=device, dtype=dtype)
    assert all(b.device.type == device for b in model.buffers())
    out = model(
        torch.zeros(2, 72, device=device, dtype=dtype),
        torch.zeros(2, 10, device=device, dtype=dtype),
        return_vertices=True,
    )
    for tensor in (out.joints, out.smpl_joints, out.vertices):
        assert tensor.device.type == device and tensor.dtype == dtype


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(standin_files):
    cpu = SpinBodyModel(standin_files)(torch.zeros(1, 72), torch.zeros(1, 10)).joints
    gpu = SpinBodyModel(standin_files, device="cuda")(
        torch.zeros(1, 72, device="cuda"), torch.zeros(1, 10, device="cuda")
    ).joints
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-5, rtol=1e-5)


def test_rotation_matrix_input_equals_axis_angle_input(model):
    from spinfits.fitting.body.rotations import axis_angle_to_matrix

    torch.manual_seed(3)
    pose, betas = 0.3 * torch.randn(4, 72), torch.randn(4, 10)
    by_angles = model(pose, betas, return_vertices=True)
    by_matrices = model.forward_rotmat(
        axis_angle_to_matrix(pose.reshape(4, 24, 3)), betas, return_vertices=True
    )
    torch.testing.assert_close(by_matrices.joints, by_angles.joints, atol=1e-5, rtol=0)
    torch.testing.assert_close(by_matrices.vertices, by_angles.vertices, atol=1e-5, rtol=0)


def test_rotation_matrix_input_is_checked(model):
    rotmat = torch.eye(3).expand(2, 24, 3, 3)
    with pytest.raises(InputError, match=r"rotmat must be \(B, 24, 3, 3\)"):
        model.forward_rotmat(rotmat[:, :23], torch.zeros(2, 10))
    with pytest.raises(InputError, match=r"betas must be a \(B, 10\) tensor"):
        model.forward_rotmat(rotmat, torch.zeros(2, 9))
    with pytest.raises(InputError, match="same batch size, got 2 and 3"):
        model.forward_rotmat(rotmat, torch.zeros(3, 10))
    with pytest.raises(InputError, match="betas is torch.float64"):
        model.forward_rotmat(rotmat, torch.zeros(2, 10, dtype=torch.float64))
