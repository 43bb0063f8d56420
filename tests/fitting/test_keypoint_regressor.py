"""The learned initialiser: training, saving tied to the model, use as a hypothesis."""

import shutil

import numpy as np
import pytest
import torch

from spinfits.cli import main
from spinfits.errors import InputError
from spinfits.fitting.dataset import load_spin_npz
from spinfits.fitting.keypoint_regressor import (
    REGRESSOR_FILE,
    KeypointRegressor,
    RegressorTraining,
    has_keypoint_regressor,
    load_keypoint_regressor,
    save_keypoint_regressor,
    train_keypoint_regressor,
)
from spinfits.fitting.model_files import load_body_model_files
from spinfits.fitting.offline_init import OfflineConfig, OfflineFitter, default_offline_config
from spinfits.fitting.synthetic import SyntheticConfig, write_synthetic_dataset

TINY = RegressorTraining(samples=600, steps=150, batch_size=64, hidden=128)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, standin_dir):
    directory = tmp_path_factory.mktemp("with_regressor")
    shutil.copytree(standin_dir, directory, dirs_exist_ok=True)
    return directory


@pytest.fixture(scope="module")
def trained(model_dir):
    files = load_body_model_files(model_dir)
    network, figures = train_keypoint_regressor(files, TINY)
    save_keypoint_regressor(network, files, TINY, figures)
    return files, network, figures


def test_normalisation_ignores_position_scale_and_missing_values():
    rng = np.random.default_rng(0)
    keypoints = torch.as_tensor(rng.uniform(50, 150, (2, 49, 3)), dtype=torch.float32)
    keypoints[..., 2] = 1.0
    keypoints[:, 40:, 2] = 0.0
    moved = keypoints.clone()
    moved[..., :2] = moved[..., :2] * 1.7 + 13.0
    moved[:, 40:, :2] = 999.0  # values of missing keypoints must not matter
    torch.testing.assert_close(KeypointRegressor.normalise(keypoints),
                               KeypointRegressor.normalise(moved), atol=1e-5, rtol=1e-5)


def test_training_learns_something(trained):
    _, _, figures = trained
    # an untrained network's global orientation is ~90-180 deg off; a short training helps
    assert figures["global_orient_error_deg_median"] < 60


def test_saved_beside_the_model_and_tied_to_it(trained, model_dir, other_model_copy):
    files, network, _ = trained
    assert (model_dir / REGRESSOR_FILE).is_file() and has_keypoint_regressor(files)
    loaded = load_keypoint_regressor(files)
    keypoints = torch.rand(3, 49, 3) * 200
    torch.testing.assert_close(loaded.rotmats(keypoints)[0], network.eval().rotmats(keypoints)[0])
    other = other_model_copy(model_dir)  # the regressor file comes along, trained for `files`
    other_files = load_body_model_files(other)
    assert not has_keypoint_regressor(other_files)
    with pytest.raises(InputError, match="was trained for body model .* retrain it"):
        load_keypoint_regressor(other_files)
    (other / REGRESSOR_FILE).unlink()
    with pytest.raises(InputError, match="no keypoint regressor at .*train-regressor"):
        load_keypoint_regressor(other_files)


def test_learned_hypothesis_is_used_and_the_default_follows_the_file(trained, standin_files,
                                                                     tmp_path):
    files, _, _ = trained
    path = write_synthetic_dataset(tmp_path / "d.npz", files, SyntheticConfig(rows=24, seed=9))
    keypoints = load_spin_npz(path).keypoints
    config = default_offline_config(files)
    assert config.learned_hypothesis and not config.back_hypothesis
    assert default_offline_config(standin_files) == OfflineConfig()  # no regressor there
    result = OfflineFitter(files, config).fit(keypoints)
    assert result.fitted.all() and torch.isfinite(result.loss).all()
    assert result.loss.median() < 30


def test_cli_train_regressor(tmp_path, standin_dir, capsys):
    directory = tmp_path / "model"
    shutil.copytree(standin_dir, directory)
    assert main(["init", "train-regressor", "--model-dir", str(directory), "--steps", "5",
                 "--samples", "100"]) == 0
    out = capsys.readouterr().out
    assert "STAND-IN" in out and REGRESSOR_FILE in out
    assert (directory / REGRESSOR_FILE).is_file()
