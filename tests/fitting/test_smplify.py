"""SMPLify end to end: recovery, batch independence, SPIN reference vs fast path, bad inputs."""

import math

import pytest
import torch

from spinfits.errors import InputError
from spinfits.fitting.body.joints import SMPLIFY_IGNORED_JOINTS
from spinfits.fitting.smplify.config import SmplifyConfig
from spinfits.fitting.smplify.fit_loss import fit_loss, fit_loss_at
from spinfits.fitting.smplify.fitter import SMPLify
from spinfits.fitting.synthetic.people import SyntheticConfig, make_synthetic_dataset


@pytest.fixture(scope="module")
def people(body_files):
    """Noise-free crop keypoints of synthetic people with known pose, shape and camera."""
    data = make_synthetic_dataset(body_files, SyntheticConfig(rows=12, seed=3, truncated_fraction=0.0))
    keypoints = torch.as_tensor(data["gt_keypoints"], dtype=torch.float32)
    return {
        "pose": torch.as_tensor(data["pose"], dtype=torch.float32),
        "betas": torch.as_tensor(data["shape"], dtype=torch.float32),
        "cam_t": torch.as_tensor(data["gt_cam_t"], dtype=torch.float32),
        "keypoints": keypoints,
    }


@pytest.fixture(scope="module")
def engine(body_files):
    return SMPLify(body_files, SmplifyConfig(batch_size=5))


def perturbed(people, scale=0.1, seed=1):
    generator = torch.Generator().manual_seed(seed)
    pose = people["pose"] + scale * torch.randn(people["pose"].shape, generator=generator)
    cam_t = people["cam_t"] * torch.tensor([1.0, 1.0, 1.1])
    return pose, torch.zeros_like(people["betas"]), cam_t


def test_recovers_ground_truth_from_noise_free_keypoints(engine, people):
    pose, betas, cam_t = perturbed(people)
    result = engine.fit(pose, betas, cam_t, people["keypoints"])
    model = engine.joints_model
    before = fit_loss_at(model, pose, betas, cam_t, people["keypoints"])
    assert result.fitted.all()
    assert (result.loss < before).all()
    projected = model(result.pose, result.betas) + result.cam_t[:, None]
    pixels = 5000 * projected[..., :2] / projected[..., 2:3] + 112
    used = [j for j in range(49) if j not in SMPLIFY_IGNORED_JOINTS]
    error = (pixels - people["keypoints"][..., :2]).norm(dim=-1)[:, used]
    assert error.median() < 2.0  # pixels, with priors pulling away from exact reprojection


def test_fit_alone_equals_fit_in_a_batch(body_files, people):
    """In float64 (float32 differs by rounding only: BLAS kernels vary with the batch size)."""
    engine = SMPLify(body_files, SmplifyConfig(batch_size=5), dtype=torch.float64)
    pose, betas, cam_t = perturbed(people)
    batch = engine.fit(pose, betas, cam_t, people["keypoints"])
    for index in (0, 7):
        alone = engine.fit(
            pose[index : index + 1],
            betas[index : index + 1],
            cam_t[index : index + 1],
            people["keypoints"][index : index + 1],
        )
        assert torch.allclose(alone.pose[0], batch.pose[index], atol=1e-8)
        assert torch.allclose(alone.loss[0], batch.loss[index], rtol=1e-8)
        assert alone.iterations[0] == batch.iterations[index]


def test_fast_path_reaches_spins_loss_or_lower(body_files, engine, people):
    pose, betas, cam_t = perturbed(people, scale=0.2)
    reference = SMPLify(body_files, SmplifyConfig.spin_reference(body_evaluation="joints_only"))
    spin = reference.fit(pose[:6], betas[:6], cam_t[:6], people["keypoints"][:6])
    fast = engine.fit(pose[:6], betas[:6], cam_t[:6], people["keypoints"][:6])
    assert fast.loss.mean() <= spin.loss.mean()
    assert (spin.iterations == 200).all() and not spin.converged.any()


def test_spin_reference_full_forward_equals_joints_only(body_files, people):
    pose, betas, cam_t = perturbed(people)
    config = SmplifyConfig.spin_reference(camera_iterations=5, body_iterations=5)
    full = SMPLify(body_files, config).fit(pose[:2], betas[:2], cam_t[:2], people["keypoints"][:2])
    fast = SMPLify(
        body_files,
        SmplifyConfig.spin_reference(camera_iterations=5, body_iterations=5, body_evaluation="joints_only"),
    ).fit(pose[:2], betas[:2], cam_t[:2], people["keypoints"][:2])
    assert torch.allclose(full.pose, fast.pose, atol=1e-4)
    assert torch.allclose(full.loss, fast.loss, rtol=1e-3)


def test_result_loss_is_the_dictionary_fit_loss(engine, people):
    pose, betas, cam_t = perturbed(people)
    result = engine.fit(pose, betas, cam_t, people["keypoints"])
    again = fit_loss_at(engine.joints_model, result.pose, result.betas, result.cam_t, people["keypoints"])
    assert torch.allclose(result.loss, again)
    # a stored fit is scored with SPIN's estimated camera: ground truth scores ~0
    truth, estimated = fit_loss(engine.joints_model, people["pose"], people["betas"], people["keypoints"])
    assert truth.max() < 1e-3
    assert torch.allclose(estimated, people["cam_t"], rtol=1e-3, atol=1e-3)


def test_progress_reports_every_sample(engine, people):
    pose, betas, cam_t = perturbed(people)
    seen = []
    engine.fit(pose, betas, cam_t, people["keypoints"], progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (12, 12)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_result_lives_on_the_requested_device(body_files, people):
    engine = SMPLify(
        body_files,
        SmplifyConfig(body_iterations=2, camera_iterations=2),
        device=torch.device("cpu"),
        dtype=torch.float64,
    )
    pose, betas, cam_t = perturbed(people)
    result = engine.fit(pose[:2], betas[:2], cam_t[:2], people["keypoints"][:2])
    for tensor in (result.pose, result.betas, result.cam_t, result.loss):
        assert tensor.device == torch.device("cpu")
    assert result.pose.dtype == torch.float64


# ---------------------------------------------------------------- bad inputs and numerics


def test_nan_keypoint_with_confidence_is_an_error(engine, people):
    pose, betas, cam_t = perturbed(people)
    keypoints = people["keypoints"].clone()
    keypoints[3, 30, 0] = math.nan
    with pytest.raises(InputError, match=r"NaN or infinite but have confidence > 0 \(rows 3\)"):
        engine.fit(pose, betas, cam_t, keypoints)


def test_nan_keypoint_without_confidence_is_ignored(engine, people):
    pose, betas, cam_t = perturbed(people)
    keypoints = people["keypoints"][:2].clone()
    keypoints[0, 30] = torch.tensor([math.nan, math.inf, 0.0])
    result = engine.fit(pose[:2], betas[:2], cam_t[:2], keypoints)
    assert torch.isfinite(result.loss).all() and torch.isfinite(result.pose).all()


@pytest.mark.parametrize("confidence,match", [(-1.0, "finite and >= 0"), (math.nan, "finite and >= 0")])
def test_bad_confidence_is_an_error(engine, people, confidence, match):
    pose, betas, cam_t = perturbed(people)
    keypoints = people["keypoints"].clone()
    keypoints[1, 2, 2] = confidence
    with pytest.raises(InputError, match=match):
        engine.fit(pose, betas, cam_t, keypoints)


@pytest.mark.parametrize("name", ["init_pose", "init_betas", "init_cam_t"])
def test_non_finite_initial_parameters_are_an_error(engine, people, name):
    args = dict(zip(["init_pose", "init_betas", "init_cam_t"], perturbed(people)))
    args[name] = args[name].clone()
    args[name][4, 0] = math.inf
    with pytest.raises(InputError, match=rf"{name} contains NaN or infinite values \(rows 4\)"):
        engine.fit(keypoints=people["keypoints"], **args)


def test_wrong_shapes_say_how_to_fix(engine, people):
    pose, betas, cam_t = perturbed(people)
    with pytest.raises(InputError, match=r"init_pose must have shape \(N, 72\).*pose\[None\]"):
        engine.fit(pose[0], betas, cam_t, people["keypoints"])
    with pytest.raises(InputError, match="keypoints has 3 rows but init_pose has 12"):
        engine.fit(pose, betas, cam_t, people["keypoints"][:3])
    with pytest.raises(InputError, match="must be a tensor or numpy array"):
        engine.fit(pose.tolist(), betas, cam_t, people["keypoints"])


def test_too_few_keypoints_and_camera_behind_are_flagged_not_fitted(engine, people):
    pose, betas, cam_t = perturbed(people)
    keypoints = people["keypoints"][:3].clone()
    keypoints[0, :, 2] = 0.0
    keypoints[0, 30:32, 2] = 1.0  # two keypoints only
    cam_t = cam_t[:3].clone()
    cam_t[1, 2] = -5.0
    result = engine.fit(pose[:3], betas[:3], cam_t, keypoints)
    assert result.fitted.tolist() == [False, False, True]
    assert math.isinf(result.loss[0]) and math.isinf(result.loss[1])
    assert torch.equal(result.pose[0], pose[0]) and not result.converged[:2].any()
    assert torch.isfinite(result.loss[2])


def test_wild_initialisation_never_returns_nan(body_files, engine, people):
    pose, betas, cam_t = perturbed(people)
    pose = pose[:4] * 0 + torch.tensor([50.0, -80.0, 30.0]).repeat(24)
    betas = betas[:4] + 40.0
    cam_t = cam_t[:4].clone()
    cam_t[:, 2] = 1e-3  # the camera inside the body
    for config in (
        SmplifyConfig(),
        SmplifyConfig.spin_reference(body_evaluation="joints_only", camera_iterations=20, body_iterations=20),
    ):
        result = SMPLify(body_files, config).fit(pose, betas, cam_t, people["keypoints"][:4])
        for tensor in (result.pose, result.betas, result.cam_t):
            assert torch.isfinite(tensor).all()
        assert not torch.isnan(result.loss).any()


def test_config_rejects_lm_with_full_forward():
    with pytest.raises(InputError, match="LM solver needs body_evaluation='joints_only'"):
        SmplifyConfig(solver="lm", body_evaluation="full")


def test_fits_leave_the_engine_with_every_angle_below_two_pi(engine, people):
    """A start whose global orientation has wound past 4 pi (the same rotation) fits as well and
    comes out wrapped below 2 pi: the store refuses angles beyond 4 pi as implausible."""
    pose, betas, cam_t = perturbed(people)
    wound = pose.clone()
    axis = wound[:, :3] / wound[:, :3].norm(dim=-1, keepdim=True)
    wound[:, :3] += 4 * math.pi * axis
    result = engine.fit(wound, betas, cam_t, people["keypoints"])
    assert (result.pose.reshape(-1, 24, 3).norm(dim=-1) < 2 * math.pi).all()
    before = fit_loss_at(engine.joints_model, pose, betas, cam_t, people["keypoints"])
    assert result.fitted.all() and (result.loss < before).all()


def test_wrap_axis_angle_keeps_the_rotation():
    from spinfits.fitting.body.rotations import axis_angle_to_matrix, wrap_axis_angle

    axis = torch.nn.functional.normalize(torch.tensor([[0.3, -0.8, 0.5]] * 4, dtype=torch.float64), dim=-1)
    angles = torch.tensor([[0.7], [2 * math.pi + 0.4], [4.5 * math.pi], [3.0]], dtype=torch.float64)
    w = axis * angles
    wrapped = wrap_axis_angle(w)
    assert torch.allclose(axis_angle_to_matrix(wrapped), axis_angle_to_matrix(w), atol=1e-12)
    assert (wrapped.norm(dim=-1) < 2 * math.pi).all()
    assert torch.equal(wrapped[[0, 3]], w[[0, 3]])  # below 2 pi: untouched
