"""``spinfits data from-lsp | from-mpii | from-3dpw | from-humandata | attach-openpose`` through
``spinfits.cli.main``, each on a small file written here from its format's specification (the
real files are large and licensed): scipy.io.savemat for .mat, a protocol-2 pickle for 3DPW,
np.savez for HumanData. LSP's joints are the real ones of ../shared/data."""

import os
import pickle
import re
import shutil

import numpy as np
import pytest
import scipy.io
from scipy.spatial.transform import Rotation

from spinfits.cli import main
from spinfits.fitting.data.dataset import read_openpose_json
from spinfits.fitting.data.dataset_joint_maps import OPENPOSE_FOR_SPIN_GT_LIMBS
from spinfits.fitting.data.human_data_keypoints import HUMAN_DATA_KEYPOINTS


def run(capsys, *argv):
    status = main(["data", *map(str, argv)])
    out, err = capsys.readouterr()
    return status, out, err


def error(capsys, *argv):
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == "", (out, err)
    return err


# -- LSP ---------------------------------------------------------------------------------------


@pytest.fixture
def lsp_people(shared_data):
    """6 real LSP people in SPIN's layout (part's first 14 slots are LSP's joints)."""
    with np.load(shared_data / "lsp_train_keypoints.npz") as data:
        return {key: data[key][:6] for key in ("center", "scale", "part")}


@pytest.mark.parametrize(
    "layout, axes, name", [("lsp", (2, 1, 0), "im0006.jpg"), ("lsp-extended", (1, 2, 0), "im00006.jpg")]
)
def test_from_lsp_matches_spins_rows(capsys, tmp_path, lsp_people, layout, axes, name):
    joints = np.transpose(lsp_people["part"][:, :14], axes).copy()  # 3 x 14 x N or 14 x 3 x N
    flags = joints[2] if layout == "lsp" else joints[:, 2]
    flags[...] = 0  # the visibility flag: SPIN gives every joint confidence 1 anyway
    scipy.io.savemat(tmp_path / "joints.mat", {"joints": joints})
    status, out, _ = run(capsys, "from-lsp", "--joints", tmp_path / "joints.mat", tmp_path / "lsp.npz")
    assert status == 0 and "wrote 6 rows (6 images)" in out and "has_smpl 0" in out
    with np.load(tmp_path / "lsp.npz") as converted:
        np.testing.assert_allclose(converted["part"], lsp_people["part"])
        np.testing.assert_allclose(converted["center"], lsp_people["center"])
        np.testing.assert_allclose(converted["scale"], lsp_people["scale"])
        assert converted["imgname"][-1] == name


def test_from_lsp_splits_spins_train_and_test(capsys, tmp_path, lsp_people):
    joints = np.tile(np.transpose(lsp_people["part"][:, :14], (2, 1, 0)), (1, 1, 400))  # 3 x 14 x 2400
    scipy.io.savemat(tmp_path / "joints.mat", {"joints": joints[..., :2000]})
    status, out, _ = run(
        capsys, "from-lsp", "--joints", tmp_path / "joints.mat", tmp_path / "test.npz", "--split", "test"
    )
    assert status == 0 and "wrote 1000 rows (1000 images)" in out
    with np.load(tmp_path / "test.npz") as converted:
        assert converted["imgname"][[0, -1]].tolist() == ["im1001.jpg", "im2000.jpg"]
        np.testing.assert_allclose(converted["part"][0], lsp_people["part"][1000 % 6])


def test_from_lsp_errors(capsys, tmp_path, lsp_people):
    mat = tmp_path / "joints.mat"
    scipy.io.savemat(mat, {"joints": np.zeros((2, 14, 5))})
    assert re.search(
        r"joints.mat: 'joints' has shape \(2, 14, 5\), expected 3 x 14 x N \(LSP\)",
        error(capsys, "from-lsp", "--joints", mat, tmp_path / "o.npz"),
    )
    scipy.io.savemat(mat, {"points": np.zeros((3, 14, 5))})
    assert "has no 'joints' array (it has ['points'])" in error(
        capsys, "from-lsp", "--joints", mat, tmp_path / "o.npz"
    )
    scipy.io.savemat(mat, {"joints": np.transpose(lsp_people["part"][:, :14], (2, 1, 0))})
    err = error(capsys, "from-lsp", "--joints", mat, tmp_path / "o.npz", "--split", "train")
    assert (
        "--split train is SPIN's split of LSP's 2000 images" in err
        and "lsp with 6 images: use --split all" in err
    )
    mat.write_bytes(b"not a mat file")
    assert "is not a readable .mat file" in error(capsys, "from-lsp", "--joints", mat, tmp_path / "o.npz")
    assert not list(tmp_path.glob("o.*"))


# -- MPII --------------------------------------------------------------------------------------


def structs(records):
    """A MATLAB 1 x n struct array (what savemat writes a struct array from)."""
    array = np.zeros((1, len(records)), dtype=[(key, object) for key in records[0]])
    for index, record in enumerate(records):
        for key, value in record.items():
            array[0, index][key] = value
    return array


def mpii_person(labelled, scale=2.0, ids=None):
    ids = list(range(labelled)) if ids is None else ids
    points = structs([{"x": 100.0 + j, "y": 50.0 + 2 * j, "id": j, "is_visible": 1} for j in ids])
    return {
        "x1": 1.0,
        "y1": 1.0,
        "x2": 9.0,
        "y2": 9.0,
        "annopoints": {"point": points},
        "scale": scale,
        "objpos": {"x": 120.0, "y": 80.0},
    }


def mpii_image(name, people):
    return {
        "image": {"name": name},
        "annorect": structs(people),
        "frame_sec": np.zeros(0),
        "vididx": np.zeros(0),
    }


def write_mpii(path, images, img_train):
    release = {"annolist": structs(images), "img_train": np.array([img_train]), "version": "12"}
    scipy.io.savemat(path, {"RELEASE": release})


def test_from_mpii(capsys, tmp_path):
    test_person = {
        "x1": np.zeros(0),
        "y1": np.zeros(0),
        "x2": np.zeros(0),
        "y2": np.zeros(0),
        "annopoints": np.zeros(0),
        "scale": 1.5,
        "objpos": {"x": 3.0, "y": 4.0},
    }
    images = [
        mpii_image("015601864.jpg", [mpii_person(16), mpii_person(10)]),
        mpii_image("000001163.jpg", [test_person]),
        mpii_image("000003072.jpg", [mpii_person(16, scale=3.0)]),
    ]
    unplaced = mpii_person(16)
    unplaced["objpos"] = np.zeros(0)  # MATLAB's []
    images.append(mpii_image("000004812.jpg", [unplaced]))
    write_mpii(tmp_path / "mpii.mat", images, [1, 0, 1, 1])
    out_file = tmp_path / "mpii.npz"
    status, out, _ = run(capsys, "from-mpii", "--annotations", tmp_path / "mpii.mat", out_file)
    assert status == 0 and "wrote 2 rows (2 images)" in out
    assert "skipped 1 people without joint annotations (MPII's test images)" in out
    assert "skipped 1 people with fewer than 16 of 16 joints labelled" in out
    assert "skipped 1 people without a position (objpos) or scale" in out
    with np.load(out_file) as converted:
        assert converted["imgname"].tolist() == ["015601864.jpg", "000003072.jpg"]
        assert converted["scale"].tolist() == [2.0, 3.0] and converted["center"][0].tolist() == [120.0, 80.0]
        part = converted["part"][0]
        assert part[14].tolist() == [106.0, 62.0, 1.0]  # id 6 pelvis -> "Pelvis (MPII)"
        assert part[13].tolist() == [109.0, 68.0, 1.0]  # id 9 head top -> "Top of Head (LSP)"
        assert part[6].tolist() == [110.0, 70.0, 1.0]  # id 10 right wrist -> "Right Wrist"
        assert (part[16:, 2] == 0).all()
    status, out, _ = run(
        capsys, "from-mpii", "--annotations", tmp_path / "mpii.mat", out_file, "--min-joints", "10"
    )
    assert status == 0 and "wrote 3 rows (2 images)" in out


def test_from_mpii_errors(capsys, tmp_path):
    mat = tmp_path / "mpii.mat"
    scipy.io.savemat(mat, {"annolist": np.zeros(3)})
    assert "has no 'RELEASE' struct (it has ['annolist'])" in error(
        capsys, "from-mpii", "--annotations", mat, tmp_path / "o.npz"
    )
    write_mpii(mat, [mpii_image("a.jpg", [mpii_person(0, ids=[3, 3])])], [1])
    err = error(capsys, "from-mpii", "--annotations", mat, tmp_path / "o.npz")
    assert re.search(
        r"mpii.mat: RELEASE.annolist\(1\).annorect\(1\) of a.jpg: joint id 3 \(left_hip\) is labelled twice",
        err,
    )
    person = mpii_person(16)
    person["objpos"] = {"y": 3.0}
    write_mpii(mat, [mpii_image("a.jpg", [person])], [1])
    err = error(capsys, "from-mpii", "--annotations", mat, tmp_path / "o.npz")
    assert "annorect(1) of a.jpg.objpos has no field 'x'" in err


# -- 3DPW --------------------------------------------------------------------------------------


def pw3d_sequence(frames=4, seed=0):
    rng = np.random.default_rng(seed)
    poses2d = np.zeros((frames, 3, 18))
    poses2d[:, 0] = rng.uniform(100, 300, (frames, 18))
    poses2d[:, 1] = rng.uniform(50, 400, (frames, 18))
    poses2d[:, 2] = 0.8
    cam_poses = np.tile(np.eye(4), (frames, 1, 1))
    cam_poses[:, :3, :3] = Rotation.from_rotvec([0.0, 0.5, 0.0]).as_matrix()
    return {
        "sequence": "downtown_walking_00",
        "genders": ["m", "f"],
        "betas": [rng.normal(size=300), rng.normal(size=10)],
        "poses": [rng.normal(0, 0.2, (frames, 72)), rng.normal(0, 0.2, (frames, 72))],
        "poses2d": [poses2d, poses2d.copy()],
        "campose_valid": [np.array([1, 1, 0, 1]), np.ones(frames)],
        "cam_poses": cam_poses,
        "trans": [np.zeros((frames, 3))] * 2,
    }


def write_pickle(path, data):
    with open(path, "wb") as file:
        pickle.dump(data, file, protocol=2)


def test_from_3dpw_keeps_gender_and_turns_the_pose_into_the_camera(capsys, tmp_path):
    folder = tmp_path / "sequenceFiles" / "test"
    folder.mkdir(parents=True)
    sequence = pw3d_sequence()
    write_pickle(folder / "downtown_walking_00.pkl", sequence)
    out_file = tmp_path / "3dpw.npz"
    status, out, _ = run(capsys, "from-3dpw", folder, out_file)
    assert status == 0 and "wrote 7 rows (4 images)" in out
    assert "skipped 1 frames of people without a valid camera pose (campose_valid 0)" in out
    assert "SMPL ground truth for 7 rows (has_smpl 1)" in out and "gender: f 4, m 3" in out
    with np.load(out_file) as converted:
        assert converted["gender"].tolist() == ["m"] * 3 + ["f"] * 4
        assert converted["imgname"][2] == "imageFiles/downtown_walking_00/image_00003.jpg"
        assert converted["has_smpl"].tolist() == [1.0] * 7
        np.testing.assert_allclose(converted["shape"][0], sequence["betas"][0][:10])
        world = sequence["poses"][0][3]
        np.testing.assert_allclose(converted["pose"][2, 3:], world[3:])
        camera = Rotation.from_rotvec([0.0, 0.5, 0.0]) * Rotation.from_rotvec(world[:3])
        np.testing.assert_allclose(
            Rotation.from_rotvec(converted["pose"][2, :3]).as_matrix(), camera.as_matrix(), atol=1e-9
        )
        # poses2d's COCO-18 joints in OpenPose's BODY_25 slots: mid hip (8) and feet stay empty
        assert converted["openpose"][0, 9, :2].tolist() == sequence["poses2d"][0][0, :2, 8].tolist()
        assert (converted["openpose"][:, [8, *range(19, 25)], 2] == 0).all()


class RunsCode:
    """A pickle that asks to call a function when loaded (what a tampered file does)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_from_3dpw_refuses_code_and_names_missing_fields(capsys, tmp_path):
    path = tmp_path / "seq.pkl"
    marker = tmp_path / "ran"
    write_pickle(path, {**pw3d_sequence(), "trans": RunsCode(marker)})
    err = error(capsys, "from-3dpw", path, tmp_path / "o.npz")
    assert f"{path} asks to run posix.mkdir while loading" in err and "never code" in err
    assert not marker.exists()
    sequence = pw3d_sequence()
    del sequence["cam_poses"]
    write_pickle(path, sequence)
    assert f"{path} has no 'cam_poses'" in error(capsys, "from-3dpw", path, tmp_path / "o.npz")
    sequence = pw3d_sequence()
    sequence["poses2d"][1] = np.zeros((4, 2, 18))
    write_pickle(path, sequence)
    assert re.search(
        r"seq.pkl: person 1 'poses2d' has shape \(4, 2, 18\), expected \(4, 3, 18\)",
        error(capsys, "from-3dpw", path, tmp_path / "o.npz"),
    )
    path.write_bytes(b"\x80\x02}q\x00(X")
    assert "is not a readable pickle" in error(capsys, "from-3dpw", path, tmp_path / "o.npz")
    assert not list(tmp_path.glob("o.*"))


# -- HumanData ---------------------------------------------------------------------------------

HAS = [
    "pelvis",
    "left_hip",
    "right_ankle",
    "right_knee",
    "left_knee",
    "right_wrist",
    "headtop",
    "right_hip_extra",
    "nose_openpose",
    "right_ankle_openpose",
]


def human_data(rows=3, **override):
    rng = np.random.default_rng(1)
    keypoints2d = np.concatenate([rng.uniform(0, 500, (rows, 190, 2)), np.ones((rows, 190, 1))], axis=-1)
    keypoints3d = np.concatenate([rng.normal(size=(rows, 190, 3)), np.ones((rows, 190, 1))], axis=-1)
    mask = np.isin(HUMAN_DATA_KEYPOINTS, HAS).astype(np.float64)
    members = {
        "image_path": np.array([f"images/{index}.jpg" for index in range(rows)]),
        "bbox_xywh": np.tile([10.0, 20.0, 100.0, 200.0, 1.0], (rows, 1)),
        "keypoints2d": keypoints2d,
        "keypoints2d_mask": mask,
        "keypoints3d": keypoints3d,
        "keypoints3d_mask": mask,
        "smpl": {
            "global_orient": rng.normal(size=(rows, 3)),
            "body_pose": rng.normal(size=(rows, 23, 3)),
            "betas": rng.normal(size=(rows, 10)),
        },
        "meta": {"gender": ["male", "female", "neutral"][:rows]},
        "__key_strict__": False,
        "__temporal_len__": rows,
        "__keypoints_compressed__": False,
        "config": "pw3d",
    }
    return {**members, **override}


def test_from_humandata(capsys, tmp_path):
    members = human_data()
    np.savez(tmp_path / "hd.npz", **members)
    out_file = tmp_path / "spin.npz"
    status, out, _ = run(capsys, "from-humandata", "--npz", tmp_path / "hd.npz", out_file)
    assert status == 0 and "wrote 3 rows (3 images)" in out, out
    assert "skipped 2 human_data keypoints SPIN's 24 + 25 joints do not use ('pelvis', 'left_hip')" in out
    assert "skipped 18 of SPIN's 24 ground-truth joints the file lacks" in out
    assert (
        "SMPL ground truth for 3 rows (has_smpl 1), with 3D joints (S)" in out
        and "gender: f 1, m 1, n 1" in out
    )
    index = HUMAN_DATA_KEYPOINTS.index
    with np.load(out_file) as converted:
        assert converted["center"][0].tolist() == [60.0, 120.0] and converted["scale"][0] == 1.0
        assert (
            converted["part"][0, 2].tolist() == members["keypoints2d"][0, index("right_hip_extra")].tolist()
        )
        assert converted["part"][0, 13].tolist() == members["keypoints2d"][0, index("headtop")].tolist()
        assert (converted["part"][:, 9, 2] == 0).all()  # left_shoulder: mask 0
        assert (
            converted["openpose"][0, 11].tolist()
            == members["keypoints2d"][0, index("right_ankle_openpose")].tolist()
        )
        assert converted["S"][1, 0].tolist() == members["keypoints3d"][1, index("right_ankle")].tolist()
        np.testing.assert_allclose(converted["pose"][:, 3:], members["smpl"]["body_pose"].reshape(3, 69))
        assert converted["gender"].tolist() == ["m", "f", "n"]

    # mmhuman3d's compressed keypoints: only the masked ones stored
    kept = np.flatnonzero(members["keypoints2d_mask"])
    compressed = human_data(
        keypoints2d=members["keypoints2d"][:, kept],
        keypoints3d=members["keypoints3d"][:, kept],
        __keypoints_compressed__=True,
    )
    np.savez(tmp_path / "hd_c.npz", **compressed)
    status, out, _ = run(capsys, "from-humandata", "--npz", tmp_path / "hd_c.npz", tmp_path / "spin_c.npz")
    assert status == 0
    with np.load(out_file) as full, np.load(tmp_path / "spin_c.npz") as from_compressed:
        np.testing.assert_array_equal(full["part"], from_compressed["part"])


def test_from_humandata_errors(capsys, tmp_path):
    path = tmp_path / "hd.npz"
    np.savez(path, **human_data(keypoints2d=np.zeros((3, 49, 3))))
    err = error(capsys, "from-humandata", "--npz", path, tmp_path / "o.npz")
    assert (
        "hd.npz: 'keypoints2d' has 49 keypoints per row, expected 190: mmhuman3d's 'human_data' convention"
        in err
    )
    members = human_data()
    del members["smpl"]["betas"]
    np.savez(path, **members)
    assert "hd.npz: 'smpl' has no 'betas'" in error(
        capsys, "from-humandata", "--npz", path, tmp_path / "o.npz"
    )
    marker = tmp_path / "ran"
    np.savez(path, **human_data(smpl={"betas": RunsCode(marker)}))
    err = error(capsys, "from-humandata", "--npz", path, tmp_path / "o.npz")
    assert "hd.npz member 'smpl' asks to run posix.mkdir while loading" in err and not marker.exists()
    members = human_data()
    del members["bbox_xywh"]
    np.savez(path, **members)
    assert "hd.npz has no 'bbox_xywh'" in error(capsys, "from-humandata", "--npz", path, tmp_path / "o.npz")
    assert not list(tmp_path.glob("o.*"))


# -- attach-openpose ---------------------------------------------------------------------------


def test_attach_openpose_by_image_name(capsys, shared_data, tmp_path):
    """Rows named images/im1010.jpg get the detection of a flat folder's im1010_keypoints.json
    (SPIN's layout); a row without a JSON file, and one far from every person, get zeros."""
    keypoints = tmp_path / "openpose"
    keypoints.mkdir()
    shutil.copy(shared_data / "im1010_openpose.json", keypoints / "im1010_keypoints.json")
    shutil.copy(shared_data / "im1010_openpose.json", keypoints / "im2000_keypoints.json")
    detection = read_openpose_json(shared_data / "im1010_openpose.json")[0]  # (25, 3)
    center = detection[detection[:, 2] > 0, :2].mean(axis=0)
    part = np.zeros((3, 24, 3))
    part[:, :12, :2] = (
        detection[list(OPENPOSE_FOR_SPIN_GT_LIMBS), :2] + np.array([3.0, 0.0, 500.0])[:, None, None]
    )
    part[:, :12, 2] = 1.0
    rows = {
        "imgname": np.array(["images/im1010.jpg", "images/im1011.jpg", "images/im2000.jpg"]),
        "center": np.array([center, center, center + 500]),
        "scale": np.array([1.0, 1.0, 1.0]),
        "part": part,
    }
    np.savez(tmp_path / "lsp.npz", **rows)
    out_file = tmp_path / "lsp_openpose.npz"
    status, out, _ = run(capsys, "attach-openpose", tmp_path / "lsp.npz", "--keypoints", keypoints, out_file)
    assert status == 0, out
    assert "wrote 3 rows" in out and ": 1 with an OpenPose detection" in out
    assert "1 rows have no JSON file of their image: openpose zeros" in out
    assert "1 rows have no person within 0.15 box sides: openpose zeros" in out
    with np.load(out_file) as attached:
        np.testing.assert_allclose(attached["openpose"][0], detection)
        assert (attached["openpose"][1:] == 0).all()
        np.testing.assert_array_equal(attached["part"], rows["part"])
    err = error(capsys, "attach-openpose", out_file, "--keypoints", keypoints, tmp_path / "again.npz")
    assert "already has OpenPose detections for 1 rows; pass --overwrite to replace them" in err
    status, _, _ = run(
        capsys, "attach-openpose", out_file, "--keypoints", keypoints, tmp_path / "again.npz", "--overwrite"
    )
    assert status == 0
