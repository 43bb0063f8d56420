"""MoSh-lite: SMPL parameters of real people from their mocap joints.

From 3D joints in SMPL's slots (``joints.MocapJoints``) to the body's parameters (any SMPL-format
model, real or stand-in), in two batched steps:

1. **Shape, one per clip**, from bone lengths, which no pose changes: the betas whose rest skeleton
   has the clip's median distances between mapped joints that one SMPL bone holds rigidly
   (hip-knee, knee-ankle, ankle-foot, collar-shoulder, shoulder-elbow, elbow-wrist, neck-head,
   pelvis-hips, hip-hip), with a unit Gaussian prior on the betas (``shape_prior_weight``).
2. **Pose, global orientation and translation per frame**, with those betas, by the engine's
   batched Levenberg-Marquardt (``levenberg_marquardt.solve_pool``; the Jacobian by forward-mode
   autodiff): SMPL's skeleton joints against the mapped ones, started from the torso's orientation
   (Kabsch on pelvis, hips, neck, collars and shoulders) and a zero body pose.

What joints alone cannot say is kept near rest, and the prior learned from these poses inherits
it: **twist** about a limb's axis (a rotation of hip, knee, shoulder, elbow, collar or ankle about
the rest direction to its child moves no joint) is pulled to zero by ``twist_weight`` (radians),
and every body-pose value by the weaker ``rest_weight``, which settles what nothing observes
(wrists and hands without hand joints, the head's own turn, ankles without a toe joint) at rest
and splits a bend of the torso evenly over SMPL's three spine joints.

Skeleton joints of SMPL do not depend on the pose correctives, so they are exact here
(``skeleton_joints``: forward kinematics of the shaped rest joints, as smplx poses them).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from spinfits.errors import InputError
from spinfits.fitting.body.joints import SMPL_JOINT_NAMES, SMPL_PARENTS
from spinfits.fitting.body.model_files import BodyModelFiles
from spinfits.fitting.body.rotations import (
    axis_angle_to_matrix,
    axis_angle_to_matrix_and_right_jacobian,
    matrix_to_axis_angle,
    skew,
)
from spinfits.fitting.mocap.joints import MocapJoints
from spinfits.fitting.smplify.levenberg_marquardt import solve_pool

logger = logging.getLogger(__name__)

_SLOT = {name: index for index, name in enumerate(SMPL_JOINT_NAMES)}
NUM_JOINTS = len(SMPL_JOINT_NAMES)
NUM_BETAS = 10
#: One side's limb chains, ``{s}`` standing for "left" or "right": (joint, child).
_LIMB_CHAINS: tuple[tuple[str, str], ...] = (
    ("{s}_hip", "{s}_knee"),
    ("{s}_knee", "{s}_ankle"),
    ("{s}_ankle", "{s}_foot"),
    ("{s}_collar", "{s}_shoulder"),
    ("{s}_shoulder", "{s}_elbow"),
    ("{s}_elbow", "{s}_wrist"),
)


def _both_sides(pairs: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """``pairs`` of one side written out for the left side, then the right."""
    return tuple((a.format(s=s), b.format(s=s)) for s in ("left", "right") for a, b in pairs)


#: Bones a body part holds rigidly: (joint, joint) whose distance no pose changes.
RIGID_PAIRS: tuple[tuple[str, str], ...] = _both_sides((*_LIMB_CHAINS, ("pelvis", "{s}_hip"))) + (
    ("neck", "head"),
    ("left_hip", "right_hip"),
)
#: Joint whose rotation twists about the rest direction to its child: (joint, child).
TWIST_AXES: tuple[tuple[str, str], ...] = _both_sides(_LIMB_CHAINS)
#: Bones whose directions are fitted (both ends mapped): limbs, the torso's axis, hips and shoulders.
DIRECTION_BONES: tuple[tuple[str, str], ...] = _both_sides(_LIMB_CHAINS) + (
    ("pelvis", "neck"),
    ("neck", "head"),
    ("right_hip", "left_hip"),
    ("right_shoulder", "left_shoulder"),
)
#: Joints whose positions fix the torso's orientation (the Kabsch start).
_TORSO = (
    "pelvis",
    "left_hip",
    "right_hip",
    "neck",
    "left_collar",
    "right_collar",
    "left_shoulder",
    "right_shoulder",
)


@dataclass(frozen=True)
class MoshConfig:
    """Weights and iterations of the fit (module doc). Residuals are in metres (joints) and
    radians (twist, rest); the loss is their sum of squares."""

    position_weight: float = 0.1
    bone_scale: float = 0.3
    twist_weight: float = 1e-3
    rest_weight: float = 1e-5
    shape_prior_weight: float = 0.01
    iterations: int = 60
    capacity: int = 2048

    def __post_init__(self) -> None:
        for name in ("position_weight", "bone_scale", "twist_weight", "rest_weight", "shape_prior_weight"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise InputError(f"{name} must be a finite number >= 0, got {value}")
        for name in ("iterations", "capacity"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class MoshFit:
    """Body parameters of N mocap frames (the rows of the ``MocapJoints`` fitted).

    Fields:
        pose: (N, 72) float64 axis-angle, radians: global orientation then the 23 body joints.
        betas: (N, 10) float64, the same for every frame of a clip.
        transl: (N, 3) float64 metres: the body's joints are ``skeleton_joints(...) + transl``.
        residual: (N, 24) float64 metres, distance of each fitted joint from the mocap's (NaN
            where the rig has no such joint).
        clip: (N,) str; frame: (N,) int (as in the ``MocapJoints``).
    """

    pose: np.ndarray
    betas: np.ndarray
    transl: np.ndarray
    residual: np.ndarray
    clip: np.ndarray
    frame: np.ndarray

    def __len__(self) -> int:
        return len(self.pose)

    def select(self, rows: np.ndarray) -> MoshFit:
        return MoshFit(
            *(getattr(self, f)[rows] for f in ("pose", "betas", "transl", "residual", "clip", "frame"))
        )


@dataclass(frozen=True)
class SkeletonModel:
    """SMPL's skeleton joints as a function of pose and betas (float64 tensors).

    Fields:
        template: (24, 3) rest joints at zero betas.
        shape: (24, 3, 10) their change per beta.
        parents: (24,) parent of each joint, -1 for the root.
    """

    template: torch.Tensor
    shape: torch.Tensor
    parents: tuple[int, ...]

    @classmethod
    def from_files(cls, files: BodyModelFiles) -> SkeletonModel:
        smpl = files.smpl
        template = smpl.J_regressor @ smpl.v_template
        shape = np.einsum("jv,vcs->jcs", smpl.J_regressor, smpl.shapedirs[:, :, :NUM_BETAS])
        return cls(
            torch.as_tensor(template, dtype=torch.float64),
            torch.as_tensor(shape, dtype=torch.float64),
            tuple(int(p) for p in SMPL_PARENTS),
        )

    def rest(self, betas: torch.Tensor) -> torch.Tensor:
        """(B, 10) -> (B, 24, 3) rest joints."""
        return self.template + torch.einsum("jcs,bs->bjc", self.shape, betas)


def skeleton_joints(pose: torch.Tensor, rest: torch.Tensor, parents: tuple[int, ...]) -> torch.Tensor:
    """(B, 72) axis-angle, (B, 24, 3) rest joints -> (B, 24, 3) posed joints (root at its rest
    place, rotated about it; add the translation)."""
    batch = pose.shape[0]
    rot = axis_angle_to_matrix(pose.reshape(batch, NUM_JOINTS, 3))
    world_rot = [rot[:, 0]]
    world_pos = [rest[:, 0]]
    for joint in range(1, NUM_JOINTS):
        parent = parents[joint]
        offset = rest[:, joint] - rest[:, parent]
        world_pos.append(world_pos[parent] + (world_rot[parent] @ offset[..., None])[..., 0])
        world_rot.append(world_rot[parent] @ rot[:, joint])
    return torch.stack(world_pos, 1)


def _clip_betas(
    model: SkeletonModel, mocap: MocapJoints, clips: list[str], config: MoshConfig
) -> torch.Tensor:
    """(C, 10) betas per clip, from its median rigid bone lengths (module doc, step 1)."""
    pairs = [(_SLOT[a], _SLOT[b]) for a, b in RIGID_PAIRS]
    lengths = np.zeros((len(clips), len(pairs)))
    used = np.zeros((len(clips), len(pairs)))
    for c, clip in enumerate(clips):
        rows = mocap.clip == clip
        present = mocap.present[rows][0]
        for p, (a, b) in enumerate(pairs):
            if present[a] and present[b]:
                lengths[c, p] = np.median(
                    np.linalg.norm(mocap.joints[rows, a] - mocap.joints[rows, b], axis=-1)
                )
                used[c, p] = 1.0
    target = torch.as_tensor(lengths)
    mask = torch.as_tensor(used)
    first = torch.tensor([a for a, _ in pairs])
    second = torch.tensor([b for _, b in pairs])
    betas = torch.zeros(len(clips), NUM_BETAS, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([betas], max_iter=200, tolerance_grad=1e-12, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        rest = model.rest(betas)
        length = torch.linalg.norm(rest[:, first] - rest[:, second], dim=-1)
        loss = (mask * (length - target) ** 2).sum() + config.shape_prior_weight * (betas**2).sum() * 1e-2
        loss.backward()
        return loss

    optimizer.step(closure)
    return betas.detach()


def _kabsch(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(N, K, 3), (N, K, 3) -> (N, 3, 3) rotations best taking centred source onto target."""
    source = source - source.mean(1, keepdims=True)
    target = target - target.mean(1, keepdims=True)
    u, _, vt = np.linalg.svd(np.einsum("nki,nkj->nij", target, source))
    sign = np.sign(np.linalg.det(u @ vt))
    u[:, :, -1] *= sign[:, None]
    return u @ vt


def skeleton_jacobian(pose: torch.Tensor, rest: torch.Tensor, parents: tuple[int, ...]):
    """Posed joints and their Jacobian w.r.t. the pose, analytically.

    Args:
        pose: (B, 72) axis-angle; rest: (B, 24, 3) rest joints.
    Returns:
        joints (B, 24, 3) as ``skeleton_joints``; jacobian (B, 24, 3, 72). Turning joint k by a
        small ``d`` turns everything below it about its position by the world axis
        ``Rw_k Jr(w_k) d``: ``d p_j / d w_k = -[p_j - p_k]x Rw_k Jr(w_k)`` for j below k.
    """
    batch = pose.shape[0]
    rot, right = axis_angle_to_matrix_and_right_jacobian(pose.reshape(batch, NUM_JOINTS, 3))
    world_rot = [rot[:, 0]]
    world_pos = [rest[:, 0]]
    for joint in range(1, NUM_JOINTS):
        parent = parents[joint]
        offset = rest[:, joint] - rest[:, parent]
        world_pos.append(world_pos[parent] + (world_rot[parent] @ offset[..., None])[..., 0])
        world_rot.append(world_rot[parent] @ rot[:, joint])
    joints = torch.stack(world_pos, 1)
    axes = torch.stack(world_rot, 1) @ right  # (B, 24 k, 3, 3 i)
    lever = joints[:, None, :, :] - joints[:, :, None, :]  # (B, 24 k, 24 j, 3): p_j - p_k
    blocks = -skew(lever) @ axes[:, :, None]  # (B, k, j, 3, 3 i)
    blocks = blocks * _below(parents, pose.dtype, pose.device)[None, :, :, None, None]
    jacobian = blocks.permute(0, 2, 3, 1, 4).reshape(batch, NUM_JOINTS, 3, 72)
    return joints, jacobian


def _below(parents: tuple[int, ...], dtype: torch.dtype, device) -> torch.Tensor:
    """(24 k, 24 j) 1 where j is strictly below k in the tree."""
    below = torch.zeros(NUM_JOINTS, NUM_JOINTS, dtype=dtype, device=device)
    for joint in range(1, NUM_JOINTS):
        ancestor = parents[joint]
        while ancestor >= 0:
            below[ancestor, joint] = 1.0
            ancestor = parents[ancestor]
    return below


class _FrameProblem:
    """Per frame: x = [pose (72), transl (3)] against its mocap joints (``LeastSquaresProblem``).

    Residuals: bone directions (``DIRECTION_BONES``, unit vectors scaled by ``bone_scale`` metres,
    where both ends are present), joint positions (times ``position_weight`` ** 0.5), twists and
    rest (module doc).
    """

    def __init__(self, model: SkeletonModel, rest: torch.Tensor, target, weight, start, config: MoshConfig):
        self.model = model
        self.rest = rest  # (N, 24, 3)
        self.target = target  # (N, 24, 3)
        self.weight = weight  # (N, 24) 1 where the joint is present
        self.start = start  # (N, 75)
        self.config = config
        twist = [(_SLOT[a], _SLOT[b]) for a, b in TWIST_AXES]
        self.twist_joint = torch.tensor([a for a, _ in twist])
        axis = rest[:, [b for _, b in twist]] - rest[:, self.twist_joint]
        self.twist_axis = axis / torch.linalg.norm(axis, dim=-1, keepdim=True)  # (N, T, 3)
        self.bone_from = torch.tensor([_SLOT[a] for a, _ in DIRECTION_BONES])
        self.bone_to = torch.tensor([_SLOT[b] for _, b in DIRECTION_BONES])
        self.bone_weight = weight[:, self.bone_from] * weight[:, self.bone_to]  # (N, P)
        bone = target[:, self.bone_to] - target[:, self.bone_from]
        self.bone_target = bone / torch.linalg.norm(bone, dim=-1, keepdim=True).clamp_min(1e-9)
        parents = model.parents
        self.parents = parents

    def initial(self, rows: torch.Tensor) -> torch.Tensor:
        return self.start[rows]

    def residuals(self, x: torch.Tensor, rows: torch.Tensor, with_jacobian: bool = True):
        config = self.config
        batch = x.shape[0]
        joints, jac = skeleton_jacobian(x[:, :72], self.rest[rows], self.parents)
        joints = joints + x[:, None, 72:]
        weight = self.weight[rows][..., None]  # (S, 24, 1)
        position_scale = config.position_weight**0.5
        position = (joints - self.target[rows]) * weight * position_scale
        bone = joints[:, self.bone_to] - joints[:, self.bone_from]  # (S, P, 3)
        length = torch.linalg.norm(bone, dim=-1, keepdim=True).clamp_min(1e-9)
        unit = bone / length
        bone_weight = self.bone_weight[rows][..., None] * config.bone_scale
        direction = (unit - self.bone_target[rows]) * bone_weight
        rotation = x[:, :72].reshape(batch, NUM_JOINTS, 3)[:, self.twist_joint]
        axis = self.twist_axis[rows]
        # twist of an axis-angle rotation about a unit axis a: 2 atan2(sin(t/2) n.a, cos(t/2));
        # for the small twists kept here, its first-order part (n t).a is used.
        twist = (rotation * axis).sum(-1) * config.twist_weight**0.5
        rest = x[:, 3:72] * config.rest_weight**0.5
        r = torch.cat([position.reshape(batch, -1), direction.reshape(batch, -1), twist, rest], dim=1)
        if not with_jacobian:
            return r, None, torch.zeros(batch, dtype=x.dtype)
        full = torch.cat([jac, torch.eye(3, dtype=x.dtype).expand(batch, NUM_JOINTS, 3, 3)], dim=-1)
        d_position = (full * weight[..., None] * position_scale).reshape(batch, -1, 75)
        d_bone = full[:, self.bone_to] - full[:, self.bone_from]  # (S, P, 3, 75)
        project = torch.eye(3, dtype=x.dtype) - unit[..., :, None] * unit[..., None, :]
        d_direction = (project / length[..., None]) @ d_bone * bone_weight[..., None]
        d_twist = x.new_zeros(batch, len(self.twist_joint), 75)
        columns = (3 * self.twist_joint[:, None] + torch.arange(3)).reshape(-1)
        d_twist[:, torch.arange(len(self.twist_joint)).repeat_interleave(3), columns] = (
            axis.reshape(batch, -1) * config.twist_weight**0.5
        )
        d_rest = x.new_zeros(batch, 69, 75)
        d_rest[:, torch.arange(69), torch.arange(3, 72)] = config.rest_weight**0.5
        jacobian = torch.cat([d_position, d_direction.reshape(batch, -1, 75), d_twist, d_rest], dim=1)
        return r, jacobian, torch.zeros(batch, dtype=x.dtype)


def fit_mocap(mocap: MocapJoints, files: BodyModelFiles, config: MoshConfig = MoshConfig()) -> MoshFit:
    """SMPL parameters of every frame of ``mocap`` (module doc)."""
    if len(mocap) == 0:
        raise InputError("no mocap frames to fit")
    model = SkeletonModel.from_files(files)
    clips = mocap.clips
    clip_index = np.asarray([clips.index(c) for c in mocap.clip.tolist()])
    betas = _clip_betas(model, mocap, clips, config)[clip_index]  # (N, 10)
    rest = model.rest(betas)  # (N, 24, 3)
    target = torch.as_tensor(mocap.joints, dtype=torch.float64)
    weight = torch.as_tensor(mocap.present, dtype=torch.float64)

    torso = [_SLOT[n] for n in _TORSO]
    torso_present = mocap.present[:, torso].all(1)
    if not torso_present.all():
        raise InputError(f"every frame needs the torso joints {', '.join(_TORSO)} to be fitted")
    rotation = _kabsch(rest[:, torso].numpy(), mocap.joints[:, torso])
    orient = matrix_to_axis_angle(torch.as_tensor(rotation))
    pelvis = rest[:, 0]
    transl = (
        target[:, torso].mean(1)
        - pelvis
        - (torch.as_tensor(rotation) @ (rest[:, torso].mean(1) - pelvis)[..., None])[..., 0]
    )
    start = torch.cat([orient, torch.zeros(len(mocap), 69, dtype=torch.float64), transl], dim=1)
    problem = _FrameProblem(model, rest, target, weight, start, config)
    outcome = solve_pool(
        problem,
        torch.arange(len(mocap)),
        num_params=75,
        capacity=config.capacity,
        max_iterations=config.iterations,
        tolerance=1e-10,
    )
    x = outcome.x
    with torch.no_grad():
        joints = skeleton_joints(x[:, :72], rest, model.parents) + x[:, None, 72:]
    residual = torch.linalg.norm(joints - target, dim=-1).numpy()
    residual[~mocap.present] = np.nan
    logger.info(
        "fitted %d mocap frames of %d clips: median joint residual %.1f mm",
        len(mocap),
        len(clips),
        1000 * np.nanmedian(residual),
    )
    return MoshFit(
        pose=x[:, :72].numpy().copy(),
        betas=betas.numpy().copy(),
        transl=x[:, 72:].numpy().copy(),
        residual=residual,
        clip=mocap.clip.copy(),
        frame=mocap.frame.copy(),
    )
