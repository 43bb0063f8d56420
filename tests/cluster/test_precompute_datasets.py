"""One precompute job for several datasets: the same store as one job per dataset, a resume
point per dataset, and every file checked before any work."""

from functools import partial

import numpy as np
import pytest
from precompute_helpers import precompute_config

from spinfits.cli import main
from spinfits.cluster.precompute import run_precompute, run_precompute_datasets
from spinfits.errors import InputError
from spinfits.store import FitStore
from spinfits.store.writer import StoreWriter

#: Rows of each small dataset (tiny: the Ray tests must stay fast).
ROWS = 24


#: commits only when a dataset is complete and at the end
config = partial(precompute_config, shard_size=8, commit_every_s=1e9)


@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory, small_dataset):
    """Two datasets cut from the session's synthetic people: "first" (rows 0-23, row 5 without
    keypoints) and "second" (rows 24-47)."""
    folder = tmp_path_factory.mktemp("two_datasets")
    arrays = dict(np.load(small_dataset))
    paths = []
    for index, name in enumerate(("first", "second")):
        rows = slice(index * ROWS, (index + 1) * ROWS)
        path = folder / f"{name}.npz"
        np.savez(path, **{key: value[rows] if value.ndim else value for key, value in arrays.items()})
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def one_job_per_dataset(tmp_path_factory, local_ray, two_datasets, standin_dir):
    """The reference: one job per dataset, one after the other, on one store."""
    store = tmp_path_factory.mktemp("separate") / "store"
    for path in two_datasets:
        run_precompute(config(path, store, standin_dir))
    opened = FitStore.open(store)
    return {name: opened.read(name) for name in ("first", "second")}


def assert_same_fits(fits, reference):
    assert np.array_equal(np.isfinite(fits.loss), np.isfinite(reference.loss))
    finite = np.isfinite(fits.loss)
    np.testing.assert_allclose(fits.loss[finite], reference.loss[finite], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fits.pose[finite], reference.pose[finite], rtol=1e-3, atol=1e-3)


def test_one_job_for_two_datasets_equals_two_jobs(
    tmp_path, local_ray, two_datasets, standin_dir, one_job_per_dataset
):
    store = tmp_path / "store"
    summaries = run_precompute_datasets([config(path, store, standin_dir) for path in two_datasets])
    assert [s.dataset for s in summaries] == ["first", "second"]
    assert [s.rows_planned for s in summaries] == [ROWS - 1, ROWS]  # first's row 5: no keypoints
    assert [s.rows_fitted for s in summaries] == [ROWS - 1, ROWS]
    assert summaries[0].rows_unfittable == 1 and summaries[1].rows_unfittable == 0
    opened = FitStore.open(store)
    for name in ("first", "second"):
        assert_same_fits(opened.read(name), one_job_per_dataset[name])
    messages = [version.message for version in opened.history.log()]
    assert any(m.endswith("dataset first complete") for m in messages)  # its resume point


def test_a_job_stopped_between_datasets_resumes_with_the_next(
    tmp_path, local_ray, two_datasets, standin_dir, one_job_per_dataset, monkeypatch
):
    """Stopped (as a kill would) right after the first dataset's commit: the rerun fits only
    what the second dataset still lacks, and not one row of the first."""
    original = StoreWriter.flush

    def flush_then_stop(self, note=None):
        tip = original(self, note)
        if note and note.endswith("complete"):
            raise KeyboardInterrupt
        return tip

    monkeypatch.setattr(StoreWriter, "flush", flush_then_stop)
    store = tmp_path / "store"
    configs = [config(path, store, standin_dir) for path in two_datasets]
    with pytest.raises(KeyboardInterrupt):
        run_precompute_datasets(configs)
    monkeypatch.undo()
    stopped = FitStore.open(store)
    first_after_stop = stopped.read("first")
    assert np.isfinite(first_after_stop.loss).sum() == ROWS - 1  # complete and committed
    second_missing = int((~np.isfinite(stopped.read("second").loss)).sum())
    assert second_missing > 0, "the job must stop before the second dataset is complete"

    first, second = run_precompute_datasets(configs)
    assert first.rows_planned == 0 and first.rows_fitted == 0  # not refitted
    assert second.rows_planned == second.rows_fitted == second_missing
    opened = FitStore.open(store)
    np.testing.assert_array_equal(opened.read("first").loss, first_after_stop.loss)
    for name in ("first", "second"):
        assert_same_fits(opened.read(name), one_job_per_dataset[name])


def test_a_bad_second_dataset_stops_the_job_before_any_work(tmp_path, two_datasets, standin_dir):
    bad = tmp_path / "bad.npz"
    arrays = dict(np.load(two_datasets[1]))
    arrays["scale"] = arrays["scale"][:-1]  # one row short
    np.savez(bad, **arrays)
    store = tmp_path / "store"
    with pytest.raises(InputError, match="bad.npz"):
        run_precompute_datasets(
            [config(two_datasets[0], store, standin_dir), config(bad, store, standin_dir)]
        )
    assert not FitStore.exists(str(store))  # nothing created for the good first one


def test_datasets_of_one_job_must_agree_and_have_distinct_names(tmp_path, two_datasets, standin_dir):
    store = tmp_path / "store"
    first = config(two_datasets[0], store, standin_dir)
    with pytest.raises(InputError, match="share every setting but .* shard_size is 8 .* and 16"):
        run_precompute_datasets([first, config(two_datasets[1], store, standin_dir, shard_size=16)])
    with pytest.raises(InputError, match="two datasets of the job have the store name 'first'"):
        run_precompute_datasets([first, config(two_datasets[1], store, standin_dir, dataset_name="first")])
    with pytest.raises(InputError, match="no dataset given"):
        run_precompute_datasets([])


def test_the_command_line_takes_one_name_per_dataset(tmp_path, two_datasets, standin_dir, capsys):
    common = ["precompute", "--store", str(tmp_path / "store"), "--model-dir", str(standin_dir)]
    for path in two_datasets:
        common += ["--dataset", str(path)]
    assert main([*common, "--name", "only-one"]) != 0
    assert "--name was given 1 time(s) for 2 --dataset" in capsys.readouterr().err
    assert main([*common, "--init", str(tmp_path / "fits.npy")]) != 0
    assert "a SPIN fits file belongs to one dataset" in capsys.readouterr().err
