"""``spinfits train`` end to end on Ray Train (2 CPU workers, small backbone, 64-px input):
store improvements attributed to the run, a killed worker recovered from the last checkpoint,
a killed driver resumed at the right step, and the store never regressing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from spinfits.cli import main
from spinfits.fitting.smplify.fit_loss import score_fits
from spinfits.store import FitStore, Proposals, Source
from spinfits.training.checkpoint import latest_checkpoint_step
from spinfits.training.progress import read_progress

pytestmark = pytest.mark.slow  # a training run starts Ray (Ray Train)

CHECKPOINT_EVERY = 6
DATASET = "people"  # the training_set fixture's dataset name in the store


@pytest.fixture
def rough_store(make_store, training_set, standin_files) -> FitStore:
    """A store whose fits are the ground truth with 0.25 rad of noise on every joint, so
    SMPLify in the loop has something to improve."""
    store = make_store(fitted=False)
    arrays = training_set.arrays
    rows = len(training_set.dataset)
    rng = np.random.default_rng(3)
    pose = (arrays["pose"] + rng.normal(0, 0.25, (rows, 72)) * (np.arange(72) >= 3)).astype(np.float32)
    betas = arrays["shape"].astype(np.float32)
    loss = score_fits(standin_files, pose, betas, training_set.dataset.keypoints)
    store.merge(
        DATASET,
        Proposals(
            rows=np.arange(rows),
            pose=pose,
            betas=betas,
            cam_t=arrays["gt_cam_t"].astype(np.float32),
            loss=loss,
            source=Source.OFFLINE,
            step=-1,
        ),
    )
    store.commit("rough fits")
    return store


def _command(training_set, store, standin_dir, runs: Path, steps: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "spinfits.cli",
        "train",
        "--dataset",
        str(training_set.path),
        "--images",
        str(training_set.images),
        "--store",
        str(store.location),
        "--model-dir",
        str(standin_dir),
        "--runs-dir",
        str(runs),
        "--run",
        "tiny",
        "--workers",
        "2",
        "--threads-per-worker",
        "1",
        "--steps",
        str(steps),
        "--batch",
        "4",
        "--backbone",
        "small",
        "--input-res",
        "64",
        "--ignore-gt-smpl",
        "--lr",
        "1e-4",
        "--checkpoint-every",
        str(CHECKPOINT_EVERY),
        "--refresh-every",
        "3",
        "--commit-every",
        "0.5",
        *extra,
    ]


def _run_until(command: list[str], progress: Path, condition, timeout: float = 240):
    """Start ``command``; call ``condition(records)`` on ``progress`` until it returns a pid to
    kill (it is then SIGKILLed) or the process ends. Returns (process, killed pid or None)."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    deadline, killed = time.time() + timeout, None
    while process.poll() is None and time.time() < deadline and killed is None:
        time.sleep(0.2)
        target = condition(read_progress(progress))
        if target is not None:
            os.kill(target, signal.SIGKILL)
            killed = target
    return process, killed


def _finish(process: subprocess.Popen, timeout: float = 240) -> str:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"training did not finish in time:\n{output[-3000:]}")
    assert process.returncode == 0, output[-3000:]
    return output


def test_killed_worker_is_recovered_and_store_improves(tmp_path, training_set, rough_store, standin_dir):
    before = rough_store.read(DATASET).loss.copy()
    runs, steps = tmp_path / "runs", 18
    progress = runs / "tiny" / "progress"

    registered = {}

    def kill_rank1_after_first_checkpoint(records):
        step = latest_checkpoint_step(runs / "tiny")
        if step and records and records[-1]["step"] > step:
            registered["step"] = step
            return records[-1]["pid"]
        return None

    process, killed = _run_until(
        _command(training_set, rough_store, standin_dir, runs, steps),
        progress / "rank1.jsonl",
        kill_rank1_after_first_checkpoint,
    )
    output = _finish(process)
    assert killed is not None, "rank 1 was never seen past a registered checkpoint"

    # Rank 1 restarted in a new process at the checkpoint's step, and ran to the end.
    records = read_progress(progress / "rank1.jsonl")
    pids = list(dict.fromkeys(r["pid"] for r in records))
    assert pids.index(killed) == 0 and len(pids) == 2, pids
    resumed_at = next(r["step"] for r in records if r["pid"] == pids[1])
    assert resumed_at == registered["step"] or (
        resumed_at % CHECKPOINT_EVERY == 0 and resumed_at > registered["step"]
    )
    assert max(r["step"] for r in records) == steps - 1
    assert f"last checkpoint: step {steps}" in output

    # Improvements were committed by this run; no row got worse; the mean fit loss fell.
    after = FitStore.open(rough_store.location).read(DATASET)
    assert np.all(after.loss <= before)
    finite = np.isfinite(before)
    assert after.loss[finite].mean() < 0.5 * before[finite].mean()
    in_loop = after.source == int(Source.IN_LOOP)
    assert in_loop.sum() >= 3
    assert np.all(after.step[in_loop] >= 0) and np.all(after.step[in_loop] < steps)
    commits = [
        v for v in FitStore.open(rough_store.location).history.log() if v.metadata.get("source") == "training"
    ]
    assert commits and all(v.metadata["run"] == "tiny" for v in commits)
    assert all(v.message.startswith("training tiny: steps") for v in commits)

    # Each worker moved its reader to newer commits during the run (it saw the others' fits).
    for rank in (0, 1):
        snapshots = [r["snapshot"] for r in read_progress(progress / f"rank{rank}.jsonl")]
        assert len(set(snapshots)) >= 2, f"rank {rank} never refreshed its store view"


def test_killed_driver_resumes_at_the_checkpoint(tmp_path, training_set, rough_store, standin_dir, capsys):
    before = rough_store.read(DATASET).loss.copy()
    runs, steps = tmp_path / "runs", 5 * CHECKPOINT_EVERY
    progress = runs / "tiny" / "progress" / "rank0.jsonl"
    first = _command(training_set, rough_store, standin_dir, runs, steps)
    process = subprocess.Popen(
        first, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    deadline, killed = time.time() + 240, None
    while process.poll() is None and time.time() < deadline and killed is None:
        time.sleep(0.2)
        killed = latest_checkpoint_step(runs / "tiny")
        if killed is not None:
            os.killpg(process.pid, signal.SIGKILL)  # the driver and the Ray it started
    process.communicate()
    assert killed is not None, "the run never registered a checkpoint"
    seen = -1
    while len(read_progress(progress)) != seen:  # Ray's workers die a moment after their driver
        seen = len(read_progress(progress))
        time.sleep(3)
    killed = latest_checkpoint_step(runs / "tiny")
    killed_at = max(r["step"] for r in read_progress(progress))
    assert killed_at < steps - 1, "the kill came too late to test a resume"

    # Without --resume the run is refused; with it, it continues at the checkpoint's step.
    assert main(first[3:]) == 2
    output = _finish(
        subprocess.Popen(
            first + ["--resume"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    )
    records = read_progress(progress)
    pids = list(dict.fromkeys(r["pid"] for r in records))
    resumed = [r["step"] for r in records if r["pid"] == pids[-1]]
    assert resumed[0] == killed, (resumed[0], killed_at)
    assert resumed[-1] == steps - 1
    assert f"last checkpoint: step {steps}" in output
    assert np.all(FitStore.open(rough_store.location).read(DATASET).loss <= before)
    # Resuming with another regressor is refused with the run's settings in the message.
    other = [a if a != "64" else "96" for a in first[3:]] + ["--resume"]
    assert main(other) == 2
    assert (
        "was trained with --backbone small --input-res 64, but this run asks for --backbone small --input-res 96"
        in capsys.readouterr().err
    )
    # Once done, resuming again has nothing to do (and starts no Ray).
    assert main(first[3:] + ["--resume"]) == 0
    assert f"nothing to do: run tiny is already at step {steps}" in capsys.readouterr().out


def test_ctrl_c_stops_the_run_with_its_commits_kept_and_says_how_to_resume(
    tmp_path, training_set, rough_store, standin_dir
):
    """SIGINT to the driver (Ctrl-C): Ray Train aborts the run, the store writer commits what it
    had merged, and the command says so and exits 130 (as a shell reports SIGINT)."""
    runs, steps = tmp_path / "runs", 50 * CHECKPOINT_EVERY
    command = _command(training_set, rough_store, standin_dir, runs, steps)
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        deadline = time.time() + 240
        while process.poll() is None and time.time() < deadline:
            time.sleep(0.2)
            if latest_checkpoint_step(runs / "tiny") is not None:
                process.send_signal(signal.SIGINT)
                break
        output = process.communicate(timeout=120)[0]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, output[-3000:]
    assert "spinfits train: interrupted: training run 'tiny' was stopped" in output, output[-3000:]
    assert "rerun with --resume to continue" in output
    commits = [
        v for v in FitStore.open(rough_store.location).history.log() if v.metadata.get("run") == "tiny"
    ]
    assert commits and f"last {commits[0].snapshot_id}" in output  # the writer's last commit, named


def test_training_runs_as_a_submitted_job(ray_head, tmp_path, training_set, rough_store, standin_dir):
    """The cluster path: `ray job submit --working-dir . -- spinfits train ...` on a head node
    the test starts on loopback; checkpoints in --runs-dir, commits attributed to the run."""
    ray, env, address = ray_head
    runs, steps = tmp_path / "runs", CHECKPOINT_EVERY
    command = _command(training_set, rough_store, standin_dir, runs, steps)[3:]
    submit = [ray, "job", "submit", "--address", address, "--working-dir", ".", "--", "spinfits", *command]
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(submit, cwd=repo, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"last checkpoint: step {steps}" in done.stdout + done.stderr
    assert latest_checkpoint_step(runs / "tiny") == steps
    commits = [
        v for v in FitStore.open(rough_store.location).history.log() if v.metadata.get("run") == "tiny"
    ]
    assert commits
