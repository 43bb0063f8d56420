"""Reading a ``.npy`` file without trusting its header: the shape it declares must fit the bytes
the file holds before anything is allocated.

A 200-byte file whose header declares a (10**11, 82) float64 array made ``np.load`` try to
allocate 611 GiB (``_ArrayMemoryError``). ``load_npy`` reads the header, compares the declared
size with the bytes after it and only then reads the array (never unpickling).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from spinfits.errors import InputError


@dataclass(frozen=True)
class NpyHeader:
    """What a .npy header says.

    Fields:
        shape: the array's shape, () for a 0-d array.
        dtype: its dtype.
        fortran_order: True when the data is stored in Fortran (column-major) order.
        data_offset: bytes from the start of the .npy data to its first array byte.
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    data_offset: int

    @property
    def data_bytes(self) -> int:
        """Bytes of array data the header declares (0 for an object array: not known)."""
        return 0 if self.dtype.hasobject else math.prod(self.shape) * self.dtype.itemsize


def read_npy_header(stream: IO[bytes]) -> NpyHeader:
    """The header of the .npy data at the start of ``stream`` (a file or an npz member), leaving
    the stream at the first array byte. Versions 1.0, 2.0 and 3.0 (3.0 is 2.0 with a UTF-8
    header: an ASCII header, what every numeric array has, reads the same). ``ValueError`` (or
    ``EOFError``) for anything else: not a .npy file, a later version, a damaged header."""
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version in ((2, 0), (3, 0)):
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
    else:
        raise ValueError(
            f".npy format version {version[0]}.{version[1]}; versions 1.0, 2.0 and 3.0 are read "
            "(save the array again with np.save / np.savez)"
        )
    return NpyHeader(tuple(shape), dtype, bool(fortran_order), stream.tell())


def check_npy_header(path: str | os.PathLike, what: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) a ``.npy`` file declares, or ``InputError`` when it is not a .npy file, holds
    objects, or declares more bytes than it holds (truncated, or a forged header)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            header = read_npy_header(handle)
    except (ValueError, OSError, EOFError, SyntaxError) as error:
        raise InputError(f"{what} file {str(path)!r} is not a readable .npy array: {error}") from None
    shape, dtype = header.shape, header.dtype
    if dtype.hasobject:
        raise InputError(
            f"{what} file {str(path)!r} holds Python objects, which would need unpickling (never "
            "done); save a numeric array"
        )
    declared = header.data_bytes
    present = path.stat().st_size - header.data_offset
    if declared > present:
        raise InputError(
            f"{what} file {str(path)!r} declares a {shape} {dtype} array ({declared} bytes) but holds "
            f"{present} bytes after its header: the file is truncated or its header is forged; "
            "nothing was allocated. Write the file again (np.save)"
        )
    return shape, dtype


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
