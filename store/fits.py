"""Typed containers of rows: ``Fits`` (what the store holds) and ``Proposals`` (what producers offer).

Both are frozen dataclasses of numpy arrays, validated and normalised on construction:
M rows, ``pose (M, 72) float32``, ``betas (M, 10) float32``, ``cam_t (M, 3) float32``,
``loss (M,) float32``, ``source (M,) int8`` (a ``Source``), ``step (M,) int64``,
``time (M,) float64`` unix seconds. ``Proposals`` add ``rows (M,) int64``, the dataset rows they
are for.
"""

from __future__ import annotations

import time as _time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from spinfits.errors import InputError
from spinfits.store.schema import COLUMNS, Column, Source


def _as_float_array(name: str, value: Any, column: Column, n: int | None) -> np.ndarray:
    array = np.asarray(value)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise InputError(
            f"{name} must be a numeric array, got dtype {array.dtype}; "
            f"pass a float32/float64 array of shape {_shape_text(column, n)}"
        )
    if np.issubdtype(array.dtype, np.integer) and column.width is not None:
        raise InputError(
            f"{name} must be a floating array (axis-angle/shape/translation values), got integer "
            f"dtype {array.dtype}; convert it with .astype(np.float32)"
        )
    expected_ndim = 1 if column.width is None else 2
    if array.ndim != expected_ndim or (column.width is not None and array.shape[1] != column.width):
        raise InputError(f"{name} must have shape {_shape_text(column, n)}, got {array.shape}")
    if n is not None and array.shape[0] != n:
        raise InputError(
            f"{name} has {array.shape[0]} rows but rows has {n}; every field needs one entry per row"
        )
    return np.ascontiguousarray(array, dtype=column.dtype)


_INT64_MAX = int(np.iinfo(np.int64).max)


def row_numbers(rows: Any, what: str = "rows") -> np.ndarray:
    """``rows`` as a (M,) int64 array of dataset row numbers (>= 0), or ``InputError``.

    Converts safely: an unsigned value beyond int64 (e.g. uint64 2**64-1) is refused instead of
    wrapping to a negative number. The caller checks the upper bound (``< N``).
    """
    index = np.asarray(rows)
    if index.ndim != 1:
        raise InputError(f"{what} must have shape (M,), a 1-d array of dataset rows, got shape {index.shape}")
    if index.size == 0:
        return index.astype(np.int64)
    if not np.issubdtype(index.dtype, np.integer):
        raise InputError(
            f"{what} must be an integer array of dataset row numbers, got dtype {index.dtype}; "
            "pass np.asarray(rows, dtype=np.int64)"
        )
    if index.dtype.kind == "u" and int(index.max()) > _INT64_MAX:
        raise InputError(
            f"{what} must be dataset row numbers, got {int(index.max())} ({index.dtype}), beyond "
            "any dataset; check where the row numbers come from"
        )
    index = index.astype(np.int64)
    if int(index.min()) < 0:
        raise InputError(
            f"{what} must be >= 0 (dataset row numbers), got {int(index.min())}; "
            "negative indices are not accepted"
        )
    return index


def _shape_text(column: Column, n: int | None) -> str:
    m = "M" if n is None else str(n)
    return f"({m},)" if column.width is None else f"({m}, {column.width})"


def _broadcast_1d(name: str, value: Any, n: int, dtype: np.dtype) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim == 0:
        array = np.full(n, array)
    if array.shape != (n,):
        raise InputError(f"{name} must be a scalar or shape ({n},), got shape {array.shape}")
    return array.astype(dtype, copy=False)


@dataclass(frozen=True)
class Fits:
    """Rows of one dataset as the store holds them (see ``spinfits.store.schema`` for columns).

    pose: (M, 72) float32 axis-angle radians; betas: (M, 10) float32; cam_t: (M, 3) float32;
    loss: (M,) float32, +inf = no scored fit; source: (M,) int8 ``Source``; step: (M,) int64;
    time: (M,) float64 unix seconds.
    """

    pose: np.ndarray
    betas: np.ndarray
    cam_t: np.ndarray
    loss: np.ndarray
    source: np.ndarray
    step: np.ndarray
    time: np.ndarray

    def __len__(self) -> int:
        return int(self.loss.shape[0])

    def columns(self) -> dict[str, np.ndarray]:
        return {c.name: getattr(self, c.name) for c in COLUMNS}

    def take(self, index: np.ndarray) -> Fits:
        """The rows at ``index`` (integer or boolean numpy index), copied."""
        return Fits(**{name: array[index] for name, array in self.columns().items()})

    def copy(self) -> Fits:
        return Fits(**{name: array.copy() for name, array in self.columns().items()})

    @classmethod
    def empty(cls, n_rows: int) -> Fits:
        """``n_rows`` rows with no fit: zeros, loss +inf, ``Source.NONE``, step -1, time 0."""
        return cls(**{c.name: np.full(c.shape(n_rows), c.fill, dtype=c.dtype) for c in COLUMNS})

    @classmethod
    def from_columns(cls, columns: Mapping[str, np.ndarray]) -> Fits:
        return cls(**{c.name: np.asarray(columns[c.name], dtype=c.dtype) for c in COLUMNS})

    def equals(self, other: Fits) -> bool:
        """Bitwise equality of every column (so +inf == +inf and NaN patterns must match)."""
        return all(
            a.shape == b.shape and a.tobytes() == b.tobytes()
            for a, b in zip(self.columns().values(), other.columns().values())
        )


@dataclass(frozen=True)
class Proposals:
    """Candidate fits for some rows of one dataset; the store keeps the better of each.

    rows: (M,) int64 dataset rows (duplicates allowed: the merge rule picks one);
    pose (M, 72), betas (M, 10), cam_t (M, 3), loss (M,): float arrays, converted to float32;
    source: a ``Source`` other than NONE, scalar or (M,); step: int, scalar or (M,);
    time: unix seconds, scalar or (M,); None means "now", read once here.

    Time is part of the proposal and set by the producer when it builds it, so a retried or
    duplicated proposal carries the same time and merging it again changes nothing.

    Shapes and dtypes are checked here (``InputError``); values are judged by the merge rule:
    a proposal whose loss is NaN, -inf or negative, or whose parameters are non-finite or
    implausible, is kept here but refused by the store (``spinfits.store.merge_rule.refusals``),
    counted and never stored.
    """

    rows: np.ndarray
    pose: np.ndarray
    betas: np.ndarray
    cam_t: np.ndarray
    loss: np.ndarray
    source: Any = Source.OFFLINE
    step: Any = 0
    time: Any = None

    def __post_init__(self) -> None:
        rows = row_numbers(self.rows)
        n = rows.shape[0]
        set_ = object.__setattr__
        set_(self, "rows", rows)
        by_name = {c.name: c for c in COLUMNS}
        for name in ("pose", "betas", "cam_t", "loss"):
            set_(self, name, _as_float_array(name, getattr(self, name), by_name[name], n))
        source = np.asarray(self.source)
        if not np.issubdtype(source.dtype, np.integer):
            raise InputError(f"source must be a Source (int enum), got dtype {source.dtype}")
        valid = [int(s) for s in Source if s is not Source.NONE]
        if source.size and not np.isin(source, valid).all():
            raise InputError(
                f"source must be one of {[Source(v).name for v in valid]} "
                f"(values {valid}), got values {sorted(set(np.unique(source).tolist()) - set(valid))}"
            )
        set_(self, "source", _broadcast_1d("source", source, n, np.dtype(np.int8)))
        step = np.asarray(self.step)
        if not np.issubdtype(step.dtype, np.integer):
            raise InputError(f"step must be an integer (or (M,) integers), got dtype {step.dtype}")
        set_(self, "step", _broadcast_1d("step", step, n, np.dtype(np.int64)))
        when = _time.time() if self.time is None else self.time
        when = _broadcast_1d("time", when, n, np.dtype(np.float64))
        if not np.isfinite(when).all():
            raise InputError("time must be finite unix seconds; got NaN or inf")
        set_(self, "time", when)

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    @property
    def fits(self) -> Fits:
        """The proposed rows' values as ``Fits`` (no copy)."""
        return Fits(**{f.name: getattr(self, f.name) for f in fields(Fits)})

    def take(self, index: np.ndarray) -> Proposals:
        """The proposals at ``index``, already validated, without re-validating."""
        new = object.__new__(Proposals)
        for f in fields(Proposals):
            object.__setattr__(new, f.name, getattr(self, f.name)[index])
        return new

    @classmethod
    def from_fits(cls, rows: np.ndarray, fits: Fits) -> Proposals:
        """Proposals carrying ``fits`` (with their own source/step/time) for ``rows``."""
        return cls(rows=rows, **fits.columns())

    @classmethod
    def concat(cls, parts: list[Proposals]) -> Proposals:
        """All proposals of ``parts`` in one container (already validated)."""
        new = object.__new__(Proposals)
        for f in fields(Proposals):
            object.__setattr__(new, f.name, np.concatenate([getattr(p, f.name) for p in parts]))
        return new


def check_proposals(proposals: object) -> Proposals:
    """``proposals`` if it is a ``Proposals``, else ``InputError`` saying how to build one."""
    if not isinstance(proposals, Proposals):
        raise InputError(
            f"expected a spinfits.store.Proposals, got {type(proposals).__name__}; build one with "
            "Proposals(rows=..., pose=..., betas=..., cam_t=..., loss=..., source=..., step=...)"
        )
    return proposals
