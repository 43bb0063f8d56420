"""``StoreWriter``, the one writer of precompute and training: merges by the rule, records
failures, commits when due (time or rows), attributes commits to its job, stops at close."""

import numpy as np
import pytest
from store_helpers import reopen

from spinfits.errors import InputError
from spinfits.store import Proposals, Source, StoreWriter


def _proposals(rows, loss, step=-1):
    m = len(rows)
    return Proposals(
        rows=np.asarray(rows),
        pose=np.full((m, 72), 0.1),
        betas=np.zeros((m, 10)),
        cam_t=np.tile([0.0, 0.0, 30.0], (m, 1)),
        loss=np.asarray(loss, dtype=np.float32),
        source=Source.OFFLINE,
        step=step,
        time=5.0,
    )


def test_commits_every_n_rows_with_the_jobs_message_and_metadata(store):
    writer = StoreWriter(
        store,
        "coco",
        job="precompute coco",
        source="precompute",
        commit_every_s=1e9,
        commit_every_rows=4,
        who="tester",
        metadata={"dataset": "coco"},
    )
    tip = store.tip()
    writer.propose(_proposals([0, 1], [1.0, 2.0]))
    assert store.tip() == tip  # 2 < 4 rows: not due
    writer.record_failures(np.array([9]), ["the fit diverged"])
    writer.propose(_proposals([2, 3], [1.0, np.nan]))  # 4 rows proposed: due
    version = reopen(store).history.log(limit=1)[0]
    assert version.message == "precompute coco: 4 rows proposed" and version.who == "tester"
    assert version.metadata["source"] == "precompute" and version.metadata["dataset"] == "coco"
    assert version.metadata["rows_failed"] == {"coco": 1} and version.rows_improved == 3
    assert reopen(store).failures("coco").reason(9) == "the fit diverged"
    stats = writer.stats()
    assert (stats.proposals, stats.rows_improved, stats.commits, stats.rows_failed) == (4, 3, 1, 1)
    assert stats.steps is None and stats.last_commit == version.snapshot_id


def test_commit_every_zero_seconds_commits_each_proposal_and_close_stops(store):
    writer = StoreWriter(store, "coco", job="j", source="precompute", commit_every_s=0.0)
    for row in range(3):
        writer.propose(_proposals([row], [1.0]))
    assert writer.stats().commits == 3
    tip = writer.close()  # nothing pending: no commit
    assert store.tip() == tip and store.history.log(limit=1)[0].message == "j: 3 rows proposed"
    writer.propose(_proposals([8], [1.0]))  # merged, never committed after close
    assert store.tip() == tip and np.isinf(store.read("coco").loss[8])


def test_close_with_a_note_commits_what_is_pending(store):
    writer = StoreWriter(store, "coco", job="j", source="precompute", commit_every_s=1e9)
    writer.propose(_proposals([0, 1], [1.0, 1.0]))
    writer.close(note="interrupted after 2 rows")
    version = store.history.log(limit=1)[0]
    assert version.message == "j: 2 rows proposed, interrupted after 2 rows"
    assert version.metadata["note"] == "interrupted after 2 rows"


def test_unknown_dataset_is_refused_at_once(store):
    with pytest.raises(InputError, match="unknown dataset 'nope'"):
        StoreWriter(store, "nope", job="j", source="precompute", commit_every_s=1.0)
