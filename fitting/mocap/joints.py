"""3D joints of real people from BVH motion capture, in SMPL's joint slots, metres, y up.

``mocap_joints(paths)`` reads each clip (``bvh.read_bvh``), poses it (``bvh.forward_kinematics``),
recognises its rig (``joint_maps.SKELETON_MAPS``) and puts the mapped joints into SMPL's 24
skeleton slots. Each clip is scaled to a body height (rigs use different units and sizes): its leg
(hip to knee to ankle, the median over frames of both sides' mean) is made ``LEG_TO_HEIGHT`` of
``height``. A leading T-pose (a rest frame some conversions prepend) is dropped.

Convention: y up, as BVH files are; the person's left is their own left (the map's), so the torso
faces ``left x up``. ``write_mocap_joints`` / ``load_mocap_joints`` keep them in an npz.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spinfits.errors import InputError
from spinfits.fitting.body.joints import SMPL_JOINT_NAMES
from spinfits.fitting.mocap.bvh import BvhClip, BvhError, forward_kinematics, read_bvh
from spinfits.fitting.mocap.joint_maps import SKELETON_MAPS, SkeletonMap

logger = logging.getLogger(__name__)

#: Hip-to-ankle length over standing height (SMPL's and the stand-in's mean body: 0.48).
LEG_TO_HEIGHT = 0.48
#: SMPL slots used to measure and check a clip.
_SLOT = {name: index for index, name in enumerate(SMPL_JOINT_NAMES)}
_NUM_SLOTS = len(SMPL_JOINT_NAMES)
#: A T-pose: upper arms and forearms within this many degrees of horizontal and outwards.
_TPOSE_DEGREES = 15.0


@dataclass(frozen=True)
class MocapConfig:
    """How clips become joints.

    Fields:
        height: metres a clip's body is scaled to (through its leg length, module doc).
        every: keep every ``every``-th frame of each clip (1: all).
        drop_tpose: drop a leading T-pose frame.
    """

    height: float = 1.70
    every: int = 1
    drop_tpose: bool = True

    def __post_init__(self) -> None:
        if not (np.isfinite(self.height) and 0.5 <= self.height <= 2.5):
            raise InputError(f"height must be a body height in metres (0.5 to 2.5), got {self.height}")
        if not (isinstance(self.every, int) and self.every >= 1):
            raise InputError(f"every must be a whole number >= 1, got {self.every}")


@dataclass(frozen=True)
class MocapJoints:
    """N frames of real people (any number of clips), in SMPL's 24 joint slots.

    Fields:
        joints: (N, 24, 3) float64 metres, y up, world frame of the recording (scaled).
        present: (N, 24) bool where the clip's rig has the joint (others are zeros).
        clip: (N,) str clip name, ``<folder>/<file stem>``.
        frame: (N,) int frame number in the BVH file (0 = its first frame).
        skeleton: (N,) str the rig's map name (``joint_maps``).
        scale: (N,) float64 metres per file unit used for the clip.
    """

    joints: np.ndarray
    present: np.ndarray
    clip: np.ndarray
    frame: np.ndarray
    skeleton: np.ndarray
    scale: np.ndarray

    def __len__(self) -> int:
        return len(self.joints)

    @property
    def clips(self) -> list[str]:
        """Clip names in order of first appearance."""
        return list(dict.fromkeys(self.clip.tolist()))

    def select(self, rows: np.ndarray) -> MocapJoints:
        """The rows ``rows`` (an index or boolean array)."""
        return MocapJoints(
            self.joints[rows],
            self.present[rows],
            self.clip[rows],
            self.frame[rows],
            self.skeleton[rows],
            self.scale[rows],
        )


def clip_name(path: str | Path) -> str:
    """``<folder>/<stem>`` of a BVH path: unique across the shared mocap folders."""
    path = Path(path)
    return f"{path.parent.name}/{path.stem}"


def recognise_skeleton(clip: BvhClip) -> SkeletonMap:
    """The map whose BVH joints the clip's skeleton holds, else ``BvhError`` saying what is known."""
    names = set(clip.skeleton.names)
    for skeleton in SKELETON_MAPS:
        if names.issuperset(skeleton.bvh_names):
            return skeleton
    missing = []
    for skeleton in SKELETON_MAPS:
        lacking = [n for n in skeleton.bvh_names if n not in names]
        missing.append(f"{skeleton.name} lacks {', '.join(lacking[:4])}{' ...' if len(lacking) > 4 else ''}")
    root = clip.skeleton.names[0]
    raise BvhError(
        f"{clip.path}:{clip.skeleton.lines[0]}: unknown skeleton (root {root!r}, "
        f"{len(names)} joints): it matches no known rig ({'; '.join(missing)}); known rigs: "
        + "; ".join(s.description for s in SKELETON_MAPS)
        + ". Add a map to spinfits.fitting.mocap.joint_maps for it"
    )


def _leg_length(slots: np.ndarray) -> float:
    """Median over frames of the mean of both legs' hip-knee-ankle lengths (file units)."""
    lengths = [
        np.linalg.norm(slots[:, _SLOT[f"{side}_hip"]] - slots[:, _SLOT[f"{side}_knee"]], axis=-1)
        + np.linalg.norm(slots[:, _SLOT[f"{side}_knee"]] - slots[:, _SLOT[f"{side}_ankle"]], axis=-1)
        for side in ("left", "right")
    ]
    return float(np.median((lengths[0] + lengths[1]) / 2))


def _is_tpose(slots: np.ndarray) -> bool:
    """(24, 3) one frame: both arms straight, horizontal and spread (module doc)."""
    limit = np.sin(np.radians(_TPOSE_DEGREES))
    for side, outward in (("left", 1.0), ("right", -1.0)):
        upper = slots[_SLOT[f"{side}_elbow"]] - slots[_SLOT[f"{side}_shoulder"]]
        lower = slots[_SLOT[f"{side}_wrist"]] - slots[_SLOT[f"{side}_elbow"]]
        across = slots[_SLOT["left_shoulder"]] - slots[_SLOT["right_shoulder"]]
        for segment in (upper, lower):
            unit = segment / max(np.linalg.norm(segment), 1e-9)
            if abs(unit[1]) > limit or outward * unit @ across / np.linalg.norm(across) < np.cos(
                np.radians(_TPOSE_DEGREES)
            ):
                return False
    return True


def clip_joints(clip: BvhClip, config: MocapConfig = MocapConfig()) -> MocapJoints:
    """One parsed clip's joints (module doc)."""
    skeleton = recognise_skeleton(clip)
    positions, _ = forward_kinematics(clip.skeleton, clip.motion)
    columns = [clip.skeleton.index(name) for name in skeleton.bvh_names]
    slots = np.zeros((clip.num_frames, _NUM_SLOTS, 3))
    slots[:, list(skeleton.smpl_indices)] = positions[:, columns]
    present = np.zeros(_NUM_SLOTS, dtype=bool)
    present[list(skeleton.smpl_indices)] = True

    up = np.median(slots[:, _SLOT["head"]] - slots[:, _SLOT["pelvis"]], axis=0)
    if up[1] < np.cos(np.radians(45.0)) * np.linalg.norm(up):
        raise BvhError(
            f"{clip.path}:{clip.motion_line}: the body's median up direction (pelvis to head) is "
            f"{np.round(up / max(np.linalg.norm(up), 1e-9), 2).tolist()}, expected +y (BVH files are y "
            "up); turn the clip's root so that y is up"
        )
    leg = _leg_length(slots)
    if not leg > 0:
        raise BvhError(f"{clip.path}:{clip.skeleton.lines[0]}: the legs have zero length; check the OFFSETs")
    scale = LEG_TO_HEIGHT * config.height / leg
    frames = np.arange(clip.num_frames)
    if config.drop_tpose and clip.num_frames > 1 and _is_tpose(slots[0]):
        frames = frames[1:]
    frames = frames[:: config.every]
    count = len(frames)
    return MocapJoints(
        joints=slots[frames] * scale,
        present=np.broadcast_to(present, (count, _NUM_SLOTS)).copy(),
        clip=np.full(count, clip_name(clip.path)),
        frame=frames.astype(np.int64),
        skeleton=np.full(count, skeleton.name),
        scale=np.full(count, scale),
    )


def bvh_files(paths: Sequence[str | Path]) -> list[Path]:
    """BVH files named or inside the folders named (sorted per folder); a missing path raises."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            inside = sorted(path.glob("*.bvh"))
            if not inside:
                raise InputError(f"{path} holds no .bvh files; name BVH files or folders that hold them")
            found.extend(inside)
        elif path.is_file():
            found.append(path)
        else:
            raise InputError(f"{path} does not exist; name BVH files or folders that hold them")
    names = [clip_name(p) for p in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"clips named more than once: {', '.join(duplicates)}; name each file once")
    return found


def mocap_joints(paths: Sequence[str | Path], config: MocapConfig = MocapConfig()) -> MocapJoints:
    """The joints of every clip in ``paths`` (files or folders of .bvh), clips in order."""
    parts = [clip_joints(read_bvh(path), config) for path in bvh_files(paths)]
    return concatenate(parts)


def concatenate(parts: Sequence[MocapJoints]) -> MocapJoints:
    if not parts:
        raise InputError("no clips given")
    return MocapJoints(
        *(
            np.concatenate([getattr(p, name) for p in parts])
            for name in ("joints", "present", "clip", "frame", "skeleton", "scale")
        )
    )


def write_mocap_joints(joints: MocapJoints, path: str | Path) -> Path:
    """Write ``joints`` to an npz (keys: the fields, plus ``joint_names`` (24,))."""
    path = Path(path)
    if path.suffix != ".npz":
        raise InputError(f"the output must be an .npz file, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        joints=joints.joints,
        present=joints.present,
        clip=joints.clip.astype(str),
        frame=joints.frame,
        skeleton=joints.skeleton.astype(str),
        scale=joints.scale,
        joint_names=np.asarray(SMPL_JOINT_NAMES),
    )
    return path


def load_mocap_joints(path: str | Path) -> MocapJoints:
    """Read an npz written by ``write_mocap_joints`` (``spinfits data from-bvh``)."""
    try:
        with np.load(path) as data:
            missing = [
                k for k in ("joints", "present", "clip", "frame", "skeleton", "scale") if k not in data
            ]
            if missing:
                raise InputError(
                    f"{path} lacks {', '.join(missing)}: not a mocap joints file; write one with "
                    "`spinfits data from-bvh CLIPS... OUT.npz`"
                )
            return MocapJoints(
                data["joints"], data["present"], data["clip"], data["frame"], data["skeleton"], data["scale"]
            )
    except (OSError, ValueError) as error:
        if isinstance(error, InputError):
            raise
        raise InputError(f"cannot read {path} as an npz: {error}") from None
