"""spinfits precompute end to end on local Ray: resumable, fault tolerant, clear errors."""

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import ray
from precompute_helpers import precompute_config

from spinfits.cluster.precompute import FITTER_NAME_PREFIX, PrecomputeConfig, run_precompute
from spinfits.errors import InputError
from spinfits.fitting.data.dataset import load_spin_rows
from spinfits.store import FitStore

config = partial(precompute_config, shard_size=16)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, local_ray, small_dataset, standin_dir):
    """An uninterrupted run: the store every other run must end equal to."""
    store = tmp_path_factory.mktemp("reference") / "store"
    summary = run_precompute(config(small_dataset, store, standin_dir))
    return summary, FitStore.open(store).read("people")


def test_fills_every_fittable_row_and_commits(reference):
    summary, fits = reference
    assert summary.rows_planned == 95 and summary.rows_unfittable == 1
    assert summary.rows_fitted == 95 and summary.rows_improved == 95 - summary.rows_failed
    assert summary.commits >= 2  # commit_every_s=0: a commit per shard
    assert np.isinf(fits.loss[5])  # no keypoints: no fit
    assert np.isfinite(np.delete(fits.loss, 5)).all()
    assert np.median(fits.loss[np.isfinite(fits.loss)]) < 30
    assert "STAND-IN" in summary.body_model


def test_second_run_does_nothing_and_says_so(tmp_path, local_ray, small_dataset, standin_dir, reference):
    store = tmp_path / "store"
    shutil.copytree(reference[0].store, store)  # the store of a finished run
    tip = FitStore.open(store).tip()
    again = run_precompute(config(small_dataset, store, standin_dir))
    assert again.rows_planned == 0 and again.rows_fitted == 0
    assert again.nothing_to_do and "hold a fit" in again.nothing_to_do  # the command line prints it
    assert FitStore.open(store).tip() == tip  # no new commit


def _assert_equal_to_reference(fits, reference_fits):
    assert np.array_equal(np.isfinite(fits.loss), np.isfinite(reference_fits.loss))
    finite = np.isfinite(fits.loss)
    np.testing.assert_allclose(fits.loss[finite], reference_fits.loss[finite], rtol=0.05, atol=0.05)


def test_actor_killed_mid_run_loses_nothing(tmp_path, local_ray, small_dataset, standin_dir, reference):
    store = tmp_path / "store"
    outcome = {}
    runner = threading.Thread(
        target=lambda: outcome.update(
            summary=run_precompute(config(small_dataset, store, standin_dir, shard_size=8))
        )
    )
    earlier = set(ray.util.list_named_actors())  # an earlier run's actors may still be going away
    runner.start()
    killed = None
    deadline = time.time() + 120
    while killed is None and time.time() < deadline and runner.is_alive():
        names = [
            n for n in ray.util.list_named_actors() if n.startswith(FITTER_NAME_PREFIX) and n not in earlier
        ]
        if names:
            pid = ray.get(ray.get_actor(names[0]).pid.remote())
            time.sleep(1.0)  # let it get into its shards
            os.kill(pid, signal.SIGKILL)
            killed = pid
        time.sleep(0.1)
    runner.join(timeout=300)
    assert killed is not None, "the fitter actor was never seen alive"
    summary = outcome["summary"]
    assert summary.rows_fitted >= 95
    _assert_equal_to_reference(FitStore.open(store).read("people"), reference[1])


def test_driver_killed_mid_run_resumes(tmp_path, local_ray, small_dataset, standin_dir, reference):
    store = tmp_path / "store"
    command = [
        sys.executable,
        "-m",
        "spinfits",
        "precompute",
        "--dataset",
        str(small_dataset),
        "--store",
        str(store),
        "--model-dir",
        str(standin_dir),
        "--shard-size",
        "8",
        "--commit-every",
        "0",
    ]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    committed = 0
    while time.time() < deadline and driver.poll() is None:
        try:
            committed = sum("precompute" in v.message for v in FitStore.open(store).history.log())
        except Exception:  # the store may not exist yet
            committed = 0
        if committed >= 2:
            break
        time.sleep(0.2)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    partial = FitStore.open(store).read("people")
    fitted_before = int(np.isfinite(partial.loss).sum())
    assert 0 < fitted_before < 95, "kill the driver mid-run"
    resumed = run_precompute(config(small_dataset, store, standin_dir))
    assert resumed.rows_planned == 95 - fitted_before  # only what was not committed
    _assert_equal_to_reference(FitStore.open(store).read("people"), reference[1])


def test_bad_inputs_fail_before_any_work(tmp_path, small_dataset, standin_dir):
    store = tmp_path / "store"
    with pytest.raises(InputError, match="does not exist"):
        run_precompute(config(tmp_path / "missing.npz", store, standin_dir))
    with pytest.raises(InputError, match="model directory .* does not exist"):
        run_precompute(config(small_dataset, store, tmp_path / "no-model"))
    assert not store.exists()  # nothing was created
    not_a_store = tmp_path / "file.txt"
    not_a_store.write_text("x")
    with pytest.raises(InputError, match="is a file, not a store directory"):
        run_precompute(config(small_dataset, not_a_store, standin_dir))
    assert not_a_store.read_text() == "x"


def test_wrong_model_for_the_store_is_refused(
    tmp_path, local_ray, small_dataset, standin_dir, other_model_copy, reference
):
    store = tmp_path / "store"
    shutil.copytree(reference[0].store, store)  # fits of the stand-in
    other = other_model_copy(standin_dir)
    tip = FitStore.open(store).tip()
    with pytest.raises(InputError, match="fits of different body models must not mix"):
        run_precompute(config(small_dataset, store, other))
    assert FitStore.open(store).tip() == tip


def test_other_file_under_the_same_name_is_refused(
    tmp_path, local_ray, small_dataset, standin_dir, standin_files, reference
):
    from spinfits.fitting.synthetic.people import SyntheticConfig, write_synthetic_dataset

    store = tmp_path / "store"
    shutil.copytree(reference[0].store, store)  # fits of small_dataset, named "people"
    other = write_synthetic_dataset(tmp_path / "people.npz", standin_files, SyntheticConfig(rows=10, seed=1))
    with pytest.raises(InputError, match="was made from another file.*--name"):
        run_precompute(config(other, store, standin_dir))


def test_two_jobs_on_one_store_lose_no_improvement(tmp_path, small_dataset, standin_dir, reference):
    """Two precompute jobs started at once on a fresh store: both commit, the store ends
    with a fit for every fittable row, each no worse than an uninterrupted run's."""
    store = tmp_path / "store"
    command = [
        sys.executable,
        "-m",
        "spinfits",
        "precompute",
        "--dataset",
        str(small_dataset),
        "--store",
        str(store),
        "--model-dir",
        str(standin_dir),
        "--shard-size",
        "8",
        "--commit-every",
        "0",
        "--threads-per-worker",
        "1",
    ]
    jobs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [job.communicate(timeout=400)[0] for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], [output[-2000:] for output in outputs]
    opened = FitStore.open(store)
    fits = opened.read("people")
    _assert_equal_to_reference(fits, reference[1])
    precompute_commits = [v for v in opened.history.log() if v.message.startswith("precompute")]
    assert len(precompute_commits) >= 2
    assert sum(v.rows_improved for v in precompute_commits) >= 95


def test_refine_from_spin_static_fits(tmp_path, local_ray, small_dataset, standin_dir):
    """--init FILE.npy: SPIN static fits (N, 82) are what SMPLify starts from."""
    raw = np.load(small_dataset)
    static = np.concatenate([raw["pose"], raw["shape"]], axis=1)
    static[:, 72] = 3.0  # a tall start: refinement keeps much of it, a fit from scratch none
    fits_path = tmp_path / "people_fits.npy"
    np.save(fits_path, static)
    store = tmp_path / "store"
    summary = run_precompute(config(small_dataset, store, standin_dir, init=str(fits_path)))
    assert summary.rows_fitted == 95
    fits = FitStore.open(store).read("people")
    finite = np.isfinite(fits.loss)
    assert finite.sum() == 95
    assert fits.betas[finite, 0].mean() > 1.5  # from scratch it is about 0 (the data's mean)
    with pytest.raises(InputError, match=r"expected SPIN's static fits, a finite \(96, 82\) array"):
        np.save(fits_path, static[:, :72])
        run_precompute(config(small_dataset, store, standin_dir, init=str(fits_path)))
    with pytest.raises(InputError, match="init must be 'offline', 'store' or a SPIN"):
        config(small_dataset, store, standin_dir, init="bogus")


def test_an_interrupted_run_commits_what_it_merged(
    tmp_path, local_ray, small_dataset, standin_dir, monkeypatch
):
    """A failure (or Ctrl-C) mid-run: the shards merged so far are committed, not lost."""
    merges = []
    original = FitStore.merge

    def merge_then_fail(self, dataset, proposals, **kwargs):
        if len(merges) == 2:
            raise KeyboardInterrupt
        merges.append(len(proposals.rows))
        return original(self, dataset, proposals, **kwargs)

    monkeypatch.setattr(FitStore, "merge", merge_then_fail)
    store = tmp_path / "store"
    with pytest.raises(KeyboardInterrupt):
        run_precompute(config(small_dataset, store, standin_dir, commit_every_s=1e9))
    monkeypatch.undo()
    opened = FitStore.open(store)
    assert opened.history.log()[0].message.endswith("interrupted after 32 rows")
    assert np.isfinite(opened.read("people").loss).sum() == sum(merges) == 32


def test_missing_init_file_is_told_by_field_and_by_flag(tmp_path, small_dataset, standin_dir, capsys):
    """The library names the config field; the command line tells it as the flag."""
    from spinfits.cli import main

    missing = tmp_path / "missing_fits.npy"
    with pytest.raises(InputError, match=r"^init: file .*missing_fits.npy does not exist"):
        run_precompute(PrecomputeConfig(small_dataset, str(tmp_path / "s1"), standin_dir, init=str(missing)))
    argv = ["precompute", "--dataset", str(small_dataset), "--store", str(tmp_path / "s2")]
    code = main([*argv, "--model-dir", str(standin_dir), "--init", str(missing)])
    err = capsys.readouterr().err
    assert code == 2
    assert "error: --init: file" in err and "missing_fits.npy does not exist" in err


@pytest.mark.parametrize(
    "overrides, resources, actors, threads",
    [
        ({}, {"CPU": 8.0}, 8, 1),  # the default fills the cluster with single-threaded actors
        ({"threads_per_worker": 2}, {"CPU": 8.0}, 4, 2),
        ({"threads_per_worker": 3}, {"CPU": 2.0}, 1, 3),  # at least one
        ({"gpus_per_worker": 0.5}, {"CPU": 16.0, "GPU": 2.0}, 4, 1),
        ({"workers": 3}, {"CPU": 64.0}, 3, max(1, (os.cpu_count() or 1) // 3)),
    ],
)
def test_actor_layout(tmp_path, overrides, resources, actors, threads):
    chosen = config(tmp_path / "d.npz", tmp_path / "store", tmp_path, **overrides)
    assert chosen.actor_count(resources) == actors and chosen.threads == threads


def test_actor_layout_errors_name_the_field(tmp_path):
    with pytest.raises(InputError, match=r"workers must be >= 1 or None \(fill the Ray cluster\), got 0"):
        config(tmp_path / "d.npz", tmp_path / "store", tmp_path, workers=0)
    with pytest.raises(InputError, match="threads_per_worker must be >= 1, got 0"):
        config(tmp_path / "d.npz", tmp_path / "store", tmp_path, threads_per_worker=0)


def test_solver_slots_size_the_actors_engine(tmp_path, standin_files, capsys):
    """--solver-slots: the rows SMPLify optimises together on each actor (a GPU wants thousands)."""
    from spinfits.cli import main

    plain = config(tmp_path / "d.npz", tmp_path / "store", tmp_path)
    assert plain.fitting_for(standin_files).smplify.batch_size == 256
    wide = config(tmp_path / "d.npz", tmp_path / "store", tmp_path, solver_slots=4096)
    assert wide.fitting_for(standin_files).smplify.batch_size == 4096
    assert wide.fitting_for(standin_files).smplify.solver == "lm"  # the rest as configured
    argv = ["precompute", "--dataset", "d.npz", "--store", "s", "--model-dir", ".", "--solver-slots", "0"]
    assert main(argv) == 2
    assert "--solver-slots must be >= 1 or None (the fitting config's), got 0" in capsys.readouterr().err


def _node(**resources):
    return {"NodeID": "n", "Alive": True, "Resources": resources}


def test_room_for_an_actor_is_checked_on_each_node():
    from spinfits.cluster.precompute import check_room

    check_room({"CPU": 1.0, "GPU": 1.0}, [_node(CPU=8.0), _node(CPU=8.0, GPU=2.0)])
    check_room({"CPU": 2.0}, [_node(CPU=2.0)])
    with pytest.raises(
        InputError, match=r"each needs CPU 1, GPU 0.5 on one node, and its 2 live node\(s\) have "
    ):
        check_room({"CPU": 1.0, "GPU": 0.5}, [_node(CPU=16.0), _node(CPU=4.0, GPU=0.0)])
    with pytest.raises(InputError, match=r"have CPU 4; lower threads_per_worker, or add larger nodes"):
        check_room({"CPU": 8.0}, [_node(CPU=4.0), {**_node(CPU=16.0), "Alive": False}])


def test_gpus_asked_of_a_cluster_without_any_fail_at_once(tmp_path, local_ray, small_dataset, standin_dir):
    """No node has a GPU: the actors could never start; the job says so instead of waiting."""
    start = time.perf_counter()
    with pytest.raises(
        InputError,
        match=r"no node of the Ray cluster can run a fitter actor: each needs CPU 1, GPU 1 "
        r"on one node, and its 1 live node\(s\) have CPU 2, GPU 0; start nodes with GPUs",
    ):
        run_precompute(config(small_dataset, tmp_path / "store", standin_dir, gpus_per_worker=1.0))
    assert time.perf_counter() - start < 60
    assert not [a for a in ray.util.list_named_actors() if a.startswith(FITTER_NAME_PREFIX)]


def test_planned_keypoints_hold_only_the_planned_rows():
    """What the driver keeps of the dataset after planning (the driver's memory as a whole is
    measured by bench/million_rows.py)."""
    from spinfits.cluster.precompute import PlannedKeypoints
    from spinfits.fitting.data.dataset import DatasetRows

    keypoints = np.arange(5 * 49 * 3, dtype=np.float32).reshape(5, 49, 3)
    dataset = DatasetRows(
        source=Path("d.npz"),
        n_rows=10,
        fingerprint="0",
        confident=np.full(10, 49, dtype=np.int16),
        rows=np.array([1, 2, 5, 7, 9]),
        keypoints=keypoints,
    )
    planned = PlannedKeypoints(np.array([7, 2, 5]), dataset)
    assert planned.keypoints.shape == (3, 49, 3) and planned.keypoints.base is None  # a copy, not a view
    assert np.array_equal(planned[np.array([5, 7])], keypoints[[2, 3]])
    assert np.array_equal(planned[np.array([2])], keypoints[[1]])


def test_a_rerun_reads_only_the_keypoints_of_rows_without_a_fit(
    tmp_path, reference, small_dataset, standin_dir, monkeypatch
):
    """On a store that holds a fit for every row but the unfittable row 5, the driver keeps the
    keypoints of row 5 alone, and plans from the store's losses."""
    from spinfits.cluster import precompute

    summary, _ = reference
    store = tmp_path / "store"
    shutil.copytree(summary.store, store)
    loaded = []

    def spy(*args, **kwargs):
        loaded.append(load_spin_rows(*args, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(precompute, "load_spin_rows", spy)
    again = run_precompute(config(small_dataset, store, standin_dir))
    assert [dataset.rows.tolist() for dataset in loaded] == [[5]]
    assert loaded[0].keypoints.shape == (1, 49, 3) and loaded[0].n_rows == 96
    assert again.rows_planned == 0 and again.rows_already_fitted == 95 and again.rows_unfittable == 1


def test_fits_the_store_would_refuse_are_named_with_their_reason():
    """The rows precompute records as failed before proposing, so a rerun skips them: a fit the
    store refuses (here a joint turned by 5 pi) with the store's reason."""
    from spinfits.cluster.precompute import _refused_by_the_store
    from spinfits.store import Proposals, Source

    pose = np.zeros((3, 72))
    pose[1, 9] = 5 * np.pi
    proposals = Proposals(
        rows=np.array([4, 8, 9]),
        pose=pose,
        betas=np.zeros((3, 10)),
        cam_t=np.tile([0.0, 0.0, 40.0], (3, 1)),
        loss=np.array([1.0, 2.0, 3.0], dtype=np.float32),
        source=Source.OFFLINE,
        step=-1,
    )
    rows, reasons = _refused_by_the_store(proposals)
    assert rows.tolist() == [8]
    assert reasons == ["the fit was refused by the store: joint rotation beyond 4 pi"]
    plausible = dataclasses.replace(proposals, pose=np.zeros((3, 72)))
    assert _refused_by_the_store(plausible)[0].size == 0


def _flip(path: Path, count: int = 16) -> None:
    data = bytearray(path.read_bytes())
    start = max(0, len(data) // 2 - count // 2)
    for k in range(start, min(start + count, len(data))):
        data[k] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_damaged_store_stops_precompute_with_the_verify_message(
    tmp_path, reference, small_dataset, standin_dir, capsys
):
    """Every chunk flipped: precompute stops before any work with the damage and the repair
    (verify, refit-corrupt, rollback) in one line, instead of reporting success; nothing is
    committed."""
    from spinfits.cli import main

    summary, _ = reference
    store = tmp_path / "store"
    shutil.copytree(summary.store, store)
    tip = FitStore.open(store).tip()
    for chunk in (store / "chunks").iterdir():
        _flip(chunk)
    command = ["precompute", "--dataset", str(small_dataset), "--store", str(store)]
    assert main([*command, "--model-dir", str(standin_dir)]) == 2
    err = capsys.readouterr().err
    assert "is damaged" in err and "fails its checksum" in err and err.count("\n") == 1, err
    assert "store verify" in err and "store rollback" in err
    assert FitStore.open(store).tip() == tip


def _store_with_corrupt_rows(path: Path, reference) -> FitStore:
    """The reference fits in a store of 16-row chunks (one commit folds them into the columns),
    then two rows whose update-log records are garbage (a pose of 1.6e38) and a flipped pose
    chunk."""
    from spinfits.store import Proposals
    from spinfits.store.update_log import append_records, level_state, open_level

    summary, good = reference
    source = FitStore.open(summary.store)
    info = source.dataset("people")
    store = FitStore.create(path, source.body_model)
    store.create_dataset("people", info.n_rows, dataset_fingerprint=info.dataset_fingerprint, chunk_rows=16)
    fitted = np.flatnonzero(np.isfinite(good.loss))
    store.merge("people", Proposals.from_fits(fitted, good.take(fitted)))
    store.commit("the reference fits")
    garbage = good.take(np.array([40, 41]))
    garbage.pose[:, 0] = 1.6e38
    session = store.repository.writable_session("main")
    state = level_state(open_level(session.store, "people", "recent"))
    append_records(session.store, "people", "recent", np.array([40, 41]), garbage, state, 64)
    session.commit("damage: implausible records")
    _flip(max((path / "chunks").iterdir(), key=lambda p: p.stat().st_size))  # a pose chunk
    return FitStore.open(path)


def test_refit_corrupt_refits_exactly_the_rows_verify_reports(
    tmp_path, local_ray, reference, small_dataset, standin_dir
):
    """verify finds the rows of a flipped chunk and two implausible rows; precompute
    --refit-corrupt resets exactly those in one commit (saying the others are untouched),
    refits them, and verify is clean after; every other row is as it was, bit for bit."""
    from spinfits.store.dataset_check import check_dataset
    from spinfits.store.verify import verify_store
    from spinfits.store.versions import snapshot_store

    _, good = reference
    path = tmp_path / "store"
    store = _store_with_corrupt_rows(path, reference)
    info = store.dataset("people")
    corrupt = check_dataset(snapshot_store(store.repository, store.tip()), info).corrupt
    span = np.setdiff1d(corrupt, [40, 41])
    assert {40, 41} <= set(corrupt.tolist()) and 0 < span.size <= 16
    assert not verify_store(store)[0].whole

    summary = run_precompute(config(small_dataset, path, standin_dir, refit_corrupt=True))
    fittable = np.setdiff1d(corrupt, [5])  # row 5 has no keypoints
    assert summary.rows_planned == len(fittable) and summary.rows_fitted == len(fittable)
    after = FitStore.open(path)
    assert verify_store(after)[0].whole
    messages = [version.message for version in after.history.log()]
    reset = next(m for m in messages if m.startswith("refit-corrupt:"))
    assert f"{len(corrupt)} corrupt rows of people" in reset
    assert f"the other {info.n_rows - len(corrupt)} rows untouched" in reset
    assert any(m.startswith("precompute people --refit-corrupt") for m in messages)
    fits = after.read("people")
    others = np.setdiff1d(np.arange(info.n_rows), corrupt)
    assert fits.take(others).equals(good.take(others))
    refitted = fits.take(fittable)
    assert np.isfinite(refitted.loss).all() and (np.abs(refitted.pose) < 10).all()
    again = run_precompute(config(small_dataset, path, standin_dir, refit_corrupt=True))
    assert again.rows_planned == 0 and "no corrupt rows" in again.nothing_to_do


def test_shard_and_slot_defaults_follow_the_device(tmp_path):
    """CPU: 256-row shards and the fitting config's slots; GPU: shards that fill the largest pool,
    and each actor chooses its slots for its share of the device (unless --solver-slots)."""
    paths = (tmp_path / "d.npz", tmp_path / "store", tmp_path)
    cpu = config(*paths, shard_size=None)
    assert (cpu.shard_rows, cpu.device_share) == (256, None)
    gpu = config(*paths, shard_size=None, gpus_per_worker=0.25)
    assert (gpu.shard_rows, gpu.device_share) == (8192, 0.25)
    assert config(*paths, shard_size=None, gpus_per_worker=2.0).device_share == 1.0
    chosen = config(*paths, shard_size=512, gpus_per_worker=0.25, solver_slots=1024)
    assert (chosen.shard_rows, chosen.device_share) == (512, None)


def test_an_actor_on_cuda_sizes_its_slots_from_the_device_memory(monkeypatch, standin_files):
    """The actor's own path (``slots_for_device``, run in ``FitterActor.__init__``), with the
    device's memory read from a stand-in for ``torch.cuda.get_device_properties``."""
    from spinfits.cluster import fitter_actor
    from spinfits.fitting.offline.config import default_offline_config

    asked = []
    monkeypatch.setattr(fitter_actor, "device_memory", lambda device: asked.append(str(device)) or 16 * 2**30)
    base = default_offline_config(standin_files)
    on_gpu = fitter_actor.slots_for_device(base, "cuda:1", 0.25)
    assert on_gpu.smplify.batch_size == 4096 and asked == ["cuda:1"]
    assert on_gpu.smplify.solver == base.smplify.solver  # only the slots change
    assert fitter_actor.slots_for_device(base, "cuda", None) is base  # --solver-slots given
    assert fitter_actor.slots_for_device(base, "cpu", 0.25) is base
    assert asked == ["cuda:1"]
