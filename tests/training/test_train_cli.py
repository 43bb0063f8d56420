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
    (tmp_path / "runs" / "spin").mkdir(parents=True)
    _fails(args(), capsys, "already exists", "--resume")


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--workers", "0", "--workers must be >= 1"),
        ("--steps", "0", "--steps must be >= 1"),
        ("--batch", "0", "--batch (batch_size) must be >= 1, got 0"),
        ("--lr", "-1", "--lr (learning_rate) must be > 0"),
        ("--run", "../x", "--run must be a plain folder name"),
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
