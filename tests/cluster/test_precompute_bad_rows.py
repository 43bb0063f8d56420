"""One bad row never stops a precompute job; bad settings are refused before any work."""

import os
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import ray
import torch
from precompute_helpers import precompute_config

from spinfits.cli import main
from spinfits.cluster import fitter_actor
from spinfits.cluster.fitter_actor import DIVERGED, NONFINITE_KEYPOINTS, FitterActor, remote_fitter_class
from spinfits.cluster.precompute import run_precompute
from spinfits.errors import InputError, StorageError
from spinfits.fitting.data.dataset import load_spin_npz
from spinfits.fitting.offline.config import default_offline_config
from spinfits.fitting.synthetic.people import SyntheticConfig, write_synthetic_dataset
from spinfits.store import FitStore


@pytest.fixture(scope="module")
def diverging_dataset(tmp_path_factory, standin_files):
    """24 synthetic people; row 3's ground-truth joints sit at 1e30 px (finite in float32, so the
    file loads, but no fit of them is finite)."""
    path = tmp_path_factory.mktemp("bad_rows") / "people.npz"
    write_synthetic_dataset(path, standin_files, SyntheticConfig(rows=24, seed=5))
    arrays = dict(np.load(path))
    arrays["part"][3, :, :2] = 1e30
    np.savez(path, **arrays)
    return path


config = partial(precompute_config, shard_size=8)


def test_a_row_that_raises_is_isolated_and_the_rest_of_the_shard_is_fitted(
    diverging_dataset, standin_dir, standin_files
):
    actor = FitterActor(str(standin_dir), default_offline_config(standin_files), "cpu", 1)
    keypoints = load_spin_npz(diverging_dataset).keypoints.copy()
    genuine_fit = actor.fitter.fit
    poison = keypoints[6, 30, 0]  # row 6 makes the solver raise, wherever it sits in a batch

    def fit(keypoints):
        if (keypoints[:, 30, 0] == poison).any():
            raise RuntimeError("solver blew up\nsecond line")
        return genuine_fit(keypoints)

    actor.fitter.fit = fit
    keypoints[9, 0, 0] = np.nan  # a row whose keypoints are not finite
    keypoints[9, 0, 2] = 1.0
    result = actor.fit_shard(np.arange(2, 12), keypoints[2:12])
    assert result.failed_rows.tolist() == [3, 6, 9]
    assert result.failed_reasons == (
        DIVERGED,
        "fitting raised RuntimeError: solver blew up",
        NONFINITE_KEYPOINTS,
    )
    assert np.isnan(result.loss[[1, 4, 7]]).all()
    good = np.delete(np.arange(10), [1, 4, 7])
    assert np.isfinite(result.loss[good]).all() and np.isfinite(result.pose[good]).all()
    with pytest.raises(ValueError, match=r"keypoints must be \(3, 49, 3\) for 3 rows"):
        actor.fit_shard(np.arange(3), keypoints[:2])


ILLEGAL_ADDRESS = "CUDA error: an illegal memory access was encountered\nCUDA kernel errors might be ..."


class _Ended(BaseException):
    """Stands in for the end of the actor's process (``fitter_actor.end_process``)."""


def test_a_cuda_error_ends_the_actor_instead_of_failing_rows(
    diverging_dataset, standin_dir, standin_files, monkeypatch
):
    """After an illegal address every later CUDA call fails: recording each row as failed would
    make reruns skip good rows. The actor's process ends (Ray restarts it, the shard is retried)."""
    actor = FitterActor(str(standin_dir), default_offline_config(standin_files), "cpu", 1)
    calls = []

    def fit(keypoints):
        calls.append(len(keypoints))
        raise torch.AcceleratorError(ILLEGAL_ADDRESS)

    actor.fitter.fit = fit
    ended = []
    monkeypatch.setattr(fitter_actor, "end_process", lambda status: ended.append(status) or sys.exit(status))
    keypoints = load_spin_npz(diverging_dataset).keypoints
    with pytest.raises(SystemExit):
        actor.fit_shard(np.arange(8), keypoints[:8])
    assert ended == [fitter_actor.DEVICE_FAILURE_EXIT] and calls == [8]  # at once, no row blamed


def test_out_of_memory_is_retried_on_halves_outside_the_except_block(
    diverging_dataset, standin_dir, standin_files
):
    """A shard too large for the device's memory is fitted in halves; each retry runs after the
    failed attempt's exception (and the tensors its traceback holds) is gone."""
    actor = FitterActor(str(standin_dir), default_offline_config(standin_files), "cpu", 1)
    genuine_fit = actor.fitter.fit
    handling = []

    def fit(keypoints):
        handling.append(sys.exc_info()[0])  # an exception being handled while this attempt runs
        if len(keypoints) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")
        return genuine_fit(keypoints)

    actor.fitter.fit = fit
    keypoints = load_spin_npz(diverging_dataset).keypoints
    rows = np.array([0, 1, 2, 4, 5, 6, 7, 8])
    result = actor.fit_shard(rows, keypoints[rows])
    assert result.failed_rows.size == 0 and np.isfinite(result.loss).all()
    assert len(handling) == 7 and set(handling) == {None}, handling  # 8 -> 4 + 4 -> 2 + 2 + 2 + 2


def test_ray_restarts_the_actor_and_retries_the_shard(
    tmp_path, local_ray, diverging_dataset, standin_dir, standin_files
):
    class CrashesOnce(FitterActor):  # defined here: Ray's workers get it by value
        """A fitter whose first process meets a CUDA error on its first shard (``marker``: a
        file made then, so the restarted process fits normally)."""

        def __init__(self, marker: str, *args) -> None:
            super().__init__(*args)
            genuine_fit = self.fitter.fit

            def fit(keypoints):
                if not os.path.exists(marker):
                    Path(marker).write_text(str(os.getpid()))
                    raise torch.AcceleratorError(ILLEGAL_ADDRESS)
                return genuine_fit(keypoints)

            self.fitter.fit = fit

    marker = tmp_path / "crashed"
    actor = remote_fitter_class(num_cpus=0, num_gpus=0, actor=CrashesOnce).remote(
        str(marker), str(standin_dir), default_offline_config(standin_files), "cpu", 1
    )
    keypoints = load_spin_npz(diverging_dataset).keypoints
    rows = np.array([0, 1, 2, 4])
    result = ray.get(actor.fit_shard.remote(rows, keypoints[rows]), timeout=120)
    assert marker.exists() and result.failed_rows.size == 0 and np.isfinite(result.loss).all()
    assert ray.get(actor.pid.remote()) != int(marker.read_text())  # fitted by the restarted process
    ray.kill(actor)


def test_failed_rows_are_recorded_and_skipped_until_retried(
    tmp_path, local_ray, diverging_dataset, standin_dir, capsys
):
    store = tmp_path / "store"
    summary = run_precompute(config(diverging_dataset, store, standin_dir))
    assert summary.rows_fitted == 24 and summary.rows_failed == 1
    assert summary.rows_improved == 23
    failures = FitStore.open(store).failures("people")
    assert np.flatnonzero(failures.mask).tolist() == [3] and failures.reason(3) == DIVERGED
    assert np.isfinite(np.delete(FitStore.open(store).read("people").loss, 3)).all()

    again = run_precompute(config(diverging_dataset, store, standin_dir))
    assert again.rows_planned == 0 and again.rows_known_failed == 1
    assert "1 rows failed in an earlier run (--retry-failed tries them again" in again.nothing_to_do

    assert main(["store", "info", str(store)]) == 0
    assert f"1  {DIVERGED}  (rows 3)" in capsys.readouterr().out

    retried = run_precompute(config(diverging_dataset, store, standin_dir, retry_failed=True))
    assert retried.rows_planned == 1 and retried.rows_failed == 1


def test_settings_are_checked_before_any_store_or_ray_work(tmp_path, diverging_dataset, standin_dir, capsys):
    store = tmp_path / "store"
    start = time.perf_counter()
    status = main(
        [
            "precompute",
            "--dataset",
            str(diverging_dataset),
            "--store",
            str(store),
            "--model-dir",
            str(standin_dir),
            "--name",
            "bad name!",
        ]
    )
    assert status == 2 and "dataset name must be 1-128 characters" in capsys.readouterr().err
    assert not store.exists()  # refused before an empty store was created

    as_file = tmp_path / "a_file"
    as_file.write_text("x")
    status = main(
        [
            "precompute",
            "--dataset",
            str(diverging_dataset),
            "--store",
            str(as_file),
            "--model-dir",
            str(standin_dir),
        ]
    )
    assert status == 2 and "is a file, not a store directory" in capsys.readouterr().err
    assert time.perf_counter() - start < 5  # no retries, no Ray


def test_invalid_file_stem_asks_for_a_name(tmp_path, diverging_dataset, standin_dir):
    odd = tmp_path / "my people.npz"
    odd.write_bytes(diverging_dataset.read_bytes())
    with pytest.raises(
        InputError, match=r"got 'my people'; pass a valid dataset_name \(the dataset file's stem"
    ):
        config(odd, tmp_path / "store", standin_dir)


def test_read_only_store_is_refused_before_ray_starts(small_filesystem, diverging_dataset, standin_dir):
    fs = small_filesystem("4m")
    FitStore.create(fs.path / "store", _body(standin_dir))
    fs.remount("ro")
    with pytest.raises(StorageError, match=r"cannot write to the store at .*store: .* is not writable"):
        run_precompute(config(diverging_dataset, fs.path / "store", standin_dir))


def test_every_row_unfittable_says_so(tmp_path, local_ray, standin_files, standin_dir, caplog):
    path = tmp_path / "hopeless.npz"
    write_synthetic_dataset(path, standin_files, SyntheticConfig(rows=6, seed=2))
    arrays = dict(np.load(path))
    arrays["openpose"][..., 2] = 0.0
    arrays["part"][:, 1:, 2] = 0.0  # one confident keypoint per row: too few to fit
    np.savez(path, **arrays)
    with caplog.at_level("INFO"):
        summary = run_precompute(config(path, tmp_path / "store", standin_dir))
    assert summary.rows_planned == 0 and summary.rows_unfittable == 6
    assert summary.nothing_to_do == "6 rows have too few confident keypoints to fit"
    assert "already holds a fit" not in caplog.text


def _body(model_dir):
    from spinfits.fitting.body.model_files import load_body_model_files
    from spinfits.store import BodyModelInfo

    files = load_body_model_files(model_dir)
    return BodyModelInfo(files.fingerprint, files.is_standin)
