"""A sampler of natural human body poses, written from anatomy rather than from motion capture.

No licence-free motion capture ships with this project, so natural poses are drawn from a
mixture of everyday archetypes (standing, walking, running, sitting, crouching, reaching, arms
raised, wide stance), each jittered per joint, blended with a second archetype, mirrored
left/right at random and clipped to anatomical ranges. It feeds the stand-in GMM pose prior
(``tools/build_standin_prior.py``) and the synthetic datasets.

Convention (SMPL): body pose (69,) = 23 joints x axis-angle (radians) relative to the parent,
rest pose is the T-pose, y up, the person faces +z and their left is +x. Natural bends: knees
+x, hip flexion -x, left elbow -y / right elbow +y, lowering the left arm -z / right arm +z,
leaning forward +x at the spine.
"""

from __future__ import annotations

import numpy as np

from spinfits.fitting.body.joints import SMPL_JOINT_NAMES, SMPL_POSE_FLIP_PERM

_J = {name: index for index, name in enumerate(SMPL_JOINT_NAMES)}

#: Archetypes: {joint: (x, y, z) axis-angle}; joints not named stay at rest.
_ARCHETYPES: dict[str, dict[str, tuple[float, float, float]]] = {
    "stand": {
        "left_shoulder": (0.0, 0.0, -1.2),
        "right_shoulder": (0.0, 0.0, 1.2),
        "left_elbow": (0.0, -0.2, 0.0),
        "right_elbow": (0.0, 0.2, 0.0),
        "left_knee": (0.05, 0, 0),
        "right_knee": (0.05, 0, 0),
    },
    "walk": {
        "left_hip": (-0.45, 0, 0.05),
        "right_hip": (0.3, 0, -0.05),
        "left_knee": (0.35, 0, 0),
        "right_knee": (0.15, 0, 0),
        "left_shoulder": (0.0, 0.3, -1.2),
        "right_shoulder": (0.0, 0.3, 1.2),
        "left_elbow": (0.0, -0.4, 0.0),
        "right_elbow": (0.0, 0.3, 0.0),
        "spine1": (0.05, 0, 0),
    },
    "run": {
        "left_hip": (-0.9, 0, 0.05),
        "right_hip": (0.45, 0, -0.05),
        "left_knee": (1.2, 0, 0),
        "right_knee": (0.7, 0, 0),
        "left_ankle": (0.2, 0, 0),
        "right_ankle": (-0.2, 0, 0),
        "left_shoulder": (0.0, 0.5, -1.1),
        "right_shoulder": (0.0, 0.6, 1.1),
        "left_elbow": (0.0, -1.5, 0.0),
        "right_elbow": (0.0, 1.4, 0.0),
        "spine1": (0.2, 0, 0),
    },
    "sit": {
        "left_hip": (-1.5, 0, 0.1),
        "right_hip": (-1.5, 0, -0.1),
        "left_knee": (1.5, 0, 0),
        "right_knee": (1.5, 0, 0),
        "left_shoulder": (0.0, -0.3, -1.15),
        "right_shoulder": (0.0, 0.3, 1.15),
        "left_elbow": (0.0, -0.9, 0.0),
        "right_elbow": (0.0, 0.9, 0.0),
        "spine2": (0.1, 0, 0),
    },
    "crouch": {
        "left_hip": (-1.9, 0, 0.25),
        "right_hip": (-1.9, 0, -0.25),
        "left_knee": (2.1, 0, 0),
        "right_knee": (2.1, 0, 0),
        "left_ankle": (0.35, 0, 0),
        "right_ankle": (0.35, 0, 0),
        "spine1": (0.35, 0, 0),
        "spine2": (0.15, 0, 0),
        "left_shoulder": (0.0, -0.6, -0.9),
        "right_shoulder": (0.0, 0.6, 0.9),
        "left_elbow": (0.0, -0.6, 0.0),
        "right_elbow": (0.0, 0.6, 0.0),
    },
    "reach": {
        "left_shoulder": (0.0, -1.2, -0.3),
        "right_shoulder": (0.0, 1.0, 0.9),
        "left_elbow": (0.0, -0.2, 0.0),
        "right_elbow": (0.0, 0.6, 0.0),
        "spine2": (0.15, 0.1, 0),
        "spine3": (0.1, 0.1, 0),
        "left_knee": (0.2, 0, 0),
        "right_knee": (0.1, 0, 0),
    },
    "arms_up": {
        "left_shoulder": (0.0, -0.2, 0.9),
        "right_shoulder": (0.0, 0.2, -0.9),
        "left_elbow": (0.0, -0.5, 0.0),
        "right_elbow": (0.0, 0.5, 0.0),
        "neck": (-0.15, 0, 0),
        "spine3": (-0.05, 0, 0),
    },
    "wide_stance": {
        "left_hip": (-0.2, 0, 0.35),
        "right_hip": (-0.2, 0, -0.35),
        "left_knee": (0.5, 0, 0),
        "right_knee": (0.5, 0, 0),
        "left_shoulder": (0.0, 0.0, -0.3),
        "right_shoulder": (0.0, 0.0, 0.3),
        "left_elbow": (0.0, -0.8, 0.0),
        "right_elbow": (0.0, 0.8, 0.0),
        "spine1": (0.15, 0, 0),
    },
}

#: Per-joint jitter (radians, std of each axis-angle component).
_JITTER = {
    "left_hip": 0.15,
    "right_hip": 0.15,
    "left_knee": 0.15,
    "right_knee": 0.15,
    "left_ankle": 0.1,
    "right_ankle": 0.1,
    "left_foot": 0.05,
    "right_foot": 0.05,
    "spine1": 0.07,
    "spine2": 0.05,
    "spine3": 0.05,
    "neck": 0.1,
    "head": 0.1,
    "left_collar": 0.05,
    "right_collar": 0.05,
    "left_shoulder": 0.25,
    "right_shoulder": 0.25,
    "left_elbow": 0.25,
    "right_elbow": 0.25,
    "left_wrist": 0.15,
    "right_wrist": 0.15,
    "left_hand": 0.05,
    "right_hand": 0.05,
}

#: Anatomical ranges of single components: (joint, axis) -> (low, high), radians.
_LIMITS = {
    ("left_knee", 0): (0.0, 2.4),
    ("right_knee", 0): (0.0, 2.4),
    ("left_knee", 1): (-0.1, 0.1),
    ("right_knee", 1): (-0.1, 0.1),
    ("left_knee", 2): (-0.1, 0.1),
    ("right_knee", 2): (-0.1, 0.1),
    ("left_elbow", 1): (-2.4, 0.0),
    ("right_elbow", 1): (0.0, 2.4),
    ("left_elbow", 0): (-0.2, 0.2),
    ("right_elbow", 0): (-0.2, 0.2),
    ("left_elbow", 2): (-0.2, 0.2),
    ("right_elbow", 2): (-0.2, 0.2),
    ("left_hip", 0): (-2.2, 0.6),
    ("right_hip", 0): (-2.2, 0.6),
    ("spine1", 0): (-0.3, 0.6),
    ("spine2", 0): (-0.3, 0.4),
    ("spine3", 0): (-0.3, 0.4),
}

ARCHETYPE_NAMES: tuple[str, ...] = tuple(_ARCHETYPES)


def _archetype_matrix() -> np.ndarray:
    """(A, 69) body poses of the archetypes."""
    poses = np.zeros((len(_ARCHETYPES), 24, 3))
    for row, joints in enumerate(_ARCHETYPES.values()):
        for name, rotation in joints.items():
            poses[row, _J[name]] = rotation
    return poses.reshape(len(_ARCHETYPES), 72)[:, 3:]


def _jitter_vector() -> np.ndarray:
    jitter = np.zeros((24, 3))
    for name, std in _JITTER.items():
        jitter[_J[name]] = std
    return jitter.reshape(72)[3:]


def mirror_body_pose(body_pose: np.ndarray) -> np.ndarray:
    """Left/right mirror of (N, 69) body poses (SPIN's flip: permute joints, negate y and z)."""
    full = np.concatenate([np.zeros((body_pose.shape[0], 3)), body_pose], axis=1)
    full = full[:, list(SMPL_POSE_FLIP_PERM)]
    full[:, 1::3] *= -1
    full[:, 2::3] *= -1
    return full[:, 3:]


def sample_body_poses(count: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``count`` natural body poses: (count, 69) axis-angle radians, float64."""
    archetypes = _archetype_matrix()
    first = rng.integers(0, len(archetypes), size=count)
    second = rng.integers(0, len(archetypes), size=count)
    blend = rng.beta(0.6, 2.0, size=(count, 1))  # mostly near the first archetype
    poses = (1 - blend) * archetypes[first] + blend * archetypes[second]
    poses = poses + rng.standard_normal((count, 69)) * _jitter_vector()
    mirror = rng.random(count) < 0.5
    poses[mirror] = mirror_body_pose(poses[mirror])
    for (name, axis), (low, high) in _LIMITS.items():
        column = 3 * (_J[name] - 1) + axis
        poses[:, column] = np.clip(poses[:, column], low, high)
    return poses
