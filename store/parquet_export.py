"""Export one version of a dataset to Parquet for analysis (pandas, DuckDB, polars...).

One Parquet row per dataset row: ``row`` int64, ``pose`` fixed_size_list<float32>[72],
``betas`` [10], ``cam_t`` [3], ``loss`` float32 (+inf = no scored fit), ``source`` int8
(``Source``), ``source_name`` dictionary string, ``step`` int64, ``time`` float64 unix seconds,
``failure`` string (why the row could not be fitted; null when it did not fail), and ``imgname``
string (the row's image, from the dataset npz) when the exporter is given the names.
The file's schema metadata records the store, dataset, snapshot id and fingerprints.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from spinfits.errors import InputError
from spinfits.store.failures import Failures
from spinfits.store.fits import Fits
from spinfits.store.schema import DatasetInfo, Source


def fits_table(
    fits: Fits,
    metadata: dict[str, Any] | None = None,
    failures: Failures | None = None,
    imgname: np.ndarray | None = None,
) -> pa.Table:
    """The Parquet table of a dataset's fits (see the module docstring for its columns);
    ``imgname`` (N,) str, when given, adds each row's image."""
    n = len(fits)
    if imgname is not None and np.shape(imgname) != (n,):
        raise InputError(
            f"imgname has shape {np.shape(imgname)}, the dataset {n} rows: pass the dataset npz the "
            f"store's fits were made for"
        )

    def fixed(values: np.ndarray) -> pa.Array:
        width = values.shape[1]
        return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), type=pa.float32()), width)

    names = np.array([s.name.lower() for s in Source])
    source_name = pa.DictionaryArray.from_arrays(
        pa.array(fits.source.astype(np.int32)), pa.array(names.tolist())
    )
    table = pa.table(
        {
            "row": pa.array(np.arange(n, dtype=np.int64)),
            "pose": fixed(fits.pose),
            "betas": fixed(fits.betas),
            "cam_t": fixed(fits.cam_t),
            "loss": pa.array(fits.loss),
            "source": pa.array(fits.source),
            "source_name": source_name,
            "step": pa.array(fits.step),
            "time": pa.array(fits.time),
            "failure": pa.array((failures or Failures.none(n)).reason_texts().tolist(), type=pa.string()),
        }
    )
    if imgname is not None:
        table = table.add_column(
            1, "imgname", pa.array(np.asarray(imgname).astype(str).tolist(), type=pa.string())
        )
    if metadata:
        table = table.replace_schema_metadata({"spinfits": json.dumps(metadata, default=str)})
    return table


def export_parquet(
    store: Any,
    dataset: str,
    path: str | os.PathLike,
    version: str | None = None,
    imgname: np.ndarray | None = None,
) -> str:
    """Write ``dataset`` at ``version`` (branch, tag, snapshot id; None = tip) to ``path``, with
    each row's ``imgname`` (N,) when given (the dataset npz's; its length is checked).

    Returns the snapshot id exported.
    """
    snapshot = store.resolve(version)
    reader = store.reader(dataset, snapshot)
    reader.check_whole()  # a damaged row is never exported
    info: DatasetInfo = reader.info
    metadata = {
        "store": str(store.location),
        "dataset": dataset,
        "snapshot_id": snapshot,
        "version": version or store.branch,
        **info.to_json(),
    }
    table = fits_table(reader.read_all(), metadata, store.failures(dataset, snapshot), imgname)
    pq.write_table(table, os.fspath(path))
    return snapshot
