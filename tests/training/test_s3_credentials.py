"""S3 keys in training: never in the config's repr, never in what Ray ships to the workers and
the store writer, and refused (before Ray starts) when given explicitly."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray
from ray import cloudpickle

from spinfits.errors import InputError
from spinfits.store import S3Options
from spinfits.training.train_config import TrainConfig, TrainDataset
from spinfits.training.trainer import run_training, worker_config

KEY_ID, SECRET = "AKIAEXAMPLEKEYID", "wJalrXUtnFEMI-example-secret"
ENDPOINT = "http://127.0.0.1:9000"


def _config(tmp_path: Path, s3: S3Options) -> TrainConfig:
    return TrainConfig(
        datasets=(TrainDataset(tmp_path / "people.npz", tmp_path / "images"),),
        store="s3://fits/runs",
        model_dir=tmp_path / "model",
        runs_dir=tmp_path / "runs",
        s3=s3,
    )


def _keyed() -> S3Options:
    return S3Options(
        endpoint_url=ENDPOINT,
        allow_http=True,
        force_path_style=True,
        access_key_id=KEY_ID,
        secret_access_key=SECRET,
    )


def test_train_config_repr_hides_the_keys(tmp_path):
    text = repr(_config(tmp_path, _keyed()))
    assert SECRET not in text and KEY_ID not in text
    assert "secret_access_key='***'" in text and f"endpoint_url='{ENDPOINT}'" in text


def test_worker_config_carries_no_keys(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = TrainConfig(
        datasets=(TrainDataset(Path("people.npz"), Path("images")),),
        store="local-store",
        model_dir=Path("model"),
        s3=_keyed(),
    )
    shipped = worker_config(config)
    sent = cloudpickle.dumps({"config": shipped})  # as Ray serialises train_loop_config
    assert SECRET.encode() not in sent and KEY_ID.encode() not in sent
    assert shipped.s3 == S3Options(endpoint_url=ENDPOINT, allow_http=True, force_path_style=True)
    assert shipped.datasets[0].npz == tmp_path / "people.npz" and shipped.store == str(
        tmp_path / "local-store"
    )
    assert shipped.runs_dir == tmp_path / "runs" and shipped.model_dir == tmp_path / "model"
    assert worker_config(_config(tmp_path, None)).s3 is None


def test_explicit_keys_are_refused_before_ray_starts(tmp_path):
    ray_was_up = ray.is_initialized()
    with pytest.raises(InputError, match="explicit S3 keys") as error:
        run_training(_config(tmp_path, _keyed()))
    message = str(error.value)
    assert "AWS_ACCESS_KEY_ID" in message and "instance role" in message
    assert SECRET not in message and KEY_ID not in message
    assert ray.is_initialized() is ray_was_up  # refused before ray.init
    assert not (tmp_path / "runs").exists()
