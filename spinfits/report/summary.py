"""What the report says about one store dataset, read from the store (numpy only, no drawing).

History: the commits reachable from the reported version that changed the dataset (rows
improved or rows recorded as failed, from each commit's metadata), oldest first, each with the
job that made it: ``precompute`` and ``training`` (the ``source`` the store writer records),
``import`` (``spinfits store import``), or ``other``. Losses: the dataset's fit losses read at up
to ``max_versions`` of those commits, spread evenly over the history, the newest always included.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spinfits.errors import InputError
from spinfits.store import DatasetInfo, Fits, FitStore, Version
from spinfits.store.failures import Failures

#: The jobs a commit can come from, in the order the report lists them.
SOURCES = ("precompute", "training", "import", "other")


@dataclass(frozen=True)
class ReportConfig:
    """How much the report shows per dataset.

    top: worst and best fits shown (each); versions: versions whose losses are read (histograms,
    timeline); commits: commits listed (newest); failed_rows: failed rows listed.
    """

    top: int = 4
    versions: int = 6
    commits: int = 30
    failed_rows: int = 50

    def __post_init__(self) -> None:
        for name in ("top", "versions", "commits", "failed_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be an integer >= 1, got {value!r}")


def commit_source(version: Version) -> str:
    """Which job made a commit: one of ``SOURCES``."""
    source = version.metadata.get("source")
    if source in ("precompute", "training"):
        return str(source)
    if version.message.startswith("import "):
        return "import"
    return "other"


@dataclass(frozen=True)
class CommitPoint:
    """One commit that changed the dataset: rows_improved / rows_failed are this dataset's."""

    version: Version
    source: str
    rows_improved: int
    rows_failed: int


@dataclass(frozen=True)
class VersionLosses:
    """The dataset at one commit: loss (M,) float32, the finite losses of its M fitted rows;
    position: the commit's index in ``DatasetSummary.commits``."""

    version: Version
    source: str
    position: int
    loss: np.ndarray


@dataclass(frozen=True)
class DatasetSummary:
    """One dataset at the reported version.

    fits: its N rows there; failures: its failed rows there; commits: the commits that changed
    it, oldest first; versions: its losses at some of them (see the module docstring).
    """

    info: DatasetInfo
    fits: Fits
    failures: Failures
    commits: tuple[CommitPoint, ...]
    versions: tuple[VersionLosses, ...]

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def scored(self) -> np.ndarray:
        """(N,) bool rows holding a fit with a finite loss."""
        return np.isfinite(self.fits.loss)

    def worst_rows(self, count: int) -> np.ndarray:
        """Up to ``count`` scored rows, highest loss first."""
        rows = np.flatnonzero(self.scored)
        return rows[np.argsort(-self.fits.loss[rows], kind="stable")][:count]

    def best_rows(self, count: int) -> np.ndarray:
        """Up to ``count`` scored rows, lowest loss first, none of ``worst_rows(count)``."""
        rows = np.setdiff1d(np.flatnonzero(self.scored), self.worst_rows(count))
        return rows[np.argsort(self.fits.loss[rows], kind="stable")][:count]


def dataset_commits(name: str, history: list[Version]) -> list[CommitPoint]:
    """The commits of ``history`` (newest first, as ``FitStore.history.log``) that changed dataset
    ``name``, oldest first."""
    points = []
    for version in reversed(history):
        improved = (version.metadata.get("rows_improved_by_dataset") or {}).get(name, 0)
        failed = (version.metadata.get("rows_failed") or {}).get(name, 0)
        if improved or failed:
            points.append(CommitPoint(version, commit_source(version), int(improved), int(failed)))
    return points


def spread(count: int, most: int) -> list[int]:
    """Up to ``most`` indices of ``range(count)``, evenly spread, the last one always included."""
    if count <= 0 or most <= 0:
        return []
    return sorted({int(round(i)) for i in np.linspace(count - 1, 0, min(count, most))})


def summarise_dataset(
    store: FitStore, name: str, snapshot: str, history: list[Version], max_versions: int
) -> DatasetSummary:
    """Read dataset ``name`` at ``snapshot`` and its losses at up to ``max_versions`` commits."""
    commits = dataset_commits(name, history)
    versions = []
    for position in spread(len(commits), max_versions):
        point = commits[position]
        loss = store.losses(name, point.version.snapshot_id)
        versions.append(VersionLosses(point.version, point.source, position, loss[np.isfinite(loss)]))
    return DatasetSummary(
        info=store.dataset(name, snapshot),
        fits=store.read(name, snapshot),
        failures=store.failures(name, snapshot),
        commits=tuple(commits),
        versions=tuple(versions),
    )
