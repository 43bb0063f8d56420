"""MATLAB ``.mat`` files (LSP's ``joints.mat``, MPII's annotations), read with scipy.io.

``read_mat`` returns the file's variables (MATLAB structs as ``scipy.io.matlab.mat_struct``
with attribute access, 1-element dimensions squeezed); an unreadable file is an ``InputError``
naming it. MATLAB v7.3 files (HDF5) are refused with how to resave them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import scipy.io

from spinfits.errors import InputError


def read_mat(path: str | Path, expected: str) -> dict[str, Any]:
    """The variables of the .mat file at ``path`` (names starting with ``__`` left out).

    ``expected`` names what the file should be, for messages (e.g. "LSP's joints.mat").
    """
    path = Path(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise InputError(f"{path} {what}; expected {expected}")
    try:
        variables = scipy.io.loadmat(path, struct_as_record=False, squeeze_me=True)
    except NotImplementedError:
        raise InputError(
            f"{path} is a MATLAB v7.3 (HDF5) file, which scipy.io cannot read; resave it in MATLAB "
            f"with save(..., '-v7') or use the dataset's original file: expected {expected}"
        ) from None
    except (
        scipy.io.matlab.MatReadError,
        ValueError,
        TypeError,
        OSError,
        EOFError,
        IndexError,
        KeyError,
    ) as error:
        raise InputError(
            f"{path} is not a readable .mat file ({type(error).__name__}: {error}); expected {expected}"
        ) from None
    return {name: value for name, value in variables.items() if not name.startswith("__")}
