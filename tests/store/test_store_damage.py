"""Damaged stores: bit flips in every chunk, deleted chunks, truncated manifests, old stores
without checksums. Every damage is found by ``store verify`` and no damaged value is ever read."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from store_helpers import BODY, random_proposals
from zarr.codecs import ZstdCodec

from spinfits.cli import main
from spinfits.store import Fits, FitStore, Proposals, Source
from spinfits.store.damage import DamagedStoreError
from spinfits.store.verify import verify_store

N_ROWS = 200


def build_store(path) -> FitStore:
    """A 200-row store as a precompute and some training commits leave it: one fold into the
    columns, then commits into the update log, and a failed row."""
    store = FitStore.create(path, BODY)
    store.create_dataset("coco", N_ROWS, dataset_fingerprint="npz-1", chunk_rows=32)
    rng = np.random.default_rng(7)
    fitted = N_ROWS - 10  # the last 10 rows get no fit, and one of them fails
    store.merge("coco", random_proposals(rng, fitted, 600, losses=rng.random(600).astype(np.float32) + 1))
    store.commit("precompute")
    for step in range(6):  # in-loop improvements land in the update log
        store.merge("coco", random_proposals(rng, fitted, 20, source=Source.IN_LOOP, step=step))
        store.commit(f"training step {step}")
    assert store.record_failures("coco", np.array([195]), ["fit diverged"]) == 1
    store.commit("failure")
    return store


def flip(path, offset_fraction: float = 0.5, count: int = 16) -> None:
    data = bytearray(path.read_bytes())
    start = min(int(len(data) * offset_fraction), max(0, len(data) - count))
    for k in range(start, min(start + count, len(data))):
        data[k] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    path = tmp_path_factory.mktemp("damage") / "fits.icechunk"
    store = build_store(path)
    return path, store.read("coco"), store.tip()


def damaged_copy(pristine, tmp_path):
    path = tmp_path / "copy.icechunk"
    shutil.copytree(pristine[0], path)
    return path


def test_verify_finds_a_bit_flip_in_every_chunk_and_no_reader_returns_a_damaged_value(pristine, tmp_path):
    source, good, _ = pristine
    chunk_files = sorted(p.name for p in (source / "chunks").iterdir())
    assert len(chunk_files) >= 18
    found, refused_reads = 0, 0
    for name in chunk_files:
        path = damaged_copy(pristine, tmp_path)
        flip(path / "chunks" / name)
        store = FitStore.open(path)
        tip = verify_store(store)[0]
        try:
            fits = store.read("coco")
        except DamagedStoreError as error:
            refused_reads += 1
            assert "array" in str(error) and "rows" in str(error) and str(path) in str(error)
            found += not tip.whole
        else:  # the chunk is not in the tip: the tip reads as before, bit for bit, and is whole
            assert fits.equals(good) and tip.whole
            found += any(check.damage for check in verify_store(store, all_versions=True))
        shutil.rmtree(path)
    assert found == len(chunk_files)
    assert refused_reads >= 7  # at least one chunk per column of the tip


def test_verify_lists_dataset_array_rows_and_the_repair(pristine, tmp_path, capsys):
    path = damaged_copy(pristine, tmp_path)
    biggest = max((path / "chunks").iterdir(), key=lambda p: p.stat().st_size)  # a pose chunk
    flip(biggest)
    assert main(["store", "verify", str(path)]) == 2
    out, err = capsys.readouterr()
    assert "coco" in out and "pose" in out and "checksum" in out
    assert "rows " in out
    assert "store rollback" in err and "--all-versions" in err and err.count("\n") == 1
    assert main(["store", "export", str(path), "coco", str(tmp_path / "out_fits.npy")]) == 2
    assert not (tmp_path / "out_fits.npy").exists()


def test_a_deleted_chunk_is_an_error_naming_the_rows(pristine, tmp_path, capsys):
    path = damaged_copy(pristine, tmp_path)
    biggest = max((path / "chunks").iterdir(), key=lambda p: p.stat().st_size)
    biggest.unlink()
    assert main(["store", "info", str(path)]) == 2
    err = capsys.readouterr().err
    assert "pose" in err and "not found" in err and err.count("\n") == 1
    checks = verify_store(FitStore.open(path))
    assert any(d.array == "pose" for d in checks[0].damage)


def test_a_truncated_manifest_is_one_line_in_every_command(pristine, tmp_path, capsys):
    path = damaged_copy(pristine, tmp_path)
    manifests = sorted((path / "manifests").iterdir(), key=os.path.getmtime)
    for manifest in manifests:
        manifest.write_bytes(manifest.read_bytes()[: manifest.stat().st_size // 2])
    for command in (["info", str(path)], ["export", str(path), "coco", str(tmp_path / "o_fits.npy")]):
        assert main(["store", *command]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "damaged" in err and "store verify" in err, err
    assert main(["store", "verify", str(path)]) == 2


@pytest.mark.local_only("the command lines name the store by its path")
def test_a_loss_flipped_negative_never_locks_its_row(store, tmp_path, capsys):
    """A store without checksums whose loss was damaged to -0.09: readers report the row, and an
    honest fit still lands on it."""
    rows = np.arange(4)
    good = Proposals(
        rows=rows,
        pose=np.zeros((4, 72), np.float32),
        betas=np.zeros((4, 10), np.float32),
        cam_t=np.tile(np.float32([0, 0, 30]), (4, 1)),
        loss=np.full(4, 2.0, np.float32),
    )
    store.merge("coco", good)
    store.commit("good fits")
    session = store.repository.writable_session("main")
    import zarr

    zarr.open_array(session.store, path="coco/loss", mode="r+")[1] = np.float32(-0.0926)
    session.commit("damage (as a flipped bit would)")
    reader = FitStore.open(store.location).reader("coco")
    assert reader.read_rows([1]).loss[0] == np.inf  # read as no fit, never as the -0.09
    assert "row 1" in reader.damage[0].rows and "negative loss" in reader.damage[0].problem
    checks = verify_store(FitStore.open(store.location))
    assert [d.rows for d in checks[0].damage] == ["row 1"]
    for out in ("out_fits.npy", "out.parquet"):
        assert main(["store", "export", str(store.location), "coco", str(tmp_path / out)]) == 2
        assert "row 1" in capsys.readouterr().err and not (tmp_path / out).exists()
    honest = FitStore.open(store.location)
    assert honest.merge("coco", good.take(np.array([1]))) == 1
    honest.commit("honest fit")
    assert honest.read("coco", rows=[1]).loss[0] == np.float32(2.0)
    assert verify_store(honest)[0].whole


def test_a_store_without_checksums_opens_says_so_and_upgrades(store_path, monkeypatch, capsys):
    import spinfits.store.failures as failures
    import spinfits.store.layout as layout
    import spinfits.store.update_log as update_log

    old_codecs = (ZstdCodec(level=0, checksum=False),)  # what stores were written with before
    for module in (layout, update_log, failures):
        monkeypatch.setattr(module, "CHECKED_COMPRESSORS", old_codecs)
    old = build_store(store_path)
    before = old.read("coco")
    monkeypatch.undo()
    assert main(["store", "info", str(store_path)]) == 0
    out = capsys.readouterr().out
    assert "checksums:   UNCHECKED:" in out and "spinfits store upgrade" in out, out
    assert main(["store", "verify", str(store_path)]) == 0
    assert "carry no checksums" in capsys.readouterr().out
    assert main(["store", "upgrade", str(store_path)]) == 0
    assert "with checksums, committed" in capsys.readouterr().out
    upgraded = FitStore.open(store_path)
    assert upgraded.read("coco").equals(before)
    assert upgraded.failures("coco").reason(195) == "fit diverged"
    check = verify_store(upgraded)[0]
    assert check.whole and not check.unchecked
    assert main(["store", "upgrade", str(store_path)]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert main(["store", "info", str(store_path)]) == 0
    assert "checksums:   on every chunk" in capsys.readouterr().out


def test_fits_helper_is_plain():  # keeps the helpers honest: an empty row is plausible
    from spinfits.store.damage import implausible_rows

    assert implausible_rows(Fits.empty(3)) == {}
