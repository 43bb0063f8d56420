"""``spinfits store ...`` end to end through ``spinfits.cli.main``."""

import re

import numpy as np
import pyarrow.parquet as pq
import pytest

from spinfits.cli import main


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    fits = rng.standard_normal((40, 82))
    losses = rng.random(40) * 10
    losses[::4] = np.inf
    np.save(tmp_path / "coco_fits.npy", fits)
    np.save(tmp_path / "coco_losses.npy", losses)
    better = rng.standard_normal((40, 82))
    better[::4] = fits[::4]  # unscored rows: the same fits again
    np.save(tmp_path / "better_fits.npy", better)
    np.save(tmp_path / "better_losses.npy", losses / 2)
    return tmp_path, fits, losses


def run(capsys, *argv):
    status = main(["store", *map(str, argv)])
    out, err = capsys.readouterr()
    return status, out, err


def test_init_info_import_log_tag_diff_export_rollback(files, capsys):
    tmp, fits, losses = files
    store = tmp / "fits.icechunk"
    status, out, _ = run(capsys, "init", store, "--body-model", "standin-abc", "--standin")
    assert status == 0 and "stand-in body model" in out
    status, out, _ = run(
        capsys,
        "import",
        store,
        "coco",
        tmp / "coco_fits.npy",
        "--losses",
        tmp / "coco_losses.npy",
        "--dataset-fingerprint",
        "coco-npz",
        "--message",
        "static fits",
    )
    assert status == 0 and "created dataset coco with 40 rows" in out and "40 rows changed" in out
    first = re.search(r"committed (\w+)", out).group(1)
    assert run(capsys, "tag", store, "static")[0] == 0
    status, out, _ = run(
        capsys, "import", store, "coco", tmp / "better_fits.npy", "--losses", tmp / "better_losses.npy"
    )
    assert "30 rows changed" in out  # re-proposed unscored rows keep the earlier import
    status, out, _ = run(capsys, "info", store)
    assert "WARNING: stand-in body model" in out
    assert re.search(r"coco\s+40\s+30\s+10\s+0\s+\S+\s+coco-npz", out)  # 0 failed
    status, out, _ = run(capsys, "log", store)
    lines = out.splitlines()
    assert lines[0].split() == ["id", "time", "message", "rows", "improved", "who"]
    assert "import better_fits.npy" in lines[2] and re.search(r"\s30\s", lines[2])
    assert "static fits" in lines[3] and first in lines[3]
    status, out, _ = run(capsys, "diff", store, "coco", "static", "--top", "3")
    assert "changed 30 rows: improved 30 (first fit 0), worse 0" in out
    assert len([line for line in out.splitlines() if re.match(r"^\d+\s", line)]) == 3
    status, out, _ = run(
        capsys,
        "export",
        store,
        "coco",
        tmp / "old_fits.npy",
        "--version",
        "static",
        "--losses-out",
        tmp / "old_losses.npy",
    )
    assert status == 0
    np.testing.assert_array_equal(np.load(tmp / "old_fits.npy"), fits.astype(np.float32))
    np.testing.assert_array_equal(np.load(tmp / "old_losses.npy"), losses.astype(np.float32))
    assert run(capsys, "export", store, "coco", tmp / "new.parquet")[0] == 0
    assert pq.read_table(tmp / "new.parquet").num_rows == 40
    # with the dataset npz, each row's image name (issue 26): the rows are the npz's rows
    names = np.array([f"train2014/COCO_{row:04d}.jpg" for row in range(40)])
    np.savez(tmp / "coco.npz", imgname=names, scale=np.ones(40))
    status, out, _ = run(capsys, "export", store, "coco", tmp / "named.parquet", "--npz", tmp / "coco.npz")
    assert status == 0 and "with imgname" in out
    table = pq.read_table(tmp / "named.parquet")
    assert table.column_names[:2] == ["row", "imgname"] and table["imgname"].to_pylist() == names.tolist()
    np.savez(tmp / "short.npz", imgname=names[:5])
    status, _, err = run(capsys, "export", store, "coco", tmp / "short.parquet", "--npz", tmp / "short.npz")
    assert status == 2 and "imgname has shape (5,), the dataset 40 rows" in err
    assert not (tmp / "short.parquet").exists()
    status, out, _ = run(capsys, "rollback", store, "static")
    assert status == 0 and "undo with: spinfits store rollback" in out
    status, out, _ = run(capsys, "log", store, "--limit", "1")
    assert first in out and "static fits" in out
    status, out, _ = run(capsys, "tag", store)
    assert re.search(rf"static\s+{first}", out)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["info", "{tmp}/missing"], "no store at .*missing: the path does not exist"),
        (["import", "{store}", "coco", "{tmp}/coco_fits.npy", "--body-model", "other"], "must not mix"),
        (["import", "{store}", "coco", "{tmp}/nope.npy"], "SPIN fits file .* does not exist"),
        (["import", "{store}", "coco", "{tmp}/coco_losses.npy"], r"SPIN fits must have shape \(N, 82\)"),
        (["diff", "{store}", "coco", "nope"], "unknown version 'nope'"),
        (["diff", "{store}", "mpii", "main"], "unknown dataset 'mpii'"),
        (
            ["export", "{store}", "coco", "{tmp}/x.csv"],
            r"output must end in .npy \(SPIN layout\) or .parquet",
        ),
        (["init", "{store}", "--body-model", "b"], "exists and is not an empty directory"),
        (["init", "{tmp}/s2", "--body-model", "b", "--dataset", "x"], "--dataset and --rows go together"),
    ],
)
def test_errors_exit_2_with_a_message_and_change_nothing(files, capsys, argv, message):
    tmp, _, _ = files
    store = tmp / "fits.icechunk"
    run(capsys, "init", store, "--body-model", "standin-abc", "--dataset", "coco", "--rows", "40")
    _, before, _ = run(capsys, "log", store)
    status, _, err = run(capsys, *[a.format(tmp=tmp, store=store) for a in argv])
    assert status == 2 and re.search(message, err), err
    assert run(capsys, "log", store)[1] == before


def test_diff_shows_a_first_fit_as_new(tmp_path, capsys):
    """A row fitted for the first time has no improvement to tell: "new", never float32's max."""
    from spinfits.store import BodyModelInfo, FitStore, Proposals, Source

    store = FitStore.create(tmp_path / "st", BodyModelInfo("abc", is_standin=True))
    store.create_dataset("d", 4, dataset_fingerprint="x")
    created = store.tip()
    rows = np.arange(2)
    zeros = np.zeros((2, 72), np.float32)
    fits = Proposals(
        rows, zeros, zeros[:, :10], np.ones((2, 3), np.float32), np.float32([1.5, 2.5]), Source.OFFLINE, 0
    )
    store.merge("d", fits)
    store.commit("fits")
    status, out, _ = run(capsys, "diff", tmp_path / "st", "d", created, "--top", "5")
    assert status == 0 and "changed 2 rows: improved 2 (first fit 2)" in out
    table = [line.split() for line in out.splitlines() if re.match(r"^\d+\s", line)]
    assert table == [["0", "-", "1.5", "new"], ["1", "-", "2.5", "new"]]
    assert "e+38" not in out
