"""Two Ray nodes on this machine and the store on S3, end to end: precompute and training across
both nodes, a node lost mid-run, and an S3 endpoint that is unreachable, failing or lost mid-run.

The cluster is a head and a second node, 1 CPU each, started by ``ray start`` on loopback with
their own temp dirs (``tests/ray_nodes.py``); losing a node is SIGKILLing its raylet, agents and
workers. The S3 service is moto's server behind an endpoint the tests can break
(``tests/s3_service.py``). Every process reaches S3 with credentials from its environment (the AWS
chain), as on a cluster; jobs run as drivers connected to the cluster (``RAY_ADDRESS``), the way
``ray job submit`` runs them on the head. Select these tests with ``-m multinode``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from rough_fits import rough_fits
from s3_service import CREDENTIALS, FaultyEndpoint, MotoServer, moto_options

from spinfits.cli import main
from spinfits.fitting.data.dataset import load_spin_npz
from spinfits.store import BodyModelInfo, FitStore, S3Options
from spinfits.training.checkpoint import latest_checkpoint_step
from spinfits.training.progress import read_progress

pytestmark = [pytest.mark.multinode, pytest.mark.slow]

BUCKET = "fits"
DATASET = "people"  # small_dataset's name in a store
FITTABLE = 95  # small_dataset's rows with keypoints (row 5 has none)
SHARD = 4
#: A job that loses its S3 endpoint mid-run must stop within this (measured: 40-50 s; the bound is
#: two of icechunk's fixed retry cycles, at most about 51 s of backoff each, see store/location.py).
OUTAGE_BOUND_S = 110


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def endpoint():
    """The S3 endpoint (up at the start of every test: see ``healthy``)."""
    moto = MotoServer()
    faulty = None
    try:
        moto.create_bucket(BUCKET)
        faulty = FaultyEndpoint(moto.url)
        yield faulty
    finally:
        if faulty is not None:
            faulty.down()
        moto.stop()


@pytest.fixture
def healthy(endpoint):
    endpoint.up()
    yield endpoint
    endpoint.up()


@pytest.fixture(scope="module")
def cluster(ray_clusters):
    """Head and a second node, 1 CPU each, S3 credentials in their environment."""
    started = ray_clusters(CREDENTIALS)
    started.start_head(num_cpus=1)
    started.add_node("second", num_cpus=1)
    return started


@pytest.fixture
def two_nodes(cluster):
    """(head, other node), both alive: a node lost by an earlier test is replaced first."""
    live = cluster.live_nodes()
    head = next(node for node in live if node.head)
    others = [node for node in live if not node.head]
    other = others[0] if others else cluster.add_node(f"node{len(cluster.nodes)}", num_cpus=1)
    return head, other


def s3_options(endpoint: FaultyEndpoint) -> S3Options:
    """Options of the test process itself (the jobs get the same without keys, from flags)."""
    return moto_options(endpoint.url)


def s3_flags(endpoint: FaultyEndpoint) -> list[str]:
    region = CREDENTIALS["AWS_DEFAULT_REGION"]
    return ["--endpoint-url", endpoint.url, "--allow-http", "--force-path-style", "--region", region]


def precompute_args(dataset: Path, store: str, model_dir: Path) -> list[str]:
    # the same shards (no head start) and one thread per actor in every run, so fits can be
    # compared exactly
    return [
        "precompute",
        "--dataset",
        str(dataset),
        "--store",
        store,
        "--model-dir",
        str(model_dir),
        "--workers",
        "2",
        "--threads-per-worker",
        "1",
        "--shard-size",
        str(SHARD),
        "--commit-every",
        "0",
        "--no-head-start",
    ]


def start_driver(cluster, args: list[str]) -> subprocess.Popen:
    """``spinfits ARGS`` as a job driver on the cluster (output captured)."""
    return subprocess.Popen(
        [sys.executable, "-m", "spinfits", *args],
        env=dict(cluster.env, RAY_ADDRESS=cluster.address),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def finish(process: subprocess.Popen, timeout: float = 300) -> str:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"the job did not end in {timeout} s:\n{output[-4000:]}")
    return output


def commits(url: str, s3: S3Options, prefix: str) -> list:
    """The store's commits whose message starts with ``prefix`` (none while it does not exist)."""
    try:
        return [v for v in FitStore.open(url, s3=s3).history.log() if v.message.startswith(prefix)]
    except Exception:  # the job may not have created the store yet
        return []


@pytest.fixture(scope="module")
def reference(cluster, small_dataset, standin_dir, tmp_path_factory):
    """An uninterrupted precompute of small_dataset on the same cluster into a local store."""
    store = tmp_path_factory.mktemp("reference") / "store"
    output = finish(start_driver(cluster, precompute_args(small_dataset, str(store), standin_dir)))
    assert f"planned {FITTABLE}, fitted {FITTABLE}" in output, output[-3000:]
    return FitStore.open(store).read(DATASET)


def assert_equal_fits(fits, expected) -> None:
    """Fits are deterministic per shard (the same rows, one thread): equal to the last bit."""
    for column in ("loss", "pose", "betas", "cam_t"):
        np.testing.assert_array_equal(getattr(fits, column), getattr(expected, column), err_msg=column)


# ---------------------------------------------------------------------------------- precompute


def test_precompute_across_two_nodes_into_s3_survives_losing_one(
    cluster, two_nodes, healthy, reference, small_dataset, standin_dir
):
    head, second = two_nodes
    s3, url = s3_options(healthy), "s3://fits/precompute-node-lost"
    process = start_driver(cluster, [*precompute_args(small_dataset, url, standin_dir), *s3_flags(healthy)])
    worked, killed, deadline = set(), [], time.monotonic() + 240
    while process.poll() is None and time.monotonic() < deadline and not killed:
        for node in (head, second):
            if "ray::FitterActor.fit_shard" in cluster.titles(node):
                worked.add(node.name)  # a fitter on this node is fitting a shard
        if worked == {head.name, second.name} and commits(url, s3, "precompute"):
            killed = cluster.kill(second)  # the machine is lost, mid-run
        time.sleep(0.2)
    output = finish(process)
    assert killed, f"never saw both nodes fitting (saw {worked}) before the run ended:\n{output[-3000:]}"
    assert process.returncode == 0, output[-4000:]
    lost = re.search(r"which was lost; its (\d+) unfinished shards go to the 1 actors left", output)
    assert lost and int(lost.group(1)) >= 1, output[-4000:]
    assert f"planned {FITTABLE}, fitted {FITTABLE}" in output
    # the store on S3 equals the uninterrupted run's, and every fit was committed once
    store = FitStore.open(url, s3=s3)
    assert_equal_fits(store.read(DATASET), reference)
    assert sum(v.rows_improved for v in commits(url, s3, "precompute")) == FITTABLE


# ------------------------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def people_with_images(tmp_path_factory, standin_files):
    """24 synthetic people with rendered crops (the training set)."""
    import torch

    from spinfits.fitting.synthetic.people import SyntheticConfig, write_synthetic_dataset

    directory = tmp_path_factory.mktemp("people_with_images")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        write_synthetic_dataset(
            directory / f"{DATASET}.npz",
            standin_files,
            SyntheticConfig(rows=24, seed=11),
            images_dir=directory / "images",
        )
    finally:
        torch.set_num_threads(threads)
    return directory / f"{DATASET}.npz", directory / "images"


def rough_s3_store(url: str, s3: S3Options, npz: Path, standin_files) -> FitStore:
    """A store on S3 holding the ground truth with 0.25 rad of noise on every joint: something
    for SMPLify in the loop to improve."""
    dataset, arrays = load_spin_npz(npz), dict(np.load(npz))
    rows = len(dataset)
    store = FitStore.create(url, BodyModelInfo(standin_files.fingerprint, is_standin=True), s3=s3)
    store.create_dataset(DATASET, rows, dataset_fingerprint=dataset.fingerprint, chunk_rows=8)
    store.merge(DATASET, rough_fits(arrays, dataset, standin_files))
    store.commit("rough fits")
    return store


def train_args(npz: Path, images: Path, url: str, model_dir: Path, runs: Path, steps: int) -> list[str]:
    return [
        "train",
        "--dataset",
        str(npz),
        str(images),
        "--store",
        url,
        "--model-dir",
        str(model_dir),
        "--runs-dir",
        str(runs),
        "--run",
        "two-nodes",
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
        "3",
        "--refresh-every",
        "3",
        "--commit-every",
        "0.5",
    ]


def test_training_across_two_nodes_into_s3_resumes_on_a_replacement_node(
    cluster, two_nodes, healthy, people_with_images, standin_dir, standin_files, tmp_path
):
    """2 workers, one per node; the second node is lost after the first checkpoint and a new node
    joins (as an autoscaler would replace it): Ray Train restarts the group from the checkpoint,
    the run finishes, and its commits are on S3 with no row worse than before."""
    head, second = two_nodes
    s3, url = s3_options(healthy), "s3://fits/training-node-lost"
    npz, images = people_with_images
    before = rough_s3_store(url, s3, npz, standin_files).read(DATASET).loss
    runs, steps = tmp_path / "runs", 9
    process = start_driver(
        cluster, [*train_args(npz, images, url, standin_dir, runs, steps), *s3_flags(healthy)]
    )
    placed, killed_at, deadline = set(), None, time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline and killed_at is None:
        for node in (head, second):
            if cluster.processes_titled(node, "ray::RayTrainWorker"):
                placed.add(node.name)
        checkpoint = latest_checkpoint_step(runs / "two-nodes")
        if checkpoint and placed == {head.name, second.name}:
            cluster.kill(second)
            killed_at = checkpoint
            cluster.add_node(f"node{len(cluster.nodes)}", num_cpus=1)  # the replacement
        time.sleep(0.2)
    output = finish(process, timeout=400)
    assert killed_at is not None, f"workers seen on {placed} only:\n{output[-3000:]}"
    assert process.returncode == 0, output[-4000:]
    assert f"last checkpoint: step {steps}" in output
    for rank in (0, 1):  # the whole group restarted, at the checkpoint's step (or a later one)
        records = read_progress(runs / "two-nodes" / "progress" / f"rank{rank}.jsonl")
        pids = list(dict.fromkeys(r["pid"] for r in records))
        assert len(pids) == 2, (rank, pids)
        resumed_at = next(r["step"] for r in records if r["pid"] == pids[1])
        assert resumed_at >= killed_at and resumed_at % 3 == 0, (rank, resumed_at, killed_at)
        assert max(r["step"] for r in records) == steps - 1
    store = FitStore.open(url, s3=s3)
    training = [v for v in store.history.log() if v.metadata.get("source") == "training"]
    assert training and all(v.metadata["run"] == "two-nodes" for v in training)
    assert np.all(store.read(DATASET).loss <= before)


# ------------------------------------------------------------------------------ S3 endpoint faults


@pytest.mark.parametrize("outage", ["down", "error"])
def test_unreachable_or_failing_endpoint_is_refused_in_seconds(
    outage, healthy, people_with_images, standin_dir, standin_files, tmp_path, capsys
):
    """Nothing listening (``down``) or every request answered 503 (``error``): precompute and train
    exit 2 with the reason within seconds, before Ray, and the store is unchanged."""
    s3, url = s3_options(healthy), f"s3://fits/outage-at-start-{outage}"
    npz, images = people_with_images
    store = rough_s3_store(url, s3, npz, standin_files)
    tip, fits = store.tip(), store.read(DATASET)
    capsys.readouterr()
    getattr(healthy, outage)()
    reason = "no answer (connection refused)" if outage == "down" else "it answers HTTP 503 (a server error)"
    jobs = {
        "precompute": precompute_args(npz, url, standin_dir),
        "train": train_args(npz, images, url, standin_dir, tmp_path / "runs", 3),
    }
    for job, args in jobs.items():
        start = time.monotonic()
        assert main([*args, *s3_flags(healthy)]) == 2
        seconds = time.monotonic() - start
        error = capsys.readouterr().err
        assert (
            f"spinfits {job}: error: cannot reach the object storage of store {url} at {healthy.url}" in error
        )
        assert reason in error and "3 tries in" in error and "nothing was read or written" in error
        assert seconds < 15, f"{job} took {seconds:.1f} s to refuse the endpoint"
    assert not (tmp_path / "runs").exists()
    healthy.up()
    after = FitStore.open(url, s3=s3)
    assert after.tip() == tip
    assert_equal_fits(after.read(DATASET), fits)


def test_endpoint_lost_mid_run_stops_the_job_in_bounded_time_and_keeps_the_last_commit(
    cluster, two_nodes, healthy, reference, small_dataset, standin_dir
):
    s3, url = s3_options(healthy), "s3://fits/endpoint-lost"
    args = [*precompute_args(small_dataset, url, standin_dir), *s3_flags(healthy)]
    process = start_driver(cluster, args)
    seen, deadline = [], time.monotonic() + 240
    while process.poll() is None and time.monotonic() < deadline and not seen:
        seen = commits(url, s3, "precompute")
        time.sleep(0.2)
    assert seen, "the job never committed"
    last_seen = seen[0].snapshot_id
    fits_seen = FitStore.open(url, s3=s3).read(DATASET, version=last_seen)
    healthy.down()  # the S3 service stops answering, mid-run
    lost_at = time.monotonic()
    output = finish(process)
    seconds = time.monotonic() - lost_at
    assert process.returncode == 2, output[-4000:]
    assert re.search(rf"spinfits precompute: error: could not .* in the store at {url}: ", output), output[
        -3000:
    ]
    assert seconds < OUTAGE_BOUND_S, f"the job took {seconds:.1f} s to give up"
    assert "rows merged since the last commit are not committed" in output  # no vain final commit

    healthy.up()
    store = FitStore.open(url, s3=s3)
    made = commits(url, s3, "precompute")
    assert last_seen in [v.snapshot_id for v in made]  # history intact
    assert_equal_fits(store.read(DATASET, version=last_seen), fits_seen)  # the commit seen, unchanged
    tip = store.read(DATASET)
    fitted = np.isfinite(tip.loss)
    assert fitted.sum() == sum(v.rows_improved for v in made) < FITTABLE  # whole commits only
    assert_equal_fits(tip.take(fitted), reference.take(fitted))
    # rerun: it resumes from the last commit and ends equal to the uninterrupted run
    output = finish(start_driver(cluster, args))
    assert f"planned {FITTABLE - int(fitted.sum())}, fitted {FITTABLE - int(fitted.sum())}" in output, output[
        -3000:
    ]
    assert_equal_fits(FitStore.open(url, s3=s3).read(DATASET), reference)
