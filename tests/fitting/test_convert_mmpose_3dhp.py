"""``convert_mmpose_3dhp``: mmpose's 17-joint MPI-INF-3DHP npz (../shared/data) -> SPIN's npz."""

import numpy as np
import pytest

from spinfits.errors import InputError
from spinfits.fitting.body.joints import SPIN_GT_JOINT_NAMES
from spinfits.fitting.converters.mmpose_3dhp import Mmpose3dhpConfig, convert_mmpose_3dhp
from spinfits.fitting.converters.spin_rows import write_spin_npz


def slot(name):
    return SPIN_GT_JOINT_NAMES.index(name)


@pytest.fixture
def sample(shared_data):
    folder = shared_data / "mpi_inf_3dhp_sample"
    return folder / "test_3dhp_train.npz", folder


def test_real_frames_in_spins_order_and_metres(sample, tmp_path):
    path, images = sample
    raw = np.load(path)
    converted = convert_mmpose_3dhp(path, images)
    assert converted.imgname.tolist() == raw["imgname"].tolist() and converted.skipped == ()
    np.testing.assert_array_equal(converted.center, raw["center"])
    np.testing.assert_array_equal(converted.scale, raw["scale"])
    # mmpose's left shoulder (5) and right knee (9), 2D: in SPIN's slots of those names
    np.testing.assert_array_equal(converted.part[:, slot("Left Shoulder")], raw["part"][:, 5])
    np.testing.assert_array_equal(converted.part[:, slot("Right Knee")], raw["part"][:, 9])
    # 3D: relative to the pelvis (mmpose's root, 14), in metres as mmpose has them
    pelvis = raw["S"][:, 14, :3]
    np.testing.assert_allclose(converted.S[:, slot("Left Shoulder"), :3], raw["S"][:, 5, :3] - pelvis)
    assert (converted.S[:, slot("Pelvis (MPII)"), :3] == 0).all()
    assert (converted.S[:, slot("Left Shoulder"), 3] == 1).all()
    # the first frame's person stands: head top above the neck above the pelvis above the ankles
    y = converted.part[0, :, 1]
    assert y[slot("Head (H36M)")] < y[slot("Neck (LSP)")] < y[slot("Pelvis (MPII)")] < y[slot("Right Ankle")]
    # in 3D (any posture): spine, neck, jaw, head top ever farther from the pelvis
    chain = [slot(n) for n in ("Spine (H36M)", "Neck (LSP)", "Jaw (H36M)", "Head (H36M)")]
    assert (np.diff(np.linalg.norm(converted.S[:, chain, :3], axis=-1), axis=1) > 0).all()
    # metres: a shin is 0.3 to 0.6 m long
    shin = np.linalg.norm(
        converted.S[:, slot("Left Knee"), :3] - converted.S[:, slot("Left Ankle"), :3], axis=1
    )
    assert ((shin > 0.3) & (shin < 0.6)).all(), shin
    # SPIN's slots no 3DHP joint maps to stay missing
    unmapped = [slot(n) for n in ("Top of Head (LSP)", "Thorax (MPII)", "Nose", "Left Eye", "Right Ear")]
    assert (converted.part[:, unmapped] == 0).all() and (converted.S[:, unmapped] == 0).all()

    dataset = write_spin_npz(converted, tmp_path / "3dhp.npz")
    arrays = np.load(tmp_path / "3dhp.npz")
    assert arrays["S"].shape == (2, 24, 4) and (arrays["has_pose_3d"] == 1).all()
    assert (arrays["has_smpl"] == 0).all() and (arrays["openpose"] == 0).all()
    confident = dataset.keypoints[..., 2] > 0
    assert confident.sum() == 2 * 17
    crop = dataset.keypoints[..., :2][confident]
    assert ((crop >= 0) & (crop <= 224)).all()


def test_frames_with_joints_outside_the_image_are_skipped_as_spin_does(shared_data):
    path = shared_data / "mpi_inf_3dhp_sample" / "test_3dhp_test.npz"
    raw = np.load(path)
    outside = raw["part"][..., 2] == 0  # the second frame's wrists lie left of the image
    assert outside.sum(axis=1).tolist() == [0, 2]
    converted = convert_mmpose_3dhp(path)
    assert converted.imgname.tolist() == [raw["imgname"][0]]
    assert converted.skipped == (("frames with fewer than 17 joints inside the image", 1),)
    loose = convert_mmpose_3dhp(path, config=Mmpose3dhpConfig(min_visible_joints=15))
    assert len(loose) == 2
    for wrist in ("Right Wrist", "Left Wrist"):
        assert loose.part[1, slot(wrist), 2] == 0 and loose.S[1, slot(wrist), 3] == 0


def _rewrite(tmp_path, path, **changes):
    arrays = dict(np.load(path))
    arrays.update(changes)
    arrays = {key: value for key, value in arrays.items() if value is not None}
    out = tmp_path / "edited.npz"
    np.savez(out, **arrays)
    return out


def test_millimetres_are_told_apart_from_metres(sample, tmp_path):
    path, _ = sample
    raw = np.load(path)
    in_mm = raw["S"].copy()
    in_mm[..., :3] *= 1000
    edited = _rewrite(tmp_path, path, S=in_mm)
    with pytest.raises(
        InputError, match=r"a joint lies .* m from the pelvis .*pass --s-unit mm for millimetres"
    ):
        convert_mmpose_3dhp(edited)
    converted = convert_mmpose_3dhp(edited, config=Mmpose3dhpConfig(s_unit="mm"))
    np.testing.assert_allclose(converted.S, convert_mmpose_3dhp(path).S, atol=1e-12)
    with pytest.raises(InputError, match=r"every joint lies within .* pass --s-unit m for metres"):
        convert_mmpose_3dhp(path, config=Mmpose3dhpConfig(s_unit="mm"))


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(S=None), r"has no 'S' .*expected mmpose's 3DHP layout"),
        (
            dict(part=np.zeros((2, 24, 3))),
            r"'part' has shape \(2, 24, 3\), expected \(2, 17, 3\) \(24 joints: already",
        ),
        (dict(S=np.zeros((2, 17, 3))), r"'S' has shape \(2, 17, 3\), expected \(2, 17, 4\)"),
        (dict(imgname=np.array(["a.jpg"])), r"'imgname' has shape \(1,\), expected \(2,\)"),
        (dict(S=np.full((2, 17, 4), np.nan)), r"'S' has NaN or infinite values in rows \[0, 1\]"),
    ],
)
def test_bad_files_are_errors(sample, tmp_path, changes, message):
    path, _ = sample
    with pytest.raises(InputError, match=message):
        convert_mmpose_3dhp(_rewrite(tmp_path, path, **changes))


def test_missing_frames_and_unreadable_files_are_errors(sample, tmp_path):
    path, images = sample
    with pytest.raises(
        InputError, match=r"2 of the 2 images named in .* are not in .*\('S4_Seq2_Cam0_001033.jpg'"
    ):
        convert_mmpose_3dhp(path, tmp_path)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match=r"junk.npz is not a readable npz"):
        convert_mmpose_3dhp(tmp_path / "junk.npz")
    with pytest.raises(InputError, match=r"--npz .*none.npz does not exist"):
        convert_mmpose_3dhp(tmp_path / "none.npz")
    with pytest.raises(InputError, match=r"min_visible_joints must be in \[1, 17\]"):
        Mmpose3dhpConfig(min_visible_joints=0)
