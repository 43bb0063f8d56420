"""The stand-in's pose correctives (`posedirs`): SMPL's layout, what smplx does with them, sane."""

import pickle

import numpy as np
import pytest
import smplx
import torch
from scipy.spatial.transform import Rotation

from spinfits.errors import InputError
from spinfits.fitting.body.joints import SMPL_JOINT_NAMES
from spinfits.fitting.body.joints_only import JointsOnlyBody
from spinfits.fitting.synthetic.natural_poses import mirror_body_pose, sample_body_poses
from spinfits.fitting.synthetic.standin import files as standin_files_module
from spinfits.fitting.synthetic.standin import package_data
from spinfits.fitting.synthetic.standin.files import CORRECTIVES_SOURCE, standin_correctives
from spinfits.fitting.synthetic.standin.package_data import packaged

J = {name: index for index, name in enumerate(SMPL_JOINT_NAMES)}
D = torch.float64


def corrective_offsets(posedirs: np.ndarray, body_pose: np.ndarray) -> np.ndarray:
    """(V, 3, 207), (69,) axis-angle -> (V, 3) unposed offsets, as SMPL adds them."""
    rotations = Rotation.from_rotvec(body_pose.reshape(23, 3)).as_matrix()  # joints 1..23
    features = (rotations - np.eye(3)).reshape(207)  # each 3x3 row-major, SMPL's order
    return posedirs @ features


def bent(joint: str, axis: int, angle: float) -> np.ndarray:
    pose = np.zeros(69)
    pose[3 * (J[joint] - 1) + axis] = angle
    return pose


def test_written_pickle_has_nonzero_float64_posedirs_in_smpls_layout(standin_dir):
    with open(standin_dir / "smpl" / "SMPL_NEUTRAL.pkl", "rb") as handle:
        data = pickle.load(handle, encoding="latin1")
    posedirs = data["posedirs"]
    assert posedirs.shape == (6890, 3, 207) and posedirs.dtype == np.float64
    assert np.isfinite(posedirs).all()
    # nearly every vertex has a corrective (as SMPL's do), none of absurd size (m per unit feature)
    assert np.mean(np.abs(posedirs).max(axis=(1, 2)) > 0) > 0.99
    assert 1e-3 < np.abs(posedirs).max() < 0.2
    info = data["pose_training_info"]
    assert "STAND-IN" in info["standin"] and "NOT SMPL" in info["standin"]
    assert 0.5 < info["held_out_explained"] <= 1.0 and info["rank"] <= 128


def test_smplx_adds_the_correctives_as_smpl_does(standin_dir, standin_files):
    """smplx reads (V, 3, 207) from the pickle as (207, V*3); its vertices move by exactly the
    offsets computed here in SMPL's feature order, carried by the skinning."""
    model = smplx.SMPL(model_path=str(standin_dir / "smpl"), dtype=D)
    posedirs = standin_files.smpl.posedirs
    # smplx's loader rounds the pickle's arrays through float32
    np.testing.assert_array_equal(model.posedirs.numpy(), posedirs.reshape(-1, 207).T.astype(np.float32))
    body_pose = sample_body_poses(1, np.random.default_rng(3))[0]
    with torch.no_grad():
        posed = model(body_pose=torch.as_tensor(body_pose)[None], betas=torch.zeros(1, 10, dtype=D))
        model.posedirs.zero_()
        plain = model(body_pose=torch.as_tensor(body_pose)[None], betas=torch.zeros(1, 10, dtype=D))
    moved = np.linalg.norm((posed.vertices - plain.vertices)[0].numpy(), axis=1)
    expected = np.linalg.norm(corrective_offsets(posedirs, body_pose), axis=1)
    # skinning rotates an offset; a blend of rotations scales it by at most 1
    assert np.all(moved <= expected + 1e-7)
    assert np.corrcoef(moved, expected)[0, 1] > 0.95
    assert moved.max() > 1e-3, "a natural pose moves some vertex by more than a millimetre"
    np.testing.assert_allclose(posed.joints[0, :24].numpy(), plain.joints[0, :24].numpy(), atol=1e-12)


ARMS_AND_HEAD = ["left_elbow", "right_elbow", "left_wrist", "right_wrist", "head"]
FEET_AND_HEAD = ["left_ankle", "right_ankle", "left_foot", "right_foot", "head"]


@pytest.mark.parametrize(
    ("joint", "axis", "angle", "far_parts"),
    [
        ("left_elbow", 1, -1.5, FEET_AND_HEAD),
        ("right_knee", 0, 1.5, ARMS_AND_HEAD),
        ("left_shoulder", 2, -1.0, FEET_AND_HEAD + ["right_elbow", "right_wrist"]),
    ],
)
def test_a_bent_joint_corrects_near_the_joint_not_far_away(standin_files, joint, axis, angle, far_parts):
    smpl = standin_files.smpl
    offsets = np.linalg.norm(corrective_offsets(smpl.posedirs, bent(joint, axis, angle)), axis=1)
    joints = smpl.J_regressor @ smpl.v_template
    near = np.linalg.norm(smpl.v_template - joints[J[joint]], axis=1) < 0.12
    far = smpl.weights[:, [J[name] for name in far_parts]].sum(1) > 0.9
    assert near.sum() > 50 and far.sum() > 200
    assert offsets[near].mean() > 1e-3, "a strong bend is corrected by more than a millimetre"
    assert offsets[near].mean() > 10 * offsets[far].mean()


def test_symmetric_pose_gives_symmetric_correctives(standin_dir, standin_files):
    with open(standin_dir / "smpl" / "SMPL_NEUTRAL.pkl", "rb") as handle:
        mirror = pickle.load(handle, encoding="latin1")["vert_sym_idxs"]
    posedirs = standin_files.smpl.posedirs

    def asymmetry(pose: np.ndarray) -> float:
        offsets = corrective_offsets(posedirs, pose)
        mirrored = offsets[mirror] * [-1.0, 1.0, 1.0]
        return float(np.sqrt(np.mean((offsets - mirrored) ** 2) / np.mean(offsets**2)))

    poses = sample_body_poses(5, np.random.default_rng(11))
    for pose in 0.5 * (poses + mirror_body_pose(poses)):  # fixed points of the mirror
        # not 0: the decimated mesh is only nearly symmetric (vert_sym_idxs is the nearest
        # mirror vertex, up to centimetres off), and the residual the correctives were fitted
        # to is itself 15-20 % asymmetric by this measure (PROVENANCE.md)
        assert asymmetry(pose) < 0.3
    assert asymmetry(bent("left_elbow", 1, -1.5)) > 1.0, "a one-sided bend is corrected on one side"


def test_expansion_is_exact_in_any_summation_order():
    """The fingerprint hashes posedirs: their float64 expansion must not depend on the BLAS."""
    expanded = standin_correctives(6890).posedirs.reshape(-1, 207).T  # (207, V*3)
    with np.load(packaged(CORRECTIVES_SOURCE)) as source:
        weights, basis = source["feature_weights"], source["vertex_basis"]
        exponent = int(source["scale_exponent"])
    basis = basis.reshape(len(basis), -1)
    backwards = np.zeros_like(expanded)
    for k in reversed(range(weights.shape[1])):  # another order of the same sums
        backwards += np.outer(weights[:, k].astype(np.float64), basis[k].astype(np.float64))
    np.testing.assert_array_equal(np.ldexp(backwards, exponent), expanded)


def test_a_corrupt_correctives_file_is_refused(tmp_path, monkeypatch):
    with np.load(packaged(CORRECTIVES_SOURCE)) as npz:
        source = dict(npz)
    source["vertex_basis"] = source["vertex_basis"].astype(np.float32)
    np.savez(tmp_path / CORRECTIVES_SOURCE, **source)
    monkeypatch.setattr(standin_files_module, "packaged", lambda name: tmp_path / name)
    with pytest.raises(
        InputError, match=r"expected int32 \(207, k\).*rebuild it with tools/build_standin_corr"
    ):
        standin_correctives(6890)


def test_a_missing_correctives_file_names_the_tool_that_builds_it(tmp_path, monkeypatch):
    monkeypatch.setattr(package_data.resources, "files", lambda package: tmp_path)
    with pytest.raises(
        InputError, match="standin_correctives.npz is missing.*tools/build_standin_correctives.py"
    ):
        standin_correctives(6890)


def test_joints_only_jacobian_with_the_standins_correctives_matches_finite_differences(standin_files):
    model = JointsOnlyBody(standin_files, dtype=D)
    assert model.has_pose_correctives and len(model.corrective_pairs) > 0
    generator = torch.Generator().manual_seed(2)
    pose = torch.as_tensor(sample_body_poses(2, np.random.default_rng(2)), dtype=D)
    pose = torch.cat([0.3 * torch.randn(2, 3, generator=generator, dtype=D), pose], dim=1)
    betas = torch.randn(2, 10, generator=generator, dtype=D)
    analytic = model.evaluate(pose, betas).jacobian  # (2, 49, 3, 82)
    x = torch.cat([pose, betas], dim=1)
    step = 1e-6
    numeric = torch.empty_like(analytic)
    for i in range(x.shape[1]):
        up, down = x.clone(), x.clone()
        up[:, i] += step
        down[:, i] -= step
        numeric[..., i] = (model(up[:, :72], up[:, 72:]) - model(down[:, :72], down[:, 72:])) / (2 * step)
    assert (analytic - numeric).abs().max() < 1e-7
    # the correctives' share of the Jacobian is real, not negligible
    plain = model.evaluate(pose, betas, corrective_jacobian=False).jacobian
    assert (analytic - plain).abs().max() > 1e-4
