"""BestFits: a worker's pinned snapshot plus its own uncommitted improvements."""

import numpy as np
import pytest

from spinfits.errors import InputError
from spinfits.store import FitStore, Proposals, Source
from spinfits.training.best_fits import BestFits

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def marker(values):
    """The pose/betas entries ``_proposals`` writes for ``values``: radians (and betas) a body
    can have, so the store does not refuse them, above any fitted pose entry (ties between equal
    losses go to the smaller content)."""
    return np.asarray(values, dtype=np.float32) * np.float32(0.01) + np.float32(4.0)


def _proposals(rows, loss, value=None, step=1) -> Proposals:
    """Proposals whose pose/betas are filled with ``marker(value)`` (default: the loss) per row."""
    rows = np.asarray(rows, dtype=np.int64)
    loss = np.asarray(loss, dtype=np.float32)
    fill = loss if value is None else np.asarray(value, dtype=np.float32)
    fill = marker(np.where(np.isfinite(fill), fill, 0.0))
    return Proposals(
        rows=rows,
        pose=np.repeat(fill[:, None], 72, 1),
        betas=np.repeat(fill[:, None], 10, 1),
        cam_t=np.ones((len(rows), 3)),
        loss=loss,
        source=Source.IN_LOOP,
        step=step,
        time=2000.0,
    )


def test_read_returns_the_readers_rows(fit_store, training_set):
    reader = fit_store.reader(training_set.name)
    best = BestFits(reader)
    assert best.snapshot_id == reader.snapshot_id == fit_store.tip()
    assert best.n_rows == len(training_set.dataset)
    rows = np.array([5, 0, 5, 23, training_set.no_keypoints])
    fits = best.read(rows)
    assert fits.equals(reader.read_rows(rows))
    assert fits.equals(fit_store.read(training_set.name, rows=rows))
    assert np.isinf(fits.loss[[1, 4]]).all() and np.isfinite(fits.loss[[0, 2, 3]]).all()
    fits.loss[:] = -1.0  # a copy
    assert (best.read(rows).loss != -1.0).all()


def test_record_keeps_only_strictly_better_finite_proposals(fit_store, training_set):
    name = training_set.name
    stored = fit_store.read(name)
    best = BestFits(fit_store.reader(name))
    before = best.read(np.arange(best.n_rows))
    l1, l2, l4 = (float(stored.loss[r]) for r in (1, 2, 4))
    rows = [0, 1, 1, 1, 2, 4, 5, 5, 6, 8, 9]
    loss = [
        5.0,  # row 0 had no fit: taken
        2 * l1,
        l1 / 2,
        l1 / 4,  # row 1: the lowest of three
        np.nan,  # row 2: NaN never lands
        l4,  # row 4: equal is not strictly better
        stored.loss[5] / 3,
        np.nan,  # row 5: the finite one
        np.inf,  # row 6: +inf is not a fit
        -np.inf,  # row 8: -inf is not a fit
        stored.loss[9] * 1.5,
    ]  # row 9: worse
    best.record(_proposals(rows, loss, value=np.arange(len(rows)) + 100.0, step=7))
    after = best.read(np.arange(best.n_rows))
    changed = np.flatnonzero(after.loss != before.loss)
    np.testing.assert_array_equal(changed, [0, 1, 5])
    np.testing.assert_array_equal(after.loss[[0, 1, 5]], np.float32([5.0, l1 / 4, stored.loss[5] / 3]))
    np.testing.assert_array_equal(after.pose[[0, 1, 5], 0], marker([100.0, 103.0, 106.0]))
    np.testing.assert_array_equal(after.betas[[0, 1, 5], 0], marker([100.0, 103.0, 106.0]))
    assert (after.source[[0, 1, 5]] == Source.IN_LOOP).all() and (after.step[[0, 1, 5]] == 7).all()
    unchanged = np.setdiff1d(np.arange(best.n_rows), [0, 1, 5])
    assert after.take(unchanged).equals(before.take(unchanged))
    assert not np.isnan(after.loss[2]) and after.loss[2] == l2
    # local only: the store and the snapshot are untouched
    assert fit_store.read(name).equals(stored)
    assert best.snapshot_id == fit_store.tip()


def test_record_does_not_depend_on_the_order_of_proposals(fit_store, training_set):
    name = training_set.name
    proposals = _proposals([1, 1, 0, 0, 7, 7], [3.0, 1.0, 9.0, 8.0, np.nan, 4.0], value=[1, 2, 3, 4, 5, 6])
    forward, backward = BestFits(fit_store.reader(name)), BestFits(fit_store.reader(name))
    forward.record(proposals)
    backward.record(proposals.take(np.arange(len(proposals))[::-1]))
    # and twice in two halves: the later, worse half changes nothing
    halves = BestFits(fit_store.reader(name))
    halves.record(proposals.take(np.array([1, 3, 5])))
    halves.record(proposals.take(np.array([0, 2, 4])))
    everything = np.arange(forward.n_rows)
    assert forward.read(everything).equals(backward.read(everything))
    assert forward.read(everything).equals(halves.read(everything))
    np.testing.assert_array_equal(forward.read(np.array([0, 1, 7])).pose[:, 0], marker([4.0, 2.0, 6.0]))


def test_refresh_picks_up_another_writers_commit_and_keeps_better_local_fits(fit_store, training_set):
    name = training_set.name
    stored = fit_store.read(name)
    best = BestFits(fit_store.reader(name))
    first_snapshot = best.snapshot_id
    assert best.refresh() is False and best.snapshot_id == first_snapshot
    # this worker found: row 0 (no fit yet) loss 5, row 1 very good, row 2 slightly better
    l1, l2 = float(stored.loss[1]), float(stored.loss[2])
    best.record(_proposals([0, 1, 2], [5.0, l1 / 10, l2 * 0.9], value=[10.0, 11.0, 12.0]))
    # another writer commits: row 0 better than ours, row 1 worse than ours, row 2 much better
    # than ours, row 12 (no fit before) new
    other = FitStore.open(fit_store.location.path)
    other.merge(name, _proposals([0, 1, 2, 12], [1.0, l1 / 2, l2 / 5, 2.0], value=[20.0, 21.0, 22.0, 23.0]))
    version = other.commit("another worker's fits")
    assert best.read(np.array([12])).loss[0] == np.inf  # still pinned
    assert best.refresh() is True
    assert best.snapshot_id == version.snapshot_id != first_snapshot
    fits = best.read(np.array([0, 1, 2, 12, 3]))
    np.testing.assert_array_equal(fits.loss, np.float32([1.0, l1 / 10, l2 / 5, 2.0, stored.loss[3]]))
    np.testing.assert_array_equal(fits.pose[:, 0], [*marker([20.0, 11.0, 22.0, 23.0]), stored.pose[3, 0]])
    # the kept local fit survives a further refresh that does not beat it ...
    other.merge(name, _proposals([5], [stored.loss[5] / 2], value=[25.0]))
    other.commit("more")
    assert best.refresh() is True
    np.testing.assert_array_equal(best.read(np.array([1, 5])).pose[:, 0], marker([11.0, 25.0]))
    # ... and gives way once the store holds something better (or the same fit, committed)
    other.merge(name, _proposals([1], [l1 / 100], value=[31.0]))
    other.commit("beats the local fit")
    assert best.refresh() is True
    assert best.read(np.array([1])).pose[0, 0] == marker(31.0)
    assert best.read(np.arange(best.n_rows)).equals(other.read(name))
    assert best.refresh() is False


def test_refresh_drops_local_fits_equal_to_the_committed_ones(fit_store, training_set):
    """What the worker proposed, once committed, is the store's: nothing local is left."""
    name = training_set.name
    best = BestFits(fit_store.reader(name))
    proposals = _proposals([0, 7], [3.0, 4.0])
    best.record(proposals)
    fit_store.merge(name, proposals)
    fit_store.commit("the worker's own proposals")
    assert best.refresh() is True
    everything = np.arange(best.n_rows)
    assert best.read(everything).equals(fit_store.read(name))
    # the snapshot now serves every row: another commit is seen in full
    other = _proposals([12], [1.0])
    fit_store.merge(name, other)
    fit_store.commit("more")
    assert best.refresh() is True
    assert best.read(everything).equals(fit_store.read(name))


def test_read_rows_out_of_range(fit_store, training_set):
    best = BestFits(fit_store.reader(training_set.name))
    for rows in ([24], [-1], [0.5]):
        with pytest.raises(InputError, match=r"rows must (lie in \[0, 24\)|be a 1-d integer)"):
            best.read(np.array(rows))


@pytest.mark.parametrize("rows", [[24], [-1]])
def test_read_rows_out_of_range_after_record(fit_store, training_set, rows):
    best = BestFits(fit_store.reader(training_set.name))
    best.record(_proposals([0], [1.0]))
    with pytest.raises(InputError, match=r"rows must lie in \[0, 24\)"):
        best.read(np.array(rows))


def test_a_worker_holds_one_copy_of_the_fits(tmp_path, standin_files):
    """The reader's arrays are the worker's only full copy: BestFits adds the rows it proposed,
    nothing per dataset row, and a refresh does not copy the dataset either."""
    import tracemalloc

    from spinfits.store import BodyModelInfo

    rows = 20000  # about 7 MB of fits
    store = FitStore.create(tmp_path / "big", BodyModelInfo(standin_files.fingerprint, is_standin=True))
    store.create_dataset("big", rows, dataset_fingerprint="f")
    store.commit("empty")
    reader = store.reader("big")
    peaks = []

    def traced(action):
        tracemalloc.start()
        result = action()
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        return result

    best = traced(lambda: BestFits(reader))
    traced(lambda: best.record(_proposals([3, 7, 11], [2.0, 3.0, 4.0])))
    store.merge("big", _proposals(np.arange(64) * 300, np.full(64, 1.0)))  # another writer's commit
    store.commit("64 rows")
    assert traced(best.refresh)
    assert max(peaks) < 1_000_000, peaks  # one more copy of the dataset would be about 7 MB
    np.testing.assert_array_equal(best.own_rows, [3, 7, 11])
    assert best.read(np.array([3, 300])).loss.tolist() == [2.0, 1.0]
