"""Body model files: SMPL's pickle, SPIN's ``J_regressor_extra.npy`` and SMPLify's GMM pose prior.

Reads the real licensed files unchanged (official SMPL pickles hold ``chumpy`` arrays; they are
read here without chumpy, which does not import beside numpy 2) and the generated stand-in
files (``spinfits model make-standin``), which are marked as stand-ins inside the files.

Layout of a model directory (SPIN's ``data/`` folder)::

    DIR/smpl/SMPL_NEUTRAL.pkl    SMPL model (v_template, shapedirs, posedirs, J_regressor, ...)
    DIR/J_regressor_extra.npy    (9, V) SPIN's extra joint regressor
    DIR/gmm_08.pkl               8-component GMM over the 69 body-pose parameters
"""

from __future__ import annotations

import copyreg
import hashlib
import importlib
import io
import logging
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spinfits.errors import InputError
from spinfits.fitting.body.joints import NUM_SMPL_JOINTS
from spinfits.npy_files import check_npy_header

logger = logging.getLogger(__name__)

SMPL_RELATIVE_PATH = Path("smpl") / "SMPL_NEUTRAL.pkl"
EXTRA_REGRESSOR_NAME = "J_regressor_extra.npy"
GMM_NAME = "gmm_08.pkl"
#: Key the stand-in generator adds to its pickles; its value names the stand-in's provenance.
STANDIN_KEY = "spinfits_standin"
#: File written beside stand-in files with their provenance and licence.
STANDIN_README = "STANDIN.md"

NUM_BODY_POSE = 69
NUM_POSE_BASIS = 207
NUM_EXTRA_JOINTS = 9

_HOW_TO_FIX = (
    "point --model-dir at a folder holding smpl/SMPL_NEUTRAL.pkl, J_regressor_extra.npy and "
    "gmm_08.pkl (SPIN's data/ layout), or write stand-in files with "
    "`spinfits model make-standin DIR`"
)


@dataclass(frozen=True, eq=False)
class SmplArrays:
    """The arrays of a SMPL model file, as plain numpy (V vertices, F faces, S shape dims).

    Fields:
        v_template: (V, 3) float64 rest-pose vertices, metres, y up, facing +z.
        shapedirs: (V, 3, S) float64 shape blend shapes (S >= 10).
        posedirs: (V, 3, 207) float64 pose-corrective blend shapes.
        J_regressor: (24, V) float64 dense joint regressor.
        weights: (V, 24) float64 skinning weights.
        kintree_table: (2, 24) int64; row 0 holds each joint's parent.
        faces: (F, 3) int64 triangle vertex indices.
    """

    v_template: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    J_regressor: np.ndarray
    weights: np.ndarray
    kintree_table: np.ndarray
    faces: np.ndarray

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    def as_smplx_struct_dict(self) -> dict[str, np.ndarray]:
        """Keyword arguments for ``smplx.utils.Struct`` (what ``smplx.SMPL`` reads from a pickle)."""
        return {
            "v_template": self.v_template,
            "shapedirs": self.shapedirs,
            "posedirs": self.posedirs,
            "J_regressor": self.J_regressor,
            "weights": self.weights,
            "kintree_table": self.kintree_table,
            "f": self.faces,
        }


@dataclass(frozen=True, eq=False)
class GmmPrior:
    """SMPLify's Gaussian-mixture pose prior over the 69 body-pose parameters (G components).

    Fields:
        means: (G, 69) float64 component means, axis-angle radians.
        covars: (G, 69, 69) float64 component covariances.
        weights: (G,) float64 mixture weights, summing to 1.
    """

    means: np.ndarray
    covars: np.ndarray
    weights: np.ndarray


@dataclass(frozen=True, eq=False)
class BodyModelFiles:
    """Everything SMPLify needs from the model directory, loaded once and validated.

    ``standin_parts`` names the files that are generated stand-ins (empty for real SMPL files);
    ``fingerprint`` hashes every array, so a store can refuse fits from another body model.
    """

    directory: Path
    smpl: SmplArrays
    J_regressor_extra: np.ndarray  # (9, V) float64
    gmm: GmmPrior
    standin_parts: tuple[str, ...]
    provenance: str
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fingerprint", _fingerprint(self))

    @property
    def is_standin(self) -> bool:
        return bool(self.standin_parts)

    @property
    def description(self) -> str:
        """One line for logs, CLI output and reports; names a stand-in as one."""
        kind = (
            "STAND-IN body model (not SMPL: " + ", ".join(self.standin_parts) + ")"
            if self.is_standin
            else "SMPL body model"
        )
        return f"{kind} from {self.directory} [fingerprint {self.fingerprint}]"


# ----------------------------------------------------------------------------- pickles


class _ChumpyArray:
    """Placeholder for a pickled ``chumpy`` object: keeps its state, never runs chumpy code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._chumpy_state: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        self._chumpy_state = state if isinstance(state, dict) else {"state": state}


def _numpy_internal(submodule: str, name: str) -> Any:
    """``numpy._core.<submodule>.<name>`` (numpy 2), ``numpy.core...`` on numpy 1."""
    try:
        module = importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:  # numpy 1.x
        module = importlib.import_module(f"numpy.core.{submodule}")
    return getattr(module, name)


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol 0/1 pickles use it for bytes, limited to latin-1."""
    if str(encoding).lower().replace("_", "-") not in ("latin1", "latin-1", "iso-8859-1"):
        raise pickle.UnpicklingError(f"_codecs.encode is only allowed with latin-1, got {encoding!r}")
    if not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode expects a str, got {type(text).__name__}")
    return text.encode("latin-1")


def _scipy_sparse(name: str) -> Any:
    import scipy.sparse

    return getattr(scipy.sparse, name)


#: The only globals a model pickle may name: what numpy arrays, scipy.sparse CSC/CSR matrices
#: (SMPL's J_regressor) and chumpy's pickled state (sets) need, under Python 3 names.
#: None of them runs code from its arguments, so REDUCE/BUILD of these cannot be a gadget.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("numpy._core.multiarray", "_reconstruct"): lambda: _numpy_internal("multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"): lambda: _numpy_internal("multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"): lambda: _numpy_internal("numeric", "_frombuffer"),
    ("scipy.sparse", "csc_matrix"): lambda: _scipy_sparse("csc_matrix"),
    ("scipy.sparse", "csr_matrix"): lambda: _scipy_sparse("csr_matrix"),
    ("copyreg", "_reconstructor"): lambda: copyreg._reconstructor,
    ("_codecs", "encode"): lambda: _latin1_encode,
    ("builtins", "object"): lambda: object,
    ("builtins", "set"): lambda: set,
    ("builtins", "frozenset"): lambda: frozenset,
    ("builtins", "complex"): lambda: complex,
    ("builtins", "bytes"): lambda: bytes,
    ("builtins", "bytearray"): lambda: bytearray,
}

#: Other spellings of the allowed modules: Python 2 names, numpy 1 names, scipy's private and
#: deprecated sparse modules.
_MODULE_ALIASES = {
    "__builtin__": "builtins",
    "copy_reg": "copyreg",
    "numpy.core.multiarray": "numpy._core.multiarray",
    "numpy.core.numeric": "numpy._core.numeric",
    "scipy.sparse._csc": "scipy.sparse",
    "scipy.sparse.csc": "scipy.sparse",
    "scipy.sparse._csr": "scipy.sparse",
    "scipy.sparse.csr": "scipy.sparse",
}


class _RefusedGlobal(pickle.UnpicklingError):
    """A model pickle named a global outside the allow-list (never imported, never called)."""

    def __init__(self, qualified_name: str) -> None:
        super().__init__(qualified_name)
        self.qualified_name = qualified_name


class _AllocationBomb(pickle.UnpicklingError):
    """A model pickle asked for more memory than the file could hold."""


def _bounded_constructors(limit: int) -> dict[tuple[str, str], Any]:
    """The allow-listed globals that allocate from a size argument, refusing any size beyond
    ``limit`` bytes (the pickle file's size: a genuine file holds its arrays' bytes)."""

    def check(nbytes: int, what: str) -> None:
        if nbytes > limit:
            raise _AllocationBomb(f"{what} of {nbytes} bytes, more than the whole file ({limit} bytes)")

    def sized(kind: type) -> Any:
        def make(*args: Any) -> Any:
            if args and isinstance(args[0], int):
                check(args[0], kind.__name__)
            return kind(*args)

        return make

    def ndarray(shape: Any, dtype: Any = float, *args: Any, **kwargs: Any) -> np.ndarray:
        check(int(np.prod(shape, dtype=np.float64)) * np.dtype(dtype).itemsize, f"numpy array {shape}")
        return np.ndarray(shape, dtype, *args, **kwargs)

    reconstruct = _numpy_internal("multiarray", "_reconstruct")

    def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
        check(int(np.prod(shape, dtype=np.float64)) * np.dtype(dtype).itemsize, f"numpy array {shape}")
        return reconstruct(np.ndarray if subtype is ndarray else subtype, shape, dtype)

    return {
        ("builtins", "bytearray"): sized(bytearray),
        ("builtins", "bytes"): sized(bytes),
        ("numpy", "ndarray"): ndarray,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    }


class _ChumpyFreeUnpickler(pickle.Unpickler):
    """Unpickles only arrays: allow-listed numpy/scipy globals and inert chumpy placeholders.
    Constructors that allocate from a size argument refuse sizes beyond ``limit`` bytes."""

    def __init__(self, handle: Any, *, limit: int, **kwargs: Any) -> None:
        super().__init__(handle, **kwargs)
        self._bounded = _bounded_constructors(limit)

    def find_class(self, module: str, name: str) -> Any:
        if module == "chumpy" or module.startswith("chumpy."):
            return type(name, (_ChumpyArray,), {"chumpy_class": f"{module}.{name}"})
        key = (_MODULE_ALIASES.get(module, module), name)
        if key in self._bounded:
            return self._bounded[key]
        resolve = _ALLOWED_GLOBALS.get(key)
        if resolve is None:
            raise _RefusedGlobal(f"{module}.{name}")
        return resolve()


def _plain(value: Any, key: str, path: Path) -> Any:
    """Turn a chumpy placeholder into its numpy array; leave everything else alone."""
    if isinstance(value, _ChumpyArray):
        state = value._chumpy_state
        if "x" not in state:
            raise InputError(
                f"{path}: '{key}' is a chumpy {type(value).chumpy_class} expression, not a "
                f"plain chumpy array; expected the official SMPL pickle whose chumpy arrays hold "
                f"their values. Convert the file once with chumpy installed, or use the "
                f"official file unchanged."
            )
        return np.asarray(state["x"])
    return value


def read_pickle(path: Path) -> dict[str, Any]:
    """Read a model pickle (Python 2 or 3), turning chumpy arrays into numpy without chumpy."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"model file {path} does not exist; {_HOW_TO_FIX}")
    try:
        with open(path, "rb") as handle:
            data = _ChumpyFreeUnpickler(handle, limit=path.stat().st_size, encoding="latin1").load()
    except _RefusedGlobal as error:
        raise InputError(
            f"{path} asks to load {error.qualified_name}, which model files never need: model "
            f"files may only hold arrays (numpy, scipy.sparse, chumpy). Nothing from the file "
            f"was run. The file may be malicious or not a model file; replace it with the "
            f"official download. {_HOW_TO_FIX}"
        ) from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        ImportError,
        IndexError,
        KeyError,
        MemoryError,
    ) as error:
        if isinstance(error, _AllocationBomb):
            raise InputError(
                f"{path} asks for a {error}; nothing was allocated. The file is damaged or not a "
                f"genuine model file. {_HOW_TO_FIX}"
            ) from None
        raise InputError(
            f"{path} is not a readable model pickle ({type(error).__name__}: {error}); "
            f"expected a pickled dict as SMPL/SMPLify distribute it. {_HOW_TO_FIX}"
        ) from None
    if not isinstance(data, dict):
        raise InputError(
            f"{path} holds a pickled {type(data).__name__}, expected a dict of model arrays; {_HOW_TO_FIX}"
        )
    return {key: _plain(value, key, path) for key, value in data.items()}


def _dense(value: Any) -> np.ndarray:
    if hasattr(value, "toarray"):  # scipy.sparse, as in the official J_regressor
        value = value.toarray()
    return np.asarray(value)


def _check_array(
    path: Path, key: str, value: Any, shape: tuple[int | None, ...], dtype: type = np.float64
) -> np.ndarray:
    if value is None:
        raise InputError(f"{path} has no '{key}'; expected an array of shape {_fmt(shape)}")
    try:
        array = _dense(value)
        array = array.astype(dtype)
    except (TypeError, ValueError) as error:
        raise InputError(f"{path}: '{key}' is not a numeric array ({error})") from None
    if array.ndim != len(shape) or any(
        want is not None and got != want for got, want in zip(array.shape, shape)
    ):
        raise InputError(
            f"{path}: '{key}' has shape {tuple(array.shape)}, expected {_fmt(shape)}; is this the right file?"
        )
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InputError(f"{path}: '{key}' contains NaN or infinite values; the file is damaged")
    return array


def _fmt(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"


def smpl_arrays_from_dict(data: dict[str, Any], path: Path) -> SmplArrays:
    """Validate a SMPL pickle's dict and return its arrays (errors name the file and key)."""
    v_template = _check_array(path, "v_template", data.get("v_template"), (None, 3))
    num_vertices = v_template.shape[0]
    shapedirs = _check_array(path, "shapedirs", data.get("shapedirs"), (num_vertices, 3, None))
    if shapedirs.shape[2] < 10:
        raise InputError(
            f"{path}: 'shapedirs' has {shapedirs.shape[2]} shape directions, expected at least 10"
        )
    posedirs = _check_array(path, "posedirs", data.get("posedirs"), (num_vertices, 3, NUM_POSE_BASIS))
    j_regressor = _check_array(path, "J_regressor", data.get("J_regressor"), (NUM_SMPL_JOINTS, num_vertices))
    weights = _check_array(path, "weights", data.get("weights"), (num_vertices, NUM_SMPL_JOINTS))
    kintree = _check_array(path, "kintree_table", data.get("kintree_table"), (2, NUM_SMPL_JOINTS), np.int64)
    faces = _check_array(path, "f", data.get("f"), (None, 3), np.int64)
    if faces.size and (faces.min() < 0 or faces.max() >= num_vertices):
        raise InputError(
            f"{path}: 'f' indexes vertices {faces.min()}..{faces.max()}, expected 0..{num_vertices - 1}"
        )
    return SmplArrays(v_template, shapedirs, posedirs, j_regressor, weights, kintree, faces)


def read_gmm(path: Path) -> tuple[GmmPrior, str | None]:
    """Read SMPLify's GMM pose prior pickle (dict of means, covars, weights).

    Returns the prior and the stand-in provenance if the file is a generated stand-in.
    """
    data = read_pickle(path)
    means = _check_array(path, "means", data.get("means"), (None, NUM_BODY_POSE))
    count = means.shape[0]
    covars = _check_array(path, "covars", data.get("covars"), (count, NUM_BODY_POSE, NUM_BODY_POSE))
    weights = _check_array(path, "weights", data.get("weights"), (count,))
    if np.any(weights < 0) or not np.isclose(weights.sum(), 1.0, atol=1e-4):
        raise InputError(
            f"{path}: GMM 'weights' must be non-negative and sum to 1, they sum to {weights.sum():.6g}"
        )
    if not np.all(np.linalg.eigvalsh(covars) > 0):
        raise InputError(f"{path}: a GMM covariance is not positive definite; the file is damaged")
    return GmmPrior(means, covars, weights), data.get(STANDIN_KEY)


def read_extra_regressor(path: Path, num_vertices: int) -> np.ndarray:
    """Read SPIN's ``J_regressor_extra.npy``: (9, V) float64."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"model file {path} does not exist; {_HOW_TO_FIX}")
    try:
        check_npy_header(path, "J_regressor_extra")
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise InputError(
            f"{path} is not a .npy array ({error}); expected SPIN's J_regressor_extra.npy, "
            f"a (9, {num_vertices}) float array"
        ) from None
    return _check_array(path, "J_regressor_extra", array, (NUM_EXTRA_JOINTS, num_vertices))


# ----------------------------------------------------------------------------- loading


def load_body_model_files(model_dir: str | Path) -> BodyModelFiles:
    """Load and validate the body model files of ``model_dir`` (SPIN's ``data/`` layout)."""
    directory = Path(model_dir)
    if not directory.is_dir():
        raise InputError(f"model directory {directory} does not exist; {_HOW_TO_FIX}")
    smpl_path = directory / SMPL_RELATIVE_PATH
    smpl_dict = read_pickle(smpl_path)
    smpl = smpl_arrays_from_dict(smpl_dict, smpl_path)
    extra = read_extra_regressor(directory / EXTRA_REGRESSOR_NAME, smpl.num_vertices)
    gmm, gmm_standin = read_gmm(directory / GMM_NAME)

    standin_parts: list[str] = []
    provenance = []
    if smpl_dict.get(STANDIN_KEY):
        standin_parts.append(str(SMPL_RELATIVE_PATH))
        provenance.append(str(smpl_dict[STANDIN_KEY]))
    if (directory / STANDIN_README).is_file() and standin_parts:
        standin_parts.append(EXTRA_REGRESSOR_NAME)
    if gmm_standin:
        standin_parts.append(GMM_NAME)
        provenance.append(str(gmm_standin))
    files = BodyModelFiles(
        directory=directory,
        smpl=smpl,
        J_regressor_extra=extra,
        gmm=gmm,
        standin_parts=tuple(standin_parts),
        provenance=" | ".join(dict.fromkeys(provenance)) or "user-supplied model files",
    )
    logger.info("loaded %s", files.description)
    return files


def _fingerprint(files: BodyModelFiles) -> str:
    """SHA-256 over every array (canonical dtype and shape), first 16 hex digits."""
    digest = hashlib.sha256()
    arrays = dict(files.smpl.as_smplx_struct_dict())
    arrays["shapedirs"] = arrays["shapedirs"][:, :, :10]
    arrays["J_regressor_extra"] = files.J_regressor_extra
    arrays["gmm_means"] = files.gmm.means
    arrays["gmm_covars"] = files.gmm.covars
    arrays["gmm_weights"] = files.gmm.weights
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        array = array.astype(np.int64 if array.dtype.kind in "iu" else np.float64)
        digest.update(name.encode())
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def convert_smpl_pickle(source: str | Path, target: str | Path) -> Path:
    """Write a chumpy-free copy of a SMPL pickle: chumpy arrays become numpy, the rest unchanged."""
    source, target = Path(source), Path(target)
    data = read_pickle(source)
    smpl_arrays_from_dict(data, source)  # refuse to convert something that is not SMPL
    target.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    pickle.dump(data, buffer, protocol=2)
    target.write_bytes(buffer.getvalue())
    return target
