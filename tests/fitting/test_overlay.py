"""Fits drawn over images: the image camera of a box, meshes where they project, depth, side view."""

import math

import numpy as np
import pytest
import torch

from spinfits.errors import InputError
from spinfits.fitting.data.dataset import crop_to_image
from spinfits.fitting.evaluation.overlay import (
    GT_KEYPOINT_COLOUR,
    OPENPOSE_KEYPOINT_COLOUR,
    FitRenderer,
    ImageCamera,
    draw_keypoints,
    overlay_meshes,
    side_view_vertices,
)
from spinfits.fitting.smplify.camera import perspective_projection

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small meshes: one thread is faster

#: A 200 x 240 image and a 180-px box in it; the body facing the camera, upright, at SPIN's depth.
HEIGHT, WIDTH = 240, 200
CENTER, SCALE = np.array([96.0, 124.0]), 0.9
CAM_T = np.array([[0.02, 0.15, 2 * 5000 / (224 * 0.8)]])


def textured_image() -> np.ndarray:
    """(H, W, 3) uint8 with a different colour at nearly every pixel (so changes show)."""
    rows, cols = np.mgrid[:HEIGHT, :WIDTH]
    return np.stack([(rows * 7) % 256, (cols * 5) % 256, (rows + cols) % 256], -1).astype(np.uint8)


def facing_pose() -> np.ndarray:
    """(1, 72): SMPL's rest pose turned 180 degrees about x: head up and facing the y-down camera."""
    pose = np.zeros((1, 72), dtype=np.float32)
    pose[0, 0] = math.pi
    return pose


@pytest.fixture(scope="module")
def renderer(body_files):
    return FitRenderer(body_files)


def image_points(renderer, points: torch.Tensor, camera: ImageCamera) -> np.ndarray:
    """(P, N, 2) image px of model-frame points (P, N, 3) seen at CAM_T."""
    cam_t = torch.as_tensor(CAM_T, dtype=torch.float32).expand(points.shape[0], -1)
    centre = torch.tensor([camera.principal_point], dtype=torch.float32).expand(points.shape[0], -1)
    return perspective_projection(points, cam_t, camera.focal_length, centre).numpy()


def test_box_camera_sees_what_the_crop_camera_sees():
    points = torch.tensor([[[0.3, -0.5, 1.0], [-0.2, 0.7, -0.4]]])
    cam_t = torch.tensor([[0.1, 0.2, 40.0]])
    crop = perspective_projection(points, cam_t, 5000.0, torch.tensor([[112.0, 112.0]])).numpy()
    expected = crop_to_image(crop, CENTER[None], np.array([SCALE]))
    camera = ImageCamera.from_box(CENTER, SCALE)
    direct = perspective_projection(
        points, cam_t, camera.focal_length, torch.tensor([camera.principal_point])
    ).numpy()
    np.testing.assert_allclose(direct, expected, rtol=1e-5)
    assert camera.focal_length == pytest.approx(5000 * 180 / 224)


def test_mesh_is_drawn_where_it_projects_and_nowhere_else(renderer):
    image = textured_image()
    camera = ImageCamera.from_box(CENTER, SCALE)
    vertices = renderer.vertices(facing_pose(), np.zeros((1, 10)))
    placed = vertices + torch.as_tensor(CAM_T, dtype=torch.float32)[:, None]
    out = overlay_meshes(image, placed, renderer.faces, renderer.colours, camera)
    assert out.shape == image.shape and out.dtype == np.uint8

    # under every SMPL body joint but the hands and feet (the limbs' ends are thin) the mesh shows
    joints = renderer.model(torch.as_tensor(facing_pose()), torch.zeros(1, 10)).smpl_joints
    xy = image_points(renderer, joints, camera)[0]
    inner = [j for j in range(22) if j not in (10, 11)]
    cols, rows = np.floor(xy[inner]).astype(int).T
    assert ((out[rows, cols].astype(int) - image[rows, cols]) != 0).any(-1).all()

    # outside the projected vertices' box (plus 2 px) every pixel is the image's own
    box = image_points(renderer, vertices, camera)[0]
    (x0, y0), (x1, y1) = np.floor(box.min(0)) - 2, np.ceil(box.max(0)) + 2
    rows, cols = np.mgrid[:HEIGHT, :WIDTH]
    far = (cols < x0) | (cols > x1) | (rows < y0) | (rows > y1)
    assert far.sum() > 0.3 * far.size
    np.testing.assert_array_equal(out[far], image[far])
    changed = (out != image).any(-1)
    assert changed.sum() > 500  # a body, not a few pixels


def test_alpha_blends_flat_colours_with_the_image(renderer):
    image = textured_image()
    camera = ImageCamera.from_box(CENTER, SCALE)
    placed = renderer.vertices(facing_pose(), np.zeros((1, 10))) + torch.as_tensor(CAM_T, dtype=torch.float32)
    red = np.tile([1.0, 0.0, 0.0], (renderer.faces.shape[0], 1))
    out = overlay_meshes(image, placed, renderer.faces, red, camera, alpha=0.5, ambient=1.0)
    seen = (out != image).any(-1)
    expected = np.round(0.5 * np.array([255.0, 0.0, 0.0]) + 0.5 * image[seen])
    np.testing.assert_allclose(out[seen], expected, atol=1)


def test_nearer_surface_wins_whatever_the_order(renderer):
    """Two bodies overlapping on screen: the nearer one is drawn where they overlap."""
    image = textured_image()
    camera = ImageCamera.from_box(CENTER, SCALE)
    body = renderer.vertices(facing_pose(), np.zeros((1, 10)))[0]
    near_t, far_t = torch.tensor(CAM_T[0], dtype=torch.float32), torch.tensor(CAM_T[0], dtype=torch.float32)
    near_t[0] -= 0.15
    far_t[0] += 0.25
    far_t[2] += 8.0  # further away and shifted: overlapping, not hidden
    near, far = body + near_t, body + far_t
    faces = renderer.faces.shape[0]
    red, blue = np.tile([1.0, 0.0, 0.0], (faces, 1)), np.tile([0.0, 0.0, 1.0], (faces, 1))

    def draw(meshes, colours):
        return overlay_meshes(
            image, torch.stack(meshes), renderer.faces, np.stack(colours), camera, alpha=1.0, ambient=1.0
        )

    near_only = (draw([near], [red]) != image).any(-1)
    far_only = (draw([far], [blue]) != image).any(-1)
    overlap = near_only & far_only
    assert overlap.sum() > 100 and (far_only & ~near_only).sum() > 100
    for out in (draw([near, far], [red, blue]), draw([far, near], [blue, red])):
        np.testing.assert_array_equal(out[overlap], np.tile([255, 0, 0], (overlap.sum(), 1)))
        np.testing.assert_array_equal(
            out[far_only & ~near_only], np.tile([0, 0, 255], ((far_only & ~near_only).sum(), 1))
        )
    # moved in front of the red body, the blue one covers it
    closer_t = far_t.clone()
    closer_t[2] = near_t[2] - 4.0
    closer = body + closer_t
    both = near_only & (draw([closer], [blue]) != image).any(-1)
    out = draw([near, closer], [red, blue])
    assert both.sum() > 100
    np.testing.assert_array_equal(out[both], np.tile([0, 0, 255], (both.sum(), 1)))


def test_side_view_differs_from_the_front(renderer):
    image = textured_image()
    camera = ImageCamera.from_box(CENTER, SCALE)
    views = renderer.views(image, renderer.vertices(facing_pose(), np.zeros((1, 10))), CAM_T, camera)
    assert views.front.shape == views.side.shape == image.shape
    side_body = (views.side != 255).any(-1)
    front_body = (views.front != image).any(-1)
    assert side_body.sum() > 300
    assert not np.array_equal(side_body, front_body)
    # the rest pose's arms are spread sideways: seen from the side the body is much narrower
    width = lambda mask: np.ptp(np.flatnonzero(mask.any(0)))  # noqa: E731
    assert width(side_body) < 0.5 * width(front_body)
    # turning twice by 90 degrees is turning by 180
    placed = torch.randn(2, 50, 3) + torch.tensor([0.0, 0.0, 30.0])
    twice = side_view_vertices(side_view_vertices(placed))
    half_turn = side_view_vertices(placed, 180.0)
    torch.testing.assert_close(twice, half_turn, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(twice.mean(1), placed.mean(1), atol=1e-5, rtol=1e-5)


def test_views_draw_the_keypoints_on_the_front(renderer):
    image = np.full((HEIGHT, WIDTH, 3), 40, dtype=np.uint8)
    keypoints = np.zeros((49, 3))
    keypoints[3] = (20.0, 30.0, 0.8)  # OpenPose joint
    keypoints[30] = (180.0, 30.0, 1.0)  # ground-truth joint
    keypoints[31] = (100.0, 10.0, 0.0)  # missing: not drawn
    camera = ImageCamera.from_box(CENTER, SCALE)
    views = renderer.views(
        image, renderer.vertices(facing_pose(), np.zeros((1, 10))), CAM_T, camera, keypoints
    )
    assert tuple(views.front[30, 20]) == OPENPOSE_KEYPOINT_COLOUR
    assert tuple(views.front[30, 180]) == GT_KEYPOINT_COLOUR
    assert tuple(views.front[10, 100]) == (40, 40, 40)
    assert tuple(views.side[30, 20]) == (255, 255, 255)  # keypoints belong to the image, not the side view


def test_draw_keypoints_scales_and_skips():
    image = np.zeros((400, 400, 3), dtype=np.uint8)
    out = draw_keypoints(image, np.array([[200.0, 200.0, 1.0], [50.0, 50.0, 0.0]]))
    drawn = (out != 0).any(-1)
    assert drawn[200, 200] and not drawn[50, 50]
    assert 4 <= np.flatnonzero(drawn[200]).size <= 12  # radius grows with the image
    assert (draw_keypoints(image, np.array([[-50.0, 500.0, 1.0]])) == 0).all()  # outside: nothing


def test_bad_inputs_say_what_was_expected(renderer):
    camera = ImageCamera.from_box(CENTER, SCALE)
    vertices = torch.zeros(1, renderer.model.smpl.v_template.shape[0], 3)
    with pytest.raises(InputError, match=r"image must be an \(H, W, 3\) uint8 RGB array, got a float64"):
        overlay_meshes(np.zeros((4, 4, 3)), vertices, renderer.faces, renderer.colours, camera)
    with pytest.raises(InputError, match=r"vertices must be a \(P, V, 3\) tensor.*vertices\[None\]"):
        overlay_meshes(np.zeros((4, 4, 3), np.uint8), vertices[0], renderer.faces, renderer.colours, camera)
    with pytest.raises(InputError, match=r"colours must be \(F, 3\) or \(P, F, 3\)"):
        overlay_meshes(np.zeros((4, 4, 3), np.uint8), vertices, renderer.faces, np.ones((3, 3)), camera)
    with pytest.raises(InputError, match=r"box scale must be finite and > 0 \(box side / 200 px\), got -1"):
        ImageCamera.from_box(CENTER, -1.0)
    with pytest.raises(InputError, match=r"keypoints must be \(K, 3\)"):
        draw_keypoints(np.zeros((4, 4, 3), np.uint8), np.zeros((5, 2)))
