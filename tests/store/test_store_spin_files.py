"""Import/export of SPIN's static fits (*_fits.npy) and export to Parquet."""

import numpy as np
import pyarrow.parquet as pq
import pytest
from store_helpers import random_proposals

from spinfits.errors import InputError
from spinfits.store import Source, export_parquet, export_spin_fits, import_spin_fits


def spin_array(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 82))


def test_import_without_losses_keeps_content_as_unscored(store, tmp_path):
    fits = spin_array(50)
    np.save(tmp_path / "coco_fits.npy", fits)
    assert import_spin_fits(store, "coco", tmp_path / "coco_fits.npy", time=5.0) == 50
    store.commit("import")
    stored = store.read("coco")
    np.testing.assert_array_equal(stored.pose, fits[:, :72].astype(np.float32))
    np.testing.assert_array_equal(stored.betas, fits[:, 72:].astype(np.float32))
    assert np.isinf(stored.loss).all() and (stored.source == Source.IMPORTED).all()
    # a finite fit replaces an unscored import; an unscored re-import does not undo it
    store.merge("coco", random_proposals(np.random.default_rng(1), 50, 10))
    store.commit("fits")
    before = store.read("coco")
    scored = np.isfinite(before.loss)
    assert scored.sum() > 0
    import_spin_fits(store, "coco", spin_array(50, seed=2))
    store.commit("re-import")
    after = store.read("coco")
    assert after.take(scored).equals(before.take(scored))


def test_import_with_losses_merges_by_the_rule_and_roundtrips(store):
    store.create_dataset("coco2", 50, dataset_fingerprint="coco-npz-1")
    fits = spin_array(50)
    losses = np.linspace(1, 2, 50)
    losses[::5] = np.inf
    better = fits.copy()
    better[:, 0] += 1
    # the same two imports in both orders, into two datasets
    import_spin_fits(store, "coco", fits, losses, time=1.0)
    changed = import_spin_fits(store, "coco", better, losses - 0.5, time=1.0)
    import_spin_fits(store, "coco2", better, losses - 0.5, time=1.0)
    import_spin_fits(store, "coco2", fits, losses, time=1.0)
    store.commit("imports")
    finite = np.isfinite(losses)
    assert changed >= finite.sum()  # every scored row improved (+ unscored ties, by content)
    out_fits, out_losses = export_spin_fits(store, "coco")
    assert out_fits.shape == (50, 82) and out_fits.dtype == np.float32
    np.testing.assert_array_equal(out_fits[finite], better[finite].astype(np.float32))
    np.testing.assert_array_equal(out_losses, np.where(finite, losses - 0.5, np.inf).astype(np.float32))
    unscored = out_fits[~finite]
    candidates = np.stack([fits[~finite], better[~finite]]).astype(np.float32)
    assert ((unscored == candidates[0]).all(axis=1) | (unscored == candidates[1]).all(axis=1)).all()
    other_fits, other_losses = export_spin_fits(store, "coco2")
    np.testing.assert_array_equal(other_fits, out_fits)  # order of imports does not matter
    np.testing.assert_array_equal(other_losses, out_losses)


@pytest.mark.parametrize(
    "fits, losses, message",
    [
        (np.zeros((50, 81)), None, r"SPIN fits must have shape \(N, 82\)"),
        (np.zeros((49, 82)), None, r"SPIN fits have 49 rows but dataset 'coco' has 50"),
        (np.zeros((50, 82), dtype=int), None, r"SPIN fits must be a float array"),
        (np.full((50, 82), np.nan), None, r"SPIN fits have NaN/inf in 50 row\(s\)"),
        (np.zeros((50, 82)), np.full(50, np.nan), r"losses must be >= 0 and finite, or \+inf \(unknown\)"),
        (
            np.zeros((50, 82)),
            np.full(50, -1.0),
            r"losses must be >= 0 and finite, or \+inf \(unknown\): 50 are NaN or negative",
        ),
        (np.zeros((50, 82)), np.zeros(3), r"losses must be a float array of shape \(50,\)"),
    ],
)
def test_import_exceptions_leave_store_unchanged(store, fits, losses, message):
    tip = store.tip()
    with pytest.raises(InputError, match=message):
        import_spin_fits(store, "coco", fits, losses)
    assert not store.has_pending and store.tip() == tip


def test_import_missing_or_bad_file(store, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        import_spin_fits(store, "coco", tmp_path / "nope.npy")
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(InputError, match="is not a readable .npy array"):
        import_spin_fits(store, "coco", tmp_path / "bad.npy")


def test_export_parquet_any_version(store, tmp_path):
    store.merge("coco", random_proposals(np.random.default_rng(3), 50, 30, step=4, time=77.0))
    v1 = store.commit("v1")
    store.merge(
        "coco", random_proposals(np.random.default_rng(4), 50, 30, losses=np.zeros(30, dtype=np.float32))
    )
    store.commit("v2")
    assert export_parquet(store, "coco", tmp_path / "v1.parquet", v1.snapshot_id) == v1.snapshot_id
    table = pq.read_table(tmp_path / "v1.parquet")
    expected = store.read("coco", v1.snapshot_id)
    assert table.column_names == [
        "row",
        "pose",
        "betas",
        "cam_t",
        "loss",
        "source",
        "source_name",
        "step",
        "time",
        "failure",
    ]
    assert table.column("row").to_pylist() == list(range(50))
    np.testing.assert_array_equal(
        np.stack(table.column("pose").to_numpy(zero_copy_only=False)), expected.pose
    )
    np.testing.assert_array_equal(table.column("loss").to_numpy(), expected.loss)
    names = table.column("source_name").to_pylist()
    assert {n for n, s in zip(names, expected.source) if s == Source.OFFLINE} <= {"offline"}
    assert "none" in names
    assert (
        b"spinfits" in table.schema.metadata and v1.snapshot_id.encode() in table.schema.metadata[b"spinfits"]
    )
