"""SMPL's 49 SPIN joints without the mesh: exact joints-only evaluation with analytic Jacobian.

Every SPIN joint is a fixed linear combination of mesh vertices (the 24 skeleton joints, 21
vertex keypoints, 9 ``J_regressor_extra`` rows) posed by linear blend skinning. Skinning is
linear in each bone's transform, so a joint ``j`` regressed from vertices is
``p_j = sum_b [Rw_b (m_jb - J_b s_jb) + o_b s_jb]`` over the bones ``b`` that influence its
vertices, with per-(joint, bone) "moments" precomputed once from the model arrays:
``s_jb = sum_v R_jv w_vb`` and ``m_jb = sum_v R_jv w_vb v_posed_v`` (``v_posed`` is linear in the
betas and the pose-corrective features, so ``m_jb`` is too). ``Rw_b``, ``o_b`` are bone ``b``'s
world rotation and joint position; ``J_b`` its rest joint. This equals smplx's full forward
(skin 6890 vertices, then regress) up to float rounding, for a cost independent of V.

The Jacobian of the joints w.r.t. the 72 pose and 10 shape parameters is analytic: rotating
bone ``k`` by a world axis ``a`` moves every joint by ``a x (sum_{b below k} q_jb - o_k s_jb)``
(``q_jb`` the (j, b) term above); the axis of parameter ``i`` of joint ``k`` is ``Rw_k Jr(w_k) e_i``
(``spinfits.fitting.body.rotations``); pose correctives and shape add linear terms. It is sparse per
joint: bone ``k`` moves joint ``j`` only when ``k`` is an ancestor of (or is) a bone skinning
``j``'s vertices, about a quarter of the (joint, bone) pairs, and only those blocks are formed.

Convention: as ``SpinBodyModel``: pose (B, 72) axis-angle radians = global orientation then 23
body joints relative to their parent; output joints in metres, body frame, SPIN's 49-joint order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from spinfits.fitting.body.joints import NUM_SMPL_JOINTS, SMPL_VERTEX_KEYPOINTS, SPIN_JOINT_SOURCE
from spinfits.fitting.body.model_files import BodyModelFiles
from spinfits.fitting.body.rotations import axis_angle_to_matrix_and_right_jacobian, skew

NUM_BONES = NUM_SMPL_JOINTS
NUM_POSE_PARAMS = 72
NUM_BETAS = 10
NUM_PARAMS = NUM_POSE_PARAMS + NUM_BETAS  # 82: pose (72) then betas (10)


@dataclass(frozen=True)
class JointsEvaluation:
    """Joints and (optionally) their Jacobian.

    Fields:
        joints: (B, 49, 3) SPIN joints, metres, body frame.
        jacobian: (B, 49, 3, 82) d joints / d [pose (72), betas (10)], or None.
        corrective: (B, 49, 3, 69) the pose correctives' share of the body joints' columns, where
            this evaluation computed it (to reuse at nearby poses), else None.
    """

    joints: torch.Tensor
    jacobian: torch.Tensor | None
    corrective: torch.Tensor | None = None


def _depth_levels(parents: np.ndarray) -> list[np.ndarray]:
    depth = np.zeros(len(parents), dtype=np.int64)
    for joint in range(1, len(parents)):
        depth[joint] = depth[parents[joint]] + 1
    return [np.nonzero(depth == level)[0] for level in range(1, depth.max() + 1)]


def _point_regressors(files: BodyModelFiles) -> np.ndarray:
    """(21 + 9, V): the vertex keypoints (one vertex each) and ``J_regressor_extra``'s rows."""
    smpl = files.smpl
    regressors = np.zeros((len(SMPL_VERTEX_KEYPOINTS) + files.J_regressor_extra.shape[0], smpl.num_vertices))
    for row, (_, vertex) in enumerate(SMPL_VERTEX_KEYPOINTS):
        regressors[row, vertex] = 1.0
    regressors[len(SMPL_VERTEX_KEYPOINTS) :] = files.J_regressor_extra
    return regressors


def _regressed_pairs(regressors: np.ndarray, smpl, shapedirs: np.ndarray) -> tuple[np.ndarray, ...]:
    """The (regressed point, bone) pairs with non-zero skinning influence (P' of them): point (P',),
    bone (P',), weight ``s`` (P',), moment ``m`` (P', 3), shape (P', 3, 10), pose (P', 3, 207)
    or (P', 3, 0) when the model has no pose correctives."""
    # Influence of each bone on each regressed point.
    influence = np.abs(regressors) @ smpl.weights  # (21 + 9, 24)
    point, bone = np.nonzero(influence > 0)
    weighted = regressors[point] * smpl.weights[:, bone].T  # (P', V): R_jv w_vb
    pair_weight = weighted.sum(1)
    pair_moment = weighted @ smpl.v_template
    pair_shape = np.einsum("pv,vcs->pcs", weighted, shapedirs)
    pair_pose = (
        np.einsum("pv,vcf->pcf", weighted, smpl.posedirs)
        if np.any(smpl.posedirs != 0)
        else np.zeros((len(point), 3, 0))
    )
    return point, bone, pair_weight, pair_moment, pair_shape, pair_pose


class JointsOnlyBody(torch.nn.Module):
    """SPIN's 49 joints of a SMPL-format model, evaluated without the mesh (see module doc).

    Buffers (P pairs of (source point, bone) with non-zero skinning influence, 54 source
    points = 24 skeleton + 21 vertex keypoints + 9 extra joints, as ``SPIN_JOINT_SOURCE`` indexes):
    pair_point (P,), pair_bone (P,), pair_weight (P,) ``s``, pair_moment (P, 3) ``m`` at zero
    betas and pose, pair_shape (P, 3, 10), pair_pose (P, 3, 207) or empty when the model has no
    pose correctives, joint_template (24, 3), joint_shape (24, 3, 10); the K blocks (SPIN joint,
    bone) of the rotation Jacobian: block_joint (K,), block_point (K,) its source point,
    block_bone (K,), block_weight (K,) the skinning weight of the point's pairs below the bone.
    """

    def __init__(
        self, files: BodyModelFiles, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> None:
        super().__init__()
        smpl = files.smpl
        parents = smpl.kintree_table[0].astype(np.int64).copy()
        parents[0] = -1
        self.parents = parents
        self.levels = _depth_levels(parents)
        shapedirs = smpl.shapedirs[:, :, :NUM_BETAS]
        joint_template = smpl.J_regressor @ smpl.v_template  # (24, 3)
        joint_shape = np.einsum("jv,vcs->jcs", smpl.J_regressor, shapedirs)  # (24, 3, 10)

        regressors = _point_regressors(files)
        point, bone, pair_weight, pair_moment, pair_shape, pair_pose = _regressed_pairs(
            regressors, smpl, shapedirs
        )
        has_pose_correctives = bool(np.any(smpl.posedirs != 0))

        skeleton = np.arange(NUM_BONES)
        self.has_pose_correctives = has_pose_correctives
        self.num_points = NUM_BONES + regressors.shape[0]
        pair_point = np.concatenate([skeleton, NUM_BONES + point])
        pair_bone = np.concatenate([skeleton, bone])
        pair_weight = np.concatenate([np.ones(NUM_BONES), pair_weight])
        pair_moment = np.concatenate([joint_template, pair_moment])
        pair_shape = np.concatenate([joint_shape, pair_shape])
        pair_pose = np.concatenate([np.zeros((NUM_BONES, 3, pair_pose.shape[2])), pair_pose])

        descendant = np.eye(NUM_BONES)  # descendant[k, b] = 1 if b is k or below k
        for joint in range(NUM_BONES - 1, 0, -1):
            descendant[parents[joint]] += descendant[joint]
        descendant = (descendant > 0).astype(np.float64)
        weight_grid = np.zeros((self.num_points, NUM_BONES))  # s summed per (point, bone)
        np.add.at(weight_grid, (pair_point, pair_bone), pair_weight)

        def buffer(name: str, array: np.ndarray, kind: torch.dtype = dtype) -> None:
            self.register_buffer(name, torch.as_tensor(np.ascontiguousarray(array), dtype=kind))

        buffer("joint_template", joint_template)
        buffer("joint_shape", joint_shape)
        buffer("pair_bone", pair_bone, torch.long)
        buffer("pair_weight", pair_weight)
        buffer("pair_moment", pair_moment)
        buffer("pair_shape", pair_shape)
        buffer("pair_pose", pair_pose)
        # d(q - J_b s)/d betas per pair, constant: (P, 3, 10)
        buffer("pair_local_shape", pair_shape - joint_shape[pair_bone] * pair_weight[:, None, None])
        buffer("pair_point", pair_point, torch.long)
        buffer("pair_slot", pair_point * NUM_BONES + pair_bone, torch.long)
        buffer("descendant", descendant)
        buffer("parent_of", np.maximum(parents, 0), torch.long)
        buffer("spin_source", np.asarray(SPIN_JOINT_SOURCE), torch.long)
        # Pairs whose pose correctives reach a SPIN joint: the only ones the Jacobian needs.
        corrective = np.nonzero(np.isin(pair_point, SPIN_JOINT_SOURCE) & np.any(pair_pose != 0, axis=(1, 2)))[
            0
        ]
        buffer("corrective_pairs", corrective, torch.long)
        buffer("corrective_pose", pair_pose[corrective].reshape(len(corrective), 3, NUM_BONES - 1, 9))
        # The rotation Jacobian is sparse per joint: bone k moves SPIN joint j only when k is an
        # ancestor (or itself) of a bone that skins j's source point. Blocks (joint, bone) kept:
        incidence = np.zeros((self.num_points, NUM_BONES))
        incidence[pair_point, pair_bone] = 1.0
        source = np.asarray(SPIN_JOINT_SOURCE)
        reach = (incidence @ descendant.T > 0)[source]  # (49, 24)
        block_joint, block_bone = np.nonzero(reach)
        block_point = source[block_joint]
        buffer("block_point", block_point, torch.long)
        buffer("block_bone", block_bone, torch.long)
        buffer("block_weight", (weight_grid @ descendant.T)[block_point, block_bone])  # s below k
        buffer("block_joint", block_joint, torch.long)
        self.to(device)

    def forward(self, pose: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
        """(B, 72), (B, 10) -> (B, 49, 3) SPIN joints, metres, body frame."""
        return self.evaluate(pose, betas, with_jacobian=False).joints

    def evaluate(
        self,
        pose: torch.Tensor,
        betas: torch.Tensor,
        with_jacobian: bool = True,
        corrective_jacobian: bool | torch.Tensor = True,
        left: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> JointsEvaluation:
        """Joints (B, 49, 3) and, if asked, their Jacobian (B, 49, 3, 82) w.r.t. [pose, betas].

        ``corrective_jacobian=False`` leaves the pose correctives' (small, costly) share out of
        the Jacobian, which is then approximate; a (B, 49, 3, 69) tensor is used as that share
        (e.g. ``JointsEvaluation.corrective`` of an evaluation at a nearby pose: approximate
        too); the joints are exact either way.
        ``left``: a function of the joints (B, 49, 3) giving (B, 49, M, 3) per joint, e.g. each
        joint's weighted pixel projection Jacobian (M = 2): the Jacobian then comes back
        multiplied by it, (B, 49, M, 82) = left(joints) @ d joints / d params, formed block by
        block without the (B, 49, 3, 82) one.
        """
        batch = pose.shape[0]
        rot, right_jac = axis_angle_to_matrix_and_right_jacobian(pose.reshape(batch, NUM_BONES, 3))
        rest = self.joint_template + torch.einsum("jcs,bs->bjc", self.joint_shape, betas)
        relative = torch.cat([rest[:, :1], (rest - rest[:, self.parent_of])[:, 1:]], dim=1)
        rel_shape = self.joint_shape - self.joint_shape[self.parent_of]
        rel_shape = torch.cat([self.joint_shape[:1], rel_shape[1:]], dim=0)  # (24, 3, 10)

        world_rot_t, world_pos_t, world_pos_shape = self._world_transforms(rot, relative, rel_shape)

        bone_rot = world_rot_t[:, self.pair_bone]  # (B, P, 3, 3)
        weight = self.pair_weight[:, None]  # (P, 1)
        moment = self.pair_moment + torch.einsum("pcs,bs->bpc", self.pair_shape, betas)
        if self.has_pose_correctives:
            eye = torch.eye(3, dtype=pose.dtype, device=pose.device)
            feature = (rot[:, 1:] - eye).reshape(batch, 9 * (NUM_BONES - 1))  # (B, 207)
            moment = moment + torch.einsum("pcf,bf->bpc", self.pair_pose, feature)
        local = moment - rest[:, self.pair_bone] * weight
        pair_points = (bone_rot @ local[..., None])[..., 0] + world_pos_t[:, self.pair_bone] * weight
        grid = pair_points.new_zeros(batch, self.num_points * NUM_BONES, 3)
        grid = grid.index_add(1, self.pair_slot, pair_points)
        grid = grid.reshape(batch, self.num_points, NUM_BONES, 3)  # q summed per (point, bone)
        points = grid.sum(2)  # (B, 54, 3)
        joints = points[:, self.spin_source]
        if not with_jacobian:
            return JointsEvaluation(joints, None)

        # Rotation part, per (joint j, bone k) block: d p_j / d w_k,i = a_k,i x l_jk, with the
        # lever l_jk = sum_{pairs of j below k} q - o_k s; a_k,i = column i of Rw_k Jr(w_k).
        count = self.block_bone.shape[0]
        axes = (world_rot_t @ right_jac)[:, self.block_bone]  # (B, K, 3 c, 3 i)
        below = torch.einsum("kb,njbc->njkc", self.descendant, grid)  # q summed below bone k
        lever = (
            below[:, self.block_point, self.block_bone]
            - world_pos_t[:, self.block_bone] * self.block_weight[:, None]
        )[:, :, None]  # (B, K, 1, 3)
        # Row m of block (j, k), for a row vector u_m (left's, or the unit vectors): the triple
        # product u_m . (a_i x l) = (l x u_m) . a_i.
        if left is None:
            rows_of = torch.eye(3, dtype=pose.dtype, device=pose.device).expand(batch, count, 3, 3)
        else:
            left = left(joints)
            rows_of = left[:, self.block_joint]
        rows = rows_of.shape[2]
        cross = _cross(lever.expand_as(rows_of), rows_of)  # (B, K, M, 3 c)
        blocks = sum(cross[..., c, None] * axes[:, :, None, c] for c in range(3))  # (B, K, M, 3 i)
        jacobian = joints.new_zeros(batch, joints.shape[1] * rows * NUM_PARAMS)
        jacobian[:, self._block_positions(rows)] = blocks.reshape(batch, count * rows * 3)
        jacobian = jacobian.reshape(batch, joints.shape[1], rows, NUM_PARAMS)
        corrective, computed = self._corrective_share(corrective_jacobian, rot, right_jac, bone_rot)
        if corrective is not None:
            jacobian[..., 3:NUM_POSE_PARAMS] += corrective if left is None else left @ corrective
        # Shape part: Rw_b (dm - dJ_b s) + do_b s.
        d_pair_shape = (
            bone_rot @ self.pair_local_shape
            + torch.stack(world_pos_shape, 1)[:, self.pair_bone] * weight[..., None]
        )  # (B, P, 3, 10)
        d_shape = self._sum_pairs(d_pair_shape)[:, self.spin_source]
        jacobian[..., NUM_POSE_PARAMS:] = d_shape if left is None else left @ d_shape
        return JointsEvaluation(joints, jacobian, computed)

    def _corrective_share(
        self,
        corrective_jacobian: bool | torch.Tensor,
        rot: torch.Tensor,
        right_jac: torch.Tensor,
        bone_rot: torch.Tensor,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The pose correctives' share of the Jacobian as ``evaluate`` is asked for it (given,
        computed, or None), and the one computed here (None unless computed)."""
        if isinstance(corrective_jacobian, torch.Tensor):
            return corrective_jacobian, None
        if self.has_pose_correctives and corrective_jacobian:
            computed = self._pose_corrective_jacobian(rot, right_jac, bone_rot)
            return computed, computed
        return None, None

    def _world_transforms(
        self, rot: torch.Tensor, relative: torch.Tensor, rel_shape: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Forward kinematics, one depth level at a time: world rotation Rw (B, 24, 3, 3), world
        joint o (B, 24, 3) and do/dbetas (24 of (B, 3, 10)), from each bone's rotation (B, 24, 3, 3),
        its offset from its parent (B, 24, 3) and that offset's shape directions (24, 3, 10)."""
        batch = rot.shape[0]
        world_rot = [rot[:, 0]] + [None] * (NUM_BONES - 1)
        world_pos = [relative[:, 0]] + [None] * (NUM_BONES - 1)
        world_pos_shape = [rel_shape[0].expand(batch, 3, NUM_BETAS)] + [None] * (NUM_BONES - 1)
        for level in self.levels:
            parent = self.parents[level]
            parent_rot = torch.stack([world_rot[p] for p in parent], 1)  # (B, L, 3, 3)
            new_rot = parent_rot @ rot[:, level]
            new_pos = (
                torch.stack([world_pos[p] for p in parent], 1)
                + (parent_rot @ relative[:, level, :, None])[..., 0]
            )
            new_shape = torch.stack([world_pos_shape[p] for p in parent], 1) + (parent_rot @ rel_shape[level])
            for index, joint in enumerate(level):
                world_rot[joint] = new_rot[:, index]
                world_pos[joint] = new_pos[:, index]
                world_pos_shape[joint] = new_shape[:, index]
        return torch.stack(world_rot, 1), torch.stack(world_pos, 1), world_pos_shape

    def _block_positions(self, rows: int) -> torch.Tensor:
        """(K * rows * 3,) where block (j, k)'s entries (row m, axis i) go in a flattened
        (49, rows, 82) Jacobian."""
        m = torch.arange(rows, device=self.block_bone.device)[None, :, None]
        i = torch.arange(3, device=self.block_bone.device)[None, None, :]
        joint, bone = self.block_joint[:, None, None], self.block_bone[:, None, None]
        return ((joint * rows + m) * NUM_PARAMS + bone * 3 + i).reshape(-1)

    def _pose_corrective_jacobian(
        self, rot: torch.Tensor, right_jac: torch.Tensor, bone_rot: torch.Tensor
    ) -> torch.Tensor:
        """(B, 49, 3, 69): the pose correctives' share (body joints 1-23), through
        d R_k / d w_k,i = R_k [Jr e_i]x."""
        batch = rot.shape[0]
        generators = skew(right_jac[:, 1:].transpose(-1, -2))  # (B, 23, 3 i, 3, 3)
        d_rot = (rot[:, 1:, None] @ generators).reshape(batch, NUM_BONES - 1, 3, 9)
        # (B, C, 3 c, 23 k, 3 i): d moment / d w_k,i per corrective pair, then to world axes.
        local = torch.einsum("pckn,bkin->bpcki", self.corrective_pose, d_rot)
        world = bone_rot[:, self.corrective_pairs] @ local.reshape(batch, -1, 3, 69)
        total = world.new_zeros(batch, self.num_points, 3, 69)
        total = total.index_add(1, self.pair_point[self.corrective_pairs], world)
        return total[:, self.spin_source]  # (B, 49, 3, 69)

    def _sum_pairs(self, values: torch.Tensor) -> torch.Tensor:
        """(B, P, ...) per-pair values -> (B, 54, ...) summed per source point."""
        total = values.new_zeros((values.shape[0], self.num_points) + values.shape[2:])
        return total.index_add(1, self.pair_point, values)


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(..., 3) x (..., 3) -> (..., 3) cross product, elementwise (cheaper than
    ``torch.linalg.cross`` on small broadcast tensors)."""
    ax, ay, az = a.unbind(-1)
    bx, by, bz = b.unbind(-1)
    return torch.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], -1)
