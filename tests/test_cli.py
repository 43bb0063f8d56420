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

    def interrupted(config):
        raise KeyboardInterrupt

    monkeypatch.setattr(precompute, "run_precompute", interrupted)
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
