"""The arrays of an npz archive, read from their .npy headers and in blocks of rows.

``np.load(path)[key]`` reads a whole member at once; a SPIN dataset npz of a million rows holds
members of 600 MB. ``NpzMembers`` reads each member's shape and dtype from its .npy header
alone, and its data ``block_rows`` rows at a time, sequentially from the member's stream, so a
reader's memory is one block, not one member. Stored (``np.savez``) and deflated
(``np.savez_compressed``) members both stream.

Convention: member names are those of ``np.load(path).files`` (the zip entry without ``.npy``).
Nothing is ever unpickled: an object-dtype member is refused as ``np.load(allow_pickle=False)``
refuses it. A file that cannot be read (not a zip, a truncated member, a bad .npy header) raises
``InputError`` saying it "is not a readable npz archive".
"""

from __future__ import annotations

import math
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np

from spinfits.errors import InputError
from spinfits.npy_files import NpyHeader, read_npy_header

#: Errors that reading a damaged archive raises (zipfile, zlib, numpy's header parser).
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError)


def unreadable(path: Path, reason: str, expected: str) -> InputError:
    """The error for an archive that cannot be read: ``reason`` says what is wrong with it."""
    return InputError(
        f"{path} is not a readable npz archive ({reason}); the file may be truncated or of "
        f"another format: expected {expected}"
    )


class NpzMembers:
    """The members of the npz archive at ``path``; a context manager (closes the archive).

    ``expected`` names what the file should be, for error messages (e.g. "SPIN's dataset npz").
    Headers are read when first asked for, each once.
    """

    def __init__(self, path: str | Path, expected: str = "an npz archive (np.savez / np.savez_compressed)"):
        self.path = Path(path)
        self.expected = expected
        if not self.path.is_file():
            raise InputError(f"npz file {self.path} does not exist; expected {expected}")
        try:
            self._zip = zipfile.ZipFile(self.path)
        except _READ_ERRORS as error:
            raise unreadable(self.path, f"{type(error).__name__}: {error}", expected) from None
        self._entries = {
            (entry[: -len(".npy")] if entry.endswith(".npy") else entry): entry
            for entry in self._zip.namelist()
        }
        self._headers: dict[str, NpyHeader] = {}

    def __enter__(self) -> NpzMembers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    @property
    def names(self) -> tuple[str, ...]:
        """The members' names, in archive order (as ``np.load(path).files``)."""
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def shape(self, name: str) -> tuple[int, ...]:
        """The member's shape, from its header (no data read)."""
        return self.header(name).shape

    def dtype(self, name: str) -> np.dtype:
        """The member's dtype, from its header (no data read)."""
        return self.header(name).dtype

    def header(self, name: str) -> NpyHeader:
        """The member's .npy header, checked against the member's size in the archive."""
        if name not in self._headers:
            with self._member(name) as stream:
                self._headers[name] = self._read_header(name, stream)
        return self._headers[name]

    def read(self, name: str) -> np.ndarray:
        """The whole member as an array (0-d members, Fortran order, any dtype but object)."""
        self._refuse_objects(name)
        with self._member(name) as stream:
            return np.lib.format.read_array(stream, allow_pickle=False)

    def blocks(self, name: str, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first_row, rows)``: consecutive blocks of at most ``block_rows`` rows of the
        member, ``rows`` of shape ``(B, *shape[1:])``, read sequentially from its stream.

        Memory: one block (its bytes and the array made of them). A Fortran-ordered member is
        not stored row by row: it is read whole (the member's size in memory) and sliced. A 0-d
        member is one block ``(0, array)``.
        """
        if isinstance(block_rows, bool) or not isinstance(block_rows, int | np.integer) or block_rows < 1:
            raise InputError(f"block_rows must be a positive int, got {block_rows!r}")
        header = self._refuse_objects(name)
        if not header.shape:
            yield 0, self.read(name)
            return
        rows, row_shape = header.shape[0], header.shape[1:]
        if header.fortran_order:
            whole = self.read(name)
            for start in range(0, rows, block_rows):
                yield start, whole[start : start + block_rows]
            return
        row_items = math.prod(row_shape)
        row_bytes = row_items * header.dtype.itemsize
        with self._member(name) as stream:
            stream.seek(header.data_offset)
            for start in range(0, rows, block_rows):
                count = min(block_rows, rows - start)
                if row_bytes == 0:
                    yield start, np.zeros((count, *row_shape), dtype=header.dtype)
                    continue
                data = stream.read(count * row_bytes)
                if len(data) != count * row_bytes:
                    raise self._unreadable(
                        f"member '{name}' ends in row {start + len(data) // row_bytes} of the "
                        f"{rows} its header declares"
                    )
                array = np.frombuffer(data, dtype=header.dtype, count=count * row_items).copy()
                del data  # not held while the caller works on the block
                yield start, array.reshape(count, *row_shape)
            stream.read(1)  # reaching the end makes zipfile check the member's CRC

    # ------------------------------------------------------------------------------- internals

    @contextmanager
    def _member(self, name: str) -> Iterator[IO[bytes]]:
        """The member's stream; a damaged archive's errors become ``unreadable``."""
        if name not in self._entries:
            raise InputError(
                f"{self.path} has no member '{name}' (it has {sorted(self._entries)}); expected {self.expected}"
            )
        try:
            with self._zip.open(self._entries[name]) as stream:
                yield stream
        except InputError:
            raise
        except _READ_ERRORS as error:
            raise self._unreadable(f"member '{name}': {type(error).__name__}: {error}") from None

    def _read_header(self, name: str, stream: IO[bytes]) -> NpyHeader:
        header = read_npy_header(stream)  # a damaged or foreign header: ``_member`` says so
        if not header.dtype.hasobject:
            size = header.data_offset + header.data_bytes
            stored = self._zip.getinfo(self._entries[name]).file_size
            if stored != size:
                raise self._unreadable(
                    f"member '{name}' holds {stored} bytes, its header declares {size} "
                    f"({header.shape} {header.dtype})"
                )
        return header

    def _refuse_objects(self, name: str) -> NpyHeader:
        header = self.header(name)
        if header.dtype.hasobject:
            raise self._unreadable(
                f"member '{name}' holds Python objects (dtype {header.dtype}), which are read only "
                f"by unpickling (allow_pickle), never done here"
            )
        return header

    def _unreadable(self, reason: str) -> InputError:
        return unreadable(self.path, reason, self.expected)
