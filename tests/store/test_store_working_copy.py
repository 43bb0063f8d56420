"""A writer's working copy: every row's loss and the rows merged since its snapshot, the rest read
from the snapshot when the merge rule or a commit needs it (``spinfits.store.working_copy``)."""

import gc
import tracemalloc

import numpy as np
from store_helpers import BODY, SMALL_LOG, expected_after, random_proposals

from spinfits.store import FitStore
from spinfits.store.versions import snapshot_store
from spinfits.store.working_copy import WorkingCopy


def test_tied_losses_compare_content_with_the_stored_row_wherever_it_is_kept(tmp_path):
    """Losses from {0.5, 1.0} tie often; the tied rows' stored fits sit in the columns, either
    level of the update log or the uncommitted merges, and a second writer reads them from the
    snapshot: every commit equals the rule applied to every row in memory."""
    rng = np.random.default_rng(11)
    n_rows = 40
    store = FitStore.create(tmp_path / "s", BODY, write_policy=SMALL_LOG)
    store.create_dataset("coco", n_rows, dataset_fingerprint="coco", chunk_rows=8)
    other = FitStore.open(tmp_path / "s", write_policy=SMALL_LOG)
    batches, ways = [], set()
    for k in range(24):
        batch = random_proposals(rng, n_rows, 6, losses=rng.choice([0.5, 1.0], 6).astype(np.float32))
        batch = batch.take(np.unique(batch.rows, return_index=True)[1])
        writer = other if k % 5 == 4 else store  # a writer whose working copy is older: replays
        writer.merge("coco", batch)
        batches.append(batch)
        if k % 2 or writer is other:
            for pending in (writer, store):  # the other writer's commit left this one's pending
                version = pending.commit(f"commit {k}")
                if version is not None:
                    ways.add(version.metadata["written"]["coco"])
            reopened = FitStore.open(tmp_path / "s")
            expected = expected_after(batches, n_rows)
            assert reopened.read("coco").equals(expected)
            np.testing.assert_array_equal(reopened.losses("coco"), expected.loss)  # 4 B a row
            # a working copy reads any row from its snapshot (columns, then the log's levels)
            working = WorkingCopy(
                snapshot_store(reopened.repository, reopened.tip()), reopened.dataset("coco")
            )
            assert working.values(np.arange(n_rows)).equals(expected)
            np.testing.assert_array_equal(working.loss, expected.loss)
    assert ways == {"recent", "settle", "fold"}


def test_a_writer_holds_the_losses_and_its_merged_rows_not_every_row(tmp_path):
    """200,000 rows: a writer's first merge of 64 rows and its commit keep about the loss column
    (0.8 MB) alive, not a copy of every row (200,000 x 361 B = 72 MB)."""
    n_rows = 200_000
    store = FitStore.create(tmp_path / "s", BODY)
    store.create_dataset("coco", n_rows, dataset_fingerprint="coco")
    rng = np.random.default_rng(2)
    batches = [random_proposals(rng, n_rows, 64) for _ in range(3)]
    store.merge("coco", batches[0])
    store.commit("first")
    store = FitStore.open(tmp_path / "s")  # a new writer: reads its working copy at the first merge
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for k, batch in enumerate(batches[1:]):
            store.merge("coco", batch)
            store.commit(f"more {k}")
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert 0.8e6 <= held < 3e6, f"a writer holds {held / 1e6:.1f} MB after its merges and commits"
    assert store.read("coco").equals(expected_after(batches, n_rows))


def test_many_merges_keep_their_proposals_reduced_and_a_replay_equals_the_rule(tmp_path, monkeypatch):
    """A writer keeps the proposals merged since its last commit for a replay onto another
    writer's newer commit; they are reduced by the rule as they grow (here after every doubling),
    and the replayed commit equals the rule over every batch."""
    from spinfits.store import write_session

    monkeypatch.setattr(write_session, "PENDING_SLACK", 0)
    rng = np.random.default_rng(5)
    n_rows = 30
    first = FitStore.create(tmp_path / "s", BODY)
    first.create_dataset("coco", n_rows, dataset_fingerprint="coco", chunk_rows=8)
    second = FitStore.open(tmp_path / "s")
    batches = [random_proposals(rng, n_rows, 8, losses=rng.choice([0.5, 1.0, 2.0], 8)) for _ in range(40)]
    for batch in batches[:-1]:
        first.merge("coco", batch)
    kept = first._session.pending[("coco", False)]
    assert len(kept) < 10 and sum(len(part) for part in kept) < 2 * n_rows + 8
    second.merge("coco", batches[-1])
    other = second.commit("the other writer first")
    version = first.commit("replayed onto it")
    assert version.parent_id == other.snapshot_id
    assert FitStore.open(tmp_path / "s").read("coco").equals(expected_after(batches, n_rows))
