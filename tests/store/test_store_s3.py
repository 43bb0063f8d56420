"""The store on S3-compatible object storage: a moto server on loopback, started and stopped here."""

import socket
import subprocess
import sys
import time
import urllib.request

import boto3
import numpy as np
import pyarrow.parquet as pq
import pytest
from store_helpers import BODY, best_by_row, random_proposals

from spinfits.errors import InputError, StorageError
from spinfits.store import FitStore, S3Options, StoreLocation, write_session


@pytest.fixture(scope="module")
def s3_endpoint():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=0.5)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.05)
        client = boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        client.create_bucket(Bucket="fits")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def options(s3_endpoint):
    return S3Options(
        endpoint_url=s3_endpoint,
        region="us-east-1",
        allow_http=True,
        force_path_style=True,
        access_key_id="test",
        secret_access_key="test",
    )


def test_create_merge_commit_reopen_on_s3(options, request, monkeypatch):
    url = f"s3://fits/{request.node.name}"
    store = FitStore.create(url, BODY, s3=options)
    store.create_dataset("coco", 60, dataset_fingerprint="coco", chunk_rows=16)
    rng = np.random.default_rng(0)
    batches = [random_proposals(rng, 60, 30) for _ in range(2)]
    for p in batches:
        store.merge("coco", p)
    version = store.commit("on s3")
    reopened = FitStore.open(url, body_model=BODY, s3=options)
    assert reopened.history.log()[0].snapshot_id == version.snapshot_id
    np.testing.assert_array_equal(reopened.read("coco").loss, best_by_row(batches, 60))
    # a second writer commits while the first is writing its commit: the first loses the race
    # (conditional writes on S3), re-reads the tip and re-applies the merge rule
    more = random_proposals(rng, 60, 30, losses=np.full(30, 0.0001, dtype=np.float32))
    other = random_proposals(rng, 60, 5, losses=np.zeros(5, dtype=np.float32))
    store.merge("coco", more)
    reopened.merge("coco", other)
    write_dataset, raced = write_session.write_dataset, []

    def racing_write(*args, **kwargs):
        if not raced:
            raced.append(None)  # before committing: its own commit writes through here too
            raced[0] = reopened.commit("second writer")
        return write_dataset(*args, **kwargs)

    monkeypatch.setattr(write_session, "write_dataset", racing_write)
    version = store.commit("first writer")
    assert version.metadata["attempts"] == 2 and version.parent_id == raced[0].snapshot_id
    final = FitStore.open(url, s3=options).read("coco")
    np.testing.assert_array_equal(final.loss, best_by_row(batches + [more, other], 60))


def test_open_missing_prefix_on_s3(options):
    with pytest.raises(InputError, match="is not a spinfits store"):
        FitStore.open("s3://fits/nothing-here", s3=options)


def test_a_missing_bucket_is_named_with_how_to_create_it(options, s3_endpoint):
    """Opening, creating or checking a store in a bucket that does not exist says so (not "cannot
    reach": the service answered), with the command that creates the bucket."""
    expected = (
        rf"the bucket 'nobucket' of store s3://nobucket/fits does not exist at {s3_endpoint} .*"
        rf"Create the bucket first, e\.g\. `aws s3 mb s3://nobucket --endpoint-url {s3_endpoint} "
        r"--region us-east-1`"
    )
    with pytest.raises(InputError, match=expected):
        FitStore.open("s3://nobucket/fits", s3=options)
    with pytest.raises(InputError, match=expected):
        FitStore.create("s3://nobucket/fits", BODY, s3=options)
    with pytest.raises(InputError, match=expected):
        StoreLocation.parse("s3://nobucket/fits", options).check_writable()  # precompute and train


def test_without_credentials_reads_with_the_environments_keys(options, request, monkeypatch, tmp_path):
    """What Ray workers get (``without_credentials()``) opens the store with the keys of the
    process's own AWS chain, here the environment."""
    url = f"s3://fits/{request.node.name}"
    version = FitStore.create(url, BODY, s3=options).history.log()[0]
    remote = options.without_credentials()
    assert remote.access_key_id is None and remote.secret_access_key is None
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.aws profile either
    # no credentials anywhere in the chain: the service cannot be read, and the message says what to check
    with pytest.raises(StorageError, match="Check the endpoint, the credentials and the network"):
        FitStore.open(url, s3=remote)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    assert FitStore.open(url, s3=remote).history.log()[0].snapshot_id == version.snapshot_id


def test_precompute_hints_on_s3_are_runnable_as_printed(options, s3_endpoint, monkeypatch, capsys, tmp_path):
    """The `inspect:` commands printed after a run on an s3:// store carry --endpoint-url and the
    other flags that reach it: each runs as printed (keys come from the AWS chain)."""
    import shlex
    from types import SimpleNamespace

    from spinfits.cli import main

    url = "s3://fits/hints"
    FitStore.create(url, BODY, s3=options).create_dataset("people", 4, dataset_fingerprint="f")
    done = SimpleNamespace(lines=lambda: ["fitted 0 rows"], rows_planned=1)
    monkeypatch.setattr(
        "spinfits.cli.precompute.run_precompute_datasets", lambda configs: (done,)
    )  # the run itself: not here
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    flags = ["--endpoint-url", s3_endpoint, "--allow-http", "--force-path-style", "--region", "us-east-1"]
    argv = ["precompute", "--dataset", str(tmp_path / "people.npz"), "--model-dir", str(tmp_path)]
    assert main([*argv, "--store", url, *flags]) == 0
    hint = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("inspect: "))
    log, export = hint.removeprefix("inspect: ").split("   |   ")
    assert (
        log
        == f"spinfits store log {url} --endpoint-url {s3_endpoint} --region us-east-1 --allow-http --force-path-style"
    )
    assert main(shlex.split(log)[1:]) == 0
    assert "create dataset people" in capsys.readouterr().out
    out = tmp_path / "fits.parquet"
    export_argv = shlex.split(export)[1:]
    assert export_argv[-2:] == ["--npz", str(tmp_path / "people.npz")]  # the Parquet file gets imgname
    np.savez(tmp_path / "people.npz", imgname=np.array([f"im{row}.jpg" for row in range(4)]))
    export_argv[export_argv.index("fits.parquet")] = str(out)
    assert main(export_argv) == 0 and out.is_file()
    assert pq.read_table(out)["imgname"].to_pylist() == ["im0.jpg", "im1.jpg", "im2.jpg", "im3.jpg"]
