"""Reading a ``.npy`` file without trusting its header: the shape it declares must fit the bytes
the file holds before anything is allocated.

A 200-byte file whose header declares a (10**11, 82) float64 array made ``np.load`` try to
allocate 611 GiB (``_ArrayMemoryError``). ``load_npy`` reads the header, compares the declared
size with the bytes after it and only then reads the array (never unpickling).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from spinfits.errors import InputError


def check_npy_header(path: str | os.PathLike, what: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) a ``.npy`` file declares, or ``InputError`` when it is not a .npy file, holds
    objects, or declares more bytes than it holds (truncated, or a forged header)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read(handle)
            data_start = handle.tell()
    except (ValueError, OSError, EOFError, SyntaxError) as error:
        raise InputError(f"{what} file {str(path)!r} is not a readable .npy array: {error}") from None
    del fortran
    if dtype.hasobject:
        raise InputError(
            f"{what} file {str(path)!r} holds Python objects, which would need unpickling (never "
            "done); save a numeric array"
        )
    declared = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    present = path.stat().st_size - data_start
    if declared > present:
        raise InputError(
            f"{what} file {str(path)!r} declares a {shape} {dtype} array ({declared} bytes) but holds "
            f"{present} bytes after its header: the file is truncated or its header is forged; "
            "nothing was allocated. Write the file again (np.save)"
        )
    return tuple(shape), dtype


def load_npy(path: str | os.PathLike, what: str) -> np.ndarray:
    """The array of a ``.npy`` file, its header checked first (``check_npy_header``)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{what} file {str(path)!r} is a directory; give the .npy file inside it")
    if not path.is_file():
        raise InputError(f"{what} file {str(path)!r} does not exist")
    check_npy_header(path, what)
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise InputError(f"{what} file {str(path)!r} is not a readable .npy array: {error}") from None
