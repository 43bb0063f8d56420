"""Model file loading: chumpy-free SMPL pickles, validation messages, fingerprints."""

import contextlib
import os
import pickle
import re
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse

from spinfits.cli import main
from spinfits.errors import InputError
from spinfits.fitting.body.model_files import (
    convert_smpl_pickle,
    load_body_model_files,
    read_gmm,
    read_pickle,
    smpl_arrays_from_dict,
)
from spinfits.fitting.synthetic.standin.files import standin_smpl_dict

V = 12  # a tiny SMPL-format model: the loader checks shapes against v_template's V


def tiny_smpl_dict(rng):
    weights = rng.random((V, 24))
    regressor = rng.random((24, V))
    return {
        "v_template": rng.normal(size=(V, 3)),
        "shapedirs": rng.normal(size=(V, 3, 10)),
        "posedirs": rng.normal(size=(V, 3, 207)),
        "J_regressor": scipy.sparse.csc_matrix(regressor / regressor.sum(1, keepdims=True)),
        "weights": weights / weights.sum(1, keepdims=True),
        "kintree_table": np.stack([np.r_[4294967295, np.zeros(23)], np.arange(24)]).astype(np.int64),
        "f": rng.integers(0, V, (20, 3)).astype(np.uint32),
        "bs_style": "lbs",
    }


@contextlib.contextmanager
def fake_chumpy(submodule, cls):
    """Make ``chumpy.<submodule>.<cls.__name__>`` importable while pickling (chumpy is absent)."""
    module = types.ModuleType(f"chumpy.{submodule}")
    cls.__module__, cls.__qualname__ = module.__name__, cls.__name__
    setattr(module, cls.__name__, cls)
    package = types.ModuleType("chumpy")
    setattr(package, submodule, module)
    sys.modules["chumpy"], sys.modules[module.__name__] = package, module
    try:
        yield cls
    finally:
        del sys.modules["chumpy"], sys.modules[module.__name__]


class Ch:
    """Pickles like chumpy's Ch: NEWOBJ of chumpy.ch.Ch, state dict holding the array in 'x'."""

    def __init__(self, x):
        self.x = x
        self._dirty_vars = set()
        self._itr = None

    def __getstate__(self):
        return dict(self.__dict__)


def write_chumpy_pickle(path, data, chumpy_keys):
    """Pickle ``data`` the way the official SMPL files are, with chumpy arrays."""
    with fake_chumpy("ch", Ch):
        wrapped = {k: (Ch(v) if k in chumpy_keys else v) for k, v in data.items()}
        with open(path, "wb") as handle:
            pickle.dump(wrapped, handle, protocol=2)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_chumpy_pickle_reads_without_chumpy(tmp_path, rng):
    data = tiny_smpl_dict(rng)
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    write_chumpy_pickle(path, data, chumpy_keys={"shapedirs", "v_template"})
    with open(path, "rb") as handle, pytest.raises(ModuleNotFoundError, match="chumpy"):
        pickle.load(handle, encoding="latin1")  # the plain way needs chumpy
    loaded = read_pickle(path)
    np.testing.assert_array_equal(loaded["shapedirs"], data["shapedirs"])
    np.testing.assert_array_equal(loaded["v_template"], data["v_template"])
    arrays = smpl_arrays_from_dict(loaded, path)
    np.testing.assert_allclose(arrays.J_regressor, data["J_regressor"].toarray())
    assert arrays.faces.dtype == np.int64


def test_convert_smpl_pickle_writes_a_plain_pickle(tmp_path, rng):
    data = tiny_smpl_dict(rng)
    source = tmp_path / "official.pkl"
    write_chumpy_pickle(source, data, chumpy_keys={"shapedirs"})
    target = convert_smpl_pickle(source, tmp_path / "plain.pkl")
    with open(target, "rb") as handle:
        plain = pickle.load(handle, encoding="latin1")  # no chumpy needed any more
    assert isinstance(plain["shapedirs"], np.ndarray)
    np.testing.assert_array_equal(plain["shapedirs"], data["shapedirs"])
    assert plain["bs_style"] == "lbs"


def test_chumpy_expression_is_refused_with_advice(tmp_path):
    path = tmp_path / "expr.pkl"

    class Select:
        def __getstate__(self):
            return {"a": 1}

    with fake_chumpy("reordering", Select):
        path.write_bytes(pickle.dumps({"shapedirs": Select()}, protocol=2))
    with pytest.raises(InputError, match="chumpy chumpy.reordering.Select expression"):
        read_pickle(path)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("v_template"), "has no 'v_template'"),
        (lambda d: d.update(shapedirs=np.zeros((V, 3, 4))), "4 shape directions, expected at least 10"),
        (
            lambda d: d.update(posedirs=np.zeros((V, 3, 10))),
            r"'posedirs' has shape \(12, 3, 10\), expected \(12, 3, 207\)",
        ),
        (
            lambda d: d.update(weights=np.zeros((V + 1, 24))),
            r"'weights' has shape \(13, 24\), expected \(12, 24\)",
        ),
        (lambda d: d.update(f=np.full((3, 3), V)), "'f' indexes vertices 12..12, expected 0..11"),
        (lambda d: d["v_template"].__setitem__((0, 0), np.nan), "'v_template' contains NaN"),
    ],
)
def test_bad_smpl_arrays_name_the_problem(tmp_path, rng, mutate, message):
    data = tiny_smpl_dict(rng)
    mutate(data)
    with pytest.raises(InputError, match=message):
        smpl_arrays_from_dict(data, tmp_path / "x.pkl")


def test_unreadable_and_wrong_pickles(tmp_path):
    truncated = tmp_path / "trunc.pkl"
    truncated.write_bytes(pickle.dumps({"v_template": np.zeros((5, 3))})[:40])
    with pytest.raises(InputError, match="is not a readable model pickle"):
        read_pickle(truncated)
    a_list = tmp_path / "list.pkl"
    a_list.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(InputError, match="holds a pickled list, expected a dict"):
        read_pickle(a_list)
    text = tmp_path / "text.pkl"
    text.write_text("hello, not a pickle")
    with pytest.raises(InputError, match="not a readable model pickle"):
        read_pickle(text)


def test_gmm_validation(tmp_path, rng):
    good = {
        "means": rng.normal(size=(8, 69)),
        "covars": np.stack([np.eye(69)] * 8),
        "weights": np.full(8, 1 / 8),
    }
    path = tmp_path / "gmm_08.pkl"
    path.write_bytes(pickle.dumps(good))
    prior, standin = read_gmm(path)
    assert prior.means.shape == (8, 69) and standin is None
    bad = dict(good, weights=np.full(8, 0.5))
    path.write_bytes(pickle.dumps(bad))
    with pytest.raises(InputError, match="weights' must be non-negative and sum to 1, they sum to 4"):
        read_gmm(path)
    bad = dict(good, covars=np.zeros((8, 69, 69)))
    path.write_bytes(pickle.dumps(bad))
    with pytest.raises(InputError, match="not positive definite"):
        read_gmm(path)


def test_missing_model_dir_and_files(tmp_path):
    with pytest.raises(InputError, match="model directory .* does not exist.*make-standin"):
        load_body_model_files(tmp_path / "absent")
    with pytest.raises(InputError, match=r"SMPL_NEUTRAL.pkl does not exist.*make-standin"):
        load_body_model_files(tmp_path)


# ----------------------------------------------------------------------------- untrusted pickles


class SystemPayload:
    """What a malicious model pickle holds: unpickling it would run ``touch MARKER``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


#: how pickle names os.system in a file (``posix.system`` on Linux)
SYSTEM_NAME = rf"{os.system.__module__}\.system"


def write_payload_model(source_dir, target_dir, which, placement, marker, protocol):
    """Copy a genuine model folder, replacing one pickle by a payload (alone or as an extra key)."""
    shutil.copytree(source_dir, target_dir)
    relative = {"smpl": Path("smpl") / "SMPL_NEUTRAL.pkl", "gmm": Path("gmm_08.pkl")}[which]
    path = target_dir / relative
    if placement == "top":
        payload = SystemPayload(marker)
    else:
        with open(path, "rb") as handle:
            payload = dict(pickle.load(handle, encoding="latin1"), extra=SystemPayload(marker))
    path.write_bytes(pickle.dumps(payload, protocol=protocol))
    return path


def read_through(entry_point, model_dir, path, capsys):
    """Load the folder the way ``entry_point`` does; return the error message it gives."""
    if entry_point == "read_pickle":
        with pytest.raises(InputError) as error:
            read_pickle(path)
        return str(error.value)
    if entry_point == "load_body_model_files":
        with pytest.raises(InputError) as error:
            load_body_model_files(model_dir)
        return str(error.value)
    assert main(["model", "info", str(model_dir)]) == 2
    captured = capsys.readouterr()
    assert "fingerprint" not in captured.out
    return captured.err


@pytest.mark.parametrize("entry_point", ["read_pickle", "load_body_model_files", "cli"])
@pytest.mark.parametrize("placement", ["top", "nested"])
@pytest.mark.parametrize("which", ["smpl", "gmm"])
def test_model_pickle_with_code_payload_is_refused_and_never_runs(
    tmp_path, standin_dir, capsys, which, placement, entry_point
):
    marker = tmp_path / "MARKER"
    model_dir = tmp_path / "model"
    protocol = 2 if placement == "top" else pickle.DEFAULT_PROTOCOL
    path = write_payload_model(standin_dir, model_dir, which, placement, marker, protocol)
    message = read_through(entry_point, model_dir, path, capsys)
    assert not marker.exists()
    assert re.search(SYSTEM_NAME, message)
    assert str(path) in message
    assert "model files may only hold arrays" in message
    assert "may be malicious or not a model file" in message


def _global(module, name):
    """Protocol-0 opcodes pushing ``module.name`` (what a hand-made payload would write)."""
    return f"c{module}\n{name}\n".encode()


@pytest.mark.parametrize(
    "module, name, args",
    [
        ("__builtin__", "eval", b'(S\'open("MARKER", "w")\'\ntR.'),
        ("builtins", "exec", b'(S\'open("MARKER", "w")\'\ntR.'),
        ("__builtin__", "getattr", b"(c__builtin__\nobject\nS'__subclasses__'\ntR."),
        ("numpy", "load", b"(S'MARKER'\ntR."),
        ("numpy.lib.npyio", "load", b"(S'MARKER'\ntR."),
        ("subprocess", "Popen", b"((S'touch'\nS'MARKER'\nltR."),
        ("copy_reg", "__import__", b"(S'os'\ntR."),
        ("numpy.core.multiarray", "frombuffer", b"(S''\ntR."),
        ("scipy.sparse", "load_npz", b"(S'MARKER'\ntR."),
    ],
)
def test_only_allow_listed_globals_are_resolved(tmp_path, monkeypatch, module, name, args):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "gadget.pkl"
    path.write_bytes(_global(module, name) + args)
    with pytest.raises(InputError, match=rf"asks to load {re.escape(module)}\.{name}"):
        read_pickle(path)
    assert not (tmp_path / "MARKER").exists()


def test_codecs_encode_is_limited_to_latin1(tmp_path):
    path = tmp_path / "codec.pkl"
    path.write_bytes(b"(dS'k'\n" + _global("_codecs", "encode") + b"(S'abc'\nS'rot13'\ntRs.")
    with pytest.raises(InputError, match="only allowed with latin-1, got 'rot13'"):
        read_pickle(path)
    path.write_bytes(b"(dS'k'\n" + _global("_codecs", "encode") + b"(S'abc'\nS'latin1'\ntRs.")
    assert read_pickle(path) == {"k": b"abc"}


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_standin_dict_reads_back_in_every_protocol(tmp_path, protocol):
    data = standin_smpl_dict()
    data["extras"] = {
        "scalar": np.float64(2.5),
        "labels": {"a", "b"},
        "raw": b"\x00\xff",
        "csr": scipy.sparse.csr_matrix(np.eye(3)),
        "z": complex(1, 2),
    }
    path = tmp_path / "smpl.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    loaded = read_pickle(path)
    arrays = smpl_arrays_from_dict(loaded, path)
    np.testing.assert_array_equal(arrays.v_template, data["v_template"])
    assert loaded["extras"]["labels"] == {"a", "b"} and loaded["extras"]["raw"] == b"\x00\xff"
    np.testing.assert_array_equal(loaded["extras"]["csr"].toarray(), np.eye(3))


def test_python2_and_numpy1_module_names_are_accepted(tmp_path, rng):
    """Old SMPL pickles name numpy.core.multiarray, scipy.sparse.csc, copy_reg, __builtin__."""
    data = tiny_smpl_dict(rng)
    data["labels"] = {"x"}
    modern = pickle.dumps(data, protocol=2)
    old = modern.replace(b"numpy._core.multiarray", b"numpy.core.multiarray").replace(
        b"scipy.sparse._csc", b"scipy.sparse.csc"
    )
    assert b"c__builtin__\nset" in old and b"numpy.core.multiarray" in old
    path = tmp_path / "old.pkl"
    path.write_bytes(old)
    arrays = smpl_arrays_from_dict(read_pickle(path), path)
    np.testing.assert_allclose(arrays.J_regressor, data["J_regressor"].toarray())
    path.write_bytes(pickle.dumps(scipy.sparse.csc_matrix(np.eye(2)), protocol=0))
    assert b"copy_reg\n_reconstructor" in path.read_bytes()
    with pytest.raises(InputError, match="holds a pickled csc_matrix, expected a dict"):
        read_pickle(path)
