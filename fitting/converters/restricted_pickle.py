"""Pickles of numpy data (3DPW's sequence files, HumanData's dict members), read without
running any code the file names.

``pickle.load`` calls whatever callable a pickle names: a downloaded file can run anything.
``load_data_pickle`` resolves only the names numpy's arrays, dtypes and scalars pickle to
(numpy 1's ``numpy.core`` and numpy 2's ``numpy._core``) and ``_codecs.encode`` for latin1 (how
Python 3 pickles bytes at protocol 2); dicts, lists, tuples, strings and numbers need no name.
Any other name is refused with an ``InputError`` naming the file and the name.
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path
from typing import IO, Any

import numpy as np

from spinfits.errors import InputError

#: (module, name) -> the object a data pickle may ask for.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_module, "_reconstruct")] = np._core.multiarray._reconstruct
    _ALLOWED[(_module, "scalar")] = np._core.multiarray.scalar


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` restricted to what Python 3 writes for bytes at protocol 2."""
    if codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} (only latin1 is data)")
    return codecs.encode(text, "latin1")


class _Forbidden(pickle.UnpicklingError):
    """The pickle names a callable that is not numpy data: ``args[0]`` is ``module.name``."""


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _Forbidden(f"{module}.{name}") from None


def load_data_pickle(source: str | Path | IO[bytes], where: str, expected: str) -> Any:
    """The object pickled in ``source`` (a path or a binary file), numpy data only.

    ``where`` names the file in messages; ``expected`` says what it should hold. Strings written
    by Python 2 are decoded as latin1 (how 3DPW's files are read). A pickle that names anything
    but numpy arrays, dtypes and scalars, or is not a pickle, raises ``InputError``.
    """
    try:
        if isinstance(source, (str, Path)):
            with open(source, "rb") as file:
                return _DataUnpickler(file, encoding="latin1").load()
        return _DataUnpickler(source, encoding="latin1").load()
    except _Forbidden as error:
        raise InputError(
            f"{where} asks to run {error} while loading; only numpy arrays and plain Python data "
            f"are read from {expected}, never code: the file is not {expected} or was altered"
        ) from None
    except pickle.UnpicklingError as error:
        raise InputError(f"{where} is not a readable pickle ({error}); expected {expected}") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as error:
        raise InputError(
            f"{where} is not a readable pickle ({type(error).__name__}: {error}); the file may be "
            f"truncated: expected {expected}"
        ) from None


def load_data_pickle_bytes(data: bytes, where: str, expected: str) -> Any:
    """``load_data_pickle`` of an in-memory pickle."""
    return load_data_pickle(io.BytesIO(data), where, expected)
