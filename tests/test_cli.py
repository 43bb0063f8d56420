import pytest

from spinfits.cli import main


def test_cli_without_command_exits_with_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command, config_class, flags",
    [
        ("precompute", "spinfits.cluster.precompute:PrecomputeConfig", "spinfits.cli.precompute:FLAGS"),
        ("train", "spinfits.training.train_config:TrainConfig", "spinfits.cli.train:FLAGS"),
    ],
)
def test_option_defaults_are_the_config_defaults(command, config_class, flags):
    """Every flag that sets a config field defaults to that field's default (one source)."""
    import dataclasses
    import importlib

    from spinfits.cli import build_parser

    def load(spec):
        module, name = spec.split(":")
        return getattr(importlib.import_module(module), name)

    required = ["--dataset", "d.npz", "--store", "s", "--model-dir", "m"]
    if command == "train":
        required += ["--images", "i"]
    args = vars(build_parser().parse_args([command, *required]))
    defaults = {f.name: f.default for f in dataclasses.fields(load(config_class))}
    dests = {
        "dataset_name": "name",
        "learning_rate": "lr",
        "batch_size": "batch",
        "commit_every_s": "commit_every",
    }
    for field, flag in load(flags).items():
        if field in ("dataset", "datasets", "store", "model_dir", "images", "mix"):
            continue  # required, or told differently (--mix spin is TrainConfig.mix None)
        dest = dests.get(field, field)
        assert args[dest] == defaults[field], (flag, args[dest], defaults[field])


def test_default_of():
    from spinfits.cli.options import default_of
    from spinfits.training.train_config import TrainConfig

    assert default_of(TrainConfig, "batch_size") == 16
    assert default_of(TrainConfig, "smplify").body_iterations == 20  # a default factory, called
    with pytest.raises(ValueError, match="TrainConfig has no field 'batch'"):
        default_of(TrainConfig, "batch")
    with pytest.raises(ValueError, match="TrainConfig.datasets has no default"):
        default_of(TrainConfig, "datasets")


@pytest.mark.parametrize(
    "message, told",
    [
        ("batch_size must be >= 1, got 0", "--batch (batch_size) must be >= 1, got 0"),
        ("workers must be >= 1 or None, got 0", "--workers must be >= 1 or None, got 0"),
        ("init: no such file", "--init: no such file"),
        (
            "dataset name must be ...; pass a valid dataset_name",
            "dataset name must be ...; pass a valid --name",
        ),
        ("run 'x' already exists", "run 'x' already exists"),  # a plain word is only a field up front
    ],
)
def test_config_messages_told_in_flags(message, told):
    from spinfits.cli.options import in_flags

    flags = {
        "batch_size": "--batch",
        "workers": "--workers",
        "init": "--init",
        "dataset": "--dataset",
        "dataset_name": "--name",
        "run": "--run",
    }
    assert in_flags(message, flags) == told


def test_precompute_batch_is_a_hidden_alias_of_shard_size(capsys, caplog):
    from spinfits.cli import build_parser

    parser = build_parser()
    required = ["precompute", "--dataset", "d.npz", "--store", "s", "--model-dir", "m"]
    assert parser.parse_args(required + ["--shard-size", "32"]).shard_size == 32
    with caplog.at_level("WARNING"):
        assert parser.parse_args(required + ["--batch", "32"]).shard_size == 32
    assert "--batch is deprecated: use --shard-size" in caplog.text
    with pytest.raises(SystemExit):
        parser.parse_args(["precompute", "--help"])
    assert "--batch" not in capsys.readouterr().out


def test_a_reader_that_goes_away_is_not_an_error(tmp_path):
    """`spinfits store log STORE | head -1`: the closed pipe ends the command quietly (exit 0,
    no traceback)."""
    import subprocess
    import sys

    script = (
        "import spinfits.cli.store as store\n"
        "store.cmd_log = lambda args: [print('x' * 100) for _ in range(20000)] and 0\n"
        "from spinfits.cli import main\n"
        "raise SystemExit(main(['store', 'log', 'unused']))\n"
    )
    done = subprocess.run(
        f'{sys.executable} -c "{script}" | head -c 10',
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout == "x" * 10
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr


def test_ctrl_c_is_reported_with_what_stays_and_exit_status_130(tmp_path, capsys, monkeypatch):
    """Ctrl-C during a command (here precompute, stopped inside its run): one line saying what
    stays and how to continue, status 130 as a shell reports SIGINT; no traceback."""
    from spinfits.cli import precompute

    def interrupted(configs):
        raise KeyboardInterrupt

    monkeypatch.setattr(precompute, "run_precompute_datasets", interrupted)
    status = main(
        [
            "precompute",
            "--dataset",
            str(tmp_path / "d.npz"),
            "--store",
            str(tmp_path / "s"),
            "--model-dir",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err
    assert status == 130
    assert err.strip() == (
        "spinfits precompute: interrupted (Ctrl-C); what was committed before stays in the store: "
        "rerun the same command to continue"
    )


def test_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out == f"spinfits {version('spinfits')}\n"


def test_help_texts_carry_no_rst_markup():
    """--help shows descriptions and option help as plain text: no ``literal`` or :role: markup."""
    import argparse
    import re

    from spinfits.cli import build_parser

    found = []

    def walk(parser, path):
        texts = [("description", parser.description), ("epilog", parser.epilog)]
        texts += [(str(action.option_strings or action.dest), action.help) for action in parser._actions]
        found.extend(f"{path} {where}" for where, text in texts if text and re.search(r"``|:\w+:`", text))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}")

    walk(build_parser(), "spinfits")
    assert not found, found


def test_data_info_lists_members_3d_joints_and_missing_images(shared_data, tmp_path, capsys):
    npz = shared_data / "h36m_spin_sample.npz"
    assert main(["data", "info", str(npz), "--images", str(shared_data / "h36m_images")]) == 0
    out = capsys.readouterr().out
    assert "members: imgname (4,) <U67, center (4, 2) float64" in out and "S (4, 24, 4) float64" in out
    assert "3D joints (S (4, 24, 4)): present, 4 rows with has_pose_3d" in out
    assert f"images: all 4 present in {shared_data / 'h36m_images'}" in out
    assert main(["data", "info", str(npz), "--images", str(tmp_path)]) == 0
    assert (
        f"images: 4 of 4 missing in {tmp_path} ('S1_Directions_1.54138969_000001.jpg',"
        in capsys.readouterr().out
    )
    assert main(["data", "info", str(shared_data / "lsp_train_keypoints.npz")]) == 0
    assert "3D joints (S): absent" in capsys.readouterr().out


def test_store_info_states_the_loss_statistic_and_unit(tmp_path, capsys):
    from spinfits.store import BodyModelInfo, FitStore

    FitStore.create(tmp_path / "st", BodyModelInfo("abc")).create_dataset("d", 3, dataset_fingerprint="f")
    assert main(["store", "info", str(tmp_path / "st")]) == 0
    assert "median loss (px²)" in capsys.readouterr().out
