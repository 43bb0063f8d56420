"""Files that ask for more memory than they hold are refused before anything is allocated:
model pickles (bytearray, bytes, numpy arrays of a forged size) and .npy headers."""

from __future__ import annotations

import resource

import numpy as np
import pytest

from spinfits.cli import main
from spinfits.errors import InputError
from spinfits.fitting.body.model_files import read_extra_regressor, read_pickle
from spinfits.npy_files import load_npy

BOMBS = {
    "bytearray": b"cbuiltins\nbytearray\n(I2000000000\ntR.",
    "bytes": b"c__builtin__\nbytes\n(I2000000000\ntR.",
    "numpy array": b"cnumpy\nndarray\n((I100000000000\ntS'f8'\ntR.",
    "reconstructed array": b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n(I100000000000\ntS'b'\ntR.",
}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_pickle_asking_for_gigabytes_is_refused_before_allocating(tmp_path, kind):
    path = tmp_path / "gmm_08.pkl"
    path.write_bytes(BOMBS[kind])
    before = peak_rss_mb()
    with pytest.raises(InputError, match=r"more than the whole file \(\d+ bytes\); nothing was allocated"):
        read_pickle(path)
    assert peak_rss_mb() - before < 100


def forged_npy(path, shape=(10**11, 82)) -> None:
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "<f8", "fortran_order": False, "shape": shape})
        handle.write(b"\0" * 64)


def test_npy_header_declaring_611_gib_is_refused(tmp_path, capsys):
    path = tmp_path / "fits.npy"
    forged_npy(path)
    with pytest.raises(InputError, match=r"declares a \(100000000000, 82\) float64 array .* holds 64 bytes"):
        load_npy(path, "SPIN fits")
    with pytest.raises(InputError, match="truncated or its header is forged"):
        read_extra_regressor(path, 6890)
    assert main(["store", "import", str(tmp_path / "s.icechunk"), "coco", str(path)]) == 2
    err = capsys.readouterr().err
    assert "nothing was allocated" in err and err.count("\n") == 1
    assert not (tmp_path / "s.icechunk").exists()


def test_truncated_npy_is_refused_and_a_good_one_loads(tmp_path):
    good = np.arange(82 * 3, dtype=np.float32).reshape(3, 82)
    np.save(tmp_path / "good.npy", good)
    assert np.array_equal(load_npy(tmp_path / "good.npy", "SPIN fits"), good)
    data = (tmp_path / "good.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[:-10])
    with pytest.raises(InputError, match="truncated"):
        load_npy(tmp_path / "cut.npy", "SPIN fits")
    with pytest.raises(InputError, match="is a directory"):
        load_npy(tmp_path, "SPIN fits")


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_one_header_reader_for_npy_files_and_npz_members(tmp_path, version):
    """``.npy`` files and npz members are read by the same header reader: versions 1.0-3.0 read
    alike in both, a later version is refused alike, naming it."""
    import zipfile

    from spinfits.fitting.data.npz_members import NpzMembers

    array = np.arange(12, dtype=np.float32).reshape(4, 3)
    path, archive = tmp_path / "a.npy", tmp_path / "a.npz"
    with open(path, "wb") as handle:
        np.lib.format.write_array(handle, array, version=version)
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(path, "a.npy")
    assert np.array_equal(load_npy(path, "test"), array)
    with NpzMembers(archive) as members:
        assert members.shape("a") == (4, 3) and np.array_equal(members.read("a"), array)
        assert np.array_equal(np.concatenate([block for _, block in members.blocks("a", 3)]), array)
    data = bytearray(path.read_bytes())
    data[6] = 4  # format 4.0: not a version numpy writes
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(path, "a.npy")
    with pytest.raises(InputError, match=r"format version 4\.0"):
        load_npy(path, "test")
    with NpzMembers(archive) as members, pytest.raises(InputError, match=r"format version 4\.0"):
        members.shape("a")
