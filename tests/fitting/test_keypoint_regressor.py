"""The learned initialiser: training, saving tied to the model, use as a hypothesis."""

import dataclasses
import os
import pickle
import shutil

import numpy as np
import pytest
import torch

from spinfits.cli import main
from spinfits.errors import InputError
from spinfits.fitting.body.model_files import load_body_model_files
from spinfits.fitting.data.dataset import load_spin_npz
from spinfits.fitting.offline.config import OfflineConfig, default_offline_config
from spinfits.fitting.offline.fitter import OfflineFitter
from spinfits.fitting.offline.keypoint_regressor import (
    REGRESSOR_FILE,
    KeypointRegressor,
    RegressorTraining,
    has_keypoint_regressor,
    load_keypoint_regressor,
    save_keypoint_regressor,
)
from spinfits.fitting.synthetic.people import SyntheticConfig, write_synthetic_dataset
from spinfits.fitting.synthetic.regressor_training import train_keypoint_regressor

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
    torch.testing.assert_close(
        KeypointRegressor.normalise(keypoints), KeypointRegressor.normalise(moved), atol=1e-5, rtol=1e-5
    )


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


def test_learned_hypothesis_is_used_and_the_default_follows_the_file(trained, standin_files, tmp_path):
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
    assert (
        main(["init", "train-regressor", "--model-dir", str(directory), "--steps", "5", "--samples", "100"])
        == 0
    )
    out = capsys.readouterr().out
    assert "STAND-IN" in out and REGRESSOR_FILE in out
    assert (directory / REGRESSOR_FILE).is_file()


# ----------------------------------------------------------------------------- damaged files


class SystemPayload:
    """Unpickling this would run ``touch MARKER``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _untrained_save(files, hidden=8, **changes):
    """What save_keypoint_regressor writes, for a tiny untrained network (then ``changes``)."""
    network = KeypointRegressor(hidden)
    save_keypoint_regressor(network, files, TINY, {}, files.directory)
    path = files.directory / REGRESSOR_FILE
    saved = torch.load(path, weights_only=True)
    saved["training"]["hidden"] = hidden
    saved.update(changes)
    torch.save(saved, path)
    return path


def _write_truncated(files, marker):
    path = _untrained_save(files)
    path.write_bytes(path.read_bytes()[:200])


def _write_random(files, marker):
    (files.directory / REGRESSOR_FILE).write_bytes(np.random.default_rng(0).bytes(4096))


def _write_other_dict(files, marker):
    torch.save({"weights": torch.zeros(3), "epoch": 7}, files.directory / REGRESSOR_FILE)


def _write_a_tensor(files, marker):
    torch.save(torch.zeros(3), files.directory / REGRESSOR_FILE)


def _write_payload_in_torch_save(files, marker):
    torch.save(
        {"state_dict": SystemPayload(marker), "fingerprint": files.fingerprint, "training": {"hidden": 8}},
        files.directory / REGRESSOR_FILE,
    )


def _write_payload_pickle(files, marker):
    (files.directory / REGRESSOR_FILE).write_bytes(pickle.dumps(SystemPayload(marker), protocol=2))


def _write_wrong_shapes(files, marker):
    wrong = KeypointRegressor(16).state_dict()
    _untrained_save(files, hidden=8, state_dict=wrong)


def _write_missing_weights(files, marker):
    state = KeypointRegressor(8).state_dict()
    del state["net.2.weight"]
    _untrained_save(files, hidden=8, state_dict=state)


@pytest.mark.parametrize(
    "write, detail",
    [
        (_write_truncated, r"torch cannot read it \(RuntimeError: PytorchStreamReader"),
        (_write_random, "it is not a file of tensors and plain values"),
        (
            _write_other_dict,
            "its dict has no 'state_dict', 'fingerprint', 'training' "
            r"\(keys: 'weights', 'epoch'\)",
        ),
        (_write_a_tensor, "it holds a Tensor, not a dict"),
        (
            _write_payload_in_torch_save,
            rf"a pickled {os.system.__module__}\.system, not only "
            r"tensors and plain values \(nothing from it was run\)",
        ),
        (_write_payload_pickle, rf"a pickled {os.system.__module__}\.system, not only tensors"),
    ],
)
def test_damaged_or_foreign_regressor_file_is_refused(tmp_path, standin_files, write, detail):
    files = dataclasses.replace(standin_files, directory=tmp_path)
    marker = tmp_path / "MARKER"
    write(files, marker)
    for load in (has_keypoint_regressor, load_keypoint_regressor):
        with pytest.raises(InputError, match=detail) as error:
            load(files)
        _assert_says_how_to_fix(str(error.value), tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "write, detail",
    [
        (
            _write_wrong_shapes,
            r"do not fit the network \(ValueError: net.0.weight has shape "
            r"\(16, 147\), expected \(8, 147\)",
        ),
        (
            _write_missing_weights,
            r"do not fit the network \(RuntimeError: Error\(s\) in loading "
            "state_dict",
        ),
    ],
)
def test_regressor_weights_of_the_wrong_network_are_refused(tmp_path, standin_files, write, detail):
    files = dataclasses.replace(standin_files, directory=tmp_path)
    write(files, tmp_path / "MARKER")
    assert has_keypoint_regressor(files)  # saved for this model; only building the network fails
    with pytest.raises(InputError, match=detail) as error:
        load_keypoint_regressor(files)
    _assert_says_how_to_fix(str(error.value), tmp_path)


def _assert_says_how_to_fix(message, model_dir):
    assert message.startswith(f"{model_dir / REGRESSOR_FILE} is not a usable keypoint regressor")
    assert "Expected a keypoint regressor saved by `spinfits init train-regressor`" in message
    assert f"retrain it with `spinfits init train-regressor --model-dir {model_dir}`" in message
    assert "weights_only" not in message


def test_untrained_save_round_trips(tmp_path, standin_files):
    files = dataclasses.replace(standin_files, directory=tmp_path)
    _untrained_save(files)
    assert has_keypoint_regressor(files)
    assert load_keypoint_regressor(files).net[0].out_features == 8
