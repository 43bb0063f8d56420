"""``FitStore.history.gc`` and ``spinfits store gc``: what stays readable, what goes, what is freed."""

import datetime
import os
import re
from pathlib import Path

import numpy as np
import pytest
from store_helpers import BODY, random_proposals

from spinfits.cli import main
from spinfits.errors import InputError
from spinfits.store import FitStore
from spinfits.store.garbage_collection import KEEP_BRANCH_PREFIX


def files(path: Path) -> dict[str, int]:
    return {
        str(Path(d, f).relative_to(path)): os.path.getsize(Path(d, f))
        for d, _, names in os.walk(path)
        for f in names
    }


@pytest.fixture
def history(tmp_path):
    """A store with commits c0..c5 (c1 tagged ``static``) and a commit rolled back from:
    (store, path, {name: (snapshot id, fits at it)})."""
    path = tmp_path / "fits.icechunk"
    store = FitStore.create(path, BODY)
    store.create_dataset("coco", 300, dataset_fingerprint="coco", chunk_rows=64)
    rng = np.random.default_rng(0)
    versions = {}
    for k in range(6):
        store.merge("coco", random_proposals(rng, 300, 40, losses=np.full(40, 1.0 / (k + 1), np.float32)))
        versions[f"c{k}"] = (store.commit(f"c{k}").snapshot_id, store.read("coco"))
        if k == 1:
            store.history.tag("static")
    store.merge("coco", random_proposals(rng, 300, 40, losses=np.zeros(40, np.float32)))
    versions["rolled back"] = (store.commit("rolled back").snapshot_id, store.read("coco"))
    store.history.rollback(versions["c5"][0])
    return store, path, versions


def readable(store: FitStore, snapshot: str) -> bool:
    try:
        store.read("coco", snapshot)
    except InputError:
        return False
    return True


def check_store(path: Path) -> None:
    """The store opens, every commit on its branch and every tag reads, and it takes a commit."""
    store = FitStore.open(path, body_model=BODY)
    for version in store.history.log():
        if version.message.startswith("c") or version.message == "after gc":
            store.read("coco", version.snapshot_id)
    for snapshot in store.history.tags().values():
        store.read("coco", snapshot)
    assert not [b for b in store.repository.list_branches() if b.startswith(KEEP_BRANCH_PREFIX)]
    store.merge("coco", random_proposals(np.random.default_rng(9), 300, 5, losses=np.zeros(5, np.float32)))
    assert store.commit("after gc") is not None


def test_gc_keeps_tips_tags_and_pins_and_collects_the_rest(history):
    store, path, versions = history
    pinned = versions["c3"][0]
    report = store.history.gc(keep_last=1, keep={pinned: "checkpoint runs/a/checkpoint_3"})
    for name in ("c5", "c1", "c3"):  # tip, tag, pin: the same fits as before
        snapshot, fits = versions[name]
        assert store.read("coco", snapshot).equals(fits), name
    assert report.kept[versions["c5"][0]] == ("branch main",)
    assert report.kept[versions["c1"][0]] == ("tag static",)
    assert report.kept[pinned] == ("checkpoint runs/a/checkpoint_3",)
    for name in ("c0", "c2", "c4", "rolled back"):
        assert not readable(store, versions[name][0]), name
    assert {versions[name][0] for name in ("c0", "c2", "c4")} <= set(report.expired)
    assert [v.message for v in store.history.log()] == ["c5", "Repository initialized"]
    assert report.freed["bytes"] > 0 and report.freed["snapshots"] >= 5
    assert report.size_after < report.size_before
    check_store(path)


def test_dry_run_changes_nothing_and_names_what_would_expire(history):
    store, path, versions = history
    before = files(path)
    dry = store.history.gc(keep_last=2, dry_run=True)
    assert files(path) == before and dry.dry_run
    assert all(readable(store, snapshot) for snapshot, _ in versions.values())
    assert dry.freed["snapshots"] >= 1  # the commit rolled back from is unreachable already
    real = store.history.gc(keep_last=2)
    assert real.expired == dry.expired and versions["c3"][0] in real.expired
    assert readable(store, versions["c4"][0]) and not readable(store, versions["c3"][0])


def test_older_than_keeps_recent_commits_and_zero_keeps_only_tips_and_tags(history):
    store, path, versions = history
    report = store.history.gc(older_than=datetime.timedelta(days=1))
    assert report.expired == () and all(readable(store, versions[f"c{k}"][0]) for k in range(6))
    assert not readable(store, versions["rolled back"][0])  # off every branch: collected anyway
    report = store.history.gc(older_than=datetime.timedelta(0))
    assert [name for name in versions if readable(store, versions[name][0])] == ["c1", "c5"]
    check_store(path)


def test_pins_hold_for_the_gc_that_names_them_and_missing_ones_are_reported(history):
    store, _, versions = history
    pinned = versions["c2"][0]
    store.history.gc(keep_last=1, keep={pinned: "checkpoint x"})
    assert readable(store, pinned)
    store.history.gc(keep_last=1)
    assert not readable(store, pinned)
    report = store.history.gc(keep_last=1, keep={pinned: "checkpoint x"})
    assert report.missing == {pinned: "checkpoint x"} and pinned not in report.kept


def test_a_reader_pinned_at_an_expired_snapshot_reloads_the_tip(history):
    store, _, versions = history
    reader = store.reader("coco", versions["c2"][0])
    store.history.gc(keep_last=1)
    assert reader.refresh() and reader.refreshed_rows is None
    assert reader.read_all().equals(versions["c5"][1])


def test_another_process_reading_a_collected_version_gets_a_clear_error(history):
    store, path, versions = history
    other = FitStore.open(path)
    other.read("coco", versions["c2"][0])  # its repository object now knows that snapshot
    store.history.gc(keep_last=1)
    with pytest.raises(InputError, match=r"version \w+ is no longer in the store \(expired and collected"):
        other.read("coco", versions["c2"][0])


def test_pending_merges_survive_a_gc(history):
    store, path, _ = history
    batch = random_proposals(np.random.default_rng(5), 300, 10, losses=np.full(10, 1e-4, np.float32))
    store.merge("coco", batch)
    store.history.gc(keep_last=1)
    store.commit("after gc")
    np.testing.assert_array_equal(FitStore.open(path).read("coco").loss[batch.rows], batch.loss)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(older_than=datetime.timedelta(days=1), keep_last=2), "give older_than or keep_last, not both"),
        (dict(keep_last=0), r"keep_last must be a positive integer \(commits kept per branch\), got 0"),
        (dict(older_than=datetime.timedelta(days=-1)), "older_than must be a timedelta >= 0"),
        (dict(older_than=3), "older_than must be a timedelta >= 0"),
    ],
)
def test_gc_exceptions_change_nothing(history, options, message):
    store, path, _ = history
    before = files(path)
    with pytest.raises(InputError, match=message):
        store.history.gc(**options)
    assert files(path) == before


# ------------------------------------------------------------------------------------ command


def run(capsys, *argv):
    status = main(["store", "gc", *map(str, argv)])
    out, err = capsys.readouterr()
    return status, out, err


def write_checkpoint(run_dir: Path, name: str, snapshot: str, step: int) -> None:
    from spinfits.training.checkpoint import TrainingState, save_training_state

    folder = run_dir / name
    folder.mkdir(parents=True)
    save_training_state(
        folder, TrainingState(step=step, snapshot_id=snapshot, model={}, optimizer={}, run="a")
    )


def test_cli_gc_keeps_what_a_runs_checkpoints_record(history, tmp_path, capsys):
    store, path, versions = history
    run_dir = tmp_path / "runs" / "a"
    write_checkpoint(run_dir, "checkpoint_000001", versions["c2"][0], 100)
    write_checkpoint(run_dir, "checkpoint_000002", versions["c4"][0], 200)
    status, out, _ = run(capsys, path, "--keep-last", "1", "--keep-run", run_dir, "--dry-run")
    assert status == 0 and "(dry run: nothing changed)" in out and "would expire" in out
    assert readable(store, versions["c0"][0])
    status, out, _ = run(capsys, path, "--keep-last", "1", "--keep-run", run_dir)
    assert status == 0, out
    assert re.search(rf"{versions['c2'][0]}\s+checkpoint .*checkpoint_000001 \(step 100\)", out), out
    assert re.search(rf"{versions['c1'][0]}\s+tag static", out) and "branch main" in out
    assert re.search(r"expired \d+ snapshots", out) and re.search(r"size: +[\d.]+ kB -> [\d.]+ kB", out), out
    for name in ("c1", "c2", "c4", "c5"):
        assert store.read("coco", versions[name][0]).equals(versions[name][1])
    assert not readable(store, versions["c3"][0])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--keep-run", "{tmp}/runs/none"], r"--keep-run .*runs/none: no such folder"),
        (["--keep-run", "{tmp}"], r"--keep-run .*: no checkpoint_\*/training_state.pt in it"),
        (["--older-than", "-1"], r"--older-than must be a number of days >= 0, got -1.0"),
        (["--keep-last", "0"], r"--keep-last must be at least 1"),
    ],
)
def test_cli_gc_errors_exit_2_and_change_nothing(history, tmp_path, capsys, argv, message):
    _, path, _ = history
    before = files(path)
    status, _, err = run(capsys, path, *[a.format(tmp=tmp_path) for a in argv])
    assert status == 2 and re.search(message, err), err
    assert files(path) == before


def test_cli_gc_takes_one_cut(history, capsys):
    _, path, _ = history
    with pytest.raises(SystemExit) as exit_:
        run(capsys, path, "--older-than", "1", "--keep-last", "2")
    assert exit_.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
