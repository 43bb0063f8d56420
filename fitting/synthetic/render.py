"""A small batched z-buffer rasteriser in plain torch, and SMPL part colours for it.

Convention: vertices are in the camera frame (metres); the camera sits at the origin, looks down
+z, x right, y down, as ``fitting.smplify.camera``: pixel ``x = f * X / Z + c_x``, ``y = f * Y / Z + c_y``.
Pixel (row i, column j) covers ``[j, j + 1) x [i, i + 1)`` and is sampled at its centre
``(j + 0.5, i + 0.5)``. A pixel shows the face whose (perspective-correct) depth at that centre is
the smallest; faces with a vertex at ``Z <= near`` are skipped. No anti-aliasing, no textures:
this draws synthetic demo images, it is not a differentiable renderer.
"""

from __future__ import annotations

import numpy as np
import torch

from spinfits.errors import InputError
from spinfits.fitting.body.joints import SMPL_JOINT_NAMES
from spinfits.fitting.data.spin_crop import CROP_CENTER, CROP_RES, FOCAL_LENGTH

#: SMPL's 24 parts, in joint order (the part of a vertex is its largest skinning weight).
SMPL_PART_NAMES = SMPL_JOINT_NAMES

#: (24, 3) float RGB in [0, 1], one per SMPL part: torso greys/browns, left limbs warm (reds,
#: oranges), right limbs cool (blues, greens), head skin-coloured; neighbours along a limb differ.
PART_PALETTE = np.array(
    [
        [0.55, 0.45, 0.35],  # pelvis
        [0.85, 0.20, 0.20],  # left_hip (thigh)
        [0.20, 0.35, 0.85],  # right_hip (thigh)
        [0.65, 0.55, 0.45],  # spine1
        [0.95, 0.55, 0.15],  # left_knee (shin)
        [0.15, 0.70, 0.85],  # right_knee (shin)
        [0.75, 0.65, 0.55],  # spine2
        [0.70, 0.10, 0.10],  # left_ankle
        [0.10, 0.20, 0.60],  # right_ankle
        [0.60, 0.60, 0.65],  # spine3 (chest)
        [0.95, 0.80, 0.20],  # left_foot
        [0.20, 0.75, 0.35],  # right_foot
        [0.80, 0.70, 0.60],  # neck
        [0.75, 0.30, 0.45],  # left_collar
        [0.30, 0.45, 0.75],  # right_collar
        [0.98, 0.82, 0.68],  # head
        [0.90, 0.35, 0.35],  # left_shoulder (upper arm)
        [0.35, 0.50, 0.90],  # right_shoulder (upper arm)
        [0.95, 0.65, 0.30],  # left_elbow (forearm)
        [0.30, 0.80, 0.80],  # right_elbow (forearm)
        [0.75, 0.15, 0.55],  # left_wrist
        [0.45, 0.20, 0.75],  # right_wrist
        [1.00, 0.90, 0.40],  # left_hand
        [0.40, 0.90, 0.50],  # right_hand
    ]
)


def face_parts(faces: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(F,) int64 SMPL part of each face: the argmax skinning weight of its first vertex.

    Args:
        faces: (F, 3) vertex indices.
        weights: (V, 24) skinning weights (``files.smpl.weights``).
    """
    return np.asarray(weights).argmax(1)[np.asarray(faces)[:, 0]].astype(np.int64)


def part_face_colours(faces: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(F, 3) float RGB in [0, 1]: each face in its SMPL part's ``PART_PALETTE`` colour."""
    return PART_PALETTE[face_parts(faces, weights)]


def _check(vertices: torch.Tensor, faces: torch.Tensor, colours: torch.Tensor) -> None:
    if vertices.ndim != 3 or vertices.shape[-1] != 3:
        raise InputError(
            f"vertices must be (B, V, 3) metres in the camera frame, got "
            f"{tuple(vertices.shape)}; for a single mesh use vertices[None]"
        )
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise InputError(f"faces must be (F, 3) vertex indices, got {tuple(faces.shape)}")
    if faces.numel() and (faces.min() < 0 or faces.max() >= vertices.shape[1]):
        raise InputError(
            f"faces index vertices {int(faces.min())}..{int(faces.max())}, the mesh has {vertices.shape[1]}"
        )
    if colours.shape not in ((faces.shape[0], 3), (vertices.shape[0], faces.shape[0], 3)):
        raise InputError(
            f"colours must be (F, 3) or (B, F, 3) RGB in [0, 1] with F = "
            f"{faces.shape[0]}, got {tuple(colours.shape)}"
        )


@torch.no_grad()
def rasterize(  # long: one z-buffer pass, its chunk loop updating the buffers in place
    vertices: torch.Tensor,
    faces: torch.Tensor,
    image_size: tuple[int, int],
    focal_length: float,
    principal_point: tuple[float, float],
    near: float = 1e-3,
    max_candidates: int = 1 << 22,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Z-buffer: the nearest face and its depth at every pixel centre.

    Args:
        vertices: (B, V, 3) metres, camera frame.
        faces: (F, 3) vertex indices.
        image_size: (H, W) pixels.
        focal_length: pixels.
        principal_point: (c_x, c_y) pixels.
        near: faces with any vertex at Z <= near are not drawn.
        max_candidates: (face, pixel) pairs tested at once (memory bound; faces are chunked).

    Returns:
        face_index: (B, H, W) int64, the visible face, -1 for background;
        depth: (B, H, W) Z of the visible surface (metres), +inf for background.
    """
    height, width = int(image_size[0]), int(image_size[1])
    batch, device = vertices.shape[0], vertices.device
    dtype = vertices.dtype if vertices.dtype == torch.float64 else torch.float32
    faces = faces.to(device=device, dtype=torch.int64)
    tri = vertices.to(dtype)[:, faces]  # (B, F, 3 corners, 3)
    z = tri[..., 2]  # (B, F, 3)
    safe_z = torch.where(z > near, z, torch.ones_like(z))
    u = focal_length * tri[..., 0] / safe_z + principal_point[0]  # (B, F, 3)
    v = focal_length * tri[..., 1] / safe_z + principal_point[1]
    num_faces = faces.shape[0]

    # pixel columns j with j + 0.5 in [min u, max u], rows likewise, clipped to the image
    j0 = torch.ceil(u.min(-1).values - 0.5).clamp(0, width).long()
    j1 = torch.floor(u.max(-1).values - 0.5).clamp(-1, width - 1).long()
    i0 = torch.ceil(v.min(-1).values - 0.5).clamp(0, height).long()
    i1 = torch.floor(v.max(-1).values - 0.5).clamp(-1, height - 1).long()
    box_w, box_h = (j1 - j0 + 1).clamp(min=0), (i1 - i0 + 1).clamp(min=0)
    area2 = (u[..., 1] - u[..., 0]) * (v[..., 2] - v[..., 0]) - (u[..., 2] - u[..., 0]) * (
        v[..., 1] - v[..., 0]
    )  # twice the signed area
    drawn = (z > near).all(-1) & (area2.abs() > 1e-12)
    sizes = torch.where(drawn, box_w * box_h, torch.zeros_like(box_w)).reshape(-1)  # (B*F,)

    zbuf = torch.full((batch * height * width,), float("inf"), dtype=dtype, device=device)
    fbuf = torch.full((batch * height * width,), -1, dtype=torch.int64, device=device)
    flat = lambda t: t.reshape(-1)  # noqa: E731  (B, F, ...) -> (B*F, ...)
    u3, v3, z3 = u.reshape(-1, 3), v.reshape(-1, 3), safe_z.reshape(-1, 3)
    j0f, i0f, wf, a2 = flat(j0), flat(i0), flat(box_w), flat(area2)
    order = torch.nonzero(sizes > 0).squeeze(1)
    ends = torch.cumsum(sizes[order], 0)
    chunk = torch.div(ends - 1, max_candidates, rounding_mode="floor")
    bounds = torch.searchsorted(chunk, torch.unique(chunk), right=True).tolist()
    start = 0
    for stop in bounds:
        ids = order[start:stop]  # (Fc,) flat (batch, face) ids
        start = stop
        counts = sizes[ids]
        owner = torch.repeat_interleave(torch.arange(ids.numel(), device=device), counts)
        first = torch.cumsum(counts, 0) - counts
        local = torch.arange(owner.numel(), device=device) - first[owner]
        fid = ids[owner]
        col = j0f[fid] + local % wf[fid]
        row = i0f[fid] + torch.div(local, wf[fid], rounding_mode="floor")
        px, py = col.to(dtype) + 0.5, row.to(dtype) + 0.5
        us, vs = u3[fid], v3[fid]
        # barycentric weights of the pixel centre (edge functions / twice the area)
        w0 = ((us[:, 1] - px) * (vs[:, 2] - py) - (us[:, 2] - px) * (vs[:, 1] - py)) / a2[fid]
        w1 = ((us[:, 2] - px) * (vs[:, 0] - py) - (us[:, 0] - px) * (vs[:, 2] - py)) / a2[fid]
        w2 = 1.0 - w0 - w1
        inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
        if not inside.any():
            continue
        fid, col, row = fid[inside], col[inside], row[inside]
        zs = z3[fid]
        # perspective-correct depth: 1/Z is affine in screen space
        depth = 1.0 / (w0[inside] / zs[:, 0] + w1[inside] / zs[:, 1] + w2[inside] / zs[:, 2])
        pixel = torch.div(fid, num_faces, rounding_mode="floor") * (height * width) + row * width + col
        new = zbuf.scatter_reduce(0, pixel, depth, "amin", include_self=True)
        win = (depth == new[pixel]) & (depth < zbuf[pixel])
        best = torch.full_like(fbuf, -1).scatter_reduce(
            0, pixel[win], fid[win] % num_faces, "amax", include_self=True
        )
        fbuf = torch.where(best >= 0, best, fbuf)
        zbuf = new
    return fbuf.reshape(batch, height, width), zbuf.reshape(batch, height, width)


@torch.no_grad()
def render(
    vertices: torch.Tensor,
    faces: torch.Tensor | np.ndarray,
    colours: torch.Tensor | np.ndarray,
    focal_length: float = FOCAL_LENGTH,
    principal_point: tuple[float, float] = (CROP_CENTER, CROP_CENTER),
    image_size: tuple[int, int] = (CROP_RES, CROP_RES),
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    ambient: float = 0.35,
) -> torch.Tensor:
    """Render flat-coloured meshes with Lambert shading (face normal vs the view direction).

    Convention: as the module docstring (camera at the origin looking down +z, pixel centres
    at +0.5). Shading is two-sided: a face's colour is scaled by
    ``ambient + (1 - ambient) * |n . d|`` with n its unit normal and d the unit direction from its
    centroid to the camera, so winding order does not matter; ``ambient=1`` draws flat colours.

    Args:
        vertices: (B, V, 3) metres, camera frame (e.g. ``body vertices + cam_t[:, None]``).
        faces: (F, 3) vertex indices.
        colours: (F, 3) or (B, F, 3) RGB in [0, 1] per face (e.g. ``part_face_colours``).
        focal_length: pixels (SPIN's crop: 5000).
        principal_point: (c_x, c_y) pixels (SPIN's crop: (112, 112)).
        image_size: (H, W) pixels.
        background: RGB in [0, 1].
        ambient: in [0, 1], the light a face turned edge-on still gets.

    Returns:
        (B, H, W, 3) uint8 images, on the device of ``vertices``.
    """
    device = vertices.device
    faces = torch.as_tensor(np.asarray(faces) if not torch.is_tensor(faces) else faces, device=device).long()
    colours = torch.as_tensor(colours, device=device, dtype=torch.float32)
    _check(vertices, faces, colours)
    if not 0.0 <= ambient <= 1.0:
        raise InputError(f"ambient must be within [0, 1], got {ambient}")
    face_index, _ = rasterize(vertices, faces, image_size, focal_length, principal_point)

    tri = vertices.float()[:, faces]  # (B, F, 3, 3)
    normal = torch.linalg.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0])
    normal = normal / normal.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    view = -tri.mean(2)
    view = view / view.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    shade = ambient + (1.0 - ambient) * (normal * view).sum(-1).abs()  # (B, F)
    colours = colours.expand(vertices.shape[0], -1, -1)
    lit = torch.cat(
        [
            colours * shade[..., None],
            torch.tensor(background, device=device, dtype=torch.float32).expand(vertices.shape[0], 1, 3),
        ],
        1,
    )  # (B, F + 1, 3): last = background
    index = torch.where(face_index >= 0, face_index, faces.shape[0])  # (B, H, W)
    image = torch.gather(lit, 1, index.reshape(vertices.shape[0], -1, 1).expand(-1, -1, 3))
    image = image.reshape(*face_index.shape, 3)
    return (image.clamp(0, 1) * 255.0).round().to(torch.uint8)
