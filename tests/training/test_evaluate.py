"""Evaluating a regressor over a dataset (SPIN's eval.py): predictions per row, scored against
the synthetic people's known ground truth with the stand-in body and its Human3.6M regressor."""

import numpy as np
import pytest
import torch

from spinfits.errors import InputError
from spinfits.fitting.evaluation.fit_evaluation import Evaluator
from spinfits.fitting.evaluation.h36m_regressor import find_h36m_regressor, load_h36m_regressor
from spinfits.fitting.evaluation.targets import load_eval_targets
from spinfits.training.data import TrainingData
from spinfits.training.evaluate import evaluate_regressor

pytestmark = pytest.mark.usefixtures("one_torch_thread")

INPUT_RES = 64


@pytest.fixture(scope="module")
def evaluator(standin_files):
    return Evaluator(standin_files, load_h36m_regressor(find_h36m_regressor(standin_files), 6890))


@pytest.fixture(scope="module")
def data(training_set):
    return TrainingData.load(training_set.path, training_set.images, input_res=INPUT_RES)


@pytest.fixture(scope="module")
def targets(training_set):
    return load_eval_targets(training_set.path)


def test_regressor_predicts_and_scores_every_row(small_regressor, data, targets, evaluator, training_set):
    model = small_regressor()
    model.train()
    result = evaluate_regressor(model, data, targets, evaluator, batch_size=10)
    n = len(training_set.dataset)
    assert model.training  # its mode is given back
    assert result.rows.tolist() == list(range(n))
    assert result.pose.shape == (n, 72) and result.betas.shape == (n, 10)
    assert result.camera.shape == (n, 3) and result.cam_t.shape == (n, 3)
    assert targets.source_3d == "S"
    for name in ("lsp14", "h36m14", "h36m17"):  # S is complete in every synthetic row
        assert np.isfinite(result.metrics.mpjpe[name]).all()
        assert (result.metrics.pa_mpjpe[name] <= result.metrics.mpjpe[name] + 1e-9).all()
    figures = {f.protocol: f for f in result.summary.protocols}
    assert figures["h36m14"].rows == n and figures["h36m14"].mpjpe_mm > 20  # an untrained network
    # the row without keypoints has no 2D ground truth: it is not in PCK
    assert result.metrics.pck_visible[training_set.no_keypoints] == 0
    assert result.summary.pck.rows == n - 1
    assert result.summary.per_action == {}  # synthetic names carry no Human3.6M action


def test_figures_equal_scoring_the_predictions_as_fits(small_regressor, data, targets, evaluator):
    """The regressor's rotations, turned into axis-angle, and its camera give the same errors
    through the fits path (what `spinfits store eval` runs)."""
    rows = np.arange(8)
    result = evaluate_regressor(small_regressor(), data, targets, evaluator, batch_size=8, rows=rows)
    again = evaluator.score_fits(result.pose, result.betas, result.cam_t, targets.take(rows))
    for name in result.metrics.mpjpe:
        assert np.allclose(again.mpjpe[name], result.metrics.mpjpe[name], atol=1e-5)
        assert np.allclose(again.pa_mpjpe[name], result.metrics.pa_mpjpe[name], atol=1e-5)
    assert np.array_equal(again.pck_visible, result.metrics.pck_visible)


def test_batches_and_row_subsets_do_not_change_predictions(small_regressor, data, targets, evaluator):
    model = small_regressor()
    whole = evaluate_regressor(model, data, targets, evaluator, batch_size=24)
    rows = np.array([5, 2, 11])
    part = evaluate_regressor(model, data, targets, evaluator, batch_size=2, rows=rows)
    assert part.rows.tolist() == rows.tolist()
    assert np.allclose(part.pose, whole.pose[rows], atol=1e-5)
    assert np.allclose(part.metrics.mpjpe["h36m14"], whole.metrics.mpjpe["h36m14"][rows], atol=1e-6)


def test_ground_truth_smpl_scores_zero_and_a_perturbed_body_worse(training_set, targets, evaluator):
    """Synthetic people: their known SMPL (stand-in body) against their S. LSP-14 uses the body's
    own joints, so it is 0; H36M joints regressed from the posed mesh sit within millimetres of
    the skeleton joints S was made from; with the true camera every 2D joint is within 5%."""
    arrays = training_set.arrays
    pose, betas = arrays["pose"].astype(np.float32), arrays["shape"].astype(np.float32)
    cam_t = arrays["gt_cam_t"].astype(np.float32)
    exact = evaluator.score_fits(pose, betas, cam_t, targets)
    assert np.nanmax(exact.mpjpe["lsp14"]) < 1e-5 and np.nanmax(exact.pa_mpjpe["lsp14"]) < 1e-5
    assert np.nanmax(exact.mpjpe["h36m14"]) < 0.015
    visible = exact.pck_visible.sum()
    assert exact.pck_correct.sum() >= 0.9 * visible
    noisy = pose + np.random.default_rng(0).normal(0, 0.15, pose.shape).astype(np.float32)
    worse = evaluator.score_fits(noisy, betas, cam_t, targets)
    for name in ("lsp14", "h36m14", "h36m17"):
        assert np.nanmean(worse.mpjpe[name]) > np.nanmean(exact.mpjpe[name]) + 0.02
        assert np.nanmean(worse.pa_mpjpe[name]) > np.nanmean(exact.pa_mpjpe[name]) + 0.01
    assert worse.pck_correct.sum() < exact.pck_correct.sum()


def test_input_errors(small_regressor, data, targets, evaluator):
    with pytest.raises(InputError, match=r"rows must be a non-empty \(N,\) array of rows in \[0, 24\)"):
        evaluate_regressor(small_regressor(), data, targets, evaluator, rows=np.array([24]))
    with pytest.raises(InputError, match="batch_size must be >= 1, got 0"):
        evaluate_regressor(small_regressor(), data, targets, evaluator, batch_size=0)
    with pytest.raises(InputError, match="targets have 3 rows, the dataset 24"):
        evaluate_regressor(small_regressor(), data, targets.take(slice(0, 3)), evaluator)
    if torch.cuda.is_available():
        with pytest.raises(InputError, match="the model is on cuda"):
            evaluate_regressor(small_regressor().cuda(), data, targets, evaluator)
