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
    assert "--refit-corrupt" in err  # a damaged column chunk: its rows can be refitted
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


def _implausible_log_records(store: FitStore, rows: np.ndarray, good: Fits) -> None:
    """Append to the update log records of ``rows`` whose pose is garbage (as a flipped bit in an
    unchecked store would leave them): readers see these records."""
    from spinfits.store.update_log import append_records, level_state, open_level

    garbage = good.take(rows)
    garbage.pose[:, 0] = 1.6e38
    session = store.repository.writable_session("main")
    state = level_state(open_level(session.store, "coco", "recent"))
    append_records(session.store, "coco", "recent", rows, garbage, state, 64)
    session.commit("damage (implausible log records)")


def test_reset_makes_exactly_the_corrupt_rows_no_fit_and_an_honest_fit_lands(pristine, tmp_path):
    """``precompute --refit-corrupt``'s first step: the rows verify reports (a flipped column chunk,
    implausible log records) read as no fit after one commit, every other row is untouched, any
    honest fit lands on them, and the rule still keeps NaN and worse fits off good rows."""
    from spinfits.store.dataset_check import check_dataset
    from spinfits.store.repair import reset_corrupt_rows
    from spinfits.store.versions import snapshot_store

    _, good, _ = pristine
    path = damaged_copy(pristine, tmp_path)
    store = FitStore.open(path)
    _implausible_log_records(store, np.array([3, 150]), good)
    flip(max((path / "chunks").iterdir(), key=lambda p: p.stat().st_size))  # a pose chunk
    store = FitStore.open(path)
    info = store.dataset("coco")
    check = check_dataset(snapshot_store(store.repository, store.tip()), info)
    assert not check.unrepairable and {3, 150} <= set(check.corrupt.tolist())
    span = np.setdiff1d(check.corrupt, [3, 150])
    assert span.size and span.max() - span.min() < 32  # the rows of one 32-row chunk
    assert any(d.array == "pose" and "checksum" in d.problem for d in check.damage)

    reset = reset_corrupt_rows(store, "coco")
    assert reset.rows.tolist() == check.corrupt.tolist()
    assert verify_store(FitStore.open(path))[0].whole
    after = FitStore.open(path).read("coco")
    others = np.setdiff1d(np.arange(N_ROWS), reset.rows)
    assert after.take(others).equals(good.take(others))  # untouched, bit for bit
    assert np.isinf(after.loss[reset.rows]).all() and (after.source[reset.rows] == Source.NONE).all()
    message = FitStore.open(path).history.log(limit=1)[0].message
    assert (
        f"{len(reset.rows)} corrupt rows of coco" in message
        and f"other {N_ROWS - len(reset.rows)} rows untouched" in message
    )

    honest = FitStore.open(path)
    m = len(reset.rows)
    plain = dict(pose=np.zeros((m, 72)), betas=np.zeros((m, 10)), cam_t=np.tile([0.0, 0.0, 30.0], (m, 1)))
    # a loss worse than any stored fit: lands only because the rows were reset
    assert honest.merge("coco", Proposals(rows=reset.rows, loss=np.full(m, 50.0), **plain)) == m
    fitted = others[np.isfinite(good.loss[others])][:10]
    worse = Proposals(
        rows=fitted, loss=np.r_[np.full(5, 50.0), np.full(5, np.nan)], **{k: v[:10] for k, v in plain.items()}
    )
    assert honest.merge("coco", worse) == 0  # worse and NaN fits never replace a good one
    honest.commit("refit")
    assert verify_store(honest)[0].whole
    final = honest.read("coco")
    assert (final.loss[reset.rows] == 50.0).all() and final.take(others).equals(good.take(others))


def test_damage_naming_no_rows_is_not_reset_and_says_roll_back(pristine, tmp_path):
    """A damaged update-log chunk: the rows its records update cannot be told, so refit-corrupt
    refuses (nothing committed) and the message says to roll back."""
    from spinfits.store.repair import reset_corrupt_rows

    path = damaged_copy(pristine, tmp_path)
    store = FitStore.open(path)
    assert verify_store(store)[0].whole
    tip = store.tip()
    newest_log_chunk = max((path / "chunks").iterdir(), key=os.path.getmtime)  # the last commit's records
    flip(newest_log_chunk)
    store = FitStore.open(path)
    checks = verify_store(store)
    if not any("update" in d.array for d in checks[0].damage):
        pytest.skip("the newest chunk file is not an update-log chunk in this icechunk version")
    with pytest.raises(DamagedStoreError, match="a refit cannot repair this damage") as raised:
        reset_corrupt_rows(store, "coco")
    assert "store rollback" in str(raised.value) and "--refit-corrupt --dataset" not in str(raised.value)
    assert FitStore.open(path).tip() == tip
