"""Reading and writing the store's zarr layout inside one icechunk session's store.

Root group attributes: ``{"spinfits_store": {"format": 2, "body_model": {...}}}``. One child
group per dataset with ``{"spinfits_dataset": DatasetInfo.to_json()}``, the ``COLUMNS`` arrays
and, once a commit appended to it, the update log (``spinfits.store.update_log``); a dataset's
rows are its columns with its log applied. Names starting with ``_`` are reserved.

Format 1 (stores written before the update log) reads as format 2 with empty logs; the commit
that creates a store's first log marks it format 2, so an older spinfits refuses it instead of
reading its columns without the log.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import zarr
import zarr.errors

from spinfits.errors import InputError
from spinfits.store.checksums import CHECKED_COMPRESSORS
from spinfits.store.damage import read_all_checked, read_checked
from spinfits.store.fits import Fits
from spinfits.store.schema import (
    COLUMNS,
    DATASET_ATTR,
    FORMAT_VERSION,
    READABLE_FORMATS,
    ROOT_ATTR,
    BodyModelInfo,
    DatasetInfo,
)
from spinfits.store.update_log import UpdateLog, read_log, read_log_losses

_DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_dataset_name(name: Any) -> str:
    if not isinstance(name, str) or not _DATASET_NAME.match(name):
        raise InputError(
            f"dataset name must be 1-128 characters of letters, digits, '_', '.', '-' starting "
            f"with a letter or digit (e.g. 'coco_2014_train'), got {name!r}"
        )
    return name


def init_root(store: Any, body_model: BodyModelInfo) -> None:
    """Write the root group that marks a fresh repository as a spinfits store."""
    root = zarr.open_group(store, mode="w")
    root.attrs[ROOT_ATTR] = {"format": FORMAT_VERSION, "body_model": body_model.to_json()}


def read_root(store: Any, where: str) -> BodyModelInfo:
    """The store's body model; ``InputError`` if the repository is not a spinfits store."""
    try:
        root = zarr.open_group(store, mode="r")
        attrs = root.attrs.get(ROOT_ATTR)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError):
        attrs = None
    if not isinstance(attrs, dict) or "body_model" not in attrs:
        raise InputError(
            f"{where} is an icechunk repository but not a spinfits store (no {ROOT_ATTR!r} "
            "attributes at its root); create stores with `spinfits store init`"
        )
    if attrs.get("format") not in READABLE_FORMATS:
        raise InputError(
            f"{where} has store format {attrs.get('format')!r}, this spinfits reads formats "
            f"{', '.join(map(str, READABLE_FORMATS))}; use a matching spinfits version"
        )
    return BodyModelInfo.from_json(attrs["body_model"])


def mark_format(store: Any) -> None:
    """Mark the store (a writable session's) as written in ``FORMAT_VERSION`` if it is older."""
    root = zarr.open_group(store, mode="r+")
    attrs = dict(root.attrs[ROOT_ATTR])
    if attrs.get("format") != FORMAT_VERSION:
        root.attrs[ROOT_ATTR] = {**attrs, "format": FORMAT_VERSION}


def list_datasets(store: Any) -> dict[str, DatasetInfo]:
    root = zarr.open_group(store, mode="r")
    infos = {}
    for name, group in root.groups():
        attrs = group.attrs.get(DATASET_ATTR)
        if name.startswith("_") or not isinstance(attrs, dict):
            continue
        infos[name] = DatasetInfo.from_json(name, attrs)
    return dict(sorted(infos.items()))


def unknown_dataset(name: str, known: dict[str, DatasetInfo]) -> InputError:
    return InputError(
        f"unknown dataset {name!r}; the store has {sorted(known) or 'no datasets yet'} "
        "(create one with FitStore.create_dataset or `spinfits store import`)"
    )


def create_dataset_group(store: Any, info: DatasetInfo) -> None:
    root = zarr.open_group(store, mode="r+")
    group = root.create_group(info.name)
    group.attrs[DATASET_ATTR] = info.to_json()
    for column in COLUMNS:
        shape = column.shape(info.n_rows)
        group.create_array(
            column.name,
            shape=shape,
            chunks=(info.chunk_rows,) + shape[1:],
            dtype=column.dtype,
            fill_value=column.fill,
            compressors=CHECKED_COMPRESSORS,
        )


def open_columns(store: Any, name: str, mode: str = "r") -> dict[str, zarr.Array]:
    group = zarr.open_group(store, path=name, mode=mode)
    return {column.name: group[column.name] for column in COLUMNS}


def load_fits(store: Any, name: str) -> Fits:
    """All rows of dataset ``name`` as in-memory numpy arrays (its update log applied)."""
    return load_dataset(store, name)[0]


def load_dataset(store: Any, name: str) -> tuple[Fits, UpdateLog]:
    """All rows of dataset ``name`` (its columns with its update log applied) and its log."""
    fits = Fits.from_columns(read_all_checked(open_columns(store, name)))
    return fits, read_log(store, name, fits)


def load_losses(store: Any, name: str) -> tuple[np.ndarray, UpdateLog]:
    """The (N,) float32 loss of every row of dataset ``name`` (its update log applied; 4 B a row,
    what planning needs) and its log."""
    loss = np.asarray(
        read_checked(zarr.open_array(store, path=f"{name}/loss", mode="r", zarr_format=3)), dtype=np.float32
    )
    return loss, read_log_losses(store, name, loss)


def write_chunks(
    arrays: dict[str, zarr.Array], values: dict[str, np.ndarray], rows: np.ndarray, chunk_rows: int
) -> int:
    """Write back the whole ``chunk_rows``-row chunks of ``values`` (name -> all N rows of that
    array) that contain any of ``rows``, each into ``arrays[name]``.

    Consecutive touched chunks are written in one call per array. Returns the chunks written.
    """
    if rows.size == 0:
        return 0
    chunks = np.unique(rows // chunk_rows)
    breaks = np.flatnonzero(np.diff(chunks) != 1) + 1
    for run in np.split(chunks, breaks):
        for name, array in arrays.items():
            n_rows = array.shape[0]
            start, stop = int(run[0]) * chunk_rows, min((int(run[-1]) + 1) * chunk_rows, n_rows)
            array[start:stop] = values[name][start:stop]
    return int(chunks.size)
