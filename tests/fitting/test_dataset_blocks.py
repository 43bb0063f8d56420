"""Reading SPIN dataset npz files a block of rows at a time: NpzMembers, load_spin_npz through it,
and load_spin_rows (only the rows a caller keeps)."""

import hashlib
import io
import tracemalloc
import zipfile

import numpy as np
import pytest

import spinfits.fitting.data.dataset as dataset_module
from spinfits.errors import InputError
from spinfits.fitting.body.joints import SMPLIFY_IGNORED_JOINTS
from spinfits.fitting.data.dataset import image_to_crop, load_spin_npz, load_spin_rows
from spinfits.fitting.data.npz_members import NpzMembers

SAVERS = {"savez": np.savez, "savez_compressed": np.savez_compressed}


@pytest.fixture
def seven_row_blocks(monkeypatch):
    """Loaders read 7 rows at a time: a few dozen rows make several blocks and a short last one."""
    monkeypatch.setattr(dataset_module, "_BLOCK_ROWS", 7)


def _dataset(rows=30, seed=0):
    """A SPIN-layout dataset of ``rows`` rows: random boxes, keypoints, missing ones."""
    rng = np.random.default_rng(seed)

    def keypoints(joints):
        xy = rng.uniform(0, 600, (rows, joints, 2))
        confidence = rng.uniform(0.1, 1.0, (rows, joints, 1)) * (rng.uniform(size=(rows, joints, 1)) > 0.3)
        return np.concatenate([xy, confidence], axis=-1)

    return {
        "imgname": np.array([f"S1/frame_{row:04d}.jpg" for row in range(rows)]),
        "center": rng.uniform(200, 400, (rows, 2)),
        "scale": rng.uniform(0.8, 3.0, rows),
        "part": keypoints(24),
        "openpose": keypoints(25),
        "pose": rng.normal(size=(rows, 72)),
        "shape": rng.normal(size=(rows, 10)),
    }


def _write(path, saver=np.savez, **arrays):
    saver(path, **arrays)
    return path


# ------------------------------------------------------------------------------- NpzMembers


@pytest.mark.parametrize("saver", SAVERS.values(), ids=SAVERS.keys())
def test_members_shapes_dtypes_and_blocks_match_np_load(tmp_path, saver):
    rng = np.random.default_rng(1)
    arrays = {
        "part": rng.normal(size=(23, 24, 3)),
        "imgname": np.array([f"im{row}.jpg" for row in range(23)]),
        "has_smpl": rng.integers(0, 2, 23).astype(">i2"),
        "columns": np.asfortranarray(rng.normal(size=(23, 4))),
        "images_are_crops": np.array(True),
        "empty": np.zeros((0, 5)),
    }
    path = _write(tmp_path / "a.npz", saver, **arrays)
    with NpzMembers(path) as members:
        assert set(members.names) == set(arrays) and "part" in members and "S" not in members
        for name, array in arrays.items():
            assert members.shape(name) == array.shape
            assert members.dtype(name) == array.dtype
            np.testing.assert_array_equal(members.read(name), array)
        for name in ("part", "imgname", "has_smpl", "columns", "empty"):
            blocks = list(members.blocks(name, 7))
            assert [start for start, _ in blocks] == list(range(0, len(arrays[name]), 7))
            assert all(len(block) <= 7 and block.dtype == arrays[name].dtype for _, block in blocks)
            whole = np.concatenate([block for _, block in blocks]) if blocks else np.zeros((0, 5))
            np.testing.assert_array_equal(whole, arrays[name])
        assert [(start, bool(flag)) for start, flag in members.blocks("images_are_crops", 7)] == [(0, True)]


@pytest.mark.parametrize("saver", SAVERS.values(), ids=SAVERS.keys())
def test_shape_and_dtype_come_from_the_header_without_reading_the_data(tmp_path, saver):
    """A member whose data does not match its checksum still tells its shape and dtype from its
    header; reading it through, by blocks or whole, is refused."""
    path = _write(tmp_path / "a.npz", saver, part=np.random.default_rng(2).normal(size=(50, 24, 3)))
    with zipfile.ZipFile(path) as archive:
        crc = archive.getinfo("part.npy").CRC.to_bytes(4, "little")
    raw = path.read_bytes()
    assert raw.count(crc) == 2  # the local header's and the central directory's
    path.write_bytes(raw.replace(crc, (int.from_bytes(crc, "little") ^ 1).to_bytes(4, "little")))
    with NpzMembers(path) as members:
        assert members.shape("part") == (50, 24, 3) and members.dtype("part") == np.float64
        with pytest.raises(InputError, match=r"is not a readable npz archive \(member 'part': BadZipFile"):
            for _ in members.blocks("part", 7):
                pass


def test_object_members_are_refused_as_np_load_refuses_them(tmp_path):
    path = _write(tmp_path / "a.npz", names=np.array(["a", None], dtype=object), ok=np.zeros(3))
    with NpzMembers(path) as members:
        assert members.dtype("names") == np.dtype(object) and members.shape("names") == (2,)
        with pytest.raises(
            InputError, match=r"not a readable npz archive \(member 'names' holds Python objects"
        ):
            members.read("names")
        with pytest.raises(InputError, match="holds Python objects"):
            next(members.blocks("names", 7))
        np.testing.assert_array_equal(members.read("ok"), np.zeros(3))


def test_truncated_or_foreign_files_are_input_errors(tmp_path):
    path = _write(tmp_path / "full.npz", part=np.ones((200, 24, 3)))
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match=r"cut.npz is not a readable npz archive \(BadZipFile.*truncated"):
        NpzMembers(cut)
    text = tmp_path / "notes.npz"
    text.write_text("not an archive")
    with pytest.raises(InputError, match="not a readable npz archive.*expected SPIN's dataset npz"):
        NpzMembers(text, expected="SPIN's dataset npz")
    with pytest.raises(InputError, match="does not exist"):
        NpzMembers(tmp_path / "absent.npz")


def test_a_member_shorter_than_its_header_or_without_one_is_an_input_error(tmp_path):
    """Zip entries written by hand: one .npy cut after 10 of its 20 rows, one that is not .npy."""
    buffer = io.BytesIO()
    np.save(buffer, np.ones((20, 3)))
    npy = buffer.getvalue()
    path = tmp_path / "cut_member.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("part.npy", npy[: len(npy) - 10 * 3 * 8])
        archive.writestr("notes.npy", b"hello, not an array")
    with NpzMembers(path) as members:
        with pytest.raises(
            InputError, match=r"member 'part' holds \d+ bytes, its header declares \d+ .*truncated"
        ):
            members.shape("part")
        with pytest.raises(
            InputError, match=r"\(member 'notes': ValueError: the magic string is not correct"
        ):
            members.dtype("notes")
        with pytest.raises(InputError, match=r"has no member 'S' \(it has \['notes', 'part'\]\)"):
            members.shape("S")


def test_block_rows_must_be_positive(tmp_path):
    with (
        NpzMembers(_write(tmp_path / "a.npz", part=np.ones((3, 2)))) as members,
        pytest.raises(InputError, match="block_rows must be a positive int, got 0"),
    ):
        next(members.blocks("part", 0))


# ------------------------------------------------------------------ load_spin_npz, by blocks


def _whole_array_reference(path, crop_res=224, focal_length=5000.0):
    """load_spin_npz's result as the whole-array loader computed it: (N, 49, 3) float32 keypoints and
    the fingerprint (sha256 of keypoints, center, scale as float64, then the crop convention)."""
    raw = np.load(path)
    rows = len(raw["scale"])
    openpose = raw["openpose"] if "openpose" in raw else np.zeros((rows, 25, 3))
    image = np.concatenate([openpose, raw["part"]], axis=1).astype(np.float64)
    image[image[..., 2] == 0] = 0
    crop = image.copy()
    crop[..., :2] = image_to_crop(image[..., :2], raw["center"], raw["scale"], crop_res)
    crop[image[..., 2] == 0] = 0
    keypoints = crop.astype(np.float32)
    digest = hashlib.sha256()
    for array in (keypoints, raw["center"], raw["scale"]):
        digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    digest.update(f"{crop_res}/{focal_length}".encode())
    return keypoints, digest.hexdigest()[:16]


@pytest.mark.parametrize("saver", SAVERS.values(), ids=SAVERS.keys())
def test_load_spin_npz_by_blocks_equals_the_whole_array_loader(tmp_path, seven_row_blocks, saver):
    path = _write(tmp_path / "d.npz", saver, **_dataset())
    keypoints, fingerprint = _whole_array_reference(path)
    dataset = load_spin_npz(path)
    assert dataset.keypoints.dtype == np.float32 and np.array_equal(dataset.keypoints, keypoints)
    assert dataset.fingerprint == fingerprint
    assert list(dataset.imgname) == list(np.load(path)["imgname"])


def test_load_spin_npz_unchanged_on_the_real_h36m_sample(shared_data, seven_row_blocks):
    path = shared_data / "h36m_spin_sample.npz"
    raw = np.load(path)
    keypoints, fingerprint = _whole_array_reference(path)
    dataset = load_spin_npz(path)
    assert np.array_equal(dataset.keypoints, keypoints) and dataset.fingerprint == fingerprint
    np.testing.assert_array_equal(dataset.gt_pose, raw["pose"])
    np.testing.assert_array_equal(dataset.gt_betas, raw["shape"])
    assert list(dataset.imgname) == list(raw["imgname"]) and dataset.has_smpl.all()


@pytest.mark.parametrize(
    "name, message",
    [
        ("mpi_inf_3dhp_sample/test_3dhp_train.npz", r"'part' has shape \(2, 17, 3\), expected \(2, 24, 3\)"),
        ("smpl_mean_params.npz", r"has no 'center' array \(it has \['cam', 'pose', 'shape'\]\)"),
    ],
)
def test_real_files_of_other_layouts_are_refused_alike_by_both_loaders(shared_data, name, message):
    with pytest.raises(InputError, match=message) as whole:
        load_spin_npz(shared_data / name)
    with pytest.raises(InputError) as rows:
        load_spin_rows(shared_data / name)
    assert str(rows.value) == str(whole.value)


# ---------------------------------------------------------------------------- load_spin_rows


@pytest.mark.parametrize("saver", SAVERS.values(), ids=SAVERS.keys())
def test_rows_keep_all_equals_load_spin_npz(tmp_path, seven_row_blocks, saver):
    path = _write(tmp_path / "d.npz", saver, **_dataset())
    dataset = load_spin_npz(path)
    rows = load_spin_rows(path)
    assert rows.source == path and rows.n_rows == 30 and rows.fingerprint == dataset.fingerprint
    assert rows.rows.dtype == np.int64 and np.array_equal(rows.rows, np.arange(30))
    assert rows.keypoints.dtype == np.float32 and np.array_equal(rows.keypoints, dataset.keypoints)
    assert rows.confident.dtype == np.int16
    np.testing.assert_array_equal(rows.confident, (dataset.keypoints[..., 2] > 0).sum(axis=1))


def test_rows_of_a_random_mask_with_counted_joints(tmp_path, seven_row_blocks):
    path = _write(tmp_path / "d.npz", **_dataset(rows=40, seed=3))
    dataset = load_spin_npz(path)
    keep = np.random.default_rng(4).uniform(size=40) < 0.3
    counted = [joint for joint in range(49) if joint not in SMPLIFY_IGNORED_JOINTS]
    rows = load_spin_rows(path, keep, counted_joints=counted)
    assert np.array_equal(rows.rows, np.flatnonzero(keep)) and 0 < len(rows.rows) < 40
    assert np.array_equal(rows.keypoints, dataset.keypoints[rows.rows])
    np.testing.assert_array_equal(rows.confident, (dataset.keypoints[:, counted, 2] > 0).sum(axis=1))
    assert rows.fingerprint == dataset.fingerprint
    assert len(load_spin_rows(path, np.zeros(40, dtype=bool)).keypoints) == 0


def test_rows_fingerprint_follows_the_crop_settings_and_not_the_block_size(tmp_path, monkeypatch):
    path = _write(tmp_path / "d.npz", **_dataset())
    default = load_spin_rows(path).fingerprint
    other_crop = load_spin_rows(path, crop_res=256, focal_length=4000.0)
    assert other_crop.fingerprint == load_spin_npz(path, 256, 4000.0).fingerprint != default
    monkeypatch.setattr(dataset_module, "_BLOCK_ROWS", 4)
    assert load_spin_rows(path).fingerprint == default == load_spin_npz(path).fingerprint


def test_rows_on_the_real_h36m_sample(shared_data):
    path = shared_data / "h36m_spin_sample.npz"
    dataset = load_spin_npz(path)
    rows = load_spin_rows(path, np.array([False, True, False, True]))
    assert rows.fingerprint == dataset.fingerprint and list(rows.rows) == [1, 3]
    assert np.array_equal(rows.keypoints, dataset.keypoints[[1, 3]])


def test_a_mask_of_another_length_or_type_is_refused(tmp_path):
    path = _write(tmp_path / "d.npz", **_dataset())
    with pytest.raises(
        InputError, match=r"keep has 29 entries but .*d.npz has 30 rows.*np.zeros\(30, dtype=bool\)"
    ):
        load_spin_rows(path, np.ones(29, dtype=bool))
    with pytest.raises(InputError, match=r"keep must be an \(N,\) bool mask .* got int64 of shape \(3,\)"):
        load_spin_rows(path, np.array([1, 5, 7]))


@pytest.mark.parametrize("joints", [[0, 49], [-1], np.zeros((2, 2), dtype=int), [0.5]])
def test_counted_joints_must_index_the_49(tmp_path, joints):
    path = _write(tmp_path / "d.npz", **_dataset())
    with pytest.raises(
        InputError, match=r"counted_joints must be indices into SPIN's 49 joints \(ints 0..48\)"
    ):
        load_spin_rows(path, counted_joints=joints)


def _both_refuse(path):
    """The message both loaders give for ``path``: the same text."""
    with pytest.raises(InputError) as whole:
        load_spin_npz(path)
    with pytest.raises(InputError) as rows:
        load_spin_rows(path, np.zeros(30, dtype=bool))
    assert str(rows.value) == str(whole.value)
    return str(whole.value)


def test_a_bad_keypoint_in_a_later_block_is_told_by_its_row(tmp_path, seven_row_blocks):
    arrays = _dataset()
    arrays["part"][23, 4] = [np.nan, 10.0, 1.0]
    message = _both_refuse(_write(tmp_path / "d.npz", **arrays))
    assert "1 keypoints are NaN or infinite but have confidence > 0 (rows 23)" in message
    arrays = _dataset()
    arrays["openpose"][16, 2, 2] = -0.5
    message = _both_refuse(_write(tmp_path / "e.npz", **arrays))
    assert "confidences must be finite (as float32) and >= 0, rows 16 are not" in message


def test_bad_imgnames_in_later_blocks_are_all_counted(tmp_path, seven_row_blocks):
    arrays = _dataset()
    arrays["imgname"][9] = "../x.jpg"
    arrays["imgname"][22] = "/abs/y.jpg"
    message = _both_refuse(_write(tmp_path / "d.npz", **arrays))
    assert (
        "2 'imgname' entries are absolute paths or contain '..' (row 9: '../x.jpg', row 22: '/abs/y.jpg')"
        in (message)
    )


def test_a_file_without_confident_keypoints_or_with_uneven_rows_is_refused(tmp_path, seven_row_blocks):
    arrays = _dataset()
    arrays["part"][..., 2] = 0
    arrays["openpose"][..., 2] = 0
    assert "no row has a keypoint with confidence > 0" in _both_refuse(_write(tmp_path / "d.npz", **arrays))
    arrays = dict(_dataset(), S=np.zeros((31, 24, 4)))
    assert "'S' has shape (31, 24, 4), expected (30, 24, 4)" in _both_refuse(
        _write(tmp_path / "e.npz", **arrays)
    )


def test_loaders_hold_a_block_not_the_whole_keypoint_members(tmp_path, monkeypatch):
    """Traced allocations while loading 4000 rows (part + openpose: 4.7 MB of float64) 16 rows at a
    time: load_spin_rows keeping 1% stays far below one member, load_spin_npz below its result and
    half a member (the whole-member loader peaked at 17 MB)."""
    monkeypatch.setattr(dataset_module, "_BLOCK_ROWS", 16)
    arrays = _dataset(rows=4000)
    del arrays["pose"], arrays["shape"]
    path = _write(tmp_path / "d.npz", **arrays)
    part_bytes = arrays["part"].nbytes  # 2.3 MB
    keep = np.zeros(4000, dtype=bool)
    keep[::100] = True

    def peak(load):
        tracemalloc.start()
        try:
            load()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    rows_peak = peak(lambda: load_spin_rows(path, keep))
    result_bytes = 4000 * 49 * 3 * 4 + arrays["imgname"].nbytes + 4000 * 24  # keypoints, imgname, boxes
    whole_peak = peak(lambda: load_spin_npz(path))
    assert rows_peak < part_bytes / 3, rows_peak
    assert whole_peak < result_bytes + part_bytes / 2, (whole_peak, result_bytes)
