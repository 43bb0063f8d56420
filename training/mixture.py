"""Training on several datasets at once: SPIN's mix, drawn by a deterministic, resumable sampler.

SPIN (``datasets/mixed_dataset.py``) trains on Human3.6M, the in-the-wild sets (LSP, MPII, LSPet,
COCO) and MPI-INF-3DHP at once: each sample comes from Human3.6M with probability 0.3, from an
in-the-wild set with 0.6 (split between them by their sizes) and from MPI-INF-3DHP with 0.1; an
epoch is as long as the largest dataset, its positions are shuffled, and position ``i`` drawn from
dataset ``d`` is that dataset's row ``i % len(d)``.

``spin_partition`` gives those weights for the datasets of a run, recognising each by its name
(``h36m...`` is Human3.6M, a name with ``3dhp`` is MPI-INF-3DHP, every other dataset counts as in
the wild); groups a run lacks are left out and the others keep their proportions.
``MixedSampler`` draws the same way, but from seeds alone: the samples of step ``s`` depend only on
(seed, s), so a run resumed at step ``s`` draws exactly what the uninterrupted run would have drawn.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from spinfits.errors import InputError

#: SPIN's shares of a batch: Human3.6M, the in-the-wild sets (together), MPI-INF-3DHP.
SPIN_SHARES = {"h36m": 0.3, "in_the_wild": 0.6, "mpi_inf_3dhp": 0.1}


def spin_group(name: str) -> str:
    """The group of SPIN's partition a dataset belongs to, by its name: "h36m" (a name starting
    with h36m), "mpi_inf_3dhp" (a name containing 3dhp) or "in_the_wild" (any other)."""
    lowered = name.lower().replace("-", "_")
    if lowered.startswith("h36m"):
        return "h36m"
    if "3dhp" in lowered:
        return "mpi_inf_3dhp"
    return "in_the_wild"


def spin_partition(names: Sequence[str], sizes: Sequence[int]) -> np.ndarray:
    """(D,) float64 weights summing to 1: SPIN's mix for datasets ``names`` of ``sizes`` rows.

    Each group present (``spin_group``) gets SPIN's share, renormalised over the groups present;
    the in-the-wild share is split between its datasets in proportion to their sizes.
    """
    if len(names) != len(sizes) or not names:
        raise InputError(
            f"names and sizes must be non-empty and of one length, got {len(names)}, {len(sizes)}"
        )
    groups = [spin_group(name) for name in names]
    present = {group: SPIN_SHARES[group] for group in groups}
    total = sum(present.values())
    weights = np.zeros(len(names))
    for index, (group, size) in enumerate(zip(groups, sizes)):
        members = [s for g, s in zip(groups, sizes) if g == group]
        weights[index] = present[group] / total * size / sum(members)
    return weights


def checked_weights(weights: Sequence[float], count: int) -> np.ndarray:
    """(D,) weights normalised to sum 1; each must be >= 0 and one > 0."""
    array = np.asarray(weights, dtype=np.float64)
    if array.shape != (count,) or not np.isfinite(array).all() or (array < 0).any() or array.sum() <= 0:
        raise InputError(
            f"mix weights must be {count} finite numbers >= 0, not all 0 (one per dataset), got "
            f"{np.atleast_1d(array).tolist()}"
        )
    return array / array.sum()


@dataclass(frozen=True)
class StepSamples:
    """The samples one worker trains on at one step: dataset (B,) int index into the run's
    datasets, rows (B,) int64 rows of those datasets."""

    dataset: np.ndarray
    rows: np.ndarray


class MixedSampler:
    """Which samples each worker draws at each step, from seeds alone (SPIN's MixedDataset).

    sizes: (D,) rows of each dataset; weights: (D,) mix (normalised here); batch_size: samples
    per worker per step; world_size: workers. A step's global batch is ``world_size * batch_size``
    consecutive positions of an epoch of ``max(sizes)`` shuffled positions (one seeded permutation
    per epoch; a batch may straddle two epochs); each position draws its dataset by the weights
    (seeded by step) and takes that dataset's row ``position % size``. Worker ``rank`` takes the
    rank-th slice of the global batch. With one dataset this walks one permutation of its rows per
    epoch, every row once per epoch.
    """

    def __init__(
        self, sizes: Sequence[int], weights: Sequence[float], batch_size: int, world_size: int, seed: int
    ) -> None:
        self.sizes = np.asarray(sizes, dtype=np.int64)
        if self.sizes.ndim != 1 or not len(self.sizes) or (self.sizes < 1).any():
            raise InputError(
                f"sizes must be one or more dataset sizes >= 1, got {np.atleast_1d(sizes).tolist()}"
            )
        self.weights = checked_weights(weights, len(self.sizes))
        for name, value in (("batch_size", batch_size), ("world_size", world_size)):
            if value < 1:
                raise InputError(f"{name} must be >= 1, got {value}")
        self.batch_size, self.world_size, self.seed = batch_size, world_size, seed
        self.epoch_length = int(self.sizes.max())

    def draw(self, step: int, rank: int) -> StepSamples:
        """The samples of worker ``rank`` at ``step``."""
        if step < 0:
            raise InputError(f"step must be >= 0, got {step}")
        if not 0 <= rank < self.world_size:
            raise InputError(f"rank must be in [0, {self.world_size}) (the worker's index), got {rank}")
        start = (step * self.world_size + rank) * self.batch_size
        positions = np.arange(start, start + self.batch_size)
        epochs = positions // self.epoch_length
        index = np.empty(self.batch_size, dtype=np.int64)
        for epoch in np.unique(epochs):
            mine = epochs == epoch
            index[mine] = _epoch_order(self.seed, int(epoch), self.epoch_length)[
                positions[mine] % self.epoch_length
            ]
        if len(self.sizes) == 1:
            dataset = np.zeros(self.batch_size, dtype=np.int64)
        else:
            uniform = np.random.default_rng([self.seed, step, 13]).random(self.world_size * self.batch_size)
            mine = uniform[rank * self.batch_size : (rank + 1) * self.batch_size]
            dataset = np.minimum(
                np.searchsorted(np.cumsum(self.weights), mine, side="right"), len(self.sizes) - 1
            )
        return StepSamples(dataset=dataset, rows=index % self.sizes[dataset])


@functools.lru_cache(maxsize=2)
def _epoch_order(seed: int, epoch: int, length: int) -> np.ndarray:
    """The seeded permutation of epoch ``epoch`` (read-only; cached, so a step does not redraw
    all ``length`` of it)."""
    order = np.random.default_rng([seed, epoch]).permutation(length)
    order.flags.writeable = False
    return order
