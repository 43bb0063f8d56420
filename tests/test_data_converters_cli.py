"""``spinfits data from-openpose | from-coco | from-mmpose-3dhp`` through ``spinfits.cli.main``,
on the real samples of ../shared/data; each output is read back by ``spinfits data info``."""

import json
import logging
import re
import shutil

import numpy as np
import pytest

from spinfits.cli import main


def run(capsys, *argv):
    status = main(["data", *map(str, argv)])
    out, err = capsys.readouterr()
    return status, out, err


def info(capsys, path):
    status, out, _ = run(capsys, "info", path)
    assert status == 0
    return out


@pytest.fixture
def openpose_folders(tmp_path, shared_data):
    keypoints, images = tmp_path / "keypoints", tmp_path / "images"
    keypoints.mkdir()
    images.mkdir()
    shutil.copy(shared_data / "im1010_openpose.json", keypoints / "im1010_keypoints.json")
    shutil.copy(shared_data / "im1010.jpg", images / "im1010.jpg")
    return keypoints, images


def test_from_openpose(capsys, openpose_folders, tmp_path):
    keypoints, images = openpose_folders
    out_file = tmp_path / "out" / "openpose.npz"
    status, out, _ = run(capsys, "from-openpose", "--keypoints", keypoints, "--images", images, out_file)
    assert status == 0
    assert f"wrote 1 rows (1 images) to {out_file}" in out and "has_smpl 0" in out
    assert np.load(out_file)["imgname"].tolist() == ["im1010.jpg"]
    assert f"{out_file}: 1 rows" in info(capsys, out_file)

    # a second, weak detection in the same file is skipped and counted
    document = json.loads((keypoints / "im1010_keypoints.json").read_text())
    weak = list(document["people"][0]["pose_keypoints_2d"])
    weak[2::3] = [0.0] * 25
    weak[2] = weak[5] = weak[8] = 0.9
    document["people"].append({"pose_keypoints_2d": weak})
    (keypoints / "im1010_keypoints.json").write_text(json.dumps(document))
    status, out, _ = run(capsys, "from-openpose", "--keypoints", keypoints, "--images", images, out_file)
    assert status == 0 and "skipped 1 people with fewer than 8 keypoints of confidence > 0.2" in out
    status, out, _ = run(
        capsys,
        "from-openpose",
        "--keypoints",
        keypoints,
        "--images",
        images,
        out_file,
        "--min-keypoints",
        "3",
    )
    assert status == 0 and "wrote 2 rows (1 images)" in out


def test_from_openpose_on_spins_example_naming_skips_orphans(capsys, caplog, shared_data, tmp_path):
    """im1010_openpose.json beside im1010.jpg (SPIN's examples/), plus a JSON of no image."""
    caplog.set_level(logging.INFO)
    folder = tmp_path / "examples"
    folder.mkdir()
    for name in ("im1010.jpg", "im1010_openpose.json", "im1010_bbox.json"):
        shutil.copy(shared_data / name, folder / name)
    (folder / "frame9_keypoints.json").write_text('{"people": []}')
    status, out, err = run(
        capsys, "from-openpose", "--keypoints", folder, "--images", folder, tmp_path / "o.npz"
    )
    assert status == 0, err
    assert "wrote 1 rows (1 images)" in out
    assert (
        "skipped 2 JSON files with no image of their name ('frame9_keypoints.json', 'im1010_bbox.json')"
        in out
    )
    assert not [
        r for r in caplog.records if r.levelno >= logging.INFO and "skipped" in r.getMessage()
    ]  # said once


def test_from_coco(capsys, shared_data, tmp_path):
    folder = shared_data / "coco_sample"
    out_file = tmp_path / "coco.npz"
    status, out, _ = run(
        capsys, "from-coco", "--annotations", folder / "test_coco.json", "--images", folder, out_file
    )
    assert status == 0
    assert "wrote 7 rows (3 images)" in out
    assert "skipped 7 annotations with fewer than 12 of 12 body joints labelled" in out
    assert "7 rows" in info(capsys, out_file)


def test_from_mmpose_3dhp(capsys, shared_data, tmp_path):
    folder = shared_data / "mpi_inf_3dhp_sample"
    out_file = tmp_path / "3dhp.npz"
    status, out, _ = run(
        capsys, "from-mmpose-3dhp", "--npz", folder / "test_3dhp_train.npz", "--images", folder, out_file
    )
    assert status == 0 and "wrote 2 rows (2 images)" in out and "with 3D joints (S)" in out
    assert np.load(out_file)["S"].shape == (2, 24, 4)
    assert "2 rows" in info(capsys, out_file)
    status, out, _ = run(capsys, "from-mmpose-3dhp", "--npz", folder / "test_3dhp_test.npz", out_file)
    assert status == 0 and "skipped 1 frames with fewer than 17 joints inside the image" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["from-openpose", "--keypoints", "{kp}", "--images", "{tmp}", "{tmp}/o.npz"],
            r"no JSON file in --keypoints .* matches an image in --images .* \(1 JSON files: "
            r"'im1010_keypoints.json'; 1 images: 'images/im1010.jpg'\)",
        ),
        (
            [
                "from-openpose",
                "--keypoints",
                "{kp}",
                "--images",
                "{img}",
                "{tmp}/o.npz",
                "--min-keypoints",
                "1",
            ],
            r"--min-keypoints must be in \[2, 25\]",
        ),
        (
            ["from-openpose", "--keypoints", "{kp}", "--images", "{img}", "{tmp}/o.txt"],
            r"the output must be a .npz file",
        ),
        (
            [
                "from-coco",
                "--annotations",
                "{data}/coco_sample/test_coco.json",
                "--images",
                "{img}",
                "{tmp}/o.npz",
            ],
            r"3 of the 3 images named in .*test_coco.json are not in",
        ),
        (
            [
                "from-coco",
                "--annotations",
                "{data}/coco_sample/test_coco.json",
                "--images",
                "{data}/coco_sample",
                "{tmp}/o.npz",
                "--min-body-joints",
                "13",
            ],
            r"--min-body-joints must be in \[0, 12\]",
        ),
        (
            [
                "from-mmpose-3dhp",
                "--npz",
                "{data}/mpi_inf_3dhp_sample/test_3dhp_train.npz",
                "{tmp}/o.npz",
                "--s-unit",
                "mm",
            ],
            r"'S' is not in mm; pass --s-unit m",
        ),
        (
            ["from-mmpose-3dhp", "--npz", "{data}/h36m_spin_sample.npz", "{tmp}/o.npz"],
            r"'part' has shape \(4, 24, 3\), expected \(4, 17, 3\) \(24 joints: already SPIN's",
        ),
    ],
)
def test_errors_exit_2_with_a_message_and_write_nothing(
    capsys, openpose_folders, shared_data, tmp_path, argv, message
):
    keypoints, images = openpose_folders
    names = dict(kp=keypoints, img=images, tmp=tmp_path, data=shared_data)
    status, out, err = run(capsys, *(arg.format(**names) for arg in argv))
    assert status == 2 and out == ""
    assert err.startswith("spinfits data: error: ")
    assert re.search(message, err), err
    assert not list(tmp_path.glob("o.*")) and not list(tmp_path.glob(".o.*"))
