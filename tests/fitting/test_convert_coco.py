"""``convert_coco``: COCO keypoint annotations (../shared/data/coco_sample) -> SPIN's npz."""

import json
import shutil

import numpy as np
import pytest

from spinfits.errors import InputError
from spinfits.fitting.body.joints import SPIN_GT_JOINT_NAMES
from spinfits.fitting.converters.coco import CocoConfig, convert_coco
from spinfits.fitting.converters.spin_rows import write_spin_npz


@pytest.fixture
def coco(shared_data):
    folder = shared_data / "coco_sample"
    return folder / "test_coco.json", folder, json.loads((folder / "test_coco.json").read_text())


def _raw(document, annotation_id):
    entry = next(a for a in document["annotations"] if a["id"] == annotation_id)
    return entry, np.reshape(entry["keypoints"], (17, 3)).astype(float)


def _row(converted, entry):
    """The row of an annotation: its image and its bbox's centre."""
    x, y, w, h = entry["bbox"]
    rows = np.nonzero(np.isclose(converted.center, [x + w / 2, y + h / 2]).all(axis=1))[0]
    assert len(rows) == 1
    return rows[0]


def test_real_annotations_become_spin_rows(coco, tmp_path):
    path, images, document = coco
    converted = convert_coco(path, images)
    body_labelled = [sum(v > 0 for v in a["keypoints"][2::3][5:]) for a in document["annotations"]]
    assert len(converted) == sum(n == 12 for n in body_labelled) == 7
    assert converted.skipped == (("annotations with fewer than 12 of 12 body joints labelled", 7),)

    entry, raw = _raw(document, 442619)  # the one person of image 785, all 17 keypoints labelled
    row = _row(converted, entry)
    assert converted.imgname[row] == "000000000785.jpg"
    x, y, w, h = entry["bbox"]
    assert converted.scale[row] == pytest.approx(1.2 * max(w, h) / 200)
    # COCO's left wrist (index 9) and right ankle (16) land in SPIN's slots of those names
    left_wrist = SPIN_GT_JOINT_NAMES.index("Left Wrist")
    right_ankle = SPIN_GT_JOINT_NAMES.index("Right Ankle")
    np.testing.assert_array_equal(converted.part[row, left_wrist], [raw[9, 0], raw[9, 1], 1])
    np.testing.assert_array_equal(converted.part[row, right_ankle], [raw[16, 0], raw[16, 1], 1])
    assert raw[9, 0] == 449 and raw[16, 1] == 341  # the JSON's values, read by hand
    assert (converted.openpose == 0).all() and converted.S is None

    dataset = write_spin_npz(converted, tmp_path / "coco.npz")
    confident = dataset.keypoints[..., 2] > 0
    assert set(np.unique(dataset.keypoints[..., 2])) == {0.0, 1.0}
    crop = dataset.keypoints[..., :2][confident]
    assert ((crop >= 0) & (crop <= 224)).all()  # every labelled keypoint lies inside its crop
    assert not dataset.has_smpl.any()


def test_occluded_keypoints_count_as_labelled_with_confidence_one(coco):
    path, images, document = coco
    entry, raw = _raw(document, 467657)  # several keypoints with visibility 1 (labelled, occluded)
    assert (raw[:, 2] == 1).sum() >= 5
    converted = convert_coco(path, images)
    row = _row(converted, entry)
    left_hip = SPIN_GT_JOINT_NAMES.index("Left Hip")
    assert raw[11, 2] == 1
    np.testing.assert_array_equal(converted.part[row, left_hip], [raw[11, 0], raw[11, 1], 1])
    left_ear = SPIN_GT_JOINT_NAMES.index("Left Ear")
    assert raw[3, 2] == 0 and (converted.part[row, left_ear] == 0).all()  # unlabelled: missing


def test_min_body_joints_loosens_spins_filter(coco):
    path, images, document = coco
    loose = convert_coco(path, images, CocoConfig(min_body_joints=10))
    expected = sum(sum(v > 0 for v in a["keypoints"][2::3][5:]) >= 10 for a in document["annotations"])
    assert len(loose) == expected > 7


def _edited(tmp_path, document, edit):
    document = json.loads(json.dumps(document))
    edit(document)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.pop("annotations"), r"not a COCO annotation file: expected an object with 'images' and"),
        (
            lambda d: d["images"][0].pop("file_name"),
            r"every entry of 'images' needs an 'id' and a 'file_name'",
        ),
        (
            lambda d: d["annotations"][0].update(keypoints=[1, 2, 2]),
            r"annotation 0 \(id 442619\): 'keypoints' is \[1, 2, 2\], expected 51 numbers",
        ),
        (lambda d: d["annotations"][0].update(image_id=7), r"annotation 0 .* image_id 7, which no entry"),
        (
            lambda d: d["annotations"][0].update(bbox=[1, 2]),
            r"annotation 0 .* 'bbox' is \[1, 2\], expected \[x, y",
        ),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, 0, 0]), r"must be finite with width or height > 0"),
        (
            lambda d: d["images"][0].update(file_name="/abs/785.jpg"),
            r"1 image names are absolute or contain '\.\.' \('/abs/785.jpg'\)",
        ),
    ],
)
def test_bad_annotation_files_are_errors_naming_the_entry(coco, tmp_path, edit, message):
    _, images, document = coco
    with pytest.raises(InputError, match=message):
        convert_coco(_edited(tmp_path, document, edit), images)


def test_missing_images_are_listed(coco, tmp_path):
    path, images, _ = coco
    partial = tmp_path / "images"
    partial.mkdir()
    for name in ("000000000785.jpg", "000000196141.jpg"):
        shutil.copy(images / name, partial / name)
    with pytest.raises(
        InputError,
        match=r"1 of the 3 images named in .*test_coco.json are not in .*images \('000000197388.jpg'\); "
        r"--images must be the folder",
    ):
        convert_coco(path, partial)


def test_unreadable_inputs_are_errors(coco, tmp_path):
    path, images, _ = coco
    with pytest.raises(InputError, match=r"--annotations .*nope.json does not exist"):
        convert_coco(tmp_path / "nope.json", images)
    (tmp_path / "bad.json").write_text("[1, 2")
    with pytest.raises(InputError, match=r"bad.json is not JSON"):
        convert_coco(tmp_path / "bad.json", images)
    with pytest.raises(InputError, match=r"--images .*nowhere does not exist"):
        convert_coco(path, tmp_path / "nowhere")
    with pytest.raises(InputError, match=r"no annotation of .* has 12 of the 12 body joints"):
        convert_coco(
            _edited(tmp_path, json.loads(path.read_text()), lambda d: d.update(annotations=[])), images
        )
    with pytest.raises(InputError, match=r"min_body_joints must be in \[0, 12\]"):
        CocoConfig(min_body_joints=13)
