"""``spinfits train`` refuses bad input before starting Ray: clear message, exit 2, nothing made."""

from __future__ import annotations

import pytest

from spinfits.cli import main


@pytest.fixture
def args(tmp_path, training_set, fit_store, standin_dir):
    def make(*extra: str, **override: str) -> list[str]:
        values = {
            "--dataset": str(training_set.path),
            "--images": str(training_set.images),
            "--store": str(fit_store.location),
            "--model-dir": str(standin_dir),
            "--runs-dir": str(tmp_path / "runs"),
            **override,
        }
        return ["train", *[item for pair in values.items() for item in pair], *extra]

    return make


def _fails(argv: list[str], capsys, *expected: str) -> None:
    assert main(argv) == 2
    error = capsys.readouterr().err
    for text in expected:
        assert text in error, error


def test_missing_image_folder(args, tmp_path, capsys):
    _fails(
        args(**{"--images": str(tmp_path / "nowhere")}),
        capsys,
        "image folder",
        "does not exist",
        "--images DIR given to `spinfits data make-synthetic`",
    )
    assert not (tmp_path / "runs").exists()


def test_image_folder_without_the_images(args, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    _fails(args(**{"--images": str(tmp_path / "empty")}), capsys, "row 0's image", "is missing")


def test_store_without_the_dataset(args, make_store, capsys):
    empty = make_store("empty", fitted=False)
    _fails(
        args(**{"--store": str(empty.location), "--name": "other"}),
        capsys,
        "has no dataset 'other'",
        "spinfits precompute",
    )


def test_store_of_another_body_model(args, standin_dir, other_model_copy, capsys):
    _fails(
        args(**{"--model-dir": str(other_model_copy(standin_dir))}),
        capsys,
        "fits of different body models must not mix",
    )


def test_missing_store(args, tmp_path, capsys):
    _fails(args(**{"--store": str(tmp_path / "no_store")}), capsys, "no_store")


def test_resume_without_a_run(args, capsys):
    _fails(args("--resume"), capsys, "has no checkpoint", "without --resume")


def test_existing_run_needs_resume(args, tmp_path, capsys):
    run = tmp_path / "runs" / "spin"
    run.mkdir(parents=True)
    (run / "checkpoint_manager_snapshot.json").write_text(
        '{"latest_checkpoint_result": {"metrics": {"step": 6}, "checkpoint_dir_name": "checkpoint_0"}}'
    )
    _fails(args(), capsys, "already exists", "--resume")


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--workers", "0", "--workers must be >= 1"),
        ("--steps", "0", "--steps must be >= 1"),
        ("--batch", "0", "--batch (batch_size) must be >= 1, got 0"),
        ("--lr", "-1", "--lr (learning_rate) must be > 0"),
        ("--run", "../x", "--run must be a plain folder name"),
        (
            "--gpus-per-worker",
            "0.5",  # two DDP ranks on one GPU: NCCL refuses them
            "--gpus-per-worker must be a whole number of GPUs when --workers is 2, got 0.5: Ray would "
            "place two DDP ranks on one GPU",
        ),
    ],
)
def test_bad_settings(args, capsys, flag, value, message):
    _fails(args(**{flag: value}), capsys, message)


def test_store_dataset_of_another_file(args, make_store, training_set, capsys):
    store = make_store("mixed", fitted=False)
    store.create_dataset("other", len(training_set.dataset), dataset_fingerprint="not-this-file")
    _fails(
        args(**{"--store": str(store.location), "--name": "other"}),
        capsys,
        "was made from another file",
        "give it the name of the matching store dataset (--dataset)",
    )


def test_dataset_forms_and_mix_errors(args, training_set, tmp_path, capsys):
    npz, images = str(training_set.path), str(training_set.images)
    base = ["train", "--store", "s", "--model-dir", "m"]
    _fails(base, capsys, "--dataset is required")
    _fails([*base, "--dataset", npz], capsys, f"--dataset {npz}: its image folder is missing")
    _fails(
        [*base, "--dataset", npz, images, "a", "--dataset", npz, images, "a"],
        capsys,
        "own name",
        "['a', 'a']",
    )
    _fails(
        [*base, "--dataset", npz, images, "--dataset", npz, images, "b", "--images", images],
        capsys,
        "--images and --name belong to a single --dataset",
    )
    _fails([*base, "--dataset", npz, images, "--mix", "0.5,x"], capsys, "--mix must be 'spin' or 1")
    _fails(
        [*base, "--dataset", npz, images, "a", "--dataset", npz, images, "b", "--mix", "1"],
        capsys,
        "--mix must be one weight >= 0 per dataset (2)",
    )


def test_config_file_errors(args, tmp_path, capsys):
    _fails(["train", "--config", str(tmp_path / "none.json")], capsys, "config file", "does not exist")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    _fails(["train", "--config", str(bad)], capsys, "is not JSON")
    unknown = tmp_path / "unknown.json"
    unknown.write_text('{"datasets": [], "store": "s", "model_dir": "m", "speed": 3}')
    _fails(["train", "--config", str(unknown)], capsys, "has no field(s) ['speed']")


def test_config_file_then_flags(args, tmp_path, capsys, monkeypatch):
    """--config FILE gives every value; flags after it change them (checked before Ray starts)."""
    from spinfits.training.train_config import TrainConfig, TrainDataset

    saved = tmp_path / "config.json"
    TrainConfig(
        datasets=(TrainDataset(tmp_path / "x.npz", tmp_path / "img"),), store="s", model_dir=tmp_path, steps=7
    ).save(saved)
    seen = {}

    def fake_check(config):
        seen["config"] = config
        raise SystemExit(0)

    monkeypatch.setattr("spinfits.training.run_inputs.check_inputs", fake_check)
    with pytest.raises(SystemExit):
        main(["train", "--config", str(saved), "--batch", "3"])
    config = seen["config"]
    assert (config.steps, config.batch_size, config.datasets[0].name, config.resume) == (7, 3, "x", False)
    assert config.in_loop_rule == "fit_loss_and_prior"  # the default
    with pytest.raises(SystemExit):
        main(["train", "--config", str(saved), "--in-loop-rule", "fit_loss"])
    assert seen["config"].in_loop_rule == "fit_loss" and seen["config"].steps == 7  # SPIN's rule
    assert seen["config"].in_loop_swap_check  # the default
    with pytest.raises(SystemExit):
        main(["train", "--config", str(saved), "--no-in-loop-swap-check"])
    assert not seen["config"].in_loop_swap_check
    _fails(["train", "--config", str(saved), "--steps", "0"], capsys, "--steps must be >= 1")


def test_damaged_store_stops_training_before_it_starts(args, fit_store, tmp_path, capsys):
    """A chunk of the store fails its checksum: train stops with the damage and the repair, and
    makes no run."""
    biggest = max((fit_store.location.path / "chunks").iterdir(), key=lambda p: p.stat().st_size)
    data = bytearray(biggest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    biggest.write_bytes(bytes(data))
    _fails(args(), capsys, "is damaged", "fails its checksum", "store rollback")
    assert not (tmp_path / "runs").exists()


def _small_weights(backbone: str):
    from spinfits.fitting.data.mean_params import spin_mean_params_path
    from spinfits.training.regressor import HMR, RegressorConfig

    return HMR(str(spin_mean_params_path()), RegressorConfig(backbone=backbone)).state_dict()


def test_damaged_pretrained_file_fails_in_the_driver_in_one_line(args, tmp_path, capsys):
    """A truncated --pretrained file is refused before Ray starts (nothing made), in one line."""
    import torch

    whole = tmp_path / "whole.pt"
    torch.save({"model": _small_weights("small")}, whole)
    bad = tmp_path / "BAD.pt"
    bad.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert main(args("--pretrained", str(bad), "--backbone", "small")) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1, error
    assert error.startswith(f"spinfits train: error: --pretrained: pretrained weights {bad} cannot be read")
    assert "--resume" not in error
    assert not (tmp_path / "runs").exists()


def test_resnet50_pretrained_with_a_small_backbone_fails_in_the_driver(args, tmp_path, capsys):
    import torch

    path = tmp_path / "model_checkpoint.pt"
    torch.save({"model": _small_weights("resnet50"), "epoch": 3}, path)
    _fails(
        args("--pretrained", str(path), "--backbone", "small"),
        capsys,
        "--pretrained: pretrained weights",
        "do not fit the small regressor",
        "A 'small' backbone cannot take resnet50 weights: use --backbone resnet50",
    )
    assert not (tmp_path / "runs").exists()


def test_good_pretrained_file_is_confirmed_in_one_line_before_training(args, tmp_path, capsys, monkeypatch):
    """What was loaded (layout, tensors, missing / unexpected) is said before Ray starts."""
    import torch

    state = _small_weights("small")
    path = tmp_path / "model_checkpoint.pt"
    torch.save({"model": state, "epoch": 3}, path)

    def no_ray():
        raise SystemExit(0)  # the checks are done: stop before Ray starts

    monkeypatch.setattr("spinfits.training.trainer.connect_or_start_ray", no_ray)
    with pytest.raises(SystemExit):
        main(args("--pretrained", str(path), "--backbone", "small", "--input-res", "64"))
    assert capsys.readouterr().out == (
        f"pretrained: {path}: spin layout (SPIN's HMR state dict, its 'model' entry), {len(state)} tensors "
        "loaded; missing none; unexpected none\n"
    )


def test_a_run_folder_without_a_checkpoint_says_to_remove_it(args, tmp_path, capsys):
    """After a start that saved no checkpoint, neither a fresh start nor --resume loops the user
    between the two advices."""
    (tmp_path / "runs" / "spin").mkdir(parents=True)
    _fails(args(), capsys, "holds no checkpoint", f"remove {tmp_path / 'runs' / 'spin'}")
    _fails(args("--resume"), capsys, "has no checkpoint", f"(remove {tmp_path / 'runs' / 'spin'} first)")


def test_advice_after_a_stop_names_resume_only_when_a_checkpoint_exists(tmp_path):
    import json

    from spinfits.training.run_inputs import after_a_stop

    run = tmp_path / "runs" / "spin"
    assert "--resume" not in after_a_stop(run) and "saved no checkpoint" in after_a_stop(run)
    run.mkdir(parents=True)
    assert "nothing to resume" in after_a_stop(run)
    (run / "checkpoint_manager_snapshot.json").write_text(
        json.dumps({"latest_checkpoint_result": {"metrics": {"step": 12}, "checkpoint_dir_name": "c"}})
    )
    assert (
        after_a_stop(run)
        == f"its checkpoints are in {run} (latest: step 12): rerun with --resume to continue"
    )
