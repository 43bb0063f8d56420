"""Object storage that stops answering mid-job (accepts connections, never answers): a commit and
a reader's refresh fail with a clear StorageError in bounded time, and the store stays at its last
commit. icechunk alone would wait forever (``spinfits.store.stalled_storage``)."""

from __future__ import annotations

import time

import icechunk
import numpy as np
import pytest
from s3_service import FaultyEndpoint, MotoServer, moto_options
from store_helpers import BODY, random_proposals

from spinfits.errors import StorageError
from spinfits.store import FitStore, S3Options, location, stalled_storage


@pytest.fixture(scope="module")
def moto():
    server = MotoServer()
    server.create_bucket("fits")
    yield server
    server.stop()


def s3(url: str) -> S3Options:
    return moto_options(url)


def test_a_commit_and_a_refresh_fail_in_bounded_time_when_the_service_stalls(moto, monkeypatch):
    monkeypatch.setattr(stalled_storage, "STALL_CHECK_S", 1.0)
    monkeypatch.setattr(location, "REACHABILITY_TIMEOUT_S", 1.0)
    monkeypatch.setattr(location, "REACHABILITY_PAUSE_S", (0.1, 0.1))
    endpoint = FaultyEndpoint(moto.url)
    rng = np.random.default_rng(3)
    try:
        store = FitStore.create("s3://fits/stalls", BODY, s3=s3(endpoint.url))
        store.create_dataset("coco", 50, dataset_fingerprint="coco")
        store.merge("coco", random_proposals(rng, 50, 20))
        first = store.commit("before the stall")
        reader = store.reader("coco")
        store.merge("coco", random_proposals(rng, 50, 20, losses=np.zeros(20, np.float32)))
        endpoint.stall()
        start = time.monotonic()
        with pytest.raises(
            StorageError, match=r"could not commit in the store at s3://fits/stalls: no answer after"
        ):
            store.commit("during the stall")
        with pytest.raises(
            StorageError, match=r"could not refresh the fits .* the service no longer answers"
        ):
            reader.refresh()
        assert time.monotonic() - start < 30
        with pytest.raises(
            StorageError, match="an earlier call that the service stopped answering has not returned"
        ):
            store.commit("again, while the abandoned commit may still run")
        # straight to moto, past the stalled endpoint: nothing of the second commit is visible
        assert FitStore.open("s3://fits/stalls", s3=s3(moto.url)).tip() == first.snapshot_id
    finally:
        endpoint.down()


def test_a_slow_call_that_still_answers_is_waited_for(monkeypatch):
    """A call longer than STALL_CHECK_S on a service that answers is slow, not stalled."""
    monkeypatch.setattr(stalled_storage, "STALL_CHECK_S", 0.05)
    checks = []

    class Answering:
        is_local = False

        def check_reachable(self):
            checks.append(time.monotonic())

    def slow():
        time.sleep(0.3)
        return "done"

    assert stalled_storage.call_bounded(Answering(), "commit", slow) == "done"
    assert len(checks) >= 3  # asked while waiting, and kept waiting


def test_storage_lost_right_after_a_commit_is_a_storage_error_and_the_commit_holds(tmp_path, monkeypatch):
    """The commit is made, then reading it back fails (icechunk says "snapshot not found" of a
    fetch that failed): a StorageError naming the commit, not "expired" (an InputError), and a
    later commit finds the merges already in the store."""
    from spinfits.store import write_session

    rng = np.random.default_rng(5)
    store = FitStore.create(tmp_path / "store", BODY)
    store.create_dataset("coco", 50, dataset_fingerprint="coco")
    proposals = random_proposals(rng, 50, 20, losses=np.full(20, 3.0, np.float32))
    store.merge("coco", proposals)
    genuine = write_session.snapshot_store

    def lost_after_commit(repo, snapshot_id, known_to_exist=False):
        if known_to_exist:
            raise icechunk.IcechunkError("snapshot not found: dispatch failure: Connection refused")
        return genuine(repo, snapshot_id, known_to_exist)

    monkeypatch.setattr(write_session, "snapshot_store", lost_after_commit)
    with pytest.raises(
        StorageError, match=r"could not read back commit (\w+) in the store at .*: .*Connection refused"
    ):
        store.commit("the storage goes away after this")
    monkeypatch.setattr(write_session, "snapshot_store", genuine)
    tip = FitStore.open(tmp_path / "store").tip()
    losses = FitStore.open(tmp_path / "store").losses("coco")
    assert np.flatnonzero(np.isfinite(losses)).tolist() == np.unique(proposals.rows).tolist()
    assert (losses[proposals.rows] == 3.0).all()
    assert store.commit("again") is None  # nothing left to commit: the merges are in the tip
    store.merge("coco", random_proposals(rng, 50, 20, losses=np.full(20, 1.0, np.float32)))
    assert store.commit("the writer goes on").snapshot_id != tip
