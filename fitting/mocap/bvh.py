"""Biovision hierarchy (BVH) motion capture files: parse the skeleton and motion, pose it.

A BVH file holds a ``HIERARCHY`` (joints, each with an ``OFFSET`` from its parent in the
parent's frame and a list of ``CHANNELS``; ``End Site`` leaves with an offset only) then
``MOTION``: ``Frames: N``, ``Frame Time: T`` and N lines of channel values, in the order the
channels were declared, joint by joint.

Convention (the usual reading of BVH, as Blender's and cgspeed's importers do): a joint's
rotation channels, read left to right, are intrinsic rotations in degrees, so
``CHANNELS 3 Zrotation Yrotation Xrotation`` is ``R = Rz(z) @ Ry(y) @ Rx(x)`` acting on column
vectors; each joint may have its own order. Position channels add to the joint's offset. Forward
kinematics: ``R_world[j] = R_world[parent] @ R[j]`` and
``p_world[j] = p_world[parent] + R_world[parent] @ (offset[j] + position[j])``. Positions are in
the file's units and axes; ``spinfits.fitting.mocap.joints`` maps them to the body's joints in
metres, y up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from spinfits.errors import InputError

#: Suffix of the name given to an ``End Site`` (it has none in the file): ``<parent>_end``.
END_SITE_SUFFIX = "_end"
_POSITION_CHANNELS = ("Xposition", "Yposition", "Zposition")
_ROTATION_CHANNELS = ("Xrotation", "Yrotation", "Zrotation")


class BvhError(InputError):
    """A BVH file that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class BvhSkeleton:
    """The hierarchy of a BVH file (J joints, End Sites included, in file order: parents first).

    Fields:
        names: (J,) joint names; an End Site is named ``<parent>_end``.
        parents: (J,) int index of each joint's parent, -1 for the root.
        offsets: (J, 3) float64 offset from the parent, parent's frame, file units.
        channels: (J,) per joint, its channel names in file order (empty for End Sites).
        first_channel: (J,) int column of the joint's first channel in a motion line.
        lines: (J,) int line of the file where each joint is declared (1-based).
    """

    names: tuple[str, ...]
    parents: np.ndarray
    offsets: np.ndarray
    channels: tuple[tuple[str, ...], ...]
    first_channel: np.ndarray
    lines: tuple[int, ...]

    @property
    def num_channels(self) -> int:
        return sum(len(c) for c in self.channels)

    def index(self, name: str) -> int:
        return self.names.index(name)


@dataclass(frozen=True)
class BvhClip:
    """A parsed BVH file.

    Fields:
        path: where it was read from.
        skeleton: its hierarchy.
        frame_time: seconds between frames.
        motion: (F, C) float64 channel values per frame (degrees and file units).
        motion_line: line of the file holding frame 0 (frame f is on ``motion_line + f``).
    """

    path: str
    skeleton: BvhSkeleton
    frame_time: float
    motion: np.ndarray
    motion_line: int

    @property
    def num_frames(self) -> int:
        return self.motion.shape[0]


class _Tokens:
    """Whitespace-separated tokens of the hierarchy, each with its line, read one at a time."""

    def __init__(self, path: str, lines: list[str], start: int, stop: int) -> None:
        self.path = path
        self.items = [(token, number + 1) for number in range(start, stop) for token in lines[number].split()]
        self.position = 0
        self.last_line = stop

    def error(self, message: str, line: int | None = None) -> BvhError:
        return BvhError(f"{self.path}:{line or self.line}: {message}")

    @property
    def line(self) -> int:
        if self.position < len(self.items):
            return self.items[self.position][1]
        return self.last_line

    def next(self, what: str) -> str:
        if self.position >= len(self.items):
            raise self.error(f"expected {what}, the hierarchy ended (no more text before MOTION)")
        token = self.items[self.position][0]
        self.position += 1
        return token

    def expect(self, word: str) -> None:
        line = self.line
        token = self.next(repr(word))
        if token != word:
            raise self.error(f"expected {word!r}, got {token!r}", line)

    def number(self, what: str) -> float:
        line = self.line
        token = self.next(what)
        try:
            return float(token)
        except ValueError:
            raise self.error(f"expected {what} (a number), got {token!r}", line) from None

    def peek(self) -> str | None:
        return self.items[self.position][0] if self.position < len(self.items) else None


def read_bvh(path: str | Path) -> BvhClip:
    """Parse a BVH file; a malformed one raises ``BvhError`` naming the file and line."""
    path = str(path)
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError as error:
        raise BvhError(f"cannot read the BVH file {path}: {error.strerror or error}") from None
    motion_at = next((i for i, line in enumerate(lines) if line.strip() == "MOTION"), None)
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None or lines[first].strip() != "HIERARCHY":
        got = "an empty file" if first is None else repr(lines[first].strip()[:40])
        raise BvhError(
            f"{path}:{(first or 0) + 1}: expected 'HIERARCHY' (a BVH file starts with it), got {got}"
        )
    if motion_at is None:
        raise BvhError(f"{path}:{len(lines)}: no 'MOTION' line after the hierarchy (is the file cut short?)")
    tokens = _Tokens(path, lines, first + 1, motion_at)
    builder = _SkeletonBuilder()
    line = tokens.line
    tokens.expect("ROOT")
    _parse_joint(tokens, builder, parent=-1, line=line)
    if tokens.peek() is not None:
        raise tokens.error(f"expected 'MOTION' after the root joint's closing brace, got {tokens.peek()!r}")
    skeleton = builder.build()
    frame_time, motion, motion_line = _parse_motion(path, lines, motion_at, skeleton.num_channels)
    return BvhClip(path, skeleton, frame_time, motion, motion_line)


class _SkeletonBuilder:
    def __init__(self) -> None:
        self.names: list[str] = []
        self.parents: list[int] = []
        self.offsets: list[tuple[float, float, float]] = []
        self.channels: list[tuple[str, ...]] = []
        self.lines: list[int] = []

    def add(self, name: str, parent: int, line: int) -> int:
        self.names.append(name)
        self.parents.append(parent)
        self.offsets.append((0.0, 0.0, 0.0))
        self.channels.append(())
        self.lines.append(line)
        return len(self.names) - 1

    def build(self) -> BvhSkeleton:
        counts = [len(c) for c in self.channels]
        return BvhSkeleton(
            names=tuple(self.names),
            parents=np.asarray(self.parents, dtype=np.int64),
            offsets=np.asarray(self.offsets, dtype=np.float64).reshape(-1, 3),
            channels=tuple(self.channels),
            first_channel=np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64),
            lines=tuple(self.lines),
        )


def _parse_joint(tokens: _Tokens, builder: _SkeletonBuilder, parent: int, line: int) -> None:
    name = tokens.next("a joint name")
    if name in builder.names:
        raise tokens.error(f"joint {name!r} is declared twice (names must be unique)", line)
    joint = builder.add(name, parent, line)
    tokens.expect("{")
    _parse_offset(tokens, builder, joint)
    if tokens.peek() != "CHANNELS":
        raise tokens.error(f"expected 'CHANNELS' in joint {name!r}, got {tokens.peek()!r}")
    tokens.next("CHANNELS")
    count_line = tokens.line
    count = tokens.number("the channel count")
    if count != int(count) or not 0 <= count <= 6:
        raise tokens.error(f"joint {name!r} declares {count:g} channels; expected 0 to 6", count_line)
    channels = []
    for _ in range(int(count)):
        channel_line = tokens.line
        channel = tokens.next("a channel name")
        if channel not in _POSITION_CHANNELS + _ROTATION_CHANNELS:
            raise tokens.error(
                f"unknown channel {channel!r} in joint {name!r}; expected one of "
                f"{', '.join(_POSITION_CHANNELS + _ROTATION_CHANNELS)}",
                channel_line,
            )
        if channel in channels:
            raise tokens.error(f"channel {channel!r} appears twice in joint {name!r}", channel_line)
        channels.append(channel)
    builder.channels[joint] = tuple(channels)
    while True:
        line = tokens.line
        token = tokens.next(f"'JOINT', 'End' or '}}' closing joint {name!r}")
        if token == "}":
            return
        if token == "JOINT":
            _parse_joint(tokens, builder, joint, line)
        elif token == "End":
            tokens.expect("Site")
            site = builder.add(name + END_SITE_SUFFIX, joint, line)
            tokens.expect("{")
            _parse_offset(tokens, builder, site)
            tokens.expect("}")
        else:
            raise tokens.error(f"expected 'JOINT', 'End Site' or '}}' in joint {name!r}, got {token!r}", line)


def _parse_offset(tokens: _Tokens, builder: _SkeletonBuilder, joint: int) -> None:
    tokens.expect("OFFSET")
    builder.offsets[joint] = tuple(tokens.number("an OFFSET value") for _ in range(3))


def _parse_motion(
    path: str, lines: list[str], motion_at: int, num_channels: int
) -> tuple[float, np.ndarray, int]:
    def header(index: int, label: str) -> str:
        text = lines[index].strip() if index < len(lines) else ""
        if not text.startswith(label):
            got = repr(text[:40]) if index < len(lines) else "the end of the file"
            raise BvhError(f"{path}:{index + 1}: expected '{label} ...' after MOTION, got {got}")
        return text[len(label) :].strip()

    frames_text = header(motion_at + 1, "Frames:")
    time_text = header(motion_at + 2, "Frame Time:")
    try:
        frames = int(frames_text)
        frame_time = float(time_text)
    except ValueError:
        raise BvhError(
            f"{path}:{motion_at + 2}: expected a whole number of frames and a frame time in seconds, "
            f"got 'Frames: {frames_text}' and 'Frame Time: {time_text}'"
        ) from None
    first = motion_at + 3
    rows = [line for line in lines[first : first + frames]]
    if len(rows) < frames or any(not row.strip() for row in rows):
        found = next((i for i, row in enumerate(rows) if not row.strip()), len(rows))
        raise BvhError(
            f"{path}:{first + found + 1}: the header says {frames} frames, the file holds {found}; "
            f"fix 'Frames:' or restore the missing lines"
        )
    motion = np.empty((frames, num_channels))
    for frame, row in enumerate(rows):
        values = row.split()
        if len(values) != num_channels:
            raise BvhError(
                f"{path}:{first + frame + 1}: frame {frame} has {len(values)} values, the hierarchy "
                f"declares {num_channels} channels"
            )
        try:
            motion[frame] = [float(v) for v in values]
        except ValueError:
            bad = next(v for v in values if not _is_number(v))
            raise BvhError(f"{path}:{first + frame + 1}: frame {frame} holds {bad!r}, not a number") from None
    if not np.isfinite(motion).all():
        frame = int(np.nonzero(~np.isfinite(motion).all(1))[0][0])
        raise BvhError(f"{path}:{first + frame + 1}: frame {frame} holds a non-finite value")
    return frame_time, motion, first + 1


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def local_transforms(skeleton: BvhSkeleton, motion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each joint's rotation and translation relative to its parent, per frame.

    Args:
        motion: (F, C) channel values (degrees, file units).
    Returns:
        rotations (F, J, 3, 3) and translations (F, J, 3): offset plus position channels.
    """
    frames = motion.shape[0]
    count = len(skeleton.names)
    rotations = np.broadcast_to(np.eye(3), (frames, count, 3, 3)).copy()
    translations = np.broadcast_to(skeleton.offsets, (frames, count, 3)).copy()
    for joint, channels in enumerate(skeleton.channels):
        start = skeleton.first_channel[joint]
        order = "".join(c[0] for c in channels if c in _ROTATION_CHANNELS)
        columns = [start + i for i, c in enumerate(channels) if c in _ROTATION_CHANNELS]
        if order:
            # Uppercase letters: intrinsic rotations, R = R_first @ R_second @ ... (module doc).
            rotations[:, joint] = Rotation.from_euler(order, motion[:, columns], degrees=True).as_matrix()
        for i, channel in enumerate(channels):
            if channel in _POSITION_CHANNELS:
                translations[:, joint, _POSITION_CHANNELS.index(channel)] += motion[:, start + i]
    return rotations, translations


def forward_kinematics(skeleton: BvhSkeleton, motion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World positions and rotations of every joint (module doc's convention).

    Args:
        motion: (F, C) channel values.
    Returns:
        positions (F, J, 3) file units and axes; rotations (F, J, 3, 3) world rotation per joint.
    """
    local_rot, local_pos = local_transforms(skeleton, motion)
    world_rot = np.empty_like(local_rot)
    world_pos = np.empty_like(local_pos)
    for joint, parent in enumerate(skeleton.parents):
        if parent < 0:
            world_rot[:, joint] = local_rot[:, joint]
            world_pos[:, joint] = local_pos[:, joint]
        else:
            world_rot[:, joint] = world_rot[:, parent] @ local_rot[:, joint]
            world_pos[:, joint] = (
                world_pos[:, parent] + (world_rot[:, parent] @ local_pos[:, joint, :, None])[..., 0]
            )
    return world_pos, world_rot
