"""OpenPose left/right swaps, found against the ground-truth joints of the same row.

Where both annotation sources (OpenPose's 25 and the 24 ground-truth joints) mark a limb, and
OpenPose's joints lie much closer to the *other* side's ground-truth joints than to their own,
OpenPose's left and right are swapped (the ground-truth annotation is trusted).
"""

from __future__ import annotations

import torch

from spinfits.fitting.body.joints import NUM_OPENPOSE_JOINTS, SPIN_JOINTS_FLIP_PERM, spin_index

# (OpenPose joint, ground-truth joint) pairs on the right and on the left.
_LIMBS = ("Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")
_RIGHT_PAIRS = tuple((spin_index(f"OP R{limb}"), spin_index(f"Right {limb}")) for limb in _LIMBS)
_LEFT_PAIRS = tuple((spin_index(f"OP L{limb}"), spin_index(f"Left {limb}")) for limb in _LIMBS)


def openpose_swapped(keypoints: torch.Tensor, ratio: float = 0.5, min_pairs: int = 3) -> torch.Tensor:
    """(N, 49, 3) -> (N,) bool: OpenPose's left/right look swapped against the ground truth.

    Over the limb joints (shoulders, elbows, wrists, hips, knees, ankles) confident in both
    sources, the mean distance between an OpenPose joint and the *opposite* side's
    ground-truth joint is below ``ratio`` times its distance to the same side's; needs at
    least ``min_pairs`` such (left or right) joints.
    """
    right, left = torch.tensor(_RIGHT_PAIRS), torch.tensor(_LEFT_PAIRS)
    op = torch.cat([right[:, 0], left[:, 0]]).to(keypoints.device)
    same = torch.cat([right[:, 1], left[:, 1]]).to(keypoints.device)
    cross = torch.cat([left[:, 1], right[:, 1]]).to(keypoints.device)
    conf = keypoints[..., 2] > 0
    both = conf[:, op] & conf[:, same] & conf[:, cross]  # (N, 12)
    d_same = (keypoints[:, op, :2] - keypoints[:, same, :2]).norm(dim=-1)
    d_cross = (keypoints[:, op, :2] - keypoints[:, cross, :2]).norm(dim=-1)
    count = both.sum(1)
    mean_same = (d_same * both).sum(1) / count.clamp_min(1)
    mean_cross = (d_cross * both).sum(1) / count.clamp_min(1)
    return (count >= min_pairs) & (mean_cross < ratio * mean_same)


def swap_openpose_back(keypoints: torch.Tensor, swapped: torch.Tensor) -> torch.Tensor:
    """(N, 49, 3), (N,) bool -> (N, 49, 3): OpenPose's left and right exchanged where
    ``swapped``; the ground-truth joints and the other rows are unchanged."""
    flip = list(SPIN_JOINTS_FLIP_PERM[:NUM_OPENPOSE_JOINTS])
    flipped = keypoints.clone()
    flipped[:, :NUM_OPENPOSE_JOINTS] = keypoints[:, flip]
    return torch.where(swapped[:, None, None], flipped, keypoints)
