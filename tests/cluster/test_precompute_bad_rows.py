"""One bad row never stops a precompute job; bad settings are refused before any work."""

import time

import numpy as np
import pytest

from spinfits.cli import main
from spinfits.cluster.fitter_actor import DIVERGED, NONFINITE_KEYPOINTS, FitterActor
from spinfits.cluster.precompute import PrecomputeConfig, run_precompute
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


def config(dataset, store, model_dir, **overrides):
    base = dict(
        dataset=dataset,
        store=str(store),
        model_dir=model_dir,
        shard_size=8,
        show_progress=False,
        commit_every_s=0.0,
    )
    base.update(overrides)
    return PrecomputeConfig(**base)


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
