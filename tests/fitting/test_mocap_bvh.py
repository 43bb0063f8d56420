"""BVH reading and forward kinematics (spinfits.fitting.mocap.bvh)."""

from pathlib import Path

import numpy as np
import pytest

from spinfits.errors import InputError
from spinfits.fitting.mocap.bvh import BvhError, forward_kinematics, read_bvh

CHAIN = """HIERARCHY
ROOT root
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT a
  {
    OFFSET 0 2 0
    CHANNELS 3 Zrotation Yrotation Xrotation
    JOINT b
    {
      OFFSET 3 0 0
      CHANNELS 3 Xrotation Yrotation Zrotation
      End Site
      {
        OFFSET 0 0 4
      }
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.0333
1 2 3 0 0 0 0 0 0 0 0 0
10 0 0 90 0 0 0 0 90 90 0 0
"""


def _write(tmp_path: Path, text: str, name: str = "clip.bvh") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_forward_kinematics_of_a_hand_computed_chain(tmp_path):
    clip = read_bvh(_write(tmp_path, CHAIN))
    assert clip.skeleton.names == ("root", "a", "b", "b_end")
    assert clip.skeleton.parents.tolist() == [-1, 0, 1, 2]
    assert clip.skeleton.channels[2] == ("Xrotation", "Yrotation", "Zrotation")
    assert clip.motion.shape == (2, 12) and clip.frame_time == pytest.approx(0.0333)
    positions, _ = forward_kinematics(clip.skeleton, clip.motion)
    # frame 0: rest pose, translated by (1, 2, 3)
    np.testing.assert_allclose(positions[0], [[1, 2, 3], [1, 4, 3], [4, 4, 3], [4, 4, 7]], atol=1e-12)
    # frame 1: root turned 90 deg about z (x -> y, y -> -x); a: Z Y X = (0, 0, 90): about its x;
    # b: X Y Z = (90, 0, 0): about its x again.
    # a sits at root + Rz90 (0, 2, 0) = (10 - 2, 0, 0); b at a + Rz90 Rx90 (3, 0, 0) = a + (0, 3, 0);
    # the end at b + Rz90 Rx90 Rx90 (0, 0, 4) = b + Rz90 (0, 0, -4) = b + (0, 0, -4).
    np.testing.assert_allclose(positions[1], [[10, 0, 0], [8, 0, 0], [8, 3, 0], [8, 3, -4]], atol=1e-12)


def test_euler_order_is_read_per_joint(tmp_path):
    """Z then X (root, ZXY) differs from X then Z: R = Rz @ Rx sends y to Rz (Rx y)."""
    text = CHAIN.replace(
        "10 0 0 90 0 0 0 0 90 90 0 0", "0 0 0 90 90 0 0 0 0 0 0 0"
    )  # root: Zrotation 90, Xrotation 90
    positions, rotations = forward_kinematics(*_clip_parts(read_bvh(_write(tmp_path, text))))
    # Rz90 @ Rx90 applied to (0, 2, 0): Rx90 (0, 2, 0) = (0, 0, 2); Rz90 (0, 0, 2) = (0, 0, 2)
    np.testing.assert_allclose(positions[1, 1], [0, 0, 2], atol=1e-12)
    # the other order would give Rx90 Rz90 (0, 2, 0) = Rx90 (-2, 0, 0) = (-2, 0, 0)
    assert not np.allclose(positions[1, 1], [-2, 0, 0])
    np.testing.assert_allclose(rotations[1, 0] @ rotations[1, 0].T, np.eye(3), atol=1e-12)


def _clip_parts(clip):
    return clip.skeleton, clip.motion


@pytest.mark.parametrize(
    ("change", "line", "message"),
    [
        (("OFFSET 3 0 0", "OFFSET 3 zero 0"), 12, "expected an OFFSET value (a number), got 'zero'"),
        (
            ("Xrotation Yrotation Zrotation", "Xrotation Yrotation Wrotation"),
            13,
            "unknown channel 'Wrotation'",
        ),
        (("Frames: 2", "Frames: 3"), 26, "the header says 3 frames, the file holds 2"),
        (("10 0 0 90 0 0 0 0 90 90 0 0", "10 0 0 90 0 0 0 0 90 90 0"), 25, "frame 1 has 11 values"),
        (("1 2 3 0 0", "1 2 x 0 0"), 24, "frame 0 holds 'x', not a number"),
        (("    JOINT b\n", "    JOINT a\n"), 10, "joint 'a' is declared twice"),
        (("HIERARCHY\n", "HIERARCHIE\n"), 1, "expected 'HIERARCHY'"),
        (("MOTION\n", "MOTIONS\n"), 25, "no 'MOTION' line"),
    ],
)
def test_malformed_file_names_file_and_line(tmp_path, change, line, message):
    path = _write(tmp_path, CHAIN.replace(*change), "bad.bvh")
    with pytest.raises(BvhError) as caught:
        read_bvh(path)
    assert str(caught.value).startswith(f"{path}:{line}: "), str(caught.value)
    assert message in str(caught.value)
    assert isinstance(caught.value, InputError)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(BvhError, match="cannot read the BVH file .*nothing.bvh"):
        read_bvh(tmp_path / "nothing.bvh")
