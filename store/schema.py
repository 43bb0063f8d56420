"""What a dataset group of the store holds: its columns, their shapes and dtypes, and ``Source``.

One group per dataset; every column is indexed by the dataset row ``i`` (the row of the dataset
npz) and chunked along rows only, ``chunk_rows`` rows per chunk (default ``CHUNK_ROWS``). Rows
changed by recent commits may sit in the group's update log instead (``spinfits.store.update_log``):
a dataset's rows are its columns with the log applied.

=========  ===========  =========  ===========================================================
column     shape        dtype      meaning (value of a row with no fit yet)
=========  ===========  =========  ===========================================================
pose       (N, 72)      float32    SMPL pose, axis-angle in radians, 24 joints x 3 (zeros)
betas      (N, 10)      float32    SMPL shape coefficients (zeros)
cam_t      (N, 3)       float32    camera translation, camera looks down +z (zeros)
loss       (N,)         float32    SPIN reprojection loss of the fit (+inf = no scored fit)
source     (N,)         int8       ``Source`` that produced the row (``Source.NONE``)
step       (N,)         int64      producer's step: training step or precompute pass (-1)
time       (N,)         float64    unix seconds at which the producer made the fit (0.0)
=========  ===========  =========  ===========================================================
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Rows per column chunk. The columns are only written in bulk (a precompute's commits over whole
#: chunks, and the folds of the update log); scattered updates go to the update log, whatever the
#: chunk size. So chunks are large: 16384 rows make a 4.7 MB pose chunk, a 100k-row dataset is 49
#: chunks that a reader loads in about 50-100 ms. ``bench/store_growth.py`` compares 4096, 16384
#: and 65536 (docs/store.md, "Store size").
CHUNK_ROWS = 16384
LOSS_UNIT = "px²"
"""Unit of the stored ``loss`` (SPIN's fit loss, ``fitting.smplify.fit_loss``): squared pixels of SPIN's
224-px crop, the confidence²-weighted mean over 49 joints of Geman-McClure terms (each at most
sigma² = 10⁴ px²)."""

#: Version of the layout, stored in the root group's attributes: 2 adds each dataset's update
#: log (``spinfits.store.update_log``). This spinfits reads ``READABLE_FORMATS``.
FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)

#: Root group attribute key that marks an icechunk repository as a spinfits store.
ROOT_ATTR = "spinfits_store"
#: Dataset group attribute key.
DATASET_ATTR = "spinfits_dataset"


class Source(enum.IntEnum):
    """Where a row's fit came from (stored as int8 in the ``source`` column)."""

    NONE = 0  #: no fit yet (empty row)
    OFFLINE = 1  #: offline precompute: batched SMPLify over the whole dataset
    IN_LOOP = 2  #: SMPLify run inside SPIN training, initialised from the network
    IMPORTED = 3  #: SPIN's static fits imported from a ``*_fits.npy`` file


@dataclass(frozen=True)
class Column:
    """One per-row array of a dataset group: ``width`` None for (N,), else (N, width)."""

    name: str
    width: int | None
    dtype: np.dtype
    fill: float | int

    def shape(self, n_rows: int) -> tuple[int, ...]:
        return (n_rows,) if self.width is None else (n_rows, self.width)


COLUMNS: tuple[Column, ...] = (
    Column("pose", 72, np.dtype(np.float32), 0.0),
    Column("betas", 10, np.dtype(np.float32), 0.0),
    Column("cam_t", 3, np.dtype(np.float32), 0.0),
    Column("loss", None, np.dtype(np.float32), float("inf")),
    Column("source", None, np.dtype(np.int8), int(Source.NONE)),
    Column("step", None, np.dtype(np.int64), -1),
    Column("time", None, np.dtype(np.float64), 0.0),
)
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
#: Columns that hold the fit itself (must be finite in a scored proposal).
PARAMETER_COLUMNS: tuple[str, ...] = ("pose", "betas", "cam_t")


@dataclass(frozen=True)
class BodyModelInfo:
    """The body model a store's fits belong to.

    ``fingerprint`` is a caller-chosen string that changes whenever the model files change
    (e.g. a hash of them); ``is_standin`` is True for the generated stand-in model, whose fits
    are only good for tests and demos.
    """

    fingerprint: str
    is_standin: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "is_standin": self.is_standin}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> BodyModelInfo:
        return cls(fingerprint=str(value["fingerprint"]), is_standin=bool(value["is_standin"]))

    def describe(self) -> str:
        return f"{self.fingerprint} (stand-in body model)" if self.is_standin else self.fingerprint


def config_hash(config: Mapping[str, Any]) -> str:
    """Short stable hash of a JSON-serialisable config: sha256 of its sorted-key JSON, 16 hex."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset group's attributes: its size, what it is, and how its fits were made."""

    name: str
    n_rows: int
    dataset_fingerprint: str
    fitting_config: Mapping[str, Any]
    body_model: BodyModelInfo
    chunk_rows: int

    @property
    def config_hash(self) -> str:
        return config_hash(self.fitting_config)

    def to_json(self) -> dict[str, Any]:
        return {
            "n_rows": self.n_rows,
            "dataset_fingerprint": self.dataset_fingerprint,
            "fitting_config": dict(self.fitting_config),
            "config_hash": self.config_hash,
            "body_model": self.body_model.to_json(),
            "chunk_rows": self.chunk_rows,
        }

    @classmethod
    def from_json(cls, name: str, value: Mapping[str, Any]) -> DatasetInfo:
        return cls(
            name=name,
            n_rows=int(value["n_rows"]),
            dataset_fingerprint=str(value["dataset_fingerprint"]),
            fitting_config=dict(value["fitting_config"]),
            body_model=BodyModelInfo.from_json(value["body_model"]),
            chunk_rows=int(value["chunk_rows"]),
        )
