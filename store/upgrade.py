"""``spinfits store upgrade``: rewrite a store's arrays without checksums with them, in one commit.

Each unchecked array (``spinfits.store.checksums``) is read whole (through ``read_checked``: a
damaged chunk stops the upgrade before anything is written, since a checksum over damaged bytes
would certify them), deleted and written again with the same shape, chunks, dtype, fill value and
attributes and the checked codecs. The rows do not change; earlier versions stay as they were
(unchecked), readable as before. One array is held in memory at a time (the pose column of a
million-row dataset: 288 MB).
"""

from __future__ import annotations

import logging

import icechunk
import zarr

from spinfits.store.checksums import CHECKED_COMPRESSORS, is_checked
from spinfits.store.damage import read_checked
from spinfits.store.location import StoreLocation
from spinfits.store.repository import default_who

log = logging.getLogger(__name__)


def upgrade(repo: icechunk.Repository, location: StoreLocation, branch: str) -> tuple[str | None, list[str]]:
    """Give every array of ``branch``'s tip checksums; returns the new commit (None when every
    array had them) and the arrays rewritten (``dataset/array``)."""
    with location.commit_lock():
        session = repo.writable_session(branch)
        root = zarr.open_group(session.store, mode="r+")
        rewritten = []
        for name, group in sorted(root.groups()):
            for key, array in sorted(group.arrays()):
                if is_checked(array):
                    continue
                values = read_checked(array)
                settings = dict(
                    shape=array.shape,
                    chunks=array.chunks,
                    dtype=array.dtype,
                    fill_value=array.fill_value,
                    attributes=dict(array.attrs),
                )
                del group[key]
                copy = group.create_array(key, compressors=CHECKED_COMPRESSORS, **settings)
                if values.size:
                    copy[...] = values
                rewritten.append(f"{name}/{key}")
                log.info("rewrote %s/%s with checksums", name, key)
        if not rewritten:
            return None, []
        snapshot = session.commit(
            f"upgrade: checksums on every chunk ({len(rewritten)} arrays rewritten)",
            metadata={"who": default_who(), "rows_improved": 0, "upgraded": rewritten},
        )
    return snapshot, rewritten
