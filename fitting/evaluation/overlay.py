"""Fits drawn over their images: meshes in SMPL part colours, alpha-blended, depth-correct.

A fit lives in SPIN's crop frame: the ``crop_res`` (224) px square of a person's box (centre
``c`` image px, side ``200 * s`` px), seen with focal length ``f`` (5000 px) from the crop's
centre, the body at ``vertices + cam_t``. The same camera seen in the original image is a
perspective camera with

    focal length  f * 200 * s / crop_res     principal point  c

(crop point ``u`` is image point ``c + (u - crop_res / 2) * 200 s / crop_res``, and
``u - crop_res / 2 = f X / Z``): ``ImageCamera.from_box``. Rendering with it draws the mesh
where the fit projects its joints, at the image's own resolution, and the z-buffer
(``fitting.synthetic.render.rasterize``) keeps the nearest surface of every mesh drawn together.

Convention: as ``fitting.synthetic.render``: camera at the origin looking down +z, x right, y
down; pixel (row i, column j) is sampled at ``(j + 0.5, i + 0.5)``; keypoints are continuous
image coordinates in that convention. Images are (H, W, 3) uint8 RGB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from spinfits.errors import InputError
from spinfits.fitting.body.body_model import SpinBodyModel
from spinfits.fitting.body.joints import NUM_OPENPOSE_JOINTS
from spinfits.fitting.body.model_files import BodyModelFiles
from spinfits.fitting.data.rgb_image import check_rgb_image
from spinfits.fitting.data.spin_crop import BOX_SCALE_PX, CROP_RES, FOCAL_LENGTH
from spinfits.fitting.synthetic.render import part_face_colours, rasterize

#: RGB of the keypoints drawn: OpenPose's 25 (yellow), SPIN's 24 ground-truth joints (cyan).
OPENPOSE_KEYPOINT_COLOUR = (255, 221, 0)
GT_KEYPOINT_COLOUR = (0, 229, 255)


@dataclass(frozen=True)
class ImageCamera:
    """A pinhole camera of an image: ``x = f X / Z + c_x``, ``y = f Y / Z + c_y`` (pixels)."""

    focal_length: float
    principal_point: tuple[float, float]

    def cut(self, left: int, top: int) -> ImageCamera:
        """The same camera for the image cut at column ``left``, row ``top`` (``image[top:, left:]``)."""
        return ImageCamera(self.focal_length, (self.principal_point[0] - left, self.principal_point[1] - top))

    @classmethod
    def from_box(
        cls,
        center: np.ndarray | tuple[float, float],
        scale: float,
        crop_res: int = CROP_RES,
        focal_length: float = FOCAL_LENGTH,
    ) -> ImageCamera:
        """The crop camera of the box (``center`` (2,) image px, ``scale`` = side / 200) as seen
        in the original image (see the module docstring)."""
        center = np.asarray(center, dtype=np.float64).reshape(-1)
        if center.shape != (2,) or not np.isfinite(center).all():
            raise InputError(f"box center must be 2 finite image pixels (x, y), got {center.tolist()}")
        if not (math.isfinite(float(scale)) and float(scale) > 0):
            raise InputError(f"box scale must be finite and > 0 (box side / 200 px), got {scale}")
        return cls(
            focal_length * BOX_SCALE_PX * float(scale) / crop_res, (float(center[0]), float(center[1]))
        )


def _faces_and_colours(
    vertices: torch.Tensor, faces: np.ndarray | torch.Tensor, colours: np.ndarray | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated (F, 3) long faces and (P, F, 3) float colours on the vertices' device."""
    if not isinstance(vertices, torch.Tensor) or vertices.ndim != 3 or vertices.shape[-1] != 3:
        got = tuple(vertices.shape) if isinstance(vertices, torch.Tensor) else type(vertices).__name__
        raise InputError(
            f"vertices must be a (P, V, 3) tensor, metres in the camera frame, got {got}; for one "
            f"mesh use vertices[None]"
        )
    device = vertices.device
    faces = torch.as_tensor(np.asarray(faces) if not torch.is_tensor(faces) else faces, device=device).long()
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise InputError(f"faces must be (F, 3) vertex indices, got {tuple(faces.shape)}")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= vertices.shape[1]):
        raise InputError(
            f"faces index vertices {int(faces.min())}..{int(faces.max())}, the meshes have {vertices.shape[1]}"
        )
    colours = torch.as_tensor(colours, device=device, dtype=torch.float32)
    count, num_faces = vertices.shape[0], faces.shape[0]
    if tuple(colours.shape) == (num_faces, 3):
        colours = colours.expand(count, -1, -1)
    if tuple(colours.shape) != (count, num_faces, 3):
        raise InputError(
            f"colours must be (F, 3) or (P, F, 3) RGB in [0, 1] with P = {count}, F = {num_faces}, "
            f"got {tuple(colours.shape)}"
        )
    return faces, colours


def shaded_colours(
    vertices: torch.Tensor, faces: torch.Tensor, colours: torch.Tensor, ambient: float
) -> torch.Tensor:
    """(P, F, 3) face colours lit two-sided by a light at the camera (as ``render``):
    ``colour * (ambient + (1 - ambient) |n . d|)``, n the unit face normal, d the unit direction
    from the face's centroid to the camera. vertices (P, V, 3) camera frame; colours (P, F, 3)."""
    tri = vertices.float()[:, faces]  # (P, F, 3 corners, 3)
    normal = torch.linalg.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0])
    normal = normal / normal.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    view = -tri.mean(2)
    view = view / view.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    return colours * (ambient + (1.0 - ambient) * (normal * view).sum(-1).abs())[..., None]


@torch.no_grad()
def overlay_meshes(
    image: np.ndarray,
    vertices: torch.Tensor,
    faces: np.ndarray | torch.Tensor,
    colours: np.ndarray | torch.Tensor,
    camera: ImageCamera,
    alpha: float = 0.8,
    ambient: float = 0.35,
) -> np.ndarray:
    """Draw P meshes over ``image``, nearest surface first, blended with the image.

    Args:
        image: (H, W, 3) uint8 RGB.
        vertices: (P, V, 3) metres in the camera frame (``body vertices + cam_t[:, None]``).
        faces: (F, 3) vertex indices, shared by the P meshes.
        colours: (F, 3) or (P, F, 3) RGB in [0, 1] per face (``part_face_colours``).
        camera: the image's camera (``ImageCamera.from_box`` for a fit in a box's crop frame).
        alpha: in [0, 1], the mesh's weight where it covers a pixel (1 = opaque).
        ambient: in [0, 1], the light a face turned edge-on still gets.

    Returns:
        (H, W, 3) uint8: ``alpha * mesh + (1 - alpha) * image`` where a mesh is seen, the image
        itself elsewhere. The P meshes are rasterised together: where they overlap, the one
        nearer the camera is drawn.
    """
    check_rgb_image(image)
    faces, colours = _faces_and_colours(vertices, faces, colours)
    if not (0.0 <= alpha <= 1.0 and 0.0 <= ambient <= 1.0):
        raise InputError(f"alpha and ambient must be within [0, 1], got alpha {alpha}, ambient {ambient}")
    count, num_vertices = vertices.shape[:2]
    lit = shaded_colours(vertices, faces, colours, ambient).reshape(-1, 3)  # (P*F, 3)
    offsets = torch.arange(count, device=vertices.device)[:, None, None] * num_vertices
    all_faces = (faces[None] + offsets).reshape(-1, 3)  # (P*F, 3), the P meshes as one
    face_index, _ = rasterize(
        vertices.reshape(1, -1, 3), all_faces, image.shape[:2], camera.focal_length, camera.principal_point
    )
    face_index = face_index[0].cpu()  # (H, W)
    seen = face_index >= 0
    out = torch.from_numpy(image.copy())
    mesh = lit.cpu()[face_index[seen]] * 255.0  # (S, 3)
    blended = alpha * mesh + (1.0 - alpha) * out[seen].float()
    out[seen] = blended.round().clamp(0, 255).to(torch.uint8)
    return out.numpy()


def side_view_vertices(vertices: torch.Tensor, degrees: float = 90.0) -> torch.Tensor:
    """(P, V, 3) each mesh turned ``degrees`` about the camera's vertical (y) axis through its own
    centre (the mean of its vertices), as SPIN's demo draws its side view."""
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    turn = torch.tensor(
        [[cos, 0.0, sin], [0.0, 1.0, 0.0], [-sin, 0.0, cos]], dtype=vertices.dtype, device=vertices.device
    )
    center = vertices.mean(1, keepdim=True)
    return (vertices - center) @ turn + center


def draw_keypoints(
    image: np.ndarray,
    keypoints: np.ndarray,
    colours: np.ndarray | None = None,
    radius: int | None = None,
) -> np.ndarray:
    """Draw keypoints as filled discs with a dark ring; those with confidence 0 are left out.

    Args:
        image: (H, W, 3) uint8 RGB.
        keypoints: (K, 3) image pixels x, y, confidence (e.g. SPIN's 49, mapped to the image).
        colours: (K, 3) uint8 RGB, or None: for K = 49, OpenPose's 25 in
            ``OPENPOSE_KEYPOINT_COLOUR`` and the 24 ground-truth joints in ``GT_KEYPOINT_COLOUR``;
            otherwise all ``OPENPOSE_KEYPOINT_COLOUR``.
        radius: disc radius in pixels; None scales it with the image (at least 2 px).

    Returns:
        (H, W, 3) uint8, a copy.
    """
    check_rgb_image(image)
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.ndim != 2 or keypoints.shape[1] != 3:
        raise InputError(f"keypoints must be (K, 3) image pixels x, y, confidence, got {keypoints.shape}")
    count = keypoints.shape[0]
    if colours is None:
        colours = np.tile(np.asarray(OPENPOSE_KEYPOINT_COLOUR, dtype=np.uint8), (count, 1))
        if count > NUM_OPENPOSE_JOINTS:
            colours[NUM_OPENPOSE_JOINTS:] = GT_KEYPOINT_COLOUR
    colours = np.asarray(colours, dtype=np.uint8)
    if colours.shape != (count, 3):
        raise InputError(f"colours must be (K, 3) = ({count}, 3) uint8 RGB, got {colours.shape}")
    height, width = image.shape[:2]
    radius = max(2, round(min(height, width) / 160)) if radius is None else int(radius)
    ring = max(1.0, radius / 3.0)
    out = image.copy()
    for (x, y, confidence), colour in zip(keypoints, colours):
        if not (confidence > 0 and np.isfinite(x) and np.isfinite(y)):
            continue
        reach = radius + ring
        i0, i1 = max(0, int(y - reach)), min(height, int(y + reach) + 2)
        j0, j1 = max(0, int(x - reach)), min(width, int(x + reach) + 2)
        if i0 >= i1 or j0 >= j1:
            continue
        rows, cols = np.mgrid[i0:i1, j0:j1]
        distance = np.hypot(cols + 0.5 - x, rows + 0.5 - y)
        patch = out[i0:i1, j0:j1]
        patch[distance <= reach] = (20, 20, 20)
        patch[distance <= radius] = colour
    return out


@dataclass(frozen=True)
class FitViews:
    """A fit drawn two ways, both (H, W, 3) uint8 RGB of the image's size.

    front: the meshes over the image (and the keypoints, where given);
    side: the meshes turned 90 degrees about their vertical axis, on white (SPIN's side view),
    or None when not asked for.
    """

    front: np.ndarray
    side: np.ndarray | None


class FitRenderer:
    """Draws fits of one body model over images: evaluates the body, colours it by SMPL part.

    ``note`` is what a caption should say about the body model: "stand-in body model" for the
    generated stand-in (its pictures must say so), else "SMPL body model".
    """

    def __init__(
        self,
        files: BodyModelFiles,
        device: torch.device | str = "cpu",
        alpha: float = 0.8,
        ambient: float = 0.35,
    ) -> None:
        self.files = files
        self.device = torch.device(device)
        self.model = SpinBodyModel(files, self.device)
        self.faces = torch.as_tensor(files.smpl.faces, dtype=torch.long, device=self.device)
        self.colours = torch.as_tensor(
            part_face_colours(files.smpl.faces, files.smpl.weights), dtype=torch.float32, device=self.device
        )
        self.alpha, self.ambient = alpha, ambient
        self.note = "stand-in body model" if files.is_standin else "SMPL body model"

    @torch.no_grad()
    def vertices(self, pose: np.ndarray | torch.Tensor, betas: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(P, V, 3) model-frame vertices of pose (P, 72) axis-angle radians, betas (P, 10)."""
        pose = torch.as_tensor(pose, dtype=torch.float32, device=self.device).reshape(-1, 72)
        betas = torch.as_tensor(betas, dtype=torch.float32, device=self.device).reshape(-1, 10)
        return self.model(pose, betas, return_vertices=True).vertices

    @torch.no_grad()
    def views(
        self,
        image: np.ndarray,
        vertices: torch.Tensor,
        cam_t: np.ndarray | torch.Tensor,
        camera: ImageCamera,
        keypoints: np.ndarray | None = None,
        side: bool = True,
    ) -> FitViews:
        """Front and side views of P bodies seen by ``camera``.

        Args:
            image: (H, W, 3) uint8 RGB, the original image.
            vertices: (P, V, 3) model-frame vertices (``vertices(pose, betas)``).
            cam_t: (P, 3) camera translations, metres (the fits' ``cam_t``).
            camera: the image's camera, ``ImageCamera.from_box`` of the fits' box.
            keypoints: (K, 3) image pixels x, y, confidence drawn on the front view, or None.
            side: also draw the side view.
        """
        vertices = torch.as_tensor(vertices, dtype=torch.float32, device=self.device)
        cam_t = torch.as_tensor(cam_t, dtype=torch.float32, device=self.device).reshape(-1, 3)
        if vertices.ndim != 3 or cam_t.shape[0] != vertices.shape[0]:
            raise InputError(
                f"vertices (P, V, 3) and cam_t (P, 3) must describe the same P bodies, got "
                f"{tuple(vertices.shape)} and {tuple(cam_t.shape)}"
            )
        placed = vertices + cam_t[:, None, :]
        front = overlay_meshes(image, placed, self.faces, self.colours, camera, self.alpha, self.ambient)
        if keypoints is not None:
            front = draw_keypoints(front, keypoints)
        if not side:
            return FitViews(front, None)
        white = np.full_like(image, 255)
        turned = overlay_meshes(
            white, side_view_vertices(placed), self.faces, self.colours, camera, 1.0, self.ambient
        )
        return FitViews(front, turned)
