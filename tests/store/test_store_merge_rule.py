"""The merge rule in isolation (pure numpy), including its algebra as Hypothesis properties."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from store_helpers import SMALL_ROWS, batches

from spinfits.store import Fits, Proposals, Source, best_per_row, merge_into

N_ROWS = SMALL_ROWS


def apply_all(batch_list, accept_unscored=False):
    fits = Fits.empty(N_ROWS)
    improved = 0
    for p in batch_list:
        improved += merge_into(fits, best_per_row(p, accept_unscored)).count
    return fits, improved


def _proposal(rows, loss, value=1.0, source=Source.OFFLINE):
    m = len(rows)
    return Proposals(
        rows=np.array(rows),
        pose=np.full((m, 72), value),
        betas=np.zeros((m, 10)),
        cam_t=np.zeros((m, 3)),
        loss=np.array(loss, dtype=np.float64),
        source=source,
        time=0.0,
    )


def test_lower_finite_loss_replaces_and_higher_does_not():
    fits = Fits.empty(3)
    assert merge_into(fits, best_per_row(_proposal([0, 1], [2.0, 3.0]))).count == 2
    outcome = merge_into(fits, best_per_row(_proposal([0, 1], [1.0, 4.0], value=5.0)))
    assert outcome.rows.tolist() == [0] and outcome.loss_before.tolist() == [2.0]
    assert fits.loss.tolist() == [1.0, 3.0, np.inf]
    assert fits.pose[0, 0] == 5.0 and fits.pose[1, 0] == 1.0


def test_nan_and_inf_losses_never_land():
    fits = Fits.empty(3)
    assert merge_into(fits, best_per_row(_proposal([0, 1, 2], [np.nan, np.inf, -np.inf]))).count == 0
    assert Fits.empty(3).equals(fits)


def test_unscored_fill_empty_rows_only_when_accepted_and_lose_to_scored():
    fits = Fits.empty(2)
    merge_into(fits, best_per_row(_proposal([0], [1.0])))
    assert merge_into(fits, best_per_row(_proposal([0, 1], [np.inf, np.inf], 7.0))).count == 0
    assert (
        merge_into(fits, best_per_row(_proposal([0, 1], [np.inf, np.inf], 7.0), accept_unscored=True)).count
        == 1
    )
    assert fits.loss.tolist() == [1.0, np.inf] and fits.pose[1, 0] == 7.0
    assert merge_into(fits, best_per_row(_proposal([1], [9.0]))).count == 1
    assert fits.loss[1] == 9.0


def test_duplicates_in_one_batch_keep_the_lowest_loss():
    best = best_per_row(_proposal([2, 0, 2, 2], [3.0, 5.0, 1.0, np.nan]))
    assert best.rows.tolist() == [0, 2] and best.loss.tolist() == [5.0, 1.0]


def test_equal_loss_tie_is_broken_by_content_not_order():
    a, b = _proposal([0], [1.0], value=1.0), _proposal([0], [1.0], value=2.0)
    fits_ab, fits_ba = Fits.empty(1), Fits.empty(1)
    for p in (a, b):
        merge_into(fits_ab, best_per_row(p))
    for p in (b, a):
        merge_into(fits_ba, best_per_row(p))
    assert fits_ab.equals(fits_ba)
    # the same row proposed again is no improvement (idempotent)
    assert merge_into(fits_ab, best_per_row(a if fits_ab.pose[0, 0] == 1.0 else b)).count == 0


@settings(max_examples=200, deadline=None)
@given(batches(), st.randoms(use_true_random=False), st.booleans())
def test_merge_is_commutative_and_idempotent(batch_list, random, accept_unscored):
    """Any order, with retries/duplicates of batches, converges to the same store bytes."""
    reference, _ = apply_all(batch_list, accept_unscored)
    shuffled = list(batch_list) + [random.choice(batch_list) for _ in range(2)]
    random.shuffle(shuffled)
    again, _ = apply_all(shuffled, accept_unscored)
    assert reference.equals(again)
    # merging everything as one concatenated batch gives the same result too
    single, _ = apply_all([Proposals.concat(shuffled)], accept_unscored)
    assert reference.equals(single)


@settings(max_examples=200, deadline=None)
@given(batches())
def test_merge_matches_the_plain_rule_on_losses(batch_list):
    """Stored loss = minimum finite proposed loss per row (+inf if none); NaN never stored."""
    fits, _ = apply_all(batch_list)
    expected = np.full(N_ROWS, np.inf, dtype=np.float32)
    for p in batch_list:
        for row, loss in zip(p.rows.tolist(), p.loss.tolist()):
            if np.isfinite(loss) and loss < expected[row]:
                expected[row] = loss
    assert fits.loss.tolist() == expected.tolist()
    assert not np.isnan(fits.loss).any()
    empty = np.isinf(fits.loss)
    assert (fits.source[empty] == Source.NONE).all() and (fits.source[~empty] == Source.OFFLINE).all()


@settings(max_examples=100, deadline=None)
@given(batches())
def test_improved_count_is_rows_whose_content_changed(batch_list):
    fits = Fits.empty(N_ROWS)
    for p in batch_list:
        before = fits.copy()
        count = merge_into(fits, best_per_row(p)).count
        changed = sum(not before.take(np.array([i])).equals(fits.take(np.array([i]))) for i in range(N_ROWS))
        assert count == changed
