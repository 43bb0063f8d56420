"""Inside a Ray job (``ray job submit``), relative output paths are refused before any work: they
would land in Ray's temporary copy of --working-dir and be lost. The job is told by the variable
Ray 2.60's job supervisor sets for the entrypoint (``RAY_JOB_CONFIG_JSON_ENV_VAR``); a real
submitted job is checked in test_job_submit.py."""

import json

import pytest

from spinfits.cli import main
from spinfits.cluster.ray_job import RAY_JOB_CONFIG_VARIABLE, current_ray_job

JOB = json.dumps(
    {
        "runtime_env": {"working_dir": "gcs://_ray_pkg_0123456789abcdef.zip"},
        "metadata": {"job_submission_id": "raysubmit_TEST", "job_name": "raysubmit_TEST"},
    }
)


def test_the_job_is_read_from_rays_entrypoint_variable():
    assert current_ray_job({}) is None
    job = current_ray_job({RAY_JOB_CONFIG_VARIABLE: JOB})
    assert (job.submission_id, job.working_dir) == ("raysubmit_TEST", "gcs://_ray_pkg_0123456789abcdef.zip")


def test_precompute_refuses_a_relative_store_in_a_ray_job(
    tmp_path, monkeypatch, capsys, small_dataset, standin_dir
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(RAY_JOB_CONFIG_VARIABLE, JOB)
    argv = ["precompute", "--dataset", str(small_dataset), "--model-dir", str(standin_dir)]
    assert main([*argv, "--store", "out/store"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(
        "spinfits precompute: error: --store: 'out/store' is a relative path, but this command runs as "
        "Ray job raysubmit_TEST, in Ray's temporary copy of its --working-dir"
    )
    assert "Give an absolute path on storage every node reaches" in error and "or an s3:// URL" in error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag", ["--store", "--runs-dir"])
def test_train_refuses_relative_outputs_in_a_ray_job(tmp_path, monkeypatch, capsys, flag):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(RAY_JOB_CONFIG_VARIABLE, JOB)
    paths = {"--store": str(tmp_path / "store"), "--runs-dir": str(tmp_path / "runs"), flag: "relative"}
    argv = ["train", "--dataset", "x.npz", "img", "--model-dir", str(tmp_path), *sum(paths.items(), ())]
    assert main(argv) == 2
    assert f"spinfits train: error: {flag}: 'relative' is a relative path" in capsys.readouterr().err
