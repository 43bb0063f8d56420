"""The cluster path: `ray job submit --working-dir . -- spinfits precompute ...` against a
head node started (and stopped) by the test on loopback."""

import subprocess
from pathlib import Path

import numpy as np

from spinfits.store import FitStore

REPO = Path(__file__).resolve().parents[2]


def test_precompute_runs_as_a_submitted_job(ray_head, tmp_path, small_dataset, standin_dir):
    ray, env, address = ray_head
    store = tmp_path / "store"
    submit = [
        ray,
        "job",
        "submit",
        "--address",
        address,
        "--working-dir",
        ".",
        "--",
        "spinfits",
        "precompute",
        "--dataset",
        str(small_dataset),
        "--store",
        str(store),
        "--model-dir",
        str(standin_dir),
        "--shard-size",
        "32",
    ]
    done = subprocess.run(submit, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "succeeded" in done.stdout + done.stderr
    fits = FitStore.open(store).read("people")
    assert np.isfinite(fits.loss).sum() == 95  # every fittable row
    # a relative store would be written into Ray's temporary copy of the working folder: refused
    relative = [
        *submit[: submit.index("--store") + 1],
        "out/relative_store",
        *submit[submit.index("--store") + 2 :],
    ]
    done = subprocess.run(relative, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "--store: 'out/relative_store' is a relative path" in output, output[
        -3000:
    ]
    assert "runs as Ray job raysubmit_" in output and not (REPO / "out" / "relative_store").exists()
