"""``convert_openpose_folder``: real OpenPose JSON files (../shared/data) plus images -> SPIN's npz."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from spinfits.errors import InputError
from spinfits.fitting.converters.openpose_folder import (
    OpenPoseFolderConfig,
    convert_openpose_folder,
    match_openpose_files,
)
from spinfits.fitting.converters.spin_rows import write_spin_npz
from spinfits.fitting.data.dataset import load_spin_npz


@pytest.fixture
def folders(tmp_path, shared_data):
    """keypoints/ and images/: SPIN's im1010 (OpenPose's own file name) and the ProHMR photo's
    detection in a subfolder (with a small placeholder image: only its name is read)."""
    keypoints, images = tmp_path / "keypoints", tmp_path / "images"
    (keypoints / "pexels").mkdir(parents=True)
    (images / "pexels").mkdir(parents=True)
    shutil.copy(shared_data / "im1010_openpose.json", keypoints / "im1010_keypoints.json")
    shutil.copy(shared_data / "im1010.jpg", images / "im1010.jpg")
    shutil.copy(shared_data / "pexels_4793258_openpose.json", keypoints / "pexels" / "photo.json")
    Image.new("RGB", (40, 60)).save(images / "pexels" / "photo.PNG")
    return keypoints, images


def _people(path):
    document = json.loads(path.read_text())
    return [np.reshape(person["pose_keypoints_2d"], (25, 3)) for person in document["people"]]


def test_real_detections_become_rows_with_spin_boxes(folders, shared_data, tmp_path):
    keypoints, images = folders
    converted = convert_openpose_folder(keypoints, images)
    assert converted.imgname.tolist() == ["im1010.jpg", "pexels/photo.PNG"]
    np.testing.assert_array_equal(converted.openpose[0], _people(shared_data / "im1010_openpose.json")[0])
    np.testing.assert_array_equal(
        converted.openpose[1], _people(shared_data / "pexels_4793258_openpose.json")[0]
    )
    assert (converted.part == 0).all() and converted.S is None
    # SPIN's example ships the box its demo makes from this detection: ours matches it
    x, y, w, h = json.loads((shared_data / "im1010_bbox.json").read_text())["bbox"]
    np.testing.assert_allclose(converted.center[0], [x + w / 2, y + h / 2], atol=1.0)
    assert abs(converted.scale[0] * 200 - max(w, h)) < 1.0

    dataset = write_spin_npz(converted, tmp_path / "out.npz")
    arrays = np.load(tmp_path / "out.npz")
    assert (arrays["has_smpl"] == 0).all() and (arrays["has_pose_3d"] == 0).all()
    assert len(dataset) == 2 and not dataset.has_smpl.any()
    # every confident keypoint falls inside the 224-px crop of its row's box
    confident = dataset.keypoints[:, :25, 2] > 0.2
    inside = dataset.keypoints[:, :25, :2]
    assert ((inside >= 0) & (inside <= 224)).all(axis=-1)[confident].all()
    # ... and im1010's box lies on its image (153 x 192 px)
    width, height = Image.open(shared_data / "im1010.jpg").size
    half = 100 * dataset.scale[0]
    assert dataset.center[0][0] - half >= 0 and dataset.center[0][0] + half <= width
    assert dataset.center[0][1] - half >= 0 and dataset.center[0][1] + half <= height


def test_people_with_few_keypoints_are_skipped_and_counted(folders, shared_data):
    keypoints, images = folders
    person = _people(shared_data / "im1010_openpose.json")[0]
    weak = person.copy()
    weak[6:, 2] = 0.1  # 4 confident keypoints left (of 22): nose, neck, shoulders
    document = {"people": [{"pose_keypoints_2d": p.ravel().tolist()} for p in (weak, person, person)]}
    (keypoints / "im1010_keypoints.json").write_text(json.dumps(document))
    (keypoints / "pexels" / "photo.json").write_text(json.dumps({"people": []}))
    converted = convert_openpose_folder(keypoints, images)
    assert converted.imgname.tolist() == ["im1010.jpg", "im1010.jpg"]
    assert dict(converted.skipped) == {
        "people with fewer than 8 keypoints of confidence > 0.2": 1,
        "images with no person detected": 1,
    }
    loose = convert_openpose_folder(keypoints, images, OpenPoseFolderConfig(min_keypoints=4))
    assert len(loose) == 3 and loose.skipped == (("images with no person detected", 1),)
    with pytest.raises(
        InputError, match=r"no person in --keypoints .* has 23 keypoints .*lower --min-keypoints"
    ):
        convert_openpose_folder(keypoints, images, OpenPoseFolderConfig(min_keypoints=23))


def test_files_without_a_partner_are_skipped_counted_and_named(folders):
    keypoints, images = folders
    (keypoints / "lonely_keypoints.json").write_text('{"people": []}')
    Image.new("RGB", (8, 8)).save(images / "unannotated.jpeg")
    converted = convert_openpose_folder(keypoints, images)
    assert converted.imgname.tolist() == ["im1010.jpg", "pexels/photo.PNG"]
    assert dict(converted.skipped) == {
        "JSON files with no image of their name ('lonely_keypoints.json')": 1,
        "images with no JSON file ('unannotated.jpeg')": 1,
    }


def test_spins_example_folder_as_it_ships(tmp_path, shared_data):
    """SPIN's examples/: im1010.jpg beside im1010_openpose.json and im1010_bbox.json (not OpenPose)."""
    for name in ("im1010.jpg", "im1010_openpose.json", "im1010_bbox.json"):
        shutil.copy(shared_data / name, tmp_path / name)
    converted = convert_openpose_folder(tmp_path, tmp_path)
    assert converted.imgname.tolist() == ["im1010.jpg"]
    assert converted.skipped == (("JSON files with no image of their name ('im1010_bbox.json')", 1),)


def test_no_pair_at_all_is_an_error_listing_both_sides(folders):
    keypoints, images = folders
    (keypoints / "im1010_keypoints.json").rename(keypoints / "other.json")
    (keypoints / "pexels" / "photo.json").unlink()
    with pytest.raises(
        InputError,
        match=r"no JSON file in --keypoints .* matches an image in --images .* \(1 JSON files: 'other.json'; "
        r"2 images: 'im1010.jpg', 'pexels/photo.PNG'\)\. Each image needs its OpenPose JSON file",
    ):
        match_openpose_files(keypoints, images)


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda k, i: (i / "im1010.png").write_bytes(b"x"), r"share a name .*im1010 \(.jpg, .png\)"),
        (lambda k, i: (k / "im1010.json").write_text("{}"), r"both match the image .*im1010.jpg"),
        (lambda k, i: shutil.rmtree(i), r"--images .* does not exist; expected the folder of images"),
    ],
)
def test_ambiguous_or_missing_folders_are_errors(folders, setup, message):
    keypoints, images = folders
    setup(keypoints, images)
    with pytest.raises(InputError, match=message):
        match_openpose_files(keypoints, images)


def test_an_empty_keypoints_folder_is_an_error(tmp_path):
    (tmp_path / "k").mkdir()
    with pytest.raises(InputError, match=r"holds no .json files; expected OpenPose's output"):
        match_openpose_files(tmp_path / "k", tmp_path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", r"photo.json is not JSON"),
        (
            '{"people": [{"pose_keypoints_2d": [1, 2, 0.5]}]}',
            r"photo.json: person 0 has 3 values .*expected 75",
        ),
        ('{"persons": []}', r"photo.json is not OpenPose output"),
        (
            '{"people": [{"pose_keypoints_2d": [NaN, 1, 0.9' + ", 1, 1, 0.9" * 24 + "]}]}",
            r"photo.json: 1 keypoints are NaN or infinite but have confidence > 0",
        ),
    ],
)
def test_bad_json_is_an_error_naming_the_file(folders, text, message):
    keypoints, images = folders
    (keypoints / "pexels" / "photo.json").write_text(text)
    with pytest.raises(InputError, match=message):
        convert_openpose_folder(keypoints, images)


@pytest.mark.parametrize(
    "values, message",
    [
        (dict(min_keypoints=1), r"min_keypoints must be in \[2, 25\]"),
        (dict(detection_threshold=1.0), r"detection_threshold must be in \[0, 1\)"),
        (dict(rescale=0.0), r"rescale must be > 0"),
    ],
)
def test_config_is_checked(values, message):
    with pytest.raises(InputError, match=message):
        OpenPoseFolderConfig(**values)


def test_output_must_be_npz(folders, tmp_path):
    converted = convert_openpose_folder(*folders)
    with pytest.raises(InputError, match=r"the output must be a .npz file"):
        write_spin_npz(converted, tmp_path / "out.npy")
    assert not list(tmp_path.glob("*.np*"))
    assert len(load_spin_npz(write_spin_npz(converted, tmp_path / "sub" / "ok.npz").source)) == 2


def test_converted_rows_must_agree_in_length():
    from spinfits.fitting.converters.spin_rows import ConvertedDataset

    with pytest.raises(
        InputError, match=r"ConvertedDataset.openpose has shape \(1, 25, 3\), expected \(2, 25, 3\)"
    ):
        ConvertedDataset(
            imgname=np.array(["a.jpg", "b.jpg"]),
            center=np.zeros((2, 2)),
            scale=np.ones(2),
            part=np.zeros((2, 24, 3)),
            openpose=np.zeros((1, 25, 3)),
        )
