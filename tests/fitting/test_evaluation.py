"""SPIN's evaluation metrics (MPJPE, PA-MPJPE, PCK), its joint selections, the stand-in's Human3.6M
regressor and the evaluation of SMPL parameters on the four real Human3.6M frames."""

import math

import numpy as np
import pytest
import torch

from spinfits.errors import InputError
from spinfits.fitting.body.joints import SPIN_GT_JOINT_NAMES
from spinfits.fitting.evaluation.fit_evaluation import Evaluator
from spinfits.fitting.evaluation.h36m_regressor import (
    STANDIN_H36M_REGRESSOR_NAME,
    find_h36m_regressor,
    load_h36m_regressor,
)
from spinfits.fitting.evaluation.metrics import (
    H36M14,
    H36M_TO_GT24,
    H36M_TO_J14,
    H36M_TO_J17,
    J24_TO_J14,
    J24_TO_J17,
    LSP14,
    LSP14_JOINT_NAMES,
    LSP14_TORSO,
    facing_error,
    h36m_action,
    mpjpe,
    pa_mpjpe,
    pck,
    select_gt24,
    select_predicted,
    similarity_align,
    torso_normal,
)
from spinfits.fitting.evaluation.summary import summary_of
from spinfits.fitting.evaluation.targets import load_eval_targets

H36M_SAMPLE = "h36m_spin_sample.npz"


def _rotation(seed: int) -> torch.Tensor:
    q = torch.linalg.qr(
        torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    )[0]
    return q * torch.sign(torch.linalg.det(q))  # det +1


def spin_reconstruction_error(S1: np.ndarray, S2: np.ndarray) -> np.ndarray:
    """SPIN's utils/pose_utils.py (compute_similarity_transform + reconstruction_error, reduction
    None), re-typed per sample: the reference the batched version must match."""
    errors = []
    for a, b in zip(S1, S2):
        a, b = a.T, b.T
        mu1, mu2 = a.mean(axis=1, keepdims=True), b.mean(axis=1, keepdims=True)
        X1, X2 = a - mu1, b - mu2
        var1 = np.sum(X1**2)
        K = X1.dot(X2.T)
        U, s, Vh = np.linalg.svd(K)
        V = Vh.T
        Z = np.eye(U.shape[0])
        Z[-1, -1] *= np.sign(np.linalg.det(U.dot(V.T)))
        R = V.dot(Z.dot(U.T))
        scale = np.trace(R.dot(K)) / var1
        t = mu2 - scale * (R.dot(mu1))
        hat = (scale * R.dot(a) + t).T
        errors.append(np.sqrt(((hat - b.T) ** 2).sum(axis=-1)).mean(axis=-1))
    return np.array(errors)


# ------------------------------------------------------------------------------- joint maps
def test_joint_selections_are_spins_and_agree_with_each_other():
    assert H36M_TO_J14 == (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10)
    assert tuple(range(13)) + (18,) == J24_TO_J14
    # the 17 evaluation joints picked from the H36M regressor land where SPIN stores them in S
    assert tuple(H36M_TO_GT24[i] for i in H36M_TO_J17) == J24_TO_J17
    assert LSP14_JOINT_NAMES[:3] == ("Right Ankle", "Right Knee", "Right Hip")
    assert LSP14_JOINT_NAMES[-2:] == ("Neck (LSP)", "Head (H36M)")
    assert LSP14.predicted == tuple(25 + i for i in J24_TO_J14)
    assert [SPIN_GT_JOINT_NAMES[i] for i in LSP14.gt24_root] == ["Right Hip", "Left Hip"]
    assert SPIN_GT_JOINT_NAMES[H36M14.gt24_root[0]] == "Pelvis (MPII)"


# ----------------------------------------------------------------------------------- MPJPE
def test_mpjpe_by_hand():
    pred = torch.tensor([[[0.0, 0, 0], [1, 0, 0]], [[0, 0, 0], [0, 0, 0]]])
    gt = torch.tensor([[[0.0, 0, 0], [1, 0, 0]], [[3, 4, 0], [0, 0, 1]]])
    assert torch.allclose(mpjpe(pred, gt), torch.tensor([0.0, (5.0 + 1.0) / 2]))


def test_mpjpe_refuses_mismatched_joints():
    with pytest.raises(InputError, match=r"same shape \(B, J, 3\).*select the same joints"):
        mpjpe(torch.zeros(2, 14, 3), torch.zeros(2, 17, 3))
    with pytest.raises(InputError, match=r"pred must be a \(B, J, 3\) tensor.*pred\[None\]"):
        mpjpe(torch.zeros(14, 3), torch.zeros(14, 3))


# -------------------------------------------------------------------------------- PA-MPJPE
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pa_mpjpe_is_zero_for_a_similarity_transform(batch, dtype):
    gt = torch.randn(batch, 14, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    moved = torch.stack([1.7 * gt[b] @ _rotation(b).T + torch.tensor([0.3, -2.0, 5.0]) for b in range(batch)])
    pred, gt = moved.to(dtype), gt.to(dtype)
    assert (mpjpe(pred, gt) > 0.1).all()
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    assert (pa_mpjpe(pred, gt) < tolerance).all()
    assert similarity_align(pred, gt).dtype == dtype


def test_pa_mpjpe_by_hand():
    """gt: (+-1, 0, 0), (0, +-1, 0); pred stretches x by 2. K = diag(4, 2, 0), R = I,
    scale = tr(K) / |pred|^2 = 6 / 10 = 0.6: aligned (+-1.2, 0, 0), (0, +-0.6, 0), errors
    0.2, 0.2, 0.4, 0.4: PA-MPJPE 0.3 (MPJPE 0.5)."""
    gt = torch.tensor([[[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]]], dtype=torch.float64)
    pred = gt * torch.tensor([2.0, 1.0, 1.0], dtype=torch.float64)
    expected = torch.tensor([[1.2, 0, 0], [-1.2, 0, 0], [0, 0.6, 0], [0, -0.6, 0]], dtype=torch.float64)
    assert torch.allclose(similarity_align(pred, gt)[0], expected, atol=1e-12)
    assert math.isclose(pa_mpjpe(pred, gt).item(), 0.3, abs_tol=1e-12)
    assert math.isclose(mpjpe(pred, gt).item(), 0.5, abs_tol=1e-12)
    # moving the prediction by any similarity transform changes nothing; moving the ground
    # truth rigidly neither
    rotation = _rotation(7)
    assert math.isclose(pa_mpjpe(0.2 * pred @ rotation.T + 4.0, gt).item(), 0.3, abs_tol=1e-12)
    assert math.isclose(pa_mpjpe(pred, gt @ rotation.T - 1.0).item(), 0.3, abs_tol=1e-12)


def test_pa_mpjpe_matches_spins_numpy_reference():
    generator = torch.Generator().manual_seed(3)
    gt = torch.randn(6, 17, 3, generator=generator, dtype=torch.float64)
    pred = gt + 0.3 * torch.randn(6, 17, 3, generator=generator, dtype=torch.float64)
    pred[0] = gt[0] * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)  # a mirror image
    reference = spin_reconstruction_error(pred.numpy(), gt.numpy())
    assert np.allclose(pa_mpjpe(pred, gt).numpy(), reference, atol=1e-12)


def test_pa_mpjpe_never_reflects():
    """A mirror image is not a similarity transform: it keeps an error (SPIN's det fix)."""
    gt = torch.randn(1, 14, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    mirrored = gt * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    assert pa_mpjpe(mirrored, gt).item() > 0.1


def test_pa_mpjpe_of_collapsed_prediction_is_the_spread_of_the_truth():
    gt = torch.tensor([[[1.0, 0, 0], [-1, 0, 0], [0, 2, 0]]])
    error = pa_mpjpe(torch.zeros(1, 3, 3), gt)
    centred = gt - gt.mean(1, keepdim=True)
    assert torch.isfinite(error).all()
    assert torch.allclose(error, centred.norm(dim=-1).mean(-1))


# ---------------------------------------------------------------------------- wrong-facing
def _upright_lsp14(facing_degrees: float) -> torch.Tensor:
    """(1, 14, 3) LSP-14 joints of a person upright (y up), turned ``facing_degrees`` about y
    from facing +z; the torso joints at their places, the others at the origin."""
    joints = torch.zeros(1, 14, 3, dtype=torch.float64)
    r_hip, l_hip, r_shoulder, l_shoulder = LSP14_TORSO
    joints[0, r_hip] = torch.tensor([-0.1, 0.0, 0.0])
    joints[0, l_hip] = torch.tensor([0.1, 0.0, 0.0])
    joints[0, r_shoulder] = torch.tensor([-0.2, 0.5, 0.0])
    joints[0, l_shoulder] = torch.tensor([0.2, 0.5, 0.0])
    angle = math.radians(facing_degrees)
    turn = torch.tensor(
        [[math.cos(angle), 0.0, math.sin(angle)], [0.0, 1.0, 0.0], [-math.sin(angle), 0.0, math.cos(angle)]],
        dtype=torch.float64,
    )
    return joints @ turn.T


def test_torso_normal_is_the_chests_side():
    """SMPL's frame: y up, the person's left at +x, facing +z."""
    assert torch.allclose(
        torso_normal(_upright_lsp14(0.0)), torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    )
    assert torch.allclose(
        torso_normal(_upright_lsp14(90.0)), torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    )


@pytest.mark.parametrize("turn", [0.0, 45.0, 89.0, 91.0, 135.0, 180.0])
def test_facing_error_is_the_turn_between_torsos(turn):
    truth = _upright_lsp14(30.0)
    error = facing_error(_upright_lsp14(30.0 + turn), truth)
    assert error.shape == (1,)
    assert math.isclose(math.degrees(error.item()), turn, abs_tol=1e-6)
    assert bool(error > math.pi / 2) == (turn > 90)


def test_facing_error_ignores_limbs_and_scale_but_not_a_mirror():
    truth = _upright_lsp14(0.0)
    moved = 2.0 * truth + torch.tensor([0.3, -1.0, 4.0], dtype=torch.float64)
    moved[0, 0] = torch.tensor([5.0, 5.0, 5.0])  # a limb joint elsewhere
    assert facing_error(moved, truth).item() < 1e-6
    # left and right exchanged: the same torso seen as facing the other way
    swapped = truth[:, [0, 1, 3, 2, 4, 5, 6, 7, 9, 8, 10, 11, 12, 13]]
    assert math.isclose(facing_error(swapped, truth).item(), math.pi, abs_tol=1e-6)


def test_facing_error_of_a_collapsed_torso_is_a_right_angle_and_errors_are_named():
    assert math.isclose(
        facing_error(torch.zeros(1, 14, 3), _upright_lsp14(0.0).float()).item(), math.pi / 2, abs_tol=1e-6
    )
    with pytest.raises(InputError, match=r"same shape \(B, J, 3\)"):
        facing_error(torch.zeros(2, 14, 3), torch.zeros(2, 17, 3))
    with pytest.raises(InputError, match=r"torso must name 4 joints .*right hip.*in \[0, 3\)"):
        torso_normal(torch.zeros(1, 3, 3))


# ------------------------------------------------------------------------------- selections
def test_select_gt24_centres_on_the_root_and_flags_missing_joints():
    joints = torch.zeros(2, 24, 4)
    joints[..., :3] = torch.randn(2, 24, 3, generator=torch.Generator().manual_seed(0)) + 5.0
    joints[..., 3] = 1.0
    joints[1, 5, 3] = 0.0  # a left ankle without confidence
    selected, valid = select_gt24(H36M14, joints)
    assert valid.tolist() == [True, False]
    expected = joints[0, list(J24_TO_J14), :3] - joints[0, 14, :3]
    assert torch.allclose(selected[0], expected)
    lsp, _ = select_gt24(LSP14, joints)
    hips = joints[0, [2, 3], :3].mean(0)
    assert torch.allclose(lsp[0], joints[0, list(J24_TO_J14), :3] - hips)
    with pytest.raises(InputError, match=r"\(B, 24, 4\) x, y, z, confidence"):
        select_gt24(LSP14, joints[..., :3])
    with pytest.raises(InputError, match="selects from 17 joints"):
        select_predicted(H36M14, torch.zeros(2, 49, 3))


# ------------------------------------------------------------------------------------- PCK
def test_pck_by_hand():
    pred = torch.tensor([[[0.0, 0], [10, 0], [0, 30]]])
    gt = torch.tensor([[[3.0, 4, 1], [10, 0, 0], [0, 0, 1]]])  # distances 5, (hidden), 30
    correct, visible = pck(pred, gt, 6.0)
    assert visible.tolist() == [[True, False, True]]
    assert correct.tolist() == [[True, False, False]]
    correct, _ = pck(pred, gt, torch.tensor([31.0]))
    assert correct.tolist() == [[True, False, True]]
    correct, _ = pck(pred, gt, 5.0)  # strictly below the threshold
    assert correct.tolist() == [[False, False, False]]
    with pytest.raises(InputError, match=r"threshold must be a float or \(B,\) pixels"):
        pck(pred, gt, torch.ones(3))


# ------------------------------------------------------------------------------ H36M names
def test_h36m_actions_from_image_names():
    assert h36m_action("S1_Directions_1.54138969_000001.jpg") == "Directions"
    assert h36m_action("images/S9_SittingDown.54138969_002061.jpg") == "SittingDown"
    assert h36m_action("S11_TakingPhoto_1.58860488_000101.jpg") == "Photo"
    assert h36m_action("S8_WalkingDog 1.55011271_000026.jpg") == "WalkDog"
    assert h36m_action("synthetic/0000001.png") is None
    assert h36m_action("S1_Dancing.54138969_000001.jpg") is None  # not a Human3.6M action


# ------------------------------------------------------------------- Human3.6M regressor files
def test_standin_writes_a_standin_h36m_regressor(standin_dir, standin_files):
    path = find_h36m_regressor(standin_files)
    assert path == standin_dir / STANDIN_H36M_REGRESSOR_NAME
    regressor = load_h36m_regressor(path, standin_files.smpl.num_vertices)
    assert regressor.is_standin and "STAND-IN" in regressor.description
    assert regressor.weights.shape == (17, 6890) and regressor.weights.dtype == np.float64
    assert (regressor.weights >= 0).all() and np.allclose(regressor.weights.sum(1), 1.0)
    assert STANDIN_H36M_REGRESSOR_NAME in (standin_dir / "STANDIN.md").read_text()


def test_standin_h36m_joints_are_the_bodys_joints_at_rest(standin_files):
    from spinfits.fitting.body.body_model import SpinBodyModel

    regressor = load_h36m_regressor(find_h36m_regressor(standin_files), 6890)
    body = SpinBodyModel(standin_files)(
        torch.zeros(2, 72),
        torch.randn(2, 10, generator=torch.Generator().manual_seed(0)),
        return_vertices=True,
    )
    h36m = torch.einsum("jv,bvc->bjc", torch.as_tensor(regressor.weights, dtype=torch.float32), body.vertices)
    gt24 = body.joints[:, 25:][:, list(H36M_TO_GT24)]
    assert (h36m - gt24).norm(dim=-1).max() < 1e-4  # metres


def test_h36m_regressor_file_errors(tmp_path, standin_files):
    with pytest.raises(InputError, match=r"does not exist; expected SPIN's data/J_regressor_h36m.npy"):
        load_h36m_regressor(tmp_path / "J_regressor_h36m.npy", 6890)
    np.save(tmp_path / "wrong.npy", np.zeros((24, 6890)))
    with pytest.raises(InputError, match=r"shape \(24, 6890\), expected \(17, 6890\)"):
        load_h36m_regressor(tmp_path / "wrong.npy", 6890)
    (tmp_path / "text.npy").write_text("not an array")
    with pytest.raises(InputError, match="is not a .npy array"):
        load_h36m_regressor(tmp_path / "text.npy", 6890)
    with pytest.raises(InputError, match="regresses from 10 vertices, the body model has 6890"):
        np.save(tmp_path / "small.npy", np.full((17, 10), 0.1))
        Evaluator(standin_files, load_h36m_regressor(tmp_path / "small.npy", 10))


# ------------------------------------------------------------ the four real Human3.6M frames
@pytest.fixture(scope="module")
def h36m_evaluator(standin_files):
    regressor = load_h36m_regressor(find_h36m_regressor(standin_files), 6890)
    return Evaluator(standin_files, regressor)


def test_h36m_frames_standin_smpl_against_real_S_is_finite_but_not_zero(shared_data, h36m_evaluator):
    """The dataset's own ground-truth SMPL, through the STAND-IN body, against its real S: a
    finite error, far from 0, because the stand-in is not SMPL (its joints are elsewhere)."""
    targets = load_eval_targets(shared_data / H36M_SAMPLE, "S")
    assert targets.source_3d == "S" and len(targets) == 4
    metrics = h36m_evaluator.score_fits(targets.pose, targets.betas, np.zeros((4, 3), np.float32), targets)
    for name in ("lsp14", "h36m14", "h36m17"):
        assert np.isfinite(metrics.mpjpe[name]).all() and np.isfinite(metrics.pa_mpjpe[name]).all()
        assert (metrics.mpjpe[name] > 0.02).all()  # metres: > 20 mm
        assert (metrics.pa_mpjpe[name] <= metrics.mpjpe[name] + 1e-9).all()
    # the camera (none stored: zeros) is estimated from the 2D ground truth for PCK
    assert metrics.pck_visible.tolist() == [14] * 4
    assert metrics.pck_correct.sum() > 28


def test_h36m_frames_standin_smpl_against_itself_is_zero(shared_data, h36m_evaluator):
    """Ground-truth SMPL against the same SMPL through the same (stand-in) body: 0 mm."""
    targets = load_eval_targets(shared_data / H36M_SAMPLE, "smpl")
    metrics = h36m_evaluator.score_fits(targets.pose, targets.betas, np.zeros((4, 3), np.float32), targets)
    summary = summary_of(metrics, targets, h36m_evaluator)
    for figures in summary.protocols:
        assert figures.rows == 4 and figures.mpjpe_mm < 1e-6 and figures.pa_mpjpe_mm < 1e-6


def test_h36m_frames_per_action_breakdown(shared_data, h36m_evaluator):
    targets = load_eval_targets(shared_data / H36M_SAMPLE)
    assert targets.source_3d == "S"
    pose = targets.pose.copy()
    pose[2, 3:] += 0.3  # the Greeting frame's body pose is off
    metrics = h36m_evaluator.score_fits(
        pose, targets.betas, np.zeros((4, 3), np.float32), targets, batch_size=3
    )
    summary = summary_of(metrics, targets, h36m_evaluator)
    assert list(summary.per_action) == ["Directions", "Greeting", "SittingDown", "WalkDog"]
    for row, action in enumerate(["Directions", "SittingDown", "Greeting", "WalkDog"]):
        figures = {f.protocol: f for f in summary.per_action[action]}
        assert figures["h36m14"].rows == 1
        assert math.isclose(figures["h36m14"].mpjpe_mm, 1000 * metrics.mpjpe["h36m14"][row])
    overall = {f.protocol: f for f in summary.protocols}["h36m14"]
    assert math.isclose(overall.mpjpe_mm, 1000 * metrics.mpjpe["h36m14"].mean())
    as_json = summary.as_dict()
    assert set(as_json["per_action"]["Greeting"]) == {"lsp14", "h36m14", "h36m17"}


def test_batches_do_not_change_the_figures(shared_data, h36m_evaluator):
    targets = load_eval_targets(shared_data / H36M_SAMPLE)
    cam_t = np.zeros((4, 3), np.float32)
    whole = h36m_evaluator.score_fits(targets.pose, targets.betas, cam_t, targets, batch_size=4)
    single = h36m_evaluator.score_fits(targets.pose, targets.betas, cam_t, targets, batch_size=1)
    for name in whole.mpjpe:
        assert np.allclose(whole.mpjpe[name], single.mpjpe[name], atol=1e-9)
        assert np.allclose(whole.pa_mpjpe[name], single.pa_mpjpe[name], atol=1e-9)
    assert np.array_equal(whole.pck_correct, single.pck_correct)


def test_ground_truth_choice_errors(tmp_path, shared_data):
    data = dict(np.load(shared_data / H36M_SAMPLE))
    only_2d = {k: v for k, v in data.items() if k not in ("S", "pose", "shape")}
    np.savez(tmp_path / "only_2d.npz", **only_2d)
    targets = load_eval_targets(tmp_path / "only_2d.npz")
    assert targets.source_3d is None and "2D PCK only" in targets.describe_3d
    with pytest.raises(InputError, match="has no S .* use ground truth 'smpl' .* or 'auto'"):
        load_eval_targets(tmp_path / "only_2d.npz", "S")
    with pytest.raises(InputError, match="has no ground-truth SMPL .* use ground truth 'S'"):
        load_eval_targets(tmp_path / "only_2d.npz", "smpl")
    openpose_only = {k: v for k, v in only_2d.items() if k != "part"}
    openpose_only["openpose"] = np.ones((4, 25, 3))
    np.savez(tmp_path / "openpose_only.npz", **openpose_only)
    with pytest.raises(InputError, match="no ground truth to evaluate against"):
        load_eval_targets(tmp_path / "openpose_only.npz")
