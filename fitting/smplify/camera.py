"""SMPLify's camera: perspective projection and SPIN's closed-form camera translation.

Convention: the camera sits at the origin with identity rotation and looks down +z; a model
point ``p`` (metres, body frame) is seen at ``p + cam_t``; pixel ``x = f * X / Z + c_x`` and
``y = f * Y / Z + c_y`` (SPIN's ``perspective_projection`` with rotation = I). SPIN's crop frame
is 224 px with focal length 5000 px and principal point (112, 112).
"""

from __future__ import annotations

import torch

from spinfits.errors import InputError
from spinfits.fitting.body.joints import NUM_OPENPOSE_JOINTS, NUM_SPIN_JOINTS
from spinfits.fitting.data.spin_crop import CROP_CENTER, FOCAL_LENGTH


def perspective_projection(
    points: torch.Tensor,
    cam_t: torch.Tensor,
    focal_length: float | torch.Tensor,
    camera_center: torch.Tensor,
) -> torch.Tensor:
    """Project body-frame points into the image.

    Args:
        points: (B, N, 3) metres, body frame.
        cam_t: (B, 3) camera translation, metres.
        focal_length: float or (B,) pixels.
        camera_center: (B, 2) principal point, pixels.

    Returns:
        (B, N, 2) pixels x, y.
    """
    camera_points = points + cam_t[:, None, :]
    focal = torch.as_tensor(focal_length, dtype=points.dtype, device=points.device)
    focal = focal.reshape(-1, 1, 1) if focal.ndim == 1 else focal
    return focal * camera_points[..., :2] / camera_points[..., 2:3] + camera_center[:, None, :]


def estimate_translation(
    joints: torch.Tensor,
    keypoints: torch.Tensor,
    focal_length: float = FOCAL_LENGTH,
    camera_center: torch.Tensor | None = None,
    joint_indices: tuple[int, ...] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SPIN's camera translation: weighted least squares from the 24 ground-truth joints.

    Convention: as SPIN's ``estimate_translation_np``: only SPIN joints 25..48 are used, each
    confident keypoint (u, v, c) adds the rows ``[f, 0, cx - u] t = (u - cx) Z - f X`` and
    ``[0, f, cy - v] t = (v - cy) Z - f Y`` weighted by sqrt(c) (so by c in the normal equations),
    and the 3x3 normal equations are solved per sample (in float64, cast back).

    Args:
        joints: (B, 49, 3) model joints, metres, body frame.
        keypoints: (B, 49, 3) pixels x, y, confidence.
        focal_length: pixels.
        camera_center: (B, 2) pixels; None means (112, 112), SPIN's 224 px crop.
        joint_indices: the joints to use; None means SPIN's (the 24 GT joints, 25..48).

    Returns:
        cam_t: (B, 3), zero where not solvable; solvable: (B,) bool, False for samples with
        fewer than two confident ground-truth joints (the system is singular).
    """
    if joints.ndim != 3 or joints.shape[1:] != (NUM_SPIN_JOINTS, 3):
        raise InputError(f"joints must be (B, 49, 3) metres, got {tuple(joints.shape)}")
    if keypoints.shape != (joints.shape[0], NUM_SPIN_JOINTS, 3):
        raise InputError(
            f"keypoints must be (B, 49, 3) pixels + confidence matching joints "
            f"{tuple(joints.shape)}, got {tuple(keypoints.shape)}"
        )
    wide = torch.float64 if joints.device.type != "mps" else torch.float32
    used = list(range(NUM_OPENPOSE_JOINTS, NUM_SPIN_JOINTS)) if joint_indices is None else list(joint_indices)
    S = joints[:, used].to(wide)  # (B, J, 3)
    uv = keypoints[:, used, :2].to(wide)  # (B, J, 2)
    conf = keypoints[:, used, 2].to(wide)  # (B, J)
    if camera_center is None:
        center = torch.full((joints.shape[0], 2), CROP_CENTER, dtype=wide, device=joints.device)
    else:
        center = camera_center.to(wide)
    f = float(focal_length)
    offset = center[:, None, :] - uv  # (B, J, 2): cx - u, cy - v
    # Rows of Q for coordinate a (0: x, 1: y): f * e_a + (c_a - u_a) * e_z.
    Q = torch.zeros(S.shape[0], S.shape[1], 2, 3, dtype=wide, device=joints.device)
    Q[..., 0, 0] = f
    Q[..., 1, 1] = f
    Q[..., 2] = offset
    rhs = -offset * S[..., 2:3] - f * S[..., :2]  # (B, J, 2)
    weight = conf[..., None, None]
    A = (Q.transpose(-1, -2) @ (weight * Q)).sum(1)  # (B, 3, 3)
    b = (Q.transpose(-1, -2) @ (weight * rhs[..., None])).sum(1)[..., 0]  # (B, 3)
    solvable = (conf > 0).sum(1) >= 2
    A = torch.where(solvable[:, None, None], A, torch.eye(3, dtype=wide, device=A.device))
    cam_t, info = torch.linalg.solve_ex(A, b)
    solvable = solvable & (info == 0) & torch.isfinite(cam_t).all(-1)
    cam_t = torch.where(solvable[:, None], cam_t, torch.zeros_like(cam_t))
    return cam_t.to(joints.dtype), solvable
