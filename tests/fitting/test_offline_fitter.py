"""Fits from keypoints alone (OfflineFitter): mean start, camera from keypoints, hypotheses,
staged SMPLify, swap check, outlier rejection."""

import numpy as np
import pytest
import torch

from spinfits.fitting.body.body_joints import body_joints
from spinfits.fitting.data.dataset import load_spin_npz
from spinfits.fitting.data.mean_params import spin_mean_params
from spinfits.fitting.offline.fitter import OfflineFitter
from spinfits.fitting.offline.hypotheses import mean_initialisation
from spinfits.fitting.smplify.camera import perspective_projection
from spinfits.fitting.synthetic.people import SyntheticConfig, write_synthetic_dataset


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
    projected = perspective_projection(
        body_joints(fitter.smplify.joints_model, pose, betas), cam_t, 5000.0, torch.full((64, 2), 112.0)
    )
    confident = keypoints[..., 2] > 0
    centroid_error = ((projected - keypoints[..., :2]) * confident[..., None]).sum(1) / confident.sum(
        1, keepdim=True
    )
    assert centroid_error.norm(dim=-1).median() < 15  # px: the body starts where the person is
    np.testing.assert_allclose(cam_t[:, 2].median(), np.median(raw["gt_cam_t"][:, 2]), rtol=0.3)


def test_offline_fits_are_good_and_finite(standin_files, synthetic):
    dataset, _ = synthetic
    result = OfflineFitter(standin_files).fit(dataset.keypoints[:24])
    assert result.fitted.all() and torch.isfinite(result.loss).all()
    assert torch.isfinite(result.pose).all()
    assert result.loss.median() < 30  # SPIN's fit loss; mean-pose start is ~1000s


# ---------------------------------------------------------------- orientation hypotheses

from dataclasses import replace  # noqa: E402

from spinfits.errors import InputError  # noqa: E402
from spinfits.fitting.body.joints import (  # noqa: E402
    NUM_OPENPOSE_JOINTS,
    SPIN_JOINTS_FLIP_PERM,
    spin_index,
)
from spinfits.fitting.body.rotations import axis_angle_to_matrix  # noqa: E402
from spinfits.fitting.offline.config import SMPLIFY_2016_STAGES, OfflineConfig  # noqa: E402
from spinfits.fitting.offline.hypotheses import (  # noqa: E402
    BACK,
    FRONT,
    SIDE_LEFT,
    shoulder_to_torso_ratio,
    turned_mean_orient,
)
from spinfits.fitting.offline.swap_check import openpose_swapped  # noqa: E402
from spinfits.fitting.smplify.config import PriorStage, SmplifyConfig  # noqa: E402
from spinfits.fitting.smplify.fit_loss import fit_loss_at  # noqa: E402
from spinfits.fitting.synthetic.people import make_synthetic_dataset  # noqa: E402


def facing(pose):
    """(B, 72) -> (B,) z of the body's forward axis in the camera frame (< 0: faces the camera)."""
    return axis_angle_to_matrix(torch.as_tensor(pose[:, :3]).double())[:, 2, 2]


def orientation_error(pose, truth):
    relative = axis_angle_to_matrix(pose[:, :3].double()).transpose(1, 2) @ axis_angle_to_matrix(
        truth[:, :3].double()
    )
    return torch.arccos(((relative.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1))


def test_turned_mean_orient_faces_the_camera_then_away():
    orients = turned_mean_orient(np.array([FRONT, BACK, SIDE_LEFT]))
    mean_pose, _ = spin_mean_params()
    np.testing.assert_allclose(orients[0], mean_pose[:3], atol=1e-12)
    forward = facing(np.pad(orients, ((0, 0), (0, 69))))
    assert forward[0] < -0.9 and forward[1] > 0.9 and abs(forward[2]) < 0.1
    # a turn about the body's own vertical axis keeps the body upright (head up = -y in camera)
    up = axis_angle_to_matrix(torch.as_tensor(orients))[:, :, 1]
    assert (up[:, 1] < -0.9).all()


@pytest.fixture(scope="module")
def people(standin_files):
    """Noise-free crop keypoints of people facing every way (half of them away or side-on)."""
    data = make_synthetic_dataset(
        standin_files,
        SyntheticConfig(
            rows=12, seed=5, truncated_fraction=0.0, facing_away_fraction=0.35, side_fraction=0.4
        ),
    )
    return {key: torch.as_tensor(data[key]) for key in ("pose", "shape", "gt_keypoints")}


@pytest.fixture(scope="module")
def fitter(standin_files):
    return OfflineFitter(standin_files, dtype=torch.float64)


def test_shoulder_ratio_is_wide_facing_and_narrow_side_on(standin_files):
    """On the anatomy sampler's poses (mocap_fraction 0): their spine hardly twists, so the
    pelvis's yaw is the shoulders' (a real pose may turn its shoulders 40 deg from its hips)."""
    config = SyntheticConfig(
        rows=12,
        seed=5,
        truncated_fraction=0.0,
        facing_away_fraction=0.35,
        side_fraction=0.4,
        mocap_fraction=0.0,
    )
    data = make_synthetic_dataset(standin_files, config)
    people = {key: torch.as_tensor(data[key]) for key in ("pose", "gt_keypoints")}
    ratio = shoulder_to_torso_ratio(people["gt_keypoints"].double())
    yaw_like = facing(people["pose"]).abs()  # 1 facing the camera or away, 0 side-on
    assert (ratio[yaw_like > 0.9] > 0.5).all()
    assert (ratio[yaw_like < 0.4] < 0.45).all() and (yaw_like < 0.4).sum() >= 2
    missing = people["gt_keypoints"][:1].clone()
    missing[:, :, 2] = 0
    assert torch.isnan(shoulder_to_torso_ratio(missing)).all()


def test_every_row_gets_front_and_back_and_narrow_rows_get_side_views(fitter, people):
    keypoints = people["gt_keypoints"].double()
    owner, slots, yaw = fitter._hypotheses(keypoints)
    narrow = ~(shoulder_to_torso_ratio(keypoints) >= fitter.config.side_ratio)
    counts = torch.bincount(owner, minlength=12)
    assert torch.equal(counts, 2 + 2 * narrow.long())
    assert torch.equal(owner, torch.sort(owner).values)  # grouped by row
    assert set(yaw[owner == 0].tolist()) >= {FRONT, BACK}
    assert 0 < int(narrow.sum()) < 12  # the fixture exercises both cases


def test_hypotheses_recover_people_facing_away(fitter, people):
    result = fitter.fit(people["gt_keypoints"])
    assert result.fitted.all()
    error = orientation_error(result.pose, people["pose"])
    assert (error < torch.pi / 2).all(), error
    assert (facing(people["pose"]) > 0.5).sum() >= 3  # several really face away
    single = OfflineFitter(
        fitter.smplify.files,
        replace(fitter.config, back_hypothesis=False, side_hypotheses=False),
        dtype=torch.float64,
    )
    # the extra hypotheses only ever lower the objective the selection minimises
    alone = single.fit(people["gt_keypoints"])
    assert (result.loss <= alone.loss * 1.05 + 1e-3).all()


def test_selection_is_per_row_and_independent_of_batch_mates(fitter, people):
    keypoints = people["gt_keypoints"]
    batch = fitter.fit(keypoints[:6])
    for index in (1, 4):
        alone = fitter.fit(keypoints[index : index + 1])
        assert torch.allclose(alone.pose[0], batch.pose[index], atol=1e-6)
        assert torch.allclose(alone.loss[0], batch.loss[index], rtol=1e-6)


def test_select_takes_each_rows_lowest_criterion(standin_files):
    from spinfits.fitting.smplify.config import FitResult

    fitter = OfflineFitter(standin_files, OfflineConfig(select_by="fit_loss"))
    owner = torch.tensor([0, 0, 1, 1, 1, 1, 2, 2])
    slots = torch.tensor([0, 1, 0, 1, 2, 3, 0, 1])
    loss = torch.tensor([5.0, 3.0, 2.0, float("nan"), 1.0, 4.0, float("inf"), float("inf")])
    fake = FitResult(
        pose=torch.zeros(8, 72),
        betas=torch.zeros(8, 10),
        cam_t=torch.zeros(8, 3),
        loss=loss,
        iterations=torch.zeros(8, dtype=torch.long),
        converged=torch.zeros(8, dtype=torch.bool),
        fitted=torch.ones(8, dtype=torch.bool),
    )
    assert fitter._select(fake, owner, slots, 3).tolist() == [1, 4, 6]


def test_progress_counts_the_callers_rows(fitter, people):
    seen = []
    fitter.fit(people["gt_keypoints"][:3], progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (3, 3)


# ---------------------------------------------------------------- staged schedule


def test_staged_loss_is_the_dictionary_loss_at_spins_sigma(standin_files, people):
    staged = OfflineConfig(stages=SMPLIFY_2016_STAGES)  # the default is SPIN's single stage
    fitter = OfflineFitter(standin_files, staged, dtype=torch.float64)
    keypoints = people["gt_keypoints"][:4].double()
    result = fitter.fit(keypoints)
    again = fit_loss_at(fitter.smplify.joints_model, result.pose, result.betas, result.cam_t, keypoints)
    assert torch.allclose(result.loss, again)
    schedule = fitter.smplify.config.body_schedule()
    assert len(schedule) == 4 and schedule[0][0].pose_prior_weight > 50
    final = schedule[-1][0]
    assert (final.pose_prior_weight, final.shape_prior_weight) == (4.78, 5.0)
    assert final.angle_prior_weight == pytest.approx(15.2)


def test_engine_default_is_spins_single_stage_and_one_stage_schedule_matches_it(standin_files, people):
    from spinfits.fitting.smplify.fitter import SMPLify

    config = SmplifyConfig(camera_iterations=5, body_iterations=8)
    assert config.body_schedule() == ((config.weights, 8),)
    staged = replace(config, body_stages=(PriorStage(4.78, 5.0, 8, 15.2),))
    pose, betas, cam_t = mean_initialisation(
        SMPLify(standin_files, config), people["gt_keypoints"][:3].float()
    )
    args = (pose, betas, cam_t, people["gt_keypoints"][:3].float())
    plain = SMPLify(standin_files, config).fit(*args)
    same = SMPLify(standin_files, staged).fit(*args)
    assert torch.allclose(plain.pose, same.pose, atol=1e-5)
    two = SMPLify(
        standin_files, replace(config, body_stages=(PriorStage(400.0, 100.0, 3), PriorStage(4.78, 5.0, 8)))
    ).fit(*args)
    assert not torch.allclose(plain.pose, two.pose, atol=1e-3)  # the schedule is really used
    adam = SMPLify(
        standin_files,
        SmplifyConfig.spin_reference(
            body_evaluation="joints_only",
            camera_iterations=2,
            body_stages=(PriorStage(400.0, 100.0, 2), PriorStage(4.78, 5.0, 3)),
        ),
    ).fit(*args)
    assert (adam.iterations == 7).all() and torch.isfinite(adam.loss).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(pose_prior_weight=0.0, shape_prior_weight=1.0, iterations=5), "pose_prior_weight must"),
        (dict(pose_prior_weight=1.0, shape_prior_weight=1.0, iterations=0), "iterations must be >= 1"),
        (
            dict(pose_prior_weight=1.0, shape_prior_weight=1.0, iterations=2, angle_prior_weight=-1.0),
            "angle_prior_weight must be > 0 or None",
        ),
    ],
)
def test_prior_stage_rejects_bad_weights(kwargs, match):
    with pytest.raises(InputError, match=match):
        PriorStage(**kwargs)


def test_configs_reject_bad_values():
    with pytest.raises(InputError, match="body_stages must be a tuple of PriorStage"):
        SmplifyConfig(body_stages=[PriorStage(1.0, 1.0, 1)])
    with pytest.raises(InputError, match="confident_torso is implemented by the LM solver"):
        SmplifyConfig.spin_reference(confident_torso=True)
    with pytest.raises(InputError, match="select_by must be 'objective' or 'fit_loss'"):
        OfflineConfig(select_by="loss")
    with pytest.raises(InputError, match="outlier_factor must be > 0 or None"):
        OfflineConfig(outlier_factor=0.0)


def test_fit_checks_keypoints_with_the_engines_messages(fitter):
    with pytest.raises(InputError, match=r"keypoints must have shape \(N, 49, 3\).*keypoints\[None\]"):
        fitter.fit(torch.zeros(49, 3))


# ---------------------------------------------------------------- robustness


def two_d_error(fitter, result, keypoints, joints):
    projected = perspective_projection(
        body_joints(fitter.smplify.joints_model, result.pose, result.betas),
        result.cam_t,
        5000.0,
        torch.full((result.pose.shape[0], 2), 112.0, dtype=result.pose.dtype),
    )
    return (projected - keypoints[..., :2])[:, joints].norm(dim=-1).mean(1)


def test_a_wildly_wrong_detection_does_not_drag_the_fit(fitter, people):
    rows = [0, 2, 3]
    truth = people["gt_keypoints"][rows].double()
    keypoints = truth.clone()
    wrist = spin_index("OP RWrist")
    keypoints[:, wrist, :2] += torch.tensor([60.0, -45.0], dtype=torch.float64)
    keypoints[:, wrist, 2] = 1.0
    robust = fitter.fit(keypoints)
    plain = OfflineFitter(
        fitter.smplify.files, replace(fitter.config, outlier_factor=None), dtype=torch.float64
    ).fit(keypoints)
    others = [j for j in range(25, 49) if truth[0, j, 2] > 0 and j not in (27, 28)]
    robust_error = two_d_error(fitter, robust, truth, others)
    plain_error = two_d_error(fitter, plain, truth, others)
    assert (robust_error <= plain_error + 1e-6).all() and (robust_error < 3.0).all()
    # the reported loss is against the keypoints as given (outlier included)
    again = fit_loss_at(fitter.smplify.joints_model, robust.pose, robust.betas, robust.cam_t, keypoints)
    assert torch.allclose(robust.loss, again)


def test_openpose_swaps_are_detected_against_the_ground_truth(people):
    keypoints = people["gt_keypoints"].clone()
    flip = list(SPIN_JOINTS_FLIP_PERM[:NUM_OPENPOSE_JOINTS])
    swapped = keypoints.clone()
    swapped[:, :NUM_OPENPOSE_JOINTS] = keypoints[:, flip]
    assert not openpose_swapped(keypoints).any()
    ratio = shoulder_to_torso_ratio(keypoints)
    wide = ratio > 0.5  # side-on people look the same swapped or not: nothing to detect
    assert openpose_swapped(swapped)[wide].all()
    only_openpose = swapped.clone()
    only_openpose[:, NUM_OPENPOSE_JOINTS:, 2] = 0
    assert not openpose_swapped(only_openpose).any()  # one source: no evidence


def test_swapped_openpose_is_fitted_as_unswapped_but_scored_as_given(fitter, people):
    rows = [i for i in range(12) if shoulder_to_torso_ratio(people["gt_keypoints"])[i] > 0.5][:3]
    keypoints = people["gt_keypoints"][rows].double()
    swapped = keypoints.clone()
    swapped[:, :NUM_OPENPOSE_JOINTS] = keypoints[:, list(SPIN_JOINTS_FLIP_PERM[:25])]
    checked = fitter.fit(swapped)
    unchecked = OfflineFitter(
        fitter.smplify.files, replace(fitter.config, swap_check=False), dtype=torch.float64
    ).fit(swapped)
    gt_joints = [j for j in range(25, 49) if j not in (27, 28)]
    assert (two_d_error(fitter, checked, keypoints, gt_joints) < 3.0).all()
    assert (
        two_d_error(fitter, checked, keypoints, gt_joints)
        < two_d_error(fitter, unchecked, keypoints, gt_joints)
    ).all()
    again = fit_loss_at(fitter.smplify.joints_model, checked.pose, checked.betas, checked.cam_t, swapped)
    assert torch.allclose(checked.loss, again)


def test_missing_and_truncated_people_fit_without_failures(standin_files, fitter):
    data = make_synthetic_dataset(
        standin_files,
        SyntheticConfig(rows=10, seed=9, truncated_fraction=0.5, missing_fraction=0.3, outlier_fraction=0.3),
    )
    keypoints = torch.as_tensor(data["gt_keypoints"]).double()
    generator = torch.Generator().manual_seed(3)
    keypoints[..., 2] *= (torch.rand(keypoints.shape[:2], generator=generator) > 0.3).double()
    assert data["truncated"].sum() >= 3
    result = fitter.fit(keypoints)
    from spinfits.fitting.body.joints import TORSO_LIMB_JOINTS

    enough = (keypoints[:, list(TORSO_LIMB_JOINTS), 2] > 0).sum(1) >= 6
    assert enough.all() and result.fitted.all() and torch.isfinite(result.loss).all()
    assert torch.isfinite(result.pose).all()
    assert result.loss.median() < 5.0  # SPIN's fit loss, noise-free keypoints


def test_confident_torso_camera_stage_leaves_missing_torso_joints_out(fitter, people):
    from spinfits.fitting.body.joints import GT_TORSO_JOINTS, OPENPOSE_TORSO_JOINTS
    from spinfits.fitting.smplify.stages import CameraStage

    keypoints = people["gt_keypoints"][:2].double().clone()
    keypoints[:, OPENPOSE_TORSO_JOINTS[0]] = 0.0  # OpenPose torso incomplete: SPIN uses GT's
    keypoints[:, OPENPOSE_TORSO_JOINTS[1]] = 0.0  # the left shoulder is missing in both
    keypoints[:, GT_TORSO_JOINTS[1]] = 0.0
    pose, betas, cam_t = mean_initialisation(fitter.smplify, keypoints)
    rows = torch.arange(2)
    args = (
        fitter.smplify.joints_model,
        pose,
        betas,
        cam_t,
        keypoints,
        torch.full((2, 2), 112.0, dtype=torch.float64),
        5000.0,
        fitter.smplify.config.weights,
    )
    spin = CameraStage(*args).residuals(CameraStage(*args).initial(rows), rows)[0]
    confident = CameraStage(*args, confident_torso=True)
    mine = confident.residuals(confident.initial(rows), rows)[0]
    assert (spin[:, 2:4].norm(dim=1) > 50).all()  # SPIN pulls the missing shoulder to (0, 0)
    assert (mine[:, 2:4] == 0).all() and (mine[:, [0, 1, 4, 5, 6, 7]].abs() > 0).all()
