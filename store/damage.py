"""Damage: chunks that cannot be read as written, and rows no fit can be.

Two kinds, found by every reader:

- *unreadable chunks*: a chunk whose checksum fails (``spinfits.store.checksums``), that does not
  decompress, or whose object or manifest is missing or truncated. Read through ``read_checked``,
  such a read raises ``DamagedStoreError`` naming the dataset, array and rows of every damaged
  chunk it touched; no value of it is ever returned.
- *implausible rows*: rows that read but break the rules a proposal must pass to be stored
  (``spinfits.store.merge_rule.refusals``: loss >= 0, finite and plausible parameters), or that
  no writer produces (a NaN loss, a scored fit without a source, an unknown source). On a store
  without checksums this is how flipped bits show. ``implausible_rows`` finds them; readers report
  them and never hand them out as fits (``FitReader`` reads them as "no fit"; exports refuse).

``spinfits store verify`` (``spinfits.store.verify``) looks for both over a whole store.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import icechunk
import numpy as np
import zarr

from spinfits.errors import StorageError
from spinfits.store.fits import Fits
from spinfits.store.merge_rule import refusals
from spinfits.store.schema import Source

#: What a damaged chunk raises inside zarr/icechunk: a failed checksum (ValueError), a failed
#: decompression (RuntimeError), a missing or truncated object or manifest (IcechunkError, OSError).
READ_ERRORS: tuple[type[BaseException], ...] = (ValueError, RuntimeError, OSError, icechunk.IcechunkError)

#: How many damaged places an error message lists before "and N more".
LISTED = 4


@dataclass(frozen=True)
class Damage:
    """One damaged place: ``dataset``, ``array`` (a column, an update-log level, ``failure``),
    ``rows`` (as text: ``"64-127"``, ``"85, 90"``, or the log's records) and ``problem``."""

    dataset: str
    array: str
    rows: str
    problem: str

    def describe(self) -> str:
        return f"dataset {self.dataset}, array {self.array}, {self.rows}: {self.problem}"


def repair_advice(where: str, refit_repairs: bool = True) -> str:
    """How to repair a damaged store at ``where``; ``refit_repairs``: whether refitting the
    corrupt rows can (not for damage that names no rows: update-log records, the failure
    record, metadata)."""
    refit = (
        "refit the corrupt rows (`spinfits precompute --refit-corrupt --dataset NPZ --store "
        f"{where} --model-dir DIR` resets exactly them to no fit in one commit and refits them), or "
        if refit_repairs
        else "a refit cannot repair this damage (the rows it holds cannot be told): "
    )
    return (
        f"`spinfits store verify {where}` lists every damaged place. Repair: {refit}roll back to the "
        f"last good version (`spinfits store verify {where} --all-versions` shows which versions are "
        f"whole, `spinfits store rollback {where} VERSION` moves the branch there), then rerun "
        "the precompute or training that wrote the later commits (they resume and refit)"
    )


class DamagedStoreError(StorageError):
    """A read met damaged chunks or implausible rows; ``damage`` lists them. Nothing damaged was
    returned as data. ``refit_repairs``: whether ``precompute --refit-corrupt`` can repair it
    (the advice says so)."""

    def __init__(
        self, damage: Sequence[Damage], where: str | None = None, *, refit_repairs: bool = True
    ) -> None:
        self.damage = tuple(damage)
        self.where = where
        self.refit_repairs = refit_repairs
        store = f"the store at {where}" if where else "the store"
        listed = "; ".join(d.describe() for d in self.damage[:LISTED])
        more = f"; and {len(self.damage) - LISTED} more" if len(self.damage) > LISTED else ""
        super().__init__(
            f"{store} is damaged: {listed}{more}. No damaged value was used. "
            f"{repair_advice(where or 'STORE', refit_repairs)}"
        )

    def at(self, where: str) -> DamagedStoreError:
        """The same error naming the store's location."""
        return DamagedStoreError(self.damage, where, refit_repairs=self.refit_repairs)


@contextmanager
def naming_store(where: object) -> Iterator[None]:
    """Re-raise a ``DamagedStoreError`` raised inside with the store's location named."""
    try:
        yield
    except DamagedStoreError as error:
        if error.where is not None:
            raise
        raise error.at(str(where)) from None


_OBJECT = re.compile(r"\b(manifest|snapshot)_id=(\w+)")


def icechunk_reason(error: BaseException) -> str:
    """One line from an error: icechunk's carry a long Rust backtrace after their first line,
    whose last ``-> cause`` and the object it was reading (``manifests/ID``, ``snapshots/ID``)
    are kept: "I/O error: incomplete frame (file manifests/Q8Z...)"."""
    text = str(error)
    lines = [line.strip().removeprefix("x ").strip() for line in text.splitlines()]
    head = next((line for line in lines if line), type(error).__name__)
    causes = [line.split("-> ", 1)[1].strip() for line in lines if "-> " in line]
    if causes and causes[-1] not in head:
        head = f"{head}: {causes[-1]}"
    named = _OBJECT.search(text)
    if named and named.group(2) not in head:
        head = f"{head} (file {named.group(1)}s/{named.group(2)})"
    return head


def problem_of(error: BaseException) -> str:
    """What a failed chunk read means, in words."""
    text = icechunk_reason(error)
    if "checksum" in text.lower():
        return "chunk fails its checksum (its bytes changed on disk)"
    if isinstance(error, icechunk.IcechunkError):
        return f"chunk or manifest cannot be read ({text})"
    return f"chunk cannot be decoded ({type(error).__name__}: {text})"


def span_text(first: int, stop: int, unit: str = "rows") -> str:
    return f"{unit} {first}" if stop - first == 1 else f"{unit} {first}-{stop - 1}"


def rows_text(rows: np.ndarray, limit: int = 8) -> str:
    """``"rows 3, 7-9, 12"`` for (M,) sorted rows (at most ``limit`` runs, then "...")."""
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    runs = [f"{int(r[0])}" if len(r) == 1 else f"{int(r[0])}-{int(r[-1])}" for r in np.split(rows, breaks)]
    more = f", ... ({len(rows)} rows)" if len(runs) > limit else ""
    return ("row " if len(rows) == 1 else "rows ") + ", ".join(runs[:limit]) + more


def where_in_store(array: zarr.Array) -> tuple[str, str]:
    """(dataset, array name) of an array of a dataset group (its path ``dataset/name``)."""
    dataset, _, name = array.path.strip("/").rpartition("/")
    return dataset or "(root)", name


def damaged_spans(array: zarr.Array, start: int = 0, stop: int | None = None) -> list[tuple[int, int, str]]:
    """(first, stop, problem) of the chunks of ``array`` (chunked along axis 0) over
    ``start:stop`` that cannot be read, each read alone; consecutive chunks with the same problem
    are one span."""
    stop = array.shape[0] if stop is None else min(stop, array.shape[0])
    size = array.chunks[0]
    found: list[tuple[int, int, str]] = []
    for first in range(start // size * size, stop, size):
        last = min(first + size, array.shape[0])
        try:
            array[first:last]
        except READ_ERRORS as error:
            problem = problem_of(error)
            if found and found[-1][1] == first and found[-1][2] == problem:
                found[-1] = (found[-1][0], last, problem)
            else:
                found.append((first, last, problem))
    return found


def span_damage(array: zarr.Array, spans: list[tuple[int, int, str]], unit: str = "rows") -> list[Damage]:
    """One ``Damage`` per span of ``damaged_spans(array, ...)``."""
    dataset, name = where_in_store(array)
    suffix = " of the update log (the rows they update cannot be told)" if unit == "records" else ""
    return [Damage(dataset, name, span_text(a, b, unit) + suffix, problem) for a, b, problem in spans]


def chunk_damage(
    array: zarr.Array, start: int = 0, stop: int | None = None, unit: str = "rows"
) -> list[Damage]:
    """Every chunk of ``array`` (chunked along axis 0) over ``start:stop`` that cannot be read
    (``damaged_spans``), as ``Damage``."""
    return span_damage(array, damaged_spans(array, start, stop), unit)


def read_rows_checked(array: zarr.Array, rows: np.ndarray) -> np.ndarray:
    """``array.oindex[rows]`` ((M,) sorted rows), or ``DamagedStoreError`` naming the damaged
    chunks among those holding ``rows``."""
    try:
        return array.oindex[rows]
    except READ_ERRORS:
        size = array.chunks[0]
        damage = [
            d
            for chunk in np.unique(rows // size)
            for d in chunk_damage(array, chunk * size, (chunk + 1) * size)
        ]
        if not damage:
            raise
        raise DamagedStoreError(damage) from None


def read_all_checked(
    arrays: dict[str, zarr.Array], start: int = 0, stop: int | None = None
) -> dict[str, np.ndarray]:
    """``read_checked`` of each array; one ``DamagedStoreError`` listing the damage of all."""
    values, damage, repairs = {}, [], True
    for key, array in arrays.items():
        try:
            values[key] = read_checked(array, start, stop)
        except DamagedStoreError as error:
            damage += error.damage
            repairs &= error.refit_repairs
    if damage:
        raise DamagedStoreError(damage, refit_repairs=repairs)
    return values


def read_checked(
    array: zarr.Array, start: int = 0, stop: int | None = None, unit: str = "rows"
) -> np.ndarray:
    """``array[start:stop]``, or ``DamagedStoreError`` naming every damaged chunk of that range."""
    try:
        return array[start:stop]
    except READ_ERRORS:
        damage = chunk_damage(array, start, stop, unit)
        if not damage:  # not the chunks: let the original error through
            raise
        raise DamagedStoreError(damage, refit_repairs=unit == "rows") from None


def implausible_rows(fits: Fits) -> dict[str, np.ndarray]:
    """Why rows of ``fits`` ((M,) rows as read) cannot be a stored fit: reason -> (M,) bool mask
    (only reasons that occur). The rules of proposals (``refusals``), plus what no writer
    writes: a NaN loss, a finite loss without a source, an unknown source, a non-finite time."""
    reasons = refusals(fits, accept_unscored=True)
    known = np.isin(fits.source, [int(s) for s in Source])
    extra = {
        "NaN loss": np.isnan(fits.loss),
        "unknown source": ~known,
        "scored fit without a source": known & (fits.source == Source.NONE) & np.isfinite(fits.loss),
        "non-finite time": ~np.isfinite(fits.time),
    }
    reasons.update({reason: mask for reason, mask in extra.items() if mask.any()})
    return reasons
