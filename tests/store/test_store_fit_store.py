"""FitStore: create/open, merge + commit, history, tags, rollback, diff, and bad input."""

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from store_helpers import BODY, best_by_row, random_proposals, reopen
from store_helpers import SMALL_ROWS as N_ROWS
from store_helpers import batches as merge_batches

from spinfits.errors import InputError, StorageError
from spinfits.store import BodyModelInfo, FitStore, Proposals, Source


def snapshot_bytes(store, dataset="coco", version=None):
    fits = store.read(dataset, version)
    return {name: col.tobytes() for name, col in fits.columns().items()}


# ----------------------------------------------------------------------- create / open
def test_create_records_body_model_and_dataset_attributes(store):
    reopened = reopen(store, body_model=BODY)
    assert reopened.body_model == BODY
    info = reopened.dataset("coco")
    assert (info.n_rows, info.dataset_fingerprint, info.chunk_rows) == (50, "coco-npz-1", 16)
    assert info.fitting_config == {"iters": 10} and info.body_model == BODY
    fits = reopened.read("coco")
    assert np.isinf(fits.loss).all() and (fits.source == Source.NONE).all() and (fits.step == -1).all()


def test_open_with_other_body_model_is_an_error(store):
    with pytest.raises(
        InputError,
        match=r"holds fits of body model 'smpl-test-0001 \(stand-in body model\)'.*uses body model 'other'",
    ):
        reopen(store, body_model=BodyModelInfo("other"))
    with pytest.raises(InputError, match="must not mix"):
        reopen(store, body_model="other")


def test_open_missing_path(tmp_path):
    with pytest.raises(
        InputError, match=r"no store at .*does not exist; create one with `spinfits store init`"
    ):
        FitStore.open(tmp_path / "nope")


def test_open_non_store_directory_and_file(tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="is not a spinfits store"):
        FitStore.open(tmp_path / "plain")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file, not a store directory"):
        FitStore.open(tmp_path / "file")


def test_open_store_with_corrupt_branch_ref(store, store_path):
    for ref in (store_path / "refs").rglob("*.json"):
        ref.write_bytes(b"garbage")
    with pytest.raises(
        InputError, match=r"cannot read a store at .* \(corrupt or not a store\?\): cannot serialize ref json"
    ):
        FitStore.open(store_path)


def test_open_store_with_missing_snapshots(store, store_path):
    import shutil

    shutil.rmtree(store_path / "snapshots")
    with pytest.raises(
        StorageError, match=r"cannot be read: .*snapshots/\w+ not found.*restore the named file"
    ):
        FitStore.open(store_path)


def test_open_icechunk_repo_that_is_not_a_spinfits_store(tmp_path):
    import icechunk

    icechunk.Repository.create(icechunk.local_filesystem_storage(str(tmp_path / "bare")))
    with pytest.raises(InputError, match="icechunk repository but not a spinfits store"):
        FitStore.open(tmp_path / "bare")


def test_create_refuses_existing_nonempty_path(store, store_path):
    with pytest.raises(InputError, match="exists and is not an empty directory"):
        FitStore.create(store_path, BODY)


def test_create_dataset_validation(store):
    with pytest.raises(InputError, match="dataset name must be"):
        store.create_dataset("_staging", 3, dataset_fingerprint="x")
    with pytest.raises(InputError, match="n_rows must be a positive integer"):
        store.create_dataset("d", 0, dataset_fingerprint="x")
    with pytest.raises(InputError, match="already exists"):
        store.create_dataset("coco", 3, dataset_fingerprint="x")
    with pytest.raises(InputError, match="JSON-serialisable"):
        store.create_dataset("d", 3, dataset_fingerprint="x", fitting_config={"f": object()})
    assert list(store.datasets()) == ["coco"]


# -------------------------------------------------------------------------- merge/commit
def test_merge_commit_and_read_back(store):
    rng = np.random.default_rng(1)
    batches = [random_proposals(rng, 50, 40) for _ in range(3)]
    improved = [store.merge("coco", p) for p in batches]
    assert improved[0] > 0
    version = store.commit("three batches", who="tester")
    assert version.who == "tester" and version.message == "three batches"
    assert version.rows_improved == int(np.isfinite(best_by_row(batches, 50)).sum())
    assert version.config_hash == store.dataset("coco").config_hash
    np.testing.assert_array_equal(store.read("coco").loss, best_by_row(batches, 50))


def test_uncommitted_merges_are_invisible_and_dropped_on_reopen(store):
    tip = store.tip()
    store.merge("coco", random_proposals(np.random.default_rng(2), 50, 20))
    assert store.has_pending and store.tip() == tip
    assert np.isinf(store.read("coco").loss).all()
    reopened = reopen(store)
    assert not reopened.has_pending and reopened.commit("nothing") is None
    assert np.isinf(reopened.read("coco").loss).all()


def test_merge_again_is_idempotent_and_commit_of_nothing_returns_none(store):
    p = random_proposals(np.random.default_rng(3), 50, 30)
    store.merge("coco", p)
    store.commit("first")
    before = snapshot_bytes(store)
    assert store.merge("coco", p) == 0
    assert store.commit("retry") is None
    assert snapshot_bytes(store) == before


def test_discard_drops_pending(store):
    store.merge("coco", random_proposals(np.random.default_rng(4), 50, 30))
    store.discard()
    assert not store.has_pending and store.commit("x") is None


@pytest.mark.parametrize(
    "dataset, proposals, message",
    [
        ("nope", None, r"unknown dataset 'nope'; the store has \['coco'\]"),
        ("coco", "rows", r"expected a spinfits.store.Proposals, got str"),
        ("coco", 50, r"proposal rows must lie in \[0, 50\) for dataset 'coco', got row 50"),
    ],
)
def test_bad_merges_leave_the_store_unchanged(store, dataset, proposals, message):
    good = random_proposals(np.random.default_rng(5), 50, 10)
    store.merge("coco", good)
    committed = store.commit("good")
    pending = random_proposals(np.random.default_rng(6), 50, 10)
    store.merge("coco", pending)
    if proposals is None:
        proposals = good
    elif proposals == 50:
        proposals = Proposals(
            rows=[3, 50],
            pose=np.zeros((2, 72)),
            betas=np.zeros((2, 10)),
            cam_t=np.zeros((2, 3)),
            loss=[0.0, 0.0],
            time=0.0,
        )
    with pytest.raises(InputError, match=message):
        store.merge(dataset, proposals)
    assert store.tip() == committed.snapshot_id
    store.commit("pending only")
    np.testing.assert_array_equal(store.read("coco").loss, best_by_row([good, pending], 50))


def test_commit_message_must_be_text(store):
    store.merge("coco", random_proposals(np.random.default_rng(7), 50, 5))
    with pytest.raises(InputError, match="commit message must be a non-empty string"):
        store.commit("  ")


# ------------------------------------------------------------------------ history & co
def test_log_tag_read_past_version_rollback_and_forward(store):
    rng = np.random.default_rng(8)
    store.merge("coco", random_proposals(rng, 50, 30))
    v1 = store.commit("v1")
    first = snapshot_bytes(store)
    store.merge("coco", random_proposals(rng, 50, 30, losses=np.full(30, 0.001, dtype=np.float32)))
    v2 = store.commit("v2")
    log = store.history.log()
    assert [v.message for v in log[:4]] == [
        "v2",
        "v1",
        "create dataset coco (50 rows)",
        "create spinfits store",
    ]
    assert log[0].parent_id == v1.snapshot_id and log[0].rows_improved == v2.rows_improved
    assert store.history.tag("good", v1.snapshot_id) == v1.snapshot_id
    assert store.history.tags() == {"good": v1.snapshot_id}
    assert snapshot_bytes(store, version="good") == first
    assert snapshot_bytes(store, version=v1.snapshot_id) == first
    old_tip = store.history.rollback("good")
    assert old_tip == v2.snapshot_id and store.tip() == v1.snapshot_id
    assert snapshot_bytes(store) == first and store.history.log()[0].message == "v1"
    store.history.rollback(old_tip)  # forward again
    assert store.tip() == v2.snapshot_id


def test_tag_and_version_errors(store):
    store.history.tag("t")
    with pytest.raises(InputError, match="already names a tag or branch"):
        store.history.tag("t")
    with pytest.raises(InputError, match=r"unknown version 'ZZZZ': expected a branch \(main\), a tag \(t\)"):
        store.read("coco", "ZZZZ")
    with pytest.raises(InputError, match="tag name must be"):
        store.history.tag("a/b")


def test_rollback_refuses_pending_and_unrelated(store):
    base = store.tip()
    store.merge("coco", random_proposals(np.random.default_rng(9), 50, 5))
    with pytest.raises(InputError, match="commit or discard the pending merges before rolling back"):
        store.history.rollback(base)
    lost = store.commit("lost").snapshot_id
    store.history.rollback(base)
    store.merge("coco", random_proposals(np.random.default_rng(10), 50, 5))
    kept = store.commit("kept").snapshot_id
    # "lost" is neither an ancestor nor a descendant of the tip any more
    with pytest.raises(InputError, match="is not in the history of branch 'main'"):
        store.history.rollback(lost)
    assert store.tip() == kept


def test_diff_reports_improved_rows_and_amounts(store):
    rows = np.array([1, 2, 3])

    def mk(loss):
        return Proposals(
            rows=rows,
            pose=np.zeros((3, 72)),
            betas=np.zeros((3, 10)),
            cam_t=np.zeros((3, 3)),
            loss=loss,
            time=0.0,
        )

    store.merge("coco", mk([5.0, 5.0, np.nan]))
    v1 = store.commit("v1")
    store.merge("coco", mk([4.0, 6.0, 2.0]))
    v2 = store.commit("v2")
    diff = store.history.diff("coco", v1.snapshot_id, v2.snapshot_id)
    assert diff.rows.tolist() == [1, 3]
    assert diff.loss_from.tolist() == [5.0, np.inf] and diff.loss_to.tolist() == [4.0, 2.0]
    assert diff.improvement.tolist() == [1.0, np.inf]
    assert diff.summary()["improved"] == 2 and diff.summary()["first_fit"] == 1
    backwards = store.history.diff("coco", v2.snapshot_id, v1.snapshot_id)
    assert backwards.n_worse == 2 and backwards.n_improved == 0


@settings(max_examples=20, deadline=None)
@given(batch_list=merge_batches(), random=st.randoms(use_true_random=False))
def test_store_converges_for_any_order_with_retries(batch_list, random):
    """Through the real store (two datasets, small chunks, commits in between): any arrival
    order with duplicated batches and retried commits gives byte-identical datasets."""
    with tempfile.TemporaryDirectory() as tmp:
        store = FitStore.create(Path(tmp) / "s", BODY)
        for name in ("a", "b"):
            store.create_dataset(name, N_ROWS, dataset_fingerprint="d", chunk_rows=4)
        for p in batch_list:
            store.merge("a", p)
        store.commit("in order")
        shuffled = list(batch_list) + [random.choice(batch_list) for _ in range(2)]
        random.shuffle(shuffled)
        for k, p in enumerate(shuffled):
            store.merge("b", p)
            if k % 2:
                store.commit(f"part {k}")
        store.commit("rest")
        assert store.read("a").equals(store.read("b"))
