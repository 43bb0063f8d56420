"""One SPIN training step with the store's fits in the loop: un-augmented scoring, proposals,
supervision, and gradients that actually train the regressor."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from spinfits.errors import InputError
from spinfits.fitting.body.joints_only import JointsOnlyBody
from spinfits.fitting.body.rotations import axis_angle_to_matrix
from spinfits.fitting.offline.swap_check import swap_openpose_back
from spinfits.fitting.smplify.config import SmplifyConfig
from spinfits.fitting.smplify.fit_loss import fit_loss
from spinfits.fitting.smplify.priors import GmmPosePrior
from spinfits.store import Fits, Source
from spinfits.training.augmentation import Augmentation, AugmentationConfig, augment_pose
from spinfits.training.data import TrainingData
from spinfits.training.in_loop_rule import not_swapped, pose_prior_not_worse
from spinfits.training.spin_step import SpinTrainingStep, unaugmented_fits
from spinfits.training.train_config import TrainConfig, TrainDataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROWS = np.arange(8)  # even rows have ground-truth SMPL
NO_KEYPOINTS = 3  # the training set's row without keypoints (checked below)


_aug = Augmentation.geometric


#: A mixed augmentation of 8 rows: flips, rotations, scales.
MIXED = dict(
    flip=[False, True, False, True, True, False, True, False],
    rotation=[0.0, 0.0, 30.0, -45.0, 20.0, -60.0, 10.0, 0.0],
    scale=[1.0, 1.2, 0.8, 1.0, 0.9, 1.1, 1.25, 0.75],
)


def _config(**overrides) -> TrainConfig:
    base = dict(
        datasets=(TrainDataset(Path("unused.npz"), Path("unused")),),
        store="unused",
        model_dir=Path("unused"),
        backbone="small",
        input_res=64,
        batch_size=len(ROWS),
        learning_rate=1e-3,
        smplify=SmplifyConfig(camera_iterations=5, body_iterations=10),
    )
    base.update(overrides)
    return TrainConfig(**base)


def _step(standin_files, small_regressor, **overrides) -> SpinTrainingStep:
    config = _config(**overrides)
    model = small_regressor()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    return SpinTrainingStep(model, optimizer, standin_files, config)


@pytest.fixture(scope="module")
def data(training_set):
    return TrainingData.load(training_set.path, training_set.images, input_res=64, use_gt_smpl=False)


@pytest.fixture(scope="module")
def data_gt(training_set):
    return TrainingData.load(training_set.path, training_set.images, input_res=64, use_gt_smpl=True)


@pytest.fixture(scope="module")
def scorer(standin_files):
    return JointsOnlyBody(standin_files)


def _stored(losses, pose=None, betas=None) -> Fits:
    """Stored fits with these losses; rows with a finite loss are offline fits (as in a store),
    so an exactly equal new loss loses the store's tie-break to their (zero) content."""
    fits = Fits.empty(len(losses))
    fits.loss[:] = losses
    fits.source[np.isfinite(fits.loss)] = Source.OFFLINE
    if pose is not None:
        fits.pose[:] = pose
    if betas is not None:
        fits.betas[:] = betas
    return fits


# ------------------------------------------------------------------ fits under augmentation


def test_the_same_fit_under_different_augmentations_gets_the_same_loss(training_set, scorer):
    """The issue's requirement: a fit found under any augmentation is scored in the store's
    frame, so the same body proposed under flips, rotations and scales gets the same loss."""
    rows = np.array([0, 1, 2, 4, 5, 6])
    pose = torch.as_tensor(training_set.arrays["pose"][rows], dtype=torch.float32)
    betas = torch.as_tensor(training_set.arrays["shape"][rows], dtype=torch.float32)
    keypoints = torch.as_tensor(training_set.dataset.keypoints[rows])
    reference, reference_cam = fit_loss(scorer, pose, betas, keypoints)
    assert torch.isfinite(reference).all()
    n = len(rows)
    augmentations = [
        Augmentation.identity(n),
        _aug([True] * n, [0.0] * n),
        _aug([False] * n, [30.0, -30.0, 60.0, -60.0, 15.0, 45.0]),
        _aug([True] * n, [-45.0, 20.0, 60.0, -10.0, 5.0, -60.0]),
        _aug([False] * n, [0.0] * n, scale=[0.75, 1.25, 0.8, 1.1, 1.2, 0.9]),
        _aug(
            [True, False, True, False, True, False],
            [10.0, -25.0, 0.0, 50.0, -5.0, 0.0],
            scale=[1.2, 0.8, 1.0, 0.9, 1.25, 0.75],
        ),
        Augmentation.sample(AugmentationConfig(), n, torch.Generator().manual_seed(4)),
    ]
    for aug in augmentations:
        proposed = augment_pose(pose, aug)  # what SMPLify would return in the augmented crop
        if aug.flip.any() or (aug.rotation != 0).any():
            assert (proposed - pose).abs().max() > 0.1
        fits = unaugmented_fits(scorer, proposed, betas, keypoints, aug)
        np.testing.assert_allclose(fits.loss.numpy(), reference.numpy(), rtol=1e-4)
        np.testing.assert_allclose(fits.cam_t.numpy(), reference_cam.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(
            axis_angle_to_matrix(fits.pose.reshape(-1, 24, 3)).numpy(),
            axis_angle_to_matrix(pose.reshape(-1, 24, 3)).numpy(),
            atol=1e-5,
        )
    # the same augmented pose read with the wrong augmentation is another body: another loss
    aug = augmentations[3]
    wrong = unaugmented_fits(scorer, augment_pose(pose, aug), betas, keypoints, Augmentation.identity(n))
    assert (wrong.loss > 2 * reference).all()


def test_unaugmented_fits_are_not_fits_where_not_finite_or_without_keypoints(training_set, scorer):
    rows = np.array([0, 1, NO_KEYPOINTS, 4])
    pose = torch.as_tensor(training_set.arrays["pose"][rows], dtype=torch.float32)
    betas = torch.as_tensor(training_set.arrays["shape"][rows], dtype=torch.float32)
    pose[1, 10] = float("nan")
    betas[3, 0] = float("inf")
    keypoints = torch.as_tensor(training_set.dataset.keypoints[rows])
    fits = unaugmented_fits(scorer, pose, betas, keypoints, Augmentation.identity(4))
    assert torch.isfinite(fits.loss[0])
    assert torch.isinf(fits.loss[1:]).all() and (fits.loss[1:] > 0).all()


# ------------------------------------------------------------------ one step


def _fresh_step_outcome(standin_files, small_regressor, batch, stored, **overrides):
    """One step from the same initial weights and dropout draws every time it is called."""
    step = _step(standin_files, small_regressor, **overrides)
    torch.manual_seed(123)
    return step(batch, stored, 17)


def test_step_proposes_only_strictly_better_finite_fits(data, standin_files, small_regressor):
    """SPIN's rule (``in_loop_rule="fit_loss"``): the fit loss alone decides."""
    batch = data.batch(ROWS, _aug(**MIXED))
    n = len(ROWS)
    spin = dict(in_loop_rule="fit_loss")
    # First: nothing stored, so every new fit with a finite loss is proposed.
    first = _fresh_step_outcome(standin_files, small_regressor, batch, _stored(np.full(n, np.inf)), **spin)
    new_loss = first.best_loss  # (n,) the new fits' losses (+inf: not a fit)
    assert np.isinf(new_loss[NO_KEYPOINTS])
    fitted = np.flatnonzero(np.isfinite(new_loss))
    assert set(fitted) == set(range(n)) - {NO_KEYPOINTS}
    np.testing.assert_array_equal(first.proposals["unused"].rows, ROWS[fitted])
    # Again from the same state (the same new fits): stored losses equal to / just above /
    # below the new ones.
    stored_loss = new_loss.astype(np.float32).copy()  # equal: not strictly better
    stored_loss[[1, 5]] = np.nextafter(new_loss[[1, 5]].astype(np.float32), np.float32(np.inf))
    stored_loss[[2, 6]] = new_loss[[2, 6]] * 0.5  # stored is better
    stored_loss[4] = np.nan  # a broken stored fit counts as no fit: the new one replaces it
    stored_loss[NO_KEYPOINTS] = np.inf
    second = _fresh_step_outcome(standin_files, small_regressor, batch, _stored(stored_loss), **spin)
    np.testing.assert_array_equal(second.proposals["unused"].rows, [1, 4, 5])
    np.testing.assert_array_equal(second.proposals["unused"].loss, new_loss[[1, 4, 5]])
    assert second.best_loss[4] == new_loss[4] and second.valid[4]
    np.testing.assert_array_equal(
        second.best_loss[[0, 1, 2, 5, 6, 7]], np.minimum(new_loss, stored_loss)[[0, 1, 2, 5, 6, 7]]
    )
    assert np.isfinite(list(second.losses.values())).all()
    assert not second.valid[NO_KEYPOINTS]


def test_step_proposals_are_scored_in_the_store_frame(data, standin_files, small_regressor, scorer):
    batch = data.batch(ROWS, _aug(**MIXED))
    step = _step(standin_files, small_regressor)
    before = {k: v.clone() for k, v in step.model.state_dict().items()}
    stored = _stored(np.full(len(ROWS), np.inf))
    torch.manual_seed(0)
    outcome = step(batch, stored, 42)
    proposals = outcome.proposals["unused"]
    assert len(proposals) == len(ROWS) - 1 and NO_KEYPOINTS not in proposals.rows
    assert (proposals.source == Source.IN_LOOP).all() and (proposals.step == 42).all()
    assert np.isfinite(proposals.loss).all()
    # the proposal's loss is the store's fit loss of its (un-augmented) pose and betas
    keypoints = torch.as_tensor(data.dataset.keypoints[proposals.rows])
    loss, cam_t = fit_loss(
        scorer, torch.as_tensor(proposals.pose), torch.as_tensor(proposals.betas), keypoints
    )
    np.testing.assert_allclose(proposals.loss, loss.numpy(), rtol=1e-5)
    np.testing.assert_allclose(proposals.cam_t, cam_t.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outcome.best_loss[proposals.rows], proposals.loss)
    # scored against the augmented keypoints instead, the flipped/rotated rows would be far off
    flipped = batch.augmentation.flip[proposals.rows].numpy()
    as_augmented, _ = fit_loss(
        scorer,
        torch.as_tensor(proposals.pose),
        torch.as_tensor(proposals.betas),
        batch.keypoints[proposals.rows],
    )
    wrong, right = as_augmented.numpy()[flipped], proposals.loss[flipped]
    assert (wrong > right).all() and np.median(wrong / right) > 2  # a poor fit may differ less
    # the step trained the model, and every loss term is finite
    assert set(outcome.losses) >= {"total", "keypoint", "keypoint_3d", "pose", "betas", "shape", "camera"}
    assert np.isfinite(list(outcome.losses.values())).all()
    after = step.model.state_dict()
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert any(name.startswith(("conv1", "layer")) for name in changed)  # the backbone learns
    assert any(name.startswith("fc1") for name in changed)
    assert set(outcome.seconds) == {"forward", "smplify", "targets", "backward"}


def test_non_finite_fits_never_become_proposals_or_targets(data, standin_files, small_regressor):
    batch = data.batch(ROWS, _aug(**MIXED))
    n = len(ROWS)
    loss = np.full(n, np.inf, dtype=np.float32)
    pose = np.zeros((n, 72), dtype=np.float32)
    loss[0], pose[0] = np.nan, np.nan  # a broken stored fit
    loss[2], pose[2] = np.inf, np.nan  # no fit, garbage parameters
    loss[NO_KEYPOINTS] = 1.0  # a stored fit for a row that now has no keypoints
    step = _step(standin_files, small_regressor, smplify_threshold=100.0)
    torch.manual_seed(0)
    outcome = step(batch, _stored(loss, pose), 3)
    assert np.isfinite(outcome.proposals["unused"].loss).all()
    assert NO_KEYPOINTS not in outcome.proposals["unused"].rows
    assert np.isfinite(outcome.proposals["unused"].pose).all()
    assert np.isfinite(list(outcome.losses.values())).all()
    # a NaN stored loss counts as no fit: the new finite fit replaces it and supervises
    assert 0 in outcome.proposals["unused"].rows and np.isfinite(outcome.best_loss[0]) and outcome.valid[0]
    assert outcome.best_loss[NO_KEYPOINTS] == 1.0 and outcome.valid[NO_KEYPOINTS]
    # without a stored fit, a row without keypoints has no fit and supervises nothing
    torch.manual_seed(0)
    again = _step(standin_files, small_regressor)(batch, _stored(np.full(n, np.inf)), 3)
    assert np.isinf(again.best_loss[NO_KEYPOINTS]) and not again.valid[NO_KEYPOINTS]


def _most_likely_pose(files) -> np.ndarray:
    """(72,) the GMM prior's most likely pose: the mean of the component with the smallest
    constant (every component's NLL is its constant plus a non-negative quadratic)."""
    prior = GmmPosePrior(files.gmm, dtype=torch.float64)
    pose = np.zeros(72, dtype=np.float32)
    pose[3:] = prior.means[int(torch.argmin(prior.constants))].numpy()
    return pose


def test_pose_prior_not_worse_compares_the_body_poses_and_lets_unscored_rows_go(standin_files):
    prior = GmmPosePrior(standin_files.gmm)
    likely = torch.as_tensor(_most_likely_pose(standin_files))
    unlikely = likely.clone()
    unlikely[3:] += 1.2  # every body joint bent by 1.2 rad about each axis
    turned = likely.clone()
    turned[:3] = torch.tensor([0.0, 3.0, 0.0])  # the global orientation is not the prior's
    new = torch.stack([unlikely, likely, turned, unlikely, unlikely, torch.full((72,), float("nan"))])
    stored = torch.stack([likely, unlikely, likely, likely, likely, likely])
    loss = torch.tensor([1.0, 1.0, 1.0, float("inf"), float("nan"), 1.0])
    np.testing.assert_array_equal(
        pose_prior_not_worse(prior, new, stored, loss).numpy(), [False, True, True, True, True, False]
    )


def test_the_prior_guard_keeps_likelier_stored_fits_that_spins_rule_would_replace(
    data, standin_files, small_regressor
):
    """in_loop_rule "fit_loss_and_prior" (the default): a new fit with a lower fit loss replaces
    a stored fit only if its pose is no less likely under the GMM prior. Stored fits at the
    prior's most likely pose keep their rows; implausible stored fits are replaced, as SPIN's
    rule replaces both."""
    assert _config().in_loop_rule == "fit_loss_and_prior"
    batch = data.batch(ROWS, _aug(**MIXED))
    n = len(ROWS)
    new_loss = _fresh_step_outcome(
        standin_files, small_regressor, batch, _stored(np.full(n, np.inf))
    ).best_loss
    likely = ROWS % 2 == 0
    pose = np.where(likely[:, None], _most_likely_pose(standin_files), 1.2).astype(np.float32)
    pose[:, :3] = 0.0
    stored = _stored(np.where(np.isfinite(new_loss), 2 * new_loss, 50.0).astype(np.float32), pose)
    spin = _fresh_step_outcome(standin_files, small_regressor, batch, stored, in_loop_rule="fit_loss")
    np.testing.assert_array_equal(spin.proposals["unused"].rows, np.setdiff1d(ROWS, [NO_KEYPOINTS]))
    guarded = _fresh_step_outcome(standin_files, small_regressor, batch, stored)
    np.testing.assert_array_equal(guarded.proposals["unused"].rows, [1, 5, 7])  # 3 has no keypoints
    # the kept stored fits are the best fits that supervise
    np.testing.assert_array_equal(guarded.best_loss[likely], stored.loss[likely])
    np.testing.assert_array_equal(guarded.best_loss[[1, 5, 7]], new_loss[[1, 5, 7]])


def test_not_swapped_finds_openpose_left_right_swaps_of_scored_rows(training_set):
    keypoints = torch.as_tensor(training_set.dataset.keypoints[[0, 1, 2]])
    swapped = swap_openpose_back(keypoints, torch.tensor([False, True, True]))  # rows 1, 2 swapped
    loss = torch.tensor([1.0, 1.0, float("inf")])  # row 2 holds no scored fit
    np.testing.assert_array_equal(not_swapped(swapped, loss).numpy(), [True, False, True])


def test_rows_with_swapped_openpose_keep_their_stored_fit(data, standin_files, small_regressor):
    """in_loop_swap_check (default on): a row whose OpenPose left/right looks swapped keeps its
    scored stored fit, whatever the new fit's loss; off, SPIN's rule replaces it."""
    batch = data.batch(ROWS, _aug(**MIXED))
    n = len(ROWS)
    # the keypoints as stored: OpenPose's left/right swapped in rows 1 and 4
    swapped = torch.as_tensor(np.isin(ROWS, [1, 4]))
    batch = dataclasses.replace(batch, keypoints_crop=swap_openpose_back(batch.keypoints_crop, swapped))
    stored = _stored(np.full(n, 1e4, dtype=np.float32))  # scored, and worse than any new fit
    rule = dict(in_loop_rule="fit_loss")
    checked = _fresh_step_outcome(standin_files, small_regressor, batch, stored, **rule)
    np.testing.assert_array_equal(checked.proposals["unused"].rows, [0, 2, 5, 6, 7])
    unchecked = _fresh_step_outcome(
        standin_files, small_regressor, batch, stored, in_loop_swap_check=False, **rule
    )
    np.testing.assert_array_equal(unchecked.proposals["unused"].rows, np.setdiff1d(ROWS, [NO_KEYPOINTS]))


def test_in_loop_rule_must_be_known():
    with pytest.raises(InputError, match="in_loop_rule must be one of fit_loss, fit_loss_and_prior"):
        _config(in_loop_rule="objective")


# ------------------------------------------------------------------ supervision


def _expected_supervision(step, batch, pose, betas, valid):
    """SPIN's pose / betas losses of the model's prediction against targets (un-augmented
    pose (B, 72), betas (B, 10)) seen through the batch's augmentation, over ``valid`` rows."""
    with torch.no_grad():
        out = step.model(batch.images)
        target = axis_angle_to_matrix(
            augment_pose(torch.as_tensor(pose, dtype=torch.float32), batch.augmentation).reshape(-1, 24, 3)
        )
        valid = torch.as_tensor(valid)
        pose_loss = ((out.rotmat - target) ** 2).flatten(1).mean(1)[valid].mean()
        betas_loss = ((out.betas - torch.as_tensor(betas, dtype=torch.float32)) ** 2).mean(1)[valid].mean()
    return float(pose_loss), float(betas_loss)


def test_supervision_uses_the_best_fit_below_the_threshold(
    data, standin_files, small_regressor, training_set
):
    batch = data.batch(ROWS, _aug(**MIXED))
    n = len(ROWS)
    pose = training_set.arrays["pose"][ROWS].astype(np.float32)
    betas = training_set.arrays["shape"][ROWS].astype(np.float32)
    betas[6, 2] = 4.0  # implausible (|beta| > max_abs_betas): supervised with zero betas
    loss = np.full(n, 1e-3, dtype=np.float32)  # stored fits no SMPLify run can beat
    loss[[1, 5]] = 50.0  # above the threshold (unless the new fit beats it)
    loss[NO_KEYPOINTS] = np.inf
    step = _step(standin_files, small_regressor, smplify_threshold=10.0, max_abs_betas=3.0)
    torch.manual_seed(5)
    outcome = step(batch, _stored(loss, pose, betas), 0)
    assert not set(outcome.proposals["unused"].rows) & {0, 2, 4, 6, 7}  # 1e-3 cannot be beaten
    np.testing.assert_array_equal(outcome.valid, outcome.best_loss < 10.0)
    assert outcome.valid[[0, 2, 4, 6, 7]].all() and not outcome.valid[NO_KEYPOINTS]
    # rows 1 and 5: supervised by their new fit if it got below the threshold, else not at all
    valid = outcome.valid
    better = np.isin(ROWS, outcome.proposals["unused"].rows)
    pose[better] = outcome.proposals["unused"].pose[
        np.searchsorted(outcome.proposals["unused"].rows, ROWS[better])
    ]
    betas[better] = outcome.proposals["unused"].betas[
        np.searchsorted(outcome.proposals["unused"].rows, ROWS[better])
    ]
    betas[np.abs(betas).max(1) > 3.0] = 0.0
    step_again = _step(standin_files, small_regressor, smplify_threshold=10.0)
    torch.manual_seed(5)
    want_pose, want_betas = _expected_supervision(step_again, batch, pose, betas, valid)
    np.testing.assert_allclose(outcome.losses["pose"], want_pose, rtol=1e-4)
    np.testing.assert_allclose(outcome.losses["betas"], want_betas, rtol=1e-4)


def test_ground_truth_smpl_supervises_its_rows_when_asked(
    data_gt, standin_files, small_regressor, training_set
):
    batch = data_gt.batch(ROWS, _aug(**MIXED))
    has_smpl = batch.has_smpl.numpy()
    np.testing.assert_array_equal(has_smpl, ROWS % 2 == 0)  # the fixture's even rows
    n = len(ROWS)
    # stored fits far from the truth, all above a tiny threshold: only ground truth is valid
    stored = _stored(
        np.full(n, 1e-3, dtype=np.float32), pose=np.full((n, 72), 0.3), betas=np.full((n, 10), 1.0)
    )
    step = _step(standin_files, small_regressor, smplify_threshold=1e-6)
    torch.manual_seed(9)
    outcome = step(batch, stored, 0)
    np.testing.assert_array_equal(outcome.valid, has_smpl)
    gt_pose = training_set.arrays["pose"][ROWS]
    gt_betas = training_set.arrays["shape"][ROWS]
    step_again = _step(standin_files, small_regressor, smplify_threshold=1e-6)
    torch.manual_seed(9)
    want_pose, want_betas = _expected_supervision(step_again, batch, gt_pose, gt_betas, has_smpl)
    np.testing.assert_allclose(outcome.losses["pose"], want_pose, rtol=1e-4)
    np.testing.assert_allclose(outcome.losses["betas"], want_betas, rtol=1e-4)


# ------------------------------------------------------------------ it learns


def test_repeated_steps_overfit_a_small_batch(data_gt, standin_files, small_regressor):
    rows = np.array([0, 2, 4, 6])  # ground-truth SMPL: fixed targets
    batch = data_gt.batch(rows, Augmentation.identity(len(rows)))
    step = _step(
        standin_files,
        small_regressor,
        batch_size=len(rows),
        learning_rate=1e-4,
        augmentation=AugmentationConfig.none(),
        smplify=SmplifyConfig(camera_iterations=2, body_iterations=2),
    )
    stored = _stored(np.full(len(rows), np.inf))
    torch.manual_seed(0)
    totals = [step(batch, stored, i).losses["total"] for i in range(30)]
    assert np.isfinite(totals).all()
    first, last = np.mean(totals[:3]), np.mean(totals[-3:])
    assert last < 0.5 * first, totals


def test_the_fixture_row_without_keypoints(training_set):
    assert training_set.no_keypoints == NO_KEYPOINTS
    assert (training_set.dataset.keypoints[NO_KEYPOINTS, :, 2] == 0).all()


# ------------------------------------------------------------------ modes, precision, mixes


def test_static_mode_supervises_with_the_stored_fits_and_proposes_nothing(
    data, standin_files, small_regressor, monkeypatch
):
    """--no-smplify (SPIN without --run_smplify): SMPLify never runs, the stored fits are the
    targets (those under the threshold), and no proposal is made."""
    batch = data.batch(ROWS, _aug(**MIXED))
    losses = np.where(np.arange(len(ROWS)) % 3 == 0, np.inf, 5.0).astype(np.float32)
    stored = _stored(losses, pose=training_set_pose(data), betas=np.zeros((len(ROWS), 10)))
    step = _step(standin_files, small_regressor, run_smplify=False)
    monkeypatch.setattr(step.smplify, "fit", lambda *a, **k: pytest.fail("SMPLify ran in static mode"))
    torch.manual_seed(1)
    outcome = step(batch, stored, 3)
    assert outcome.proposals == {}
    np.testing.assert_array_equal(outcome.best_loss, losses)
    np.testing.assert_array_equal(outcome.valid, np.isfinite(losses))
    assert outcome.losses["pose"] > 0 and "smplify" not in outcome.seconds


def training_set_pose(data) -> np.ndarray:
    return data.gt_pose[ROWS].astype(np.float32)


def test_bf16_autocast_trains_in_float32_outside_the_network(data, standin_files, small_regressor):
    """precision="bf16": the network's forward runs under autocast (bf16 activations), its
    outputs are float32 for SMPLify and the losses, and the step still trains."""
    batch = data.batch(ROWS[:4], Augmentation.identity(4))
    step = _step(standin_files, small_regressor, precision="bf16", batch_size=4)
    assert step.config.autocast_dtype() == torch.bfloat16
    seen = {}
    hook = step.model.fc1.register_forward_hook(lambda m, i, o: seen.update(fc1=o.dtype))
    before = {k: v.clone() for k, v in step.model.state_dict().items()}
    torch.manual_seed(2)
    outcome = step(batch, _stored(np.full(4, np.inf)), 0)
    hook.remove()
    assert seen["fc1"] == torch.bfloat16
    assert np.isfinite(list(outcome.losses.values())).all()
    assert np.isfinite(outcome.proposals["unused"].loss).all() and len(outcome.proposals["unused"])
    assert any(not torch.equal(before[k], v) for k, v in step.model.state_dict().items())
    assert _config(precision="auto").autocast_dtype() is None  # CPU: float32 unless asked


@pytest.mark.parametrize("capability, dtype", [((7, 0), None), ((7, 5), None), ((8, 0), torch.bfloat16)])
def test_auto_precision_is_bf16_only_on_gpus_that_compute_it_natively(monkeypatch, capability, dtype):
    """--precision auto on a V100 / T4 (no native bf16) trains in float32; on Ampere+ in bf16.
    Decided on the worker's device (the driver may have no GPU); "bf16" is always bf16."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    config = _config(precision="auto", gpus_per_worker=1)
    assert config.autocast_dtype(torch.device("cuda", 0)) == dtype
    assert config.autocast_dtype() == dtype  # the run's device: cuda
    assert config.autocast_dtype("cpu") is None
    assert _config(precision="bf16", gpus_per_worker=1).autocast_dtype("cuda") == torch.bfloat16
    assert _config(precision="fp32", gpus_per_worker=1).autocast_dtype("cuda") is None


def test_fractional_gpus_only_for_one_worker():
    """Two DDP ranks on one GPU: NCCL refuses them ("Duplicate GPU detected"), so a shared GPU is
    for a single worker; whole GPUs for several."""
    assert _config(workers=1, gpus_per_worker=0.5).device == "cuda"
    assert _config(workers=4, gpus_per_worker=2).workers == 4
    with pytest.raises(
        InputError, match=r"gpus_per_worker must be a whole number of GPUs when `workers` is 2"
    ):
        _config(workers=2, gpus_per_worker=0.5)


def test_a_mixed_batch_proposes_per_dataset(data, standin_files, small_regressor):
    """Samples of two datasets in one batch: each dataset's proposals carry its own rows."""
    from dataclasses import replace

    from spinfits.training.train_config import TrainDataset

    rows = np.array([0, 1, 2, 4, 5, 6])
    batch = data.batch(rows, Augmentation.identity(len(rows)))
    batch = replace(batch, dataset=np.array([0, 0, 0, 1, 1, 1]))
    datasets = (TrainDataset(Path("a.npz"), Path("i")), TrainDataset(Path("b.npz"), Path("i")))
    step = _step(standin_files, small_regressor, datasets=datasets, batch_size=len(rows))
    torch.manual_seed(3)
    outcome = step(batch, _stored(np.full(len(rows), np.inf)), 0)
    assert set(outcome.proposals) == {"a", "b"}
    fitted = rows[np.isfinite(outcome.best_loss)]  # every new fit beats "no fit"
    assert len(outcome.proposals["a"]) and len(outcome.proposals["b"])
    np.testing.assert_array_equal(outcome.proposals["a"].rows, np.intersect1d(fitted, [0, 1, 2]))
    np.testing.assert_array_equal(outcome.proposals["b"].rows, np.intersect1d(fitted, [4, 5, 6]))
