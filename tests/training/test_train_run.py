"""``spinfits train`` end to end on Ray Train (2 CPU workers, small backbone, 64-px input): a run
stopped by Ctrl-C and one whose driver was killed each resumed at the right step (the last start
as a submitted Ray job), and the store never regressing. (A killed worker recovered is tested in
test_train_mix.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
from train_processes import start_train, wait_for, wait_until_workers_are_gone

from spinfits.cli import main
from spinfits.store import FitStore
from spinfits.training.checkpoint import latest_checkpoint_step
from spinfits.training.progress import read_progress

pytestmark = pytest.mark.slow  # a training run starts Ray (Ray Train)

CHECKPOINT_EVERY = 6
DATASET = "people"  # the training_set fixture's dataset name in the store


def _argv(training_set, store, standin_dir, runs: Path, steps: int, *extra: str) -> list[str]:
    return [
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


def test_a_run_stopped_by_ctrl_c_then_killed_resumes_at_its_checkpoints_as_a_submitted_job(
    ray_head, tmp_path, training_set, rough_store, standin_dir, capsys
):
    """One run started three times (each start a Ray of its own):

    1. Ctrl-C (SIGINT to the driver) after its first checkpoint: Ray Train aborts the run, the
       store writer commits what it had merged, and the command says so and exits 130 (as a
       shell reports SIGINT).
    2. ``--resume`` continues it at that checkpoint's step; the driver and the Ray it started
       are SIGKILLed after the next checkpoint. Rerunning without ``--resume`` is refused.
    3. ``--resume`` as a submitted job (the cluster path: ``ray job submit --working-dir . --
       spinfits train ...`` on a head node the test starts on loopback) continues at the killed
       run's checkpoint and trains to the end, its commits attributed to the run. Resuming with
       another regressor is then refused, and resuming once more has nothing to do.
    """
    before = rough_store.read(DATASET).loss.copy()
    # 4 checkpoints: the run killed after its second one must not reach the end before its
    # workers die (they go on for a few steps after their driver; with 3 they reached step 17)
    runs, steps = tmp_path / "runs", 4 * CHECKPOINT_EVERY
    progress = runs / "tiny" / "progress"
    argv = _argv(training_set, rough_store, standin_dir, runs, steps)

    def run_commits() -> list:
        log = FitStore.open(rough_store.location).history.log()
        return [v for v in log if v.metadata.get("run") == "tiny"]

    def starts() -> list[list[int]]:
        """The steps rank 0 ran, per start of the run (per worker process)."""
        records = read_progress(progress / "rank0.jsonl")
        pids = dict.fromkeys(r["pid"] for r in records)
        return [[r["step"] for r in records if r["pid"] == pid] for pid in pids]

    # 1. Ctrl-C after the first checkpoint.
    process = start_train(argv)
    try:
        checkpointed = wait_for(process, lambda: latest_checkpoint_step(runs / "tiny") is not None)
        if checkpointed:
            process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=120)[0]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert checkpointed, f"the run never registered a checkpoint:\n{output[-3000:]}"
    assert process.returncode == 130, output[-3000:]
    assert "spinfits train: interrupted: training run 'tiny' was stopped" in output, output[-3000:]
    assert "rerun with --resume to continue" in output
    commits = run_commits()
    assert commits and f"last {commits[0].snapshot_id}" in output  # the writer's last commit, named
    wait_until_workers_are_gone(progress)
    stopped = latest_checkpoint_step(runs / "tiny")
    assert stopped < steps, "the Ctrl-C came too late to test a resume"

    # 2. Resumed at that checkpoint; the driver SIGKILLed after the next one.
    process = start_train(argv + ["--resume"])
    checkpointed = wait_for(process, lambda: (latest_checkpoint_step(runs / "tiny") or 0) > stopped)
    if checkpointed:
        os.killpg(process.pid, signal.SIGKILL)  # the driver and the Ray it started
    output = process.communicate()[0]
    assert checkpointed, f"the resumed run never registered a checkpoint:\n{output[-3000:]}"
    wait_until_workers_are_gone(progress)
    killed = latest_checkpoint_step(runs / "tiny")
    second = starts()[-1]
    assert second[0] == stopped, (second[0], stopped)
    assert second[-1] < steps - 1, "the kill came too late to test a resume"
    capsys.readouterr()
    assert main(argv) == 2  # without --resume: refused
    assert "continue it from its latest checkpoint" in capsys.readouterr().err

    # 3. Resumed as a submitted job, to the end.
    ray, env, address = ray_head
    submit = [ray, "job", "submit", "--address", address, "--working-dir", ".", "--", "spinfits"]
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [*submit, *argv, "--resume"], cwd=repo, env=env, capture_output=True, text=True, timeout=400
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"last checkpoint: step {steps}" in done.stdout + done.stderr
    assert "commits by this run" in done.stdout + done.stderr  # the job's store writer reported
    assert latest_checkpoint_step(runs / "tiny") == steps
    assert len(starts()) == 3, starts()
    third = starts()[-1]
    assert third[0] == killed and third[-1] == steps - 1, (third, killed)
    # (its own commits may be none: the steps before it may have left no fit it could improve)
    assert all(v.message.startswith("training tiny: steps") for v in run_commits())
    assert np.all(FitStore.open(rough_store.location).read(DATASET).loss <= before)

    # Resuming with another regressor is refused with the run's settings in the message.
    other = [a if a != "64" else "96" for a in argv] + ["--resume"]
    assert main(other) == 2
    assert (
        "was trained with --backbone small --input-res 64, but this run asks for --backbone small --input-res 96"
        in capsys.readouterr().err
    )
    # Once done, resuming again has nothing to do (and starts no Ray).
    assert main(argv + ["--resume"]) == 0
    assert f"nothing to do: run tiny is already at step {steps}" in capsys.readouterr().out
