"""Worker processes for the store's multi-process tests: ``python store_worker.py MODE ARGS...``.

Kept as a script run with ``subprocess`` (a fresh interpreter): icechunk's runtime does not
survive ``fork()``, so forked multiprocessing children would hang.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from spinfits.store import FitStore, Proposals, Source

N_ROWS = 400


def worker_batch(worker: int, index: int) -> Proposals:
    """The deterministic proposals of ``worker``'s ``index``-th batch (the test recomputes them)."""
    rng = np.random.default_rng([worker, index])
    m = 150
    return Proposals(
        rows=rng.integers(0, N_ROWS, m),
        pose=rng.standard_normal((m, 72)).astype(np.float32),
        betas=rng.standard_normal((m, 10)).astype(np.float32),
        cam_t=(rng.standard_normal((m, 3)) + [0.0, 0.0, 30.0]).astype(np.float32),  # in front of the camera
        loss=rng.random(m).astype(np.float32),
        source=Source.OFFLINE if worker % 2 else Source.IN_LOOP,
        step=index,
        time=1000.0 + worker,
    )


def wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.005)


def commit_loop(store_path: str, worker: int, batches: int, go_file: str) -> None:
    store = FitStore.open(store_path)
    wait_for(Path(go_file))
    for index in range(batches):
        store.merge("coco", worker_batch(worker, index))
        version = store.commit(f"worker {worker} batch {index}", who=f"worker-{worker}")
        print(
            "attempts", 0 if version is None else version.metadata["attempts"], flush=True
        )  # parsed by the test


def write_forever(store_path: str, started_file: str) -> None:
    store = FitStore.open(store_path)
    index = 0
    while True:
        store.merge("coco", worker_batch(99, index))
        index += 1
        if index == 1:
            Path(started_file).touch()


def commit_forever(store_path: str, started_file: str) -> None:
    """Merge batch k of worker 98 and commit it as ``batch k``, for k = 0, 1, ... until killed."""
    store = FitStore.open(store_path)
    index = 0
    while True:
        store.merge("coco", worker_batch(98, index))
        store.commit(f"batch {index}")
        index += 1
        if index == 1:
            Path(started_file).touch()


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "commit_loop":
        commit_loop(args[0], int(args[1]), int(args[2]), args[3])
    elif mode == "write_forever":
        write_forever(args[0], args[1])
    elif mode == "commit_forever":
        commit_forever(args[0], args[1])
    else:
        raise SystemExit(f"unknown mode {mode}")
