"""Hypotheses pruned after the first stages (OfflineConfig.prune_after_stage), and engines that
share one body model (SMPLify.with_config)."""

from dataclasses import replace

import pytest
import torch

import spinfits.fitting.smplify.fitter as smplify_module
from spinfits.errors import InputError
from spinfits.fitting.offline.config import SMPLIFY_2016_STAGES, OfflineConfig
from spinfits.fitting.offline.fitter import OfflineFitter
from spinfits.fitting.smplify.config import SmplifyConfig
from spinfits.fitting.smplify.fit_loss import fit_loss_at
from spinfits.fitting.smplify.fitter import SMPLify
from spinfits.fitting.smplify.stages import BodyStage
from spinfits.fitting.synthetic.people import SyntheticConfig, make_synthetic_dataset

#: Short caps: these tests check what runs where, not how well.
QUICK = SmplifyConfig(camera_iterations=6, body_iterations=6)


@pytest.fixture(scope="module")
def keypoints(standin_files):
    data = make_synthetic_dataset(
        standin_files, SyntheticConfig(rows=5, seed=3, facing_away_fraction=0.4, side_fraction=0.4)
    )
    return torch.as_tensor(data["gt_keypoints"]).float()


def test_prune_stage_must_be_a_stage_of_the_schedule():
    with pytest.raises(InputError, match=r"prune_after_stage must be None or within \[0, 0\].*got 1"):
        OfflineConfig(prune_after_stage=1)  # SPIN's single stage: only 0
    with pytest.raises(InputError, match=r"within \[0, 3\].*4-stage schedule.*got 4"):
        OfflineConfig(stages=SMPLIFY_2016_STAGES, prune_after_stage=4)
    assert OfflineConfig(stages=SMPLIFY_2016_STAGES, prune_after_stage=3).prune_after_stage == 3


def test_only_each_rows_best_hypothesis_runs_the_body_stage(standin_files, keypoints, monkeypatch):
    config = OfflineConfig(smplify=QUICK, prune_after_stage=0, outlier_factor=None)  # no refit
    fitter = OfflineFitter(standin_files, config)
    body_rows = []
    solve_pool = smplify_module.solve_pool

    def counting(problem, rows, *args, **kwargs):
        if isinstance(problem, BodyStage):
            body_rows.append((int(rows.numel()), args[2]))  # rows and the iteration cap
        return solve_pool(problem, rows, *args, **kwargs)

    monkeypatch.setattr(smplify_module, "solve_pool", counting)
    result = fitter.fit(keypoints)
    hypotheses = fitter._hypotheses(keypoints)[0].numel()
    assert hypotheses > len(keypoints)  # several hypotheses per row ...
    # ... all evaluated at the start of the body stage (no iteration), then one per row fitted
    assert body_rows == [(hypotheses, 0), (len(keypoints), QUICK.body_iterations)]
    assert result.fitted.all() and torch.isfinite(result.loss).all()
    again = fit_loss_at(fitter.smplify.joints_model, result.pose, result.betas, result.cam_t, keypoints)
    assert torch.allclose(result.loss, again)  # SPIN's loss against the keypoints as given


def test_pruned_rows_do_not_depend_on_their_batch_mates(standin_files, keypoints):
    fitter = OfflineFitter(standin_files, OfflineConfig(smplify=QUICK, prune_after_stage=0))
    together = fitter.fit(keypoints)
    for row in (0, 3):
        alone = fitter.fit(keypoints[row : row + 1])
        assert torch.allclose(alone.pose, together.pose[row : row + 1], atol=1e-4)


def test_with_config_shares_the_body_model_and_prior(standin_files):
    engine = SMPLify(standin_files, QUICK)
    other = engine.with_config(replace(QUICK, body_iterations=2))
    assert other.joints_model is engine.joints_model and other.prior is engine.prior
    assert other.config.body_iterations == 2 and engine.config.body_iterations == 6
    with pytest.raises(InputError, match="evaluates the body 'joints_only'.*asks for 'full'"):
        engine.with_config(SmplifyConfig.spin_reference())
