"""SPIN's dataset mix and the sampler that draws it from seeds alone (resumable)."""

import numpy as np
import pytest

from spinfits.errors import InputError
from spinfits.training.mixture import MixedSampler, spin_group, spin_partition


def step_rows(step, rank, world, batch, n_rows, seed):
    """One dataset's rows of (step, rank)."""
    return MixedSampler([n_rows], [1.0], batch, world, seed).draw(step, rank).rows


# ---------------------------------------------------------------- one dataset: one permutation per epoch


@pytest.mark.parametrize("world, batch, n_rows", [(1, 4, 24), (3, 4, 24), (2, 5, 40)])
def test_one_dataset_one_epoch_covers_every_row_once_with_disjoint_ranks(world, batch, n_rows):
    steps = n_rows // (world * batch)
    seen = []
    for step in range(steps):
        ranks = [step_rows(step, rank, world, batch, n_rows, seed=3) for rank in range(world)]
        for rows in ranks:
            assert rows.shape == (batch,) and rows.dtype == np.int64
        together = np.concatenate(ranks)
        assert np.unique(together).size == together.size  # ranks are disjoint in a step
        seen.append(together)
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.arange(n_rows))
    # the next epoch is another permutation of every row
    second = np.concatenate(
        [step_rows(steps + s, r, world, batch, n_rows, seed=3) for s in range(steps) for r in range(world)]
    )
    np.testing.assert_array_equal(np.sort(second), np.arange(n_rows))
    assert not np.array_equal(second, np.concatenate(seen))


def test_one_dataset_epochs_when_batches_do_not_divide_the_dataset():
    """10 rows, 2 workers x 4: positions run on through epochs; each epoch's 10 positions
    are every row once, whichever step and rank they fall in."""
    world, batch, n_rows = 2, 4, 10
    positions = np.concatenate(
        [step_rows(step, rank, world, batch, n_rows, seed=0) for step in range(5) for rank in range(world)]
    )  # 40 = 4 epochs
    for epoch in range(4):
        np.testing.assert_array_equal(np.sort(positions[10 * epoch : 10 * (epoch + 1)]), np.arange(n_rows))


def test_one_dataset_are_reproducible_and_depend_on_the_seed():
    first = [step_rows(s, r, 2, 8, 100, seed=5) for s in range(10) for r in range(2)]
    again = [step_rows(s, r, 2, 8, 100, seed=5) for s in range(10) for r in range(2)]
    other = [step_rows(s, r, 2, 8, 100, seed=6) for s in range(10) for r in range(2)]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    # resuming at step 7 draws what the uninterrupted run drew at step 7
    np.testing.assert_array_equal(step_rows(7, 1, 2, 8, 100, seed=5), first[15])


@pytest.mark.filterwarnings("ignore:divide by zero")
@pytest.mark.parametrize(
    "step, rank, world, batch, n_rows, message",
    [
        (0, 2, 2, 4, 10, r"rank must be in \[0, 2\)"),
        (0, 0, 1, 4, 0, r"sizes must be one or more dataset sizes >= 1"),
        (0, 0, 1, 0, 10, r"batch_size must be >= 1"),
        (-1, 0, 1, 4, 10, r"step must be >= 0"),
    ],
)
def test_one_dataset_bad_arguments(step, rank, world, batch, n_rows, message):
    with pytest.raises(InputError, match=message):
        step_rows(step, rank, world, batch, n_rows, seed=0)


# ---------------------------------------------------------------------------------- SPIN's mix


def test_spin_partition_is_mixed_datasets_py():
    """SPIN's six datasets: H36M 0.3, the four in-the-wild sets 0.6 by size, 3DHP 0.1."""
    names = ["h36m", "lsp-orig", "mpii", "lspet", "coco", "mpi-inf-3dhp"]
    sizes = [312188, 1000, 14810, 9428, 28344, 96507]
    weights = spin_partition(names, sizes)
    itw = sum(sizes[1:5])
    expected = [0.3, *(0.6 * s / itw for s in sizes[1:5]), 0.1]
    np.testing.assert_allclose(weights, expected, rtol=1e-12)
    assert [spin_group(n) for n in ("H36M_train", "mpi_inf_3dhp_train", "synthetic")] == [
        "h36m",
        "mpi_inf_3dhp",
        "in_the_wild",
    ]


def test_spin_partition_renormalises_over_the_groups_present():
    """synthetic (in the wild) + h36m: 0.6 : 0.3 -> 2/3 : 1/3."""
    np.testing.assert_allclose(spin_partition(["synthetic", "h36m_sample"], [500, 4]), [2 / 3, 1 / 3])
    np.testing.assert_allclose(spin_partition(["coco"], [7]), [1.0])


def test_mixed_sampler_draws_the_mix_and_wraps_rows_as_spin():
    sizes, weights = [100, 4, 10], [0.5, 0.3, 0.2]
    sampler = MixedSampler(sizes, weights, batch_size=16, world_size=2, seed=1)
    drawn = [sampler.draw(step, rank) for step in range(200) for rank in range(2)]
    dataset = np.concatenate([d.dataset for d in drawn])
    rows = np.concatenate([d.rows for d in drawn])
    shares = np.bincount(dataset, minlength=3) / dataset.size
    np.testing.assert_allclose(shares, weights, atol=0.02)  # 6400 draws
    for index, size in enumerate(sizes):
        mine = rows[dataset == index]
        assert mine.min() >= 0 and mine.max() < size
        assert np.unique(mine).size == size  # every row of each dataset comes up
    # the row is the epoch position modulo the dataset's size (SPIN's index % len(ds))
    position = MixedSampler([100], [1.0], 16, 2, seed=1).draw(3, 1).rows
    again = sampler.draw(3, 1)
    np.testing.assert_array_equal(again.rows, position % np.asarray(sizes)[again.dataset])


def test_mixed_sampler_is_a_function_of_seed_step_and_rank():
    """A resumed run (a new sampler, starting at step 5) draws what the first one drew."""
    first = MixedSampler([30, 7], [0.7, 0.3], 8, 2, seed=4)
    resumed = MixedSampler([30, 7], [0.7, 0.3], 8, 2, seed=4)
    for step in (5, 6, 9):
        for rank in (0, 1):
            a, b = first.draw(step, rank), resumed.draw(step, rank)
            np.testing.assert_array_equal(a.dataset, b.dataset)
            np.testing.assert_array_equal(a.rows, b.rows)
    other = MixedSampler([30, 7], [0.7, 0.3], 8, 2, seed=5)
    assert not all(np.array_equal(first.draw(s, 0).rows, other.draw(s, 0).rows) for s in range(5))


@pytest.mark.parametrize(
    "sizes, weights, message",
    [
        ([10, 5], [1.0], r"mix weights must be 2 finite numbers >= 0"),
        ([10, 5], [0.0, 0.0], r"not all 0"),
        ([10, 5], [1.0, -1.0], r">= 0"),
        ([10, 0], [1.0, 1.0], r"sizes must be one or more dataset sizes >= 1, got \[10, 0\]"),
    ],
)
def test_mixed_sampler_bad_arguments(sizes, weights, message):
    with pytest.raises(InputError, match=message):
        MixedSampler(sizes, weights, 4, 1, seed=0)
