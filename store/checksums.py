"""Per-chunk checksums: every array a store holds ends its codec chain with zarr v3's crc32c.

Each chunk is written as zstd-compressed bytes followed by the CRC-32C of those bytes
(``zarr.codecs.Crc32cCodec``); reading a chunk recomputes it, and a chunk whose bytes changed on
disk (a flipped bit, a truncated or overwritten object) fails with "Stored and computed checksum
do not match" instead of decoding to wrong numbers. ``spinfits.store.damage`` turns that into an
error naming the dataset, array and rows.

Stores written before checksums (spinfits up to format 2 without them) still open: their arrays
read as before, *unchecked*; ``spinfits store upgrade`` rewrites them with checksums
(``spinfits.store.upgrade``). A store can be mixed: arrays created after an upgrade-less spinfits
wrote it (a new update-log level, the failure record) carry checksums, the rest do not.
"""

from __future__ import annotations

from typing import Any

import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec

#: The bytes-to-bytes codecs of every array spinfits creates: zstd (zarr's default compressor,
#: level 0) then crc32c over the compressed bytes, so damage is found before decompressing.
CHECKED_COMPRESSORS = (ZstdCodec(level=0, checksum=False), Crc32cCodec())


def is_checked(array: zarr.Array) -> bool:
    """Whether ``array``'s chunks carry a crc32c checksum."""
    return any(isinstance(codec, Crc32cCodec) for codec in array.metadata.codecs)


def unchecked_arrays(store: Any) -> list[str]:
    """Paths (``dataset/array``) of the arrays of ``store`` (a session's) without checksums."""
    root = zarr.open_group(store, mode="r")
    unchecked = []
    for name, group in root.groups():
        for array_name, array in group.arrays():
            if not is_checked(array):
                unchecked.append(f"{name}/{array_name}")
    return sorted(unchecked)
