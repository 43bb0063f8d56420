"""SPIN's training augmentation (flip, in-plane rotation, scale, pixel noise), batched torch.

Convention: SPIN's crop frame, ``crop_res`` (224) px square, focal 5000 px, principal point
``c = (crop_res / 2, crop_res / 2)``; camera frame x right, y down, z forward, pixel
``x = f X / Z + c``. Pixel i covers ``[i, i + 1)`` and its centre is ``i + 0.5``; keypoints are
continuous coordinates in that convention (so mirroring the crop maps x to ``crop_res - x``).
An un-augmented crop point ``u`` is seen in the augmented crop at

    a = F(R(θ) (u - c) / sc) + c,    R(θ) = [[cos θ, -sin θ], [sin θ, cos θ]]  (pixels, y down)

with θ = ``rotation`` in radians, ``sc = scale`` (sc > 1 zooms out: the person gets smaller) and
F mirroring x (x -> -x) where ``flip`` is set: the flip comes after the rotation, as in SPIN.
Flipped keypoints are also relabelled left <-> right (``SPIN_JOINTS_FLIP_PERM``).
The body seen in the augmented crop has its global orientation left-multiplied by
``Rz(θ) = [[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]]`` (the same rotation, about the optical
axis), then, where flipped, SPIN's ``flip_pose``: the 24 joints permuted left <-> right and the
y and z components of every axis-angle negated (a mirror of the camera's x axis). The camera
translation that keeps the root fixed is ``t' = M Rz(θ) (j0 + t) - j0`` (M = diag(-1, 1, 1)
where flipped, j0 the root joint of the untranslated body); scale is about a depth change
``Z -> sc Z`` (exact only under weak perspective) and leaves the pose alone.

SPIN's ``rot`` argument is -θ here (SPIN rotates by ``R(-rot)``); its distribution is symmetric,
so sampling is unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from spinfits.errors import InputError
from spinfits.fitting.body.joints import (
    GT_JOINTS_FLIP_PERM,
    NUM_SPIN_JOINTS,
    SMPL_POSE_FLIP_PERM,
    SPIN_JOINTS_FLIP_PERM,
)
from spinfits.fitting.body.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from spinfits.fitting.data.spin_crop import CROP_RES


@dataclass(frozen=True)
class AugmentationConfig:
    """How augmentations are drawn; the defaults are SPIN's.

    Fields:
        flip_probability: chance of a left/right flip.
        rotation_factor: degrees; rotation = clip(N(0, 1) * factor, -2 factor, 2 factor).
        zero_rotation_probability: chance the rotation is set to 0 (SPIN: 0.6).
        scale_factor: scale = clip(N(0, 1) * factor + 1, 1 - factor, 1 + factor).
        noise_factor: per-channel pixel multiplier ~ U(1 - factor, 1 + factor).
    """

    flip_probability: float = 0.5
    rotation_factor: float = 30.0
    zero_rotation_probability: float = 0.6
    scale_factor: float = 0.25
    noise_factor: float = 0.4

    def __post_init__(self) -> None:
        for name in ("flip_probability", "zero_rotation_probability"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(f"{name} must be a probability within [0, 1], got {value}")
        if not 0.0 <= self.rotation_factor <= 90.0:
            raise InputError(
                f"rotation_factor must be within [0, 90] degrees, got {self.rotation_factor} "
                f"(rotations are clipped to twice it; SPIN uses 30)"
            )
        for name in ("scale_factor", "noise_factor"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise InputError(
                    f"{name} must be within [0, 1), got {value}: scales and pixel multipliers "
                    f"1 ± {name} must stay positive (SPIN uses scale 0.25, noise 0.4)"
                )

    @classmethod
    def none(cls) -> AugmentationConfig:
        """No augmentation at all: ``Augmentation.sample`` then returns the identity."""
        return cls(
            flip_probability=0.0,
            rotation_factor=0.0,
            zero_rotation_probability=1.0,
            scale_factor=0.0,
            noise_factor=0.0,
        )


@dataclass(frozen=True)
class Augmentation:
    """Per-sample augmentation of a batch of B samples (see the module docstring).

    Fields:
        flip: (B,) bool, mirror left/right (after the rotation).
        rotation: (B,) float32 degrees, θ of ``R(θ)``.
        scale: (B,) float32, > 0; > 1 zooms out.
        pixel_noise: (B, 3) float32 RGB multipliers.
    """

    flip: torch.Tensor
    rotation: torch.Tensor
    scale: torch.Tensor
    pixel_noise: torch.Tensor

    def __post_init__(self) -> None:
        batch = self.flip.shape[0] if self.flip.ndim == 1 else -1
        shapes = {"flip": (batch,), "rotation": (batch,), "scale": (batch,), "pixel_noise": (batch, 3)}
        for name, shape in shapes.items():
            tensor = getattr(self, name)
            if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != shape:
                got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor)
                raise InputError(
                    f"Augmentation.{name} must be a tensor of shape {shape} (flip (B,), "
                    f"rotation (B,), scale (B,), pixel_noise (B, 3)), got {got}"
                )
        if self.flip.dtype != torch.bool:
            raise InputError(f"Augmentation.flip must be a bool tensor, got {self.flip.dtype}")
        if not (self.scale > 0).all():
            raise InputError("Augmentation.scale must be > 0 in every row")

    def __len__(self) -> int:
        return int(self.flip.shape[0])

    @classmethod
    def identity(cls, batch: int, device: torch.device | str = "cpu") -> Augmentation:
        """No flip, no rotation, scale 1, pixel multipliers 1, for ``batch`` samples."""
        return cls(
            flip=torch.zeros(batch, dtype=torch.bool, device=device),
            rotation=torch.zeros(batch, device=device),
            scale=torch.ones(batch, device=device),
            pixel_noise=torch.ones(batch, 3, device=device),
        )

    @classmethod
    def geometric(
        cls, flip: Sequence[bool], rotation: Sequence[float], scale: Sequence[float] | None = None
    ) -> Augmentation:
        """Given flips (B,), rotations (B,) degrees and scales (B,) (default 1), no pixel noise."""
        batch = len(flip)
        return cls(
            flip=torch.as_tensor(flip, dtype=torch.bool),
            rotation=torch.as_tensor(rotation, dtype=torch.float32),
            scale=(torch.ones(batch) if scale is None else torch.as_tensor(scale, dtype=torch.float32)),
            pixel_noise=torch.ones(batch, 3),
        )

    @classmethod
    def sample(
        cls,
        config: AugmentationConfig,
        batch: int,
        generator: torch.Generator,
        device: torch.device | str = "cpu",
    ) -> Augmentation:
        """Draw SPIN's augmentation for ``batch`` samples (see ``AugmentationConfig``).

        Deterministic for a seeded CPU ``generator`` (drawn on the CPU, then moved to ``device``).
        """
        if generator.device.type != "cpu":
            raise InputError(
                f"generator must be a CPU torch.Generator (draws happen on the CPU so that "
                f"results do not depend on the device), got one on {generator.device}"
            )
        flip = torch.rand(batch, generator=generator) < config.flip_probability
        noise = 1.0 + config.noise_factor * (2.0 * torch.rand(batch, 3, generator=generator) - 1)
        limit = 2.0 * config.rotation_factor
        rotation = (torch.randn(batch, generator=generator) * config.rotation_factor).clamp(-limit, limit)
        zero = torch.rand(batch, generator=generator) < config.zero_rotation_probability
        rotation = torch.where(zero, torch.zeros_like(rotation), rotation)
        scale = (torch.randn(batch, generator=generator) * config.scale_factor + 1.0).clamp(
            1.0 - config.scale_factor, 1.0 + config.scale_factor
        )
        return cls(flip, rotation, scale, noise).to(device)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Augmentation:
        """The same augmentation with its tensors on ``device``."""
        return Augmentation(*(getattr(self, name).to(device, non_blocking=non_blocking) for name in _FIELDS))

    def take(self, index: torch.Tensor | Sequence[int]) -> Augmentation:
        """The augmentation of samples ``index`` ((M,) int), in that order."""
        index = torch.as_tensor(index, dtype=torch.long, device=self.flip.device)
        return Augmentation(*(getattr(self, name)[index] for name in _FIELDS))

    def pin_memory(self) -> Augmentation:
        """The same augmentation in pinned memory (DataLoader's ``pin_memory``)."""
        return Augmentation(*(getattr(self, name).pin_memory() for name in _FIELDS))


_FIELDS = ("flip", "rotation", "scale", "pixel_noise")


def _check_batch(
    name: str, tensor: torch.Tensor, trailing: tuple[int | None, ...], aug: Augmentation
) -> None:
    """``tensor`` must be (B, *trailing) with B = len(aug); None in ``trailing`` is any size."""
    shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else None
    if (
        shape is None
        or len(shape) != 1 + len(trailing)
        or any(want is not None and got != want for got, want in zip(shape[1:], trailing))
    ):
        want = ", ".join(["B"] + ["K" if t is None else str(t) for t in trailing])
        got = shape if shape is not None else type(tensor).__name__
        raise InputError(f"{name} must be a ({want}) tensor, got {got}; for one sample use x[None]")
    if shape[0] != len(aug):
        raise InputError(
            f"{name} has {shape[0]} rows but the augmentation has {len(aug)}; draw one "
            f"augmentation per row (Augmentation.sample(config, batch={shape[0]}, ...))"
        )


def _flip_permutation(aug: Augmentation, joints: int, name: str) -> torch.Tensor | None:
    """(K,) long SPIN flip permutation, or None when nothing is flipped."""
    if not bool(aug.flip.any()):
        return None
    if joints != NUM_SPIN_JOINTS:
        raise InputError(
            f"{name} has {joints} joints; flipping relabels left/right joints and needs SPIN's "
            f"{NUM_SPIN_JOINTS}-joint order (or use an augmentation without flips)"
        )
    return torch.as_tensor(SPIN_JOINTS_FLIP_PERM, device=aug.flip.device)


def _rotation_2d(degrees: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B,) degrees -> (B, 2, 2) ``R(θ)``."""
    theta = degrees.to(dtype) * (math.pi / 180.0)
    cos, sin = torch.cos(theta), torch.sin(theta)
    return torch.stack([cos, -sin, sin, cos], dim=-1).reshape(-1, 2, 2)


def _mirror_x(xy: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """(B, K, 2) offsets from the crop centre, x negated in rows where ``flip`` (B,)."""
    sign = torch.where(flip, -1.0, 1.0).to(xy.dtype)[:, None]  # (B, 1)
    return torch.stack([xy[..., 0] * sign, xy[..., 1]], dim=-1)


def augment_points(points: torch.Tensor, aug: Augmentation, crop_res: int = CROP_RES) -> torch.Tensor:
    """Crop points (B, K, 2) -> where they are seen in the augmented crop (B, K, 2):
    ``a = F(R(θ) (u - c) / sc) + c``. Positions only (no left/right relabelling)."""
    aug = aug.to(points.device)
    dtype, center = points.dtype, crop_res / 2.0
    xy = (points - center) @ _rotation_2d(aug.rotation, dtype).transpose(1, 2)
    return _mirror_x(xy / aug.scale.to(dtype)[:, None, None], aug.flip) + center


def unaugment_points(points: torch.Tensor, aug: Augmentation, crop_res: int = CROP_RES) -> torch.Tensor:
    """Inverse of ``augment_points``: augmented-crop points (B, K, 2) -> crop points (B, K, 2),
    ``u = c + sc R(-θ) F(a - c)``."""
    aug = aug.to(points.device)
    dtype, center = points.dtype, crop_res / 2.0
    xy = _mirror_x(points - center, aug.flip) @ _rotation_2d(-aug.rotation, dtype).transpose(1, 2)
    return xy * aug.scale.to(dtype)[:, None, None] + center


def augment_keypoints(keypoints: torch.Tensor, aug: Augmentation, crop_res: int = CROP_RES) -> torch.Tensor:
    """Crop keypoints (B, K, 3) x, y, confidence -> the same in the augmented crop (B, K, 3).

    Positions map as ``a = F(R(θ) (u - c) / sc) + c``; confidences are kept (missing keypoints
    move too, with confidence 0); flipped rows are also relabelled with
    ``SPIN_JOINTS_FLIP_PERM`` (K must then be 49).
    """
    _check_batch("keypoints", keypoints, (None, 3), aug)
    aug = aug.to(keypoints.device)
    perm = _flip_permutation(aug, keypoints.shape[1], "keypoints")
    out = torch.cat([augment_points(keypoints[..., :2], aug, crop_res), keypoints[..., 2:]], -1)
    if perm is not None:
        out = torch.where(aug.flip[:, None, None], out[:, perm], out)
    return out


def unaugment_keypoints(keypoints: torch.Tensor, aug: Augmentation, crop_res: int = CROP_RES) -> torch.Tensor:
    """Inverse of ``augment_keypoints``: (B, K, 3) augmented-crop keypoints -> crop keypoints,
    ``u = c + sc R(-θ) F(a - c)`` and flipped rows relabelled back."""
    _check_batch("keypoints", keypoints, (None, 3), aug)
    aug = aug.to(keypoints.device)
    perm = _flip_permutation(aug, keypoints.shape[1], "keypoints")
    if perm is not None:
        keypoints = torch.where(aug.flip[:, None, None], keypoints[:, torch.argsort(perm)], keypoints)
    return torch.cat([unaugment_points(keypoints[..., :2], aug, crop_res), keypoints[..., 2:]], -1)


def rotation_z(degrees: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B,) degrees -> (B, 3, 3) ``Rz(θ)``, the rotation about the optical axis (camera frame)."""
    out = torch.zeros(degrees.shape[0], 3, 3, dtype=dtype, device=degrees.device)
    out[:, :2, :2] = _rotation_2d(degrees, dtype)
    out[:, 2, 2] = 1.0
    return out


def _check_pose(pose: torch.Tensor, aug: Augmentation) -> None:
    _check_batch("pose", pose, (72,), aug)


def _flip_pose(pose: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """SPIN's flip_pose where ``flip`` (B,): permute left/right, negate axis-angle y and z."""
    flipped = pose[:, torch.as_tensor(SMPL_POSE_FLIP_PERM, device=pose.device)].reshape(-1, 24, 3)
    flipped = (flipped * torch.tensor([1.0, -1.0, -1.0], dtype=pose.dtype, device=pose.device)).reshape(
        -1, 72
    )
    return torch.where(flip[:, None], flipped, pose)


def _rotate_orientation(pose: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Left-multiply the global orientation by Rz(degrees); rows with 0 degrees are untouched."""
    rotated = matrix_to_axis_angle(rotation_z(degrees, pose.dtype) @ axis_angle_to_matrix(pose[:, :3]))
    orient = torch.where((degrees == 0)[:, None], pose[:, :3], rotated)
    return torch.cat([orient, pose[:, 3:]], dim=1)


def augment_pose(pose: torch.Tensor, aug: Augmentation) -> torch.Tensor:
    """SMPL pose (B, 72) axis-angle -> the pose seen in the augmented crop (B, 72).

    The global orientation becomes ``Rz(θ) R`` (angle in [0, π]), then flipped rows get SPIN's
    ``flip_pose``. Scale does not change the pose.
    """
    _check_pose(pose, aug)
    aug = aug.to(pose.device)
    return _flip_pose(_rotate_orientation(pose, aug.rotation), aug.flip)


def unaugment_pose(pose: torch.Tensor, aug: Augmentation) -> torch.Tensor:
    """Inverse of ``augment_pose``: un-flip, then ``Rz(-θ)`` (B, 72) -> (B, 72)."""
    _check_pose(pose, aug)
    aug = aug.to(pose.device)
    return _rotate_orientation(_flip_pose(pose, aug.flip), -aug.rotation)


def augment_joints_3d(joints: torch.Tensor, aug: Augmentation) -> torch.Tensor:
    """(B, 24, 4) camera-frame 3D joints + confidence (SPIN's ``S``) -> as seen in the augmented
    crop: rotated by ``Rz(θ)`` about the optical axis, then, where flipped, mirrored (x -> -x)
    and relabelled left <-> right (``GT_JOINTS_FLIP_PERM``). Scale leaves them alone."""
    _check_batch("joints_3d", joints, (24, 4), aug)
    aug = aug.to(joints.device)
    rotated = joints[..., :3] @ rotation_z(aug.rotation, joints.dtype).transpose(1, 2)
    rotated = torch.cat([rotated, joints[..., 3:]], dim=-1)
    mirrored = rotated[:, list(GT_JOINTS_FLIP_PERM)] * torch.tensor(
        [-1.0, 1.0, 1.0, 1.0], dtype=joints.dtype, device=joints.device
    )
    return torch.where(aug.flip[:, None, None], mirrored, rotated)
