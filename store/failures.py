"""Rows that could not be fitted, and why: one ``failure`` array per dataset group.

A precompute job that meets a row it cannot fit (keypoints that overflow float32, a solver
error, a fit that diverged) records the row as failed with a reason instead of stopping;
reruns skip known failures unless asked to retry them. A row that later receives a fit is no
longer failed.

Layout: ``failure (N,) int16`` in the dataset group, 0 = not failed, k = the k-th reason of the
group attribute ``spinfits_failure_reasons`` (a list of distinct reason texts). Stores written
before failures were recorded lack the array: every row reads as not failed, and the array is
created on the first failure recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr

from spinfits.store.checksums import CHECKED_COMPRESSORS
from spinfits.store.damage import read_checked
from spinfits.store.layout import write_chunks

FAILURE_ARRAY = "failure"
FAILURE_REASONS_ATTR = "spinfits_failure_reasons"
#: Longest reason text kept (the rest of a long error message is cut).
MAX_REASON_CHARS = 300


@dataclass(frozen=True)
class Failures:
    """Failed rows of one dataset (N rows).

    codes: (N,) int16, 0 = not failed, k = ``reasons[k - 1]``; reasons: distinct reason texts.
    """

    codes: np.ndarray
    reasons: tuple[str, ...]

    @classmethod
    def none(cls, n_rows: int) -> Failures:
        return cls(np.zeros(n_rows, dtype=np.int16), ())

    @property
    def mask(self) -> np.ndarray:
        """(N,) bool rows that failed."""
        return self.codes != 0

    def reason(self, row: int) -> str | None:
        code = int(self.codes[row])
        return self.reasons[code - 1] if code else None

    def counts(self) -> dict[str, int]:
        """Reason -> failed rows, most frequent first."""
        codes, counts = np.unique(self.codes[self.codes != 0], return_counts=True)
        pairs = sorted(zip(codes.tolist(), counts.tolist()), key=lambda pair: -pair[1])
        return {self.reasons[code - 1]: int(count) for code, count in pairs}

    def reason_texts(self) -> np.ndarray:
        """(N,) object array: each row's reason, or None."""
        table = np.array([None, *self.reasons], dtype=object)
        return table[self.codes.astype(np.int64)]

    def with_failed(self, rows: np.ndarray, reasons: list[str]) -> Failures:
        """A copy with ``rows`` (M,) marked failed for ``reasons`` (M texts)."""
        known = list(self.reasons)
        codes = self.codes.copy()
        for row, reason in zip(rows.tolist(), reasons):
            text = clean_reason(reason)
            if text not in known:
                known.append(text)
            codes[row] = known.index(text) + 1
        return Failures(codes, tuple(known))

    def with_cleared(self, rows: np.ndarray) -> Failures:
        """A copy with ``rows`` no longer failed."""
        codes = self.codes.copy()
        codes[rows] = 0
        return Failures(codes, self.reasons)


def clean_reason(reason: str) -> str:
    """One line of at most ``MAX_REASON_CHARS`` characters."""
    text = " ".join(str(reason).split())
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."


def read_failures(store: Any, dataset: str, n_rows: int) -> Failures:
    """The failures recorded in ``dataset``'s group (none for stores that predate them)."""
    group = zarr.open_group(store, path=dataset, mode="r")
    if FAILURE_ARRAY not in group.array_keys():
        return Failures.none(n_rows)
    reasons = tuple(str(r) for r in group.attrs.get(FAILURE_REASONS_ATTR, []))
    return Failures(np.asarray(read_checked(group[FAILURE_ARRAY]), dtype=np.int16), reasons)


def write_failures(store: Any, dataset: str, failures: Failures, rows: np.ndarray, chunk_rows: int) -> None:
    """Write the chunks of ``failures`` that hold ``rows`` ((M,) int64 rows whose failure
    changed) into ``dataset``'s group (a writable session's store), and the reasons."""
    group = zarr.open_group(store, path=dataset, mode="r+")
    if FAILURE_ARRAY not in group.array_keys():
        create_failure_array(group, len(failures.codes), chunk_rows)
    write_chunks({FAILURE_ARRAY: group[FAILURE_ARRAY]}, {FAILURE_ARRAY: failures.codes}, rows, chunk_rows)
    if list(group.attrs.get(FAILURE_REASONS_ATTR, [])) != list(failures.reasons):
        group.attrs[FAILURE_REASONS_ATTR] = list(failures.reasons)


def create_failure_array(group: zarr.Group, n_rows: int, chunk_rows: int) -> None:
    group.create_array(
        FAILURE_ARRAY,
        shape=(n_rows,),
        chunks=(chunk_rows,),
        dtype=np.int16,
        fill_value=0,
        compressors=CHECKED_COMPRESSORS,
    )
