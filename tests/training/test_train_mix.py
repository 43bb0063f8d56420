"""``spinfits train`` on SPIN's kind of mix, end to end: the synthetic set and the four real
Human3.6M frames (real JPEGs decoded by DataLoader workers, ground-truth SMPL and 3D joints),
started from a checkpoint in SPIN's layout; one of its workers killed and recovered by Ray Train
from the last checkpoint, then the driver killed and the run resumed from its saved config.

The samples each step draws are recorded in the progress files; they must equal what
``MixedSampler`` draws for (seed, step, rank) before and after each kill. The store's fits start
rough (the ground truth with noise), so SMPLify in the loop has something to improve.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from train_processes import finish, start_train, wait_for, wait_until_workers_are_gone

from spinfits.fitting.data.dataset import load_spin_npz
from spinfits.fitting.data.mean_params import spin_mean_params_path
from spinfits.store import FitStore, Source
from spinfits.training.checkpoint import latest_checkpoint_step
from spinfits.training.mixture import MixedSampler, spin_partition
from spinfits.training.progress import read_progress
from spinfits.training.regressor import HMR, RegressorConfig

pytestmark = pytest.mark.slow  # a training run starts Ray (Ray Train)

BATCH, WORKERS, EVERY = 4, 2, 3


@pytest.fixture
def mixed_store(rough_store, shared_data) -> FitStore:
    """The training set's rough store plus an empty group for the H36M frames."""
    h36m = load_spin_npz(shared_data / "h36m_spin_sample.npz")
    rough_store.create_dataset("h36m", len(h36m), dataset_fingerprint=h36m.fingerprint)
    rough_store.commit("h36m group")
    return rough_store


@pytest.fixture
def spin_checkpoint(tmp_path) -> Path:
    """A checkpoint in SPIN's layout (``model`` + ``optimizer`` entries, SPIN's key names)."""
    torch.manual_seed(5)
    model = HMR(str(spin_mean_params_path()), RegressorConfig(backbone="small"))
    path = tmp_path / "model_checkpoint.pt"
    torch.save({"model": model.state_dict(), "optimizer": {}, "epoch": 3, "total_step_count": 1000}, path)
    return path


def _command(training_set, store, standin_dir, shared_data, runs, checkpoint, steps) -> list[str]:
    return [
        *("train", "--dataset", str(training_set.path), str(training_set.images)),
        *("--dataset", str(shared_data / "h36m_spin_sample.npz"), str(shared_data / "h36m_images"), "h36m"),
        *("--store", str(store.location), "--model-dir", str(standin_dir), "--runs-dir", str(runs)),
        *("--run", "mix", "--pretrained", str(checkpoint), "--backbone", "small", "--input-res", "64"),
        *("--workers", str(WORKERS), "--threads-per-worker", "1", "--loader-workers", "1"),
        *("--steps", str(steps), "--batch", str(BATCH), "--lr", "1e-4"),
        *("--checkpoint-every", str(EVERY), "--refresh-every", "2", "--commit-every", "0.5"),
        *("--summary-every", "1", "--images-every", "3"),
    ]


def _expected(step: int, rank: int, sizes: list[int]) -> tuple[list[int], list[int]]:
    """The samples (datasets, rows) worker ``rank`` must train on at ``step``, grouped by dataset."""
    weights = spin_partition(["people", "h36m"], sizes)
    drawn = MixedSampler(sizes, weights, BATCH, WORKERS, seed=0).draw(step, rank)
    order = np.argsort(drawn.dataset, kind="stable")
    return drawn.dataset[order].tolist(), drawn.rows[order].tolist()


def test_mix_from_a_spin_checkpoint_recovers_a_killed_worker_then_resumes_from_its_config(
    tmp_path, training_set, mixed_store, standin_dir, shared_data, spin_checkpoint
):
    before = mixed_store.read("people").loss.copy()
    # 6 checkpoints: the worker killed after the first, the driver after the next one after
    # the recovery; the run must not reach its end before either kill
    runs, steps = tmp_path / "runs", 6 * EVERY
    run_dir = runs / "mix"
    progress = run_dir / "progress"
    argv = _command(training_set, mixed_store, standin_dir, shared_data, runs, spin_checkpoint, steps)
    process = start_train(argv)

    # 1. Rank 1's process SIGKILLed once it is past the first registered checkpoint: Ray Train
    # restarts it at that checkpoint; then the driver and the Ray it started are SIGKILLed after
    # the next checkpoint.
    registered, killed = {}, []

    def kill_rank1_after_first_checkpoint() -> bool:
        step, records = latest_checkpoint_step(run_dir), read_progress(progress / "rank1.jsonl")
        if step and records and records[-1]["step"] > step:
            registered["step"] = step
            os.kill(records[-1]["pid"], signal.SIGKILL)
            killed.append(records[-1]["pid"])
            return True
        return False

    def recovered_and_checkpointed() -> bool:
        pids = {r["pid"] for r in read_progress(progress / "rank1.jsonl")}
        return len(pids) == 2 and (latest_checkpoint_step(run_dir) or 0) > registered["step"]

    worker_killed = wait_for(process, kill_rank1_after_first_checkpoint, timeout=300)
    checkpointed = worker_killed and wait_for(process, recovered_and_checkpointed, timeout=300)
    if checkpointed:
        os.killpg(process.pid, signal.SIGKILL)  # the driver and the Ray it started
    output, _ = process.communicate()
    assert worker_killed, f"rank 1 was never seen past a registered checkpoint:\n{output[-3000:]}"
    assert checkpointed, f"no checkpoint after the worker's recovery:\n{output[-3000:]}"
    wait_until_workers_are_gone(progress, WORKERS)

    # Rank 1 restarted in a new process at the checkpoint's step (or a later one).
    records = read_progress(progress / "rank1.jsonl")
    pids = list(dict.fromkeys(r["pid"] for r in records))
    assert pids.index(killed[0]) == 0 and len(pids) == 2, pids
    recovered_at = next(r["step"] for r in records if r["pid"] == pids[1])
    assert recovered_at == registered["step"] or (
        recovered_at % EVERY == 0 and recovered_at > registered["step"]
    ), (recovered_at, registered)
    first_pids = {r["pid"] for rank in range(WORKERS) for r in read_progress(progress / f"rank{rank}.jsonl")}
    driver_killed = latest_checkpoint_step(run_dir)
    assert driver_killed < steps, "the kill came too late to test a resume"

    # 2. Resumed from the saved config (a flag after --config changes it): the run the config
    # describes, one step longer.
    saved = json.loads((run_dir / "config.json").read_text())
    assert [d["name"] for d in saved["datasets"]] == ["people", "h36m"] and saved["pretrained"]
    resume = ["train", "--config", str(run_dir / "config.json"), "--resume", "--steps", str(steps + 1)]
    output = finish(start_train(resume))
    assert f"last checkpoint: step {steps + 1}" in output

    sizes = [len(training_set.dataset), 4]
    for rank in range(WORKERS):
        records = read_progress(progress / f"rank{rank}.jsonl")
        resumed = [r for r in records if r["pid"] not in first_pids]
        assert resumed[0]["step"] == driver_killed and resumed[-1]["step"] == steps
        for record in records:  # before each kill and after the resume: the sampler's draws
            assert (record["datasets"], record["rows"]) == _expected(record["step"], rank, sizes), record[
                "step"
            ]
    drawn = [
        d
        for rank in range(WORKERS)
        for r in read_progress(progress / f"rank{rank}.jsonl")
        for d in r["datasets"]
    ]
    assert 0 < drawn.count(1) < len(drawn)  # both datasets were trained on
    for rank in range(WORKERS):  # each worker moved its reader to newer commits (saw the others' fits)
        snapshots = [r["snapshot"] for r in read_progress(progress / f"rank{rank}.jsonl")]
        assert len(set(snapshots)) >= 2, f"rank {rank} never refreshed its store view"

    # Improvements were committed by this run; no row got worse; the mean fit loss fell.
    store = FitStore.open(mixed_store.location)
    after = store.read("people")
    assert np.all(after.loss <= before)
    finite = np.isfinite(before)
    assert after.loss[finite].mean() < 0.5 * before[finite].mean()
    in_loop = after.source == int(Source.IN_LOOP)
    assert in_loop.sum() >= 3
    assert np.all(after.step[in_loop] >= 0) and np.all(after.step[in_loop] <= steps)
    training = [v for v in store.history.log() if v.metadata.get("source") == "training"]
    assert training and all(v.metadata["run"] == "mix" for v in training)
    assert all(v.message.startswith("training mix: steps") for v in training)
    # The real frames' group got in-loop fits of its own.
    h36m = store.read("h36m")
    assert np.isfinite(h36m.loss).any() and (h36m.source[np.isfinite(h36m.loss)] == int(Source.IN_LOOP)).all()

    # TensorBoard wrote events.
    events = list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert events and sum(e.stat().st_size for e in events) > 1000
