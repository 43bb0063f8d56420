"""SPIN dataset npz and OpenPose JSON reading, on the real files in ../shared/data."""

import json

import numpy as np
import pytest

from spinfits.errors import InputError
from spinfits.fitting.body.joints import spin_index
from spinfits.fitting.data.dataset import (
    box_from_keypoints,
    crop_to_image,
    image_to_crop,
    load_spin_npz,
    read_openpose_json,
)


def test_h36m_sample_reads_into_crop_frame(shared_data):
    raw = np.load(shared_data / "h36m_spin_sample.npz")
    dataset = load_spin_npz(shared_data / "h36m_spin_sample.npz")
    assert dataset.keypoints.shape == (4, 49, 3)
    assert len(dataset) == 4 and dataset.has_smpl.all()
    # no OpenPose in this file: the first 25 are missing
    assert (dataset.keypoints[:, :25] == 0).all()
    # a GT joint lands where SPIN's crop transform puts it (crop 224 px around center, 200*scale)
    row, joint = 2, 0  # Right Ankle of row 2
    x, y, vis = raw["part"][row, joint]
    h = 200 * raw["scale"][row]
    expected = 224 / h * (np.array([x, y]) - raw["center"][row]) + 112
    np.testing.assert_allclose(dataset.keypoints[row, 25 + joint, :2], expected, rtol=1e-5)
    assert dataset.keypoints[row, 25 + joint, 2] == vis == 1
    # missing GT joints (Top of Head etc.) stay missing
    missing = raw["part"][:, :, 2] == 0
    assert (dataset.keypoints[:, 25:][missing] == 0).all()
    # visible joints are inside the crop, roughly: a person box
    visible = dataset.keypoints[..., 2] > 0
    assert (dataset.keypoints[visible][:, :2] > -20).all()
    assert (dataset.keypoints[visible][:, :2] < 244).all()


def test_crop_transform_inverts():
    rng = np.random.default_rng(1)
    points = rng.uniform(0, 1000, (5, 49, 2))
    center, scale = rng.uniform(200, 800, (5, 2)), rng.uniform(0.5, 3, 5)
    np.testing.assert_allclose(crop_to_image(image_to_crop(points, center, scale), center, scale), points)


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


def _minimal(rows=3):
    part = np.zeros((rows, 24, 3))
    part[:, :12] = [100.0, 120.0, 1.0]
    return {
        "imgname": np.array(["a.jpg"] * rows),
        "center": np.full((rows, 2), 100.0),
        "scale": np.ones(rows),
        "part": part,
    }


def test_nan_keypoint_with_confidence_is_an_error(tmp_path):
    arrays = _minimal()
    arrays["part"][1, 3, 0] = np.nan
    with pytest.raises(
        InputError, match=r"1 keypoints are NaN or infinite but have confidence > 0 \(rows 1\)"
    ):
        load_spin_npz(_write(tmp_path / "d.npz", **arrays))


def test_keypoints_are_converted_in_blocks_with_the_same_result_and_true_row_numbers(tmp_path, monkeypatch):
    """The loader converts a few rows at a time (memory at a million rows); the result is the
    whole-array conversion's, and a bad keypoint is told by its row in the file."""
    import spinfits.fitting.data.dataset as dataset_module

    arrays = _minimal(rows=10)
    arrays["center"] = np.linspace(80.0, 120.0, 20).reshape(10, 2)
    arrays["scale"] = np.linspace(0.8, 1.6, 10)
    path = _write(tmp_path / "d.npz", **arrays)
    whole = load_spin_npz(path).keypoints
    monkeypatch.setattr(dataset_module, "_BLOCK_ROWS", 3)
    blocks = load_spin_npz(path)
    assert blocks.keypoints.dtype == np.float32 and np.array_equal(blocks.keypoints, whole)
    arrays["part"][7, 2, 1] = np.inf
    with pytest.raises(
        InputError, match=r"1 keypoints are NaN or infinite but have confidence > 0 \(rows 7\)"
    ):
        load_spin_npz(_write(tmp_path / "bad.npz", **arrays))


def test_nan_keypoint_without_confidence_is_dropped(tmp_path):
    arrays = _minimal()
    arrays["part"][1, 20] = [np.nan, np.nan, 0.0]
    dataset = load_spin_npz(_write(tmp_path / "d.npz", **arrays))
    assert np.isfinite(dataset.keypoints).all()
    assert (dataset.keypoints[1, 25 + 20] == 0).all()


def test_dataset_with_no_usable_keypoints(tmp_path):
    arrays = _minimal()
    arrays["part"][..., 2] = 0
    with pytest.raises(InputError, match="no row has a keypoint with confidence > 0"):
        load_spin_npz(_write(tmp_path / "d.npz", **arrays))


def test_wrong_shapes_and_missing_keys(tmp_path):
    arrays = _minimal()
    arrays["part"] = arrays["part"][:, :14]
    with pytest.raises(InputError, match=r"'part' has shape \(3, 14, 3\), expected \(3, 24, 3\)"):
        load_spin_npz(_write(tmp_path / "a.npz", **arrays))
    arrays = _minimal()
    del arrays["scale"]
    with pytest.raises(InputError, match="has no 'scale' array"):
        load_spin_npz(_write(tmp_path / "b.npz", **arrays))
    arrays = _minimal()
    del arrays["part"]
    with pytest.raises(InputError, match="neither 'part' .* nor 'openpose'"):
        load_spin_npz(_write(tmp_path / "c.npz", **arrays))
    arrays = _minimal()
    arrays["scale"][0] = 0
    with pytest.raises(InputError, match="scale > 0"):
        load_spin_npz(_write(tmp_path / "d.npz", **arrays))


def test_truncated_and_missing_files(tmp_path):
    path = _write(tmp_path / "full.npz", **_minimal(50))
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match="not a readable npz archive.*truncated"):
        load_spin_npz(cut)
    with pytest.raises(InputError, match="does not exist.*make-synthetic"):
        load_spin_npz(tmp_path / "absent.npz")


def test_openpose_json_real_detections(shared_data):
    im1010 = read_openpose_json(shared_data / "im1010_openpose.json")
    assert im1010.shape == (1, 25, 3)
    assert (im1010[0, :, 2] > 0).sum() == 22
    pexels = read_openpose_json(shared_data / "pexels_4793258_openpose.json")
    assert (pexels[0, :, 2] > 0).sum() == 24
    # SPIN's box from the detections covers the person in the 153x192 image
    center, scale = box_from_keypoints(im1010)
    assert 0 < center[0, 0] < 153 and 0 < center[0, 1] < 192
    bbox = json.loads((shared_data / "im1010_bbox.json").read_text())["bbox"]
    assert abs(scale[0] * 200 - 1.2 * max(bbox[2:])) < 0.35 * max(bbox[2:])
    # neck above hips (image y grows downwards)
    assert im1010[0, 1, 1] < im1010[0, 8, 1]
    assert spin_index("OP Neck") == 1


def test_openpose_bad_files(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(InputError, match="is not JSON"):
        read_openpose_json(path)
    path.write_text(json.dumps({"people": [{"pose_keypoints_2d": [0.0] * 54}]}))
    with pytest.raises(InputError, match="54 values in pose_keypoints_2d, expected 75"):
        read_openpose_json(path)
    path.write_text(json.dumps({"persons": []}))
    with pytest.raises(InputError, match="is not OpenPose output"):
        read_openpose_json(path)


@pytest.mark.parametrize(
    "names, shown",
    [
        (["a.jpg", "/etc/passwd", "c.jpg"], r"1 'imgname' entries .*\(row 1: '/etc/passwd'\)"),
        (["a.jpg", "b.jpg", "../../secret.jpg"], r"\(row 2: '../../secret.jpg'\)"),
        (["images/../../x.jpg", "b.jpg", "c.jpg"], r"\(row 0: 'images/../../x.jpg'\)"),
        (
            ["a.jpg", r"..\..\x.jpg", r"C:\x.jpg"],
            r"2 'imgname' entries .*\(row 1: '..\\\\..\\\\x.jpg', row 2: 'C:\\\\x.jpg'\)",
        ),
    ],
)
def test_imgname_outside_the_images_folder_is_refused(tmp_path, names, shown):
    arrays = dict(_minimal(), imgname=np.array(names))
    with pytest.raises(InputError, match=shown) as error:
        load_spin_npz(_write(tmp_path / "d.npz", **arrays))
    assert "imgname must be relative paths inside the images folder" in str(error.value)


def test_relative_imgnames_with_folders_and_dots_are_fine(tmp_path):
    names = ["S1/Directions/frame..1.jpg", "./b.jpg", "synthetic/0000002.png"]
    dataset = load_spin_npz(_write(tmp_path / "d.npz", **dict(_minimal(), imgname=np.array(names))))
    assert list(dataset.imgname) == names


@pytest.mark.parametrize(
    "key, value, shape",
    [
        ("has_smpl", np.ones(2, dtype=bool), r"\(2,\), expected \(3,\)"),
        ("imgname", np.array(["a.jpg"] * 4), r"\(4,\), expected \(3,\)"),
        ("pose", np.zeros((2, 72)), r"\(2, 72\), expected \(3, 72\)"),
        ("shape", np.zeros((3, 11)), r"\(3, 11\), expected \(3, 10\)"),
        ("S", np.zeros((3, 24, 3)), r"\(3, 24, 3\), expected \(3, 24, 4\)"),
        ("S", np.zeros((2, 24, 4)), r"\(2, 24, 4\), expected \(3, 24, 4\)"),
        ("openpose", np.zeros((4, 25, 3)), r"\(4, 25, 3\), expected \(3, 25, 3\)"),
        ("center", np.zeros((2, 2)), r"\(2, 2\), expected \(3, 2\)"),
        ("gender", np.array(["m", "f"]), r"\(2,\), expected \(3,\)"),
        ("maskname", np.array("a.png"), r"\(\), expected \(3,\)"),
        ("has_pose_3d", np.ones((3, 1)), r"\(3, 1\), expected \(3,\)"),
    ],
)
def test_every_per_row_array_has_the_row_count(tmp_path, key, value, shape):
    arrays = dict(_minimal(), pose=np.zeros((3, 72)), shape=np.zeros((3, 10)))
    arrays[key] = value
    with pytest.raises(
        InputError,
        match=rf"'{key}' has shape {shape}: one entry per dataset row, "
        r"and the file has 3 rows",
    ):
        load_spin_npz(_write(tmp_path / "d.npz", **arrays))


def test_arrays_that_are_not_per_row_are_not_checked(tmp_path):
    arrays = dict(
        _minimal(),
        joint_names=np.array(["a"] * 49),
        body_model=np.array("x"),
        S=np.ones((3, 24, 4)),
        has_smpl=np.ones(3),
    )
    assert len(load_spin_npz(_write(tmp_path / "d.npz", **arrays))) == 3


@pytest.mark.parametrize("value", [1e300, -1e39, np.inf])
def test_keypoint_beyond_float32_is_an_error_like_nan(tmp_path, value):
    arrays = _minimal()
    arrays["part"][2, 5, 1] = value
    message = (
        r"1 keypoints are NaN or infinite but have confidence > 0 \(rows 2\); "
        r"expected finite x, y within float32's range"
    )
    with pytest.raises(InputError, match=message):
        load_spin_npz(_write(tmp_path / "d.npz", **arrays))


def test_confidence_beyond_float32_is_an_error(tmp_path):
    arrays = _minimal()
    arrays["part"][0, 5, 2] = 1e300
    with pytest.raises(
        InputError,
        match=r"confidences must be finite \(as float32\) and >= 0, "
        r"rows 0 are not",
    ):
        load_spin_npz(_write(tmp_path / "d.npz", **arrays))


def test_keypoint_overflowing_in_the_crop_frame_is_an_error(tmp_path):
    """A finite image keypoint far from a tiny box becomes inf in the crop frame."""
    arrays = _minimal()
    arrays["scale"][1] = 1e-30
    arrays["part"][1, 0, :2] = [1e12, 1e12]
    with pytest.raises(
        InputError,
        match=r"in the 224-px crop frame of each row's center/scale "
        r"box\): 1 keypoints are NaN or infinite .*\(rows 1\)",
    ):
        load_spin_npz(_write(tmp_path / "d.npz", **arrays))


@pytest.mark.parametrize(
    "key, row, value",
    [("center", 1, [1e300, 0.0]), ("scale", 2, 1e300), ("scale", 0, 1e-300), ("center", 0, [np.nan, 1])],
)
def test_box_beyond_float32_is_an_error(tmp_path, key, row, value):
    arrays = _minimal()
    arrays[key][row] = value
    message = (
        r"'center' and 'scale' must be finite, within float32's range .* and scale > 0 "
        rf"in every row; rows {row} are not"
    )
    with pytest.raises(InputError, match=message):
        load_spin_npz(_write(tmp_path / "d.npz", **arrays))


def test_loaded_keypoints_are_finite_float32(shared_data):
    dataset = load_spin_npz(shared_data / "h36m_spin_sample.npz")
    assert dataset.keypoints.dtype == np.float32 and np.isfinite(dataset.keypoints).all()
    assert list(dataset.imgname[:1]) == ["S1_Directions_1.54138969_000001.jpg"]


def test_images_are_crops_must_be_one_boolean(tmp_path):
    arrays = dict(_minimal(), images_are_crops=np.array([True, False, True]))
    with pytest.raises(
        InputError,
        match=r"'images_are_crops' is bool of shape \(3,\), expected "
        r"one boolean",
    ):
        load_spin_npz(_write(tmp_path / "d.npz", **arrays))
