"""``spinfits train`` as a process, for the end-to-end training tests: started in a session
(process group) of its own, so a test can SIGKILL the driver together with the Ray it started;
polled for a condition, finished with its output, and the Ray workers a killed driver leaves
behind waited out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from ray_nodes import is_alive

from spinfits.training.progress import read_progress


def start_train(argv: list[str]) -> subprocess.Popen:
    """``python -m spinfits.cli ARGV`` in a process group of its own, output captured."""
    return subprocess.Popen(
        [sys.executable, "-m", "spinfits.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def wait_for(process: subprocess.Popen, condition: Callable[[], bool], timeout: float = 240) -> bool:
    """Poll ``condition()`` every 0.2 s until it holds (True), or ``process`` ends or ``timeout``
    seconds pass (False)."""
    deadline = time.time() + timeout
    while process.poll() is None and time.time() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def finish(process: subprocess.Popen, timeout: float = 300) -> str:
    """The output of ``process``, which must end within ``timeout`` s with status 0."""
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"training did not finish in time:\n{output[-3000:]}")
    assert process.returncode == 0, output[-3000:]
    return output


def wait_until_workers_are_gone(progress: Path, workers: int = 2, timeout: float = 60) -> None:
    """Ray's workers die a moment after the driver that started their Ray: wait until every
    worker process that wrote to the run's ``progress`` folder has, so that none writes after."""
    pids = {r["pid"] for rank in range(workers) for r in read_progress(progress / f"rank{rank}.jsonl")}
    deadline = time.time() + timeout
    while alive := [pid for pid in pids if is_alive(pid)]:
        assert time.time() < deadline, f"training workers {alive} outlived their driver by {timeout} s"
        time.sleep(0.2)
