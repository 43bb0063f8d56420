"""The cluster path: `ray job submit --working-dir . -- spinfits precompute ...` against a
head node started (and stopped) by the test on loopback."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spinfits.store import FitStore

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture
def ray_head(tmp_path):
    ray = shutil.which("ray", path=str(BIN)) or pytest.fail("the ray command is not installed")
    # a test cluster on loopback only; token authentication is for shared clusters
    env = dict(os.environ, RAY_AUTH_MODE="disabled", PATH=f"{BIN}:{os.environ['PATH']}")
    start = [ray, "start", "--head", "--node-ip-address=127.0.0.1", "--port=6391",
             "--dashboard-host=127.0.0.1", "--dashboard-port=8271", "--num-cpus=2",
             "--include-dashboard=true", "--disable-usage-stats"]
    subprocess.run(start, env=env, check=True, capture_output=True, timeout=120)
    try:
        yield ray, env, "http://127.0.0.1:8271"
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)


def test_precompute_runs_as_a_submitted_job(ray_head, tmp_path, small_dataset, standin_dir):
    ray, env, address = ray_head
    store = tmp_path / "store"
    submit = [ray, "job", "submit", "--address", address, "--working-dir", ".", "--",
              "spinfits", "precompute", "--dataset", str(small_dataset), "--store", str(store),
              "--model-dir", str(standin_dir), "--batch", "32"]
    done = subprocess.run(submit, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "succeeded" in done.stdout + done.stderr
    fits = FitStore.open(store).read("people")
    assert np.isfinite(fits.loss).sum() == 95  # every fittable row
