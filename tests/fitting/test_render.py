"""fitting.synthetic.render: the z-buffer rasteriser, part colours, and synthetic crops."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from spinfits.errors import InputError
from spinfits.fitting.body.body_model import SpinBodyModel
from spinfits.fitting.synthetic.people import SyntheticConfig, make_synthetic_dataset
from spinfits.fitting.synthetic.render import (
    PART_PALETTE,
    SMPL_PART_NAMES,
    face_parts,
    part_face_colours,
    rasterize,
    render,
)

HEAD = SMPL_PART_NAMES.index("head")
LEFT_ARM = [SMPL_PART_NAMES.index(n) for n in ("left_shoulder", "left_elbow", "left_wrist")]
RIGHT_ARM = [SMPL_PART_NAMES.index(n) for n in ("right_shoulder", "right_elbow", "right_wrist")]
F, C = 5000.0, (112.0, 112.0)


@pytest.fixture(autouse=True)
def one_thread():
    """Rasterising one crop is many tiny ops: on a busy 2-core box, intra-op threads make it
    100x slower (oversubscription), so these tests (and the timing one) run single-threaded."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def people(standin_files):
    """Four synthetic people: camera-frame vertices (4, V, 3) and the dataset arrays."""
    data = make_synthetic_dataset(standin_files, SyntheticConfig(rows=4, seed=1, truncated_fraction=0.0))
    out = SpinBodyModel(standin_files)(
        torch.tensor(data["pose"], dtype=torch.float32),
        torch.tensor(data["shape"], dtype=torch.float32),
        return_vertices=True,
    )
    return out.vertices + torch.tensor(data["gt_cam_t"], dtype=torch.float32)[:, None], data


def _rest_pose_vertices(files, yaw: float, depth: float = 50.0) -> torch.Tensor:
    """(1, V, 3) the rest-pose body upright in the camera frame (y down), rotated by yaw."""
    pose = torch.zeros(1, 72)
    pose[0, :3] = torch.tensor([np.pi, 0.0, 0.0])  # upright with y down, facing the camera
    verts = SpinBodyModel(files)(pose, torch.zeros(1, 10), return_vertices=True).vertices
    verts = verts - verts.mean(1, keepdim=True)
    c, s = np.cos(yaw), np.sin(yaw)
    rot = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=torch.float32)
    return verts @ rot.T + torch.tensor([0.0, 0.0, depth])


def _project(vertices: torch.Tensor) -> torch.Tensor:
    return F * vertices[..., :2] / vertices[..., 2:3] + torch.tensor(C)


def test_palette_is_data():
    assert PART_PALETTE.shape == (24, 3) and len(SMPL_PART_NAMES) == 24
    assert PART_PALETTE.min() >= 0 and PART_PALETTE.max() <= 1
    assert len({tuple(c) for c in PART_PALETTE}) == 24  # all distinct


def test_face_parts_first_vertex(standin_files):
    parts = face_parts(standin_files.smpl.faces, standin_files.smpl.weights)
    expected = standin_files.smpl.weights[standin_files.smpl.faces[:, 0]].argmax(1)
    np.testing.assert_array_equal(parts, expected)
    assert set(parts) == set(range(24))


def test_nearest_face_wins_in_any_order():
    # two squares covering the middle of a 20x20 image; the far one is bigger
    near = torch.tensor([[-1, -1, 2], [1, -1, 2], [1, 1, 2], [-1, 1, 2]], dtype=torch.float32)
    far = near * torch.tensor([2.0, 2.0, 1.0]) + torch.tensor([0.0, 0.0, 2.0])
    quad = torch.tensor([[0, 1, 2], [0, 2, 3]])
    for first, second, near_faces in ((near, far, (0, 1)), (far, near, (2, 3))):
        vertices = torch.cat([first, second])[None]
        faces = torch.cat([quad, quad + 4])
        index, depth = rasterize(vertices, faces, (20, 20), 4.0, (10.0, 10.0))
        # near square spans pixels 8..11, far one (4 m away, 2x bigger) likewise 8..11: hidden
        assert set(index[0, 8:12, 8:12].unique().tolist()) <= set(near_faces)
        assert torch.allclose(depth[0, 8:12, 8:12], torch.tensor(2.0))
        assert (index[0, :8] == -1).all() and (index[0, 12:] == -1).all()


def test_square_silhouette_exact():
    # a square from x = 5.2 to 14.8 px covers pixel centres 5.5 .. 14.5 -> columns 5..14
    z = 3.0
    corners = torch.tensor([[5.2, 5.2], [14.8, 5.2], [14.8, 14.8], [5.2, 14.8]]) - 10.0
    vertices = torch.cat([corners * z / 6.0, torch.full((4, 1), z)], 1)[None]
    image = render(
        vertices, np.array([[0, 1, 2], [0, 2, 3]]), np.zeros((2, 3)), 6.0, (10.0, 10.0), (20, 20), ambient=1.0
    )
    mask = (image[0] == 0).all(-1)
    assert mask.sum() == 100 and mask[5:15, 5:15].all()


def test_person_covers_plausible_fraction_and_bbox(people, standin_files):
    vertices, data = people
    images = render(
        vertices,
        standin_files.smpl.faces,
        part_face_colours(standin_files.smpl.faces, standin_files.smpl.weights),
    )
    assert images.shape == (4, 224, 224, 3) and images.dtype == torch.uint8
    for b in range(4):
        mask = (images[b] != 255).any(-1)
        assert 0.04 < mask.float().mean() < 0.5
        rows, cols = torch.nonzero(mask, as_tuple=True)
        uv = _project(vertices[b])
        # silhouette box (pixel centres) vs the projected vertices' box
        assert abs(cols.min() + 0.5 - uv[:, 0].min()) <= 2 and abs(cols.max() + 0.5 - uv[:, 0].max()) <= 2
        assert abs(rows.min() + 0.5 - uv[:, 1].min()) <= 2 and abs(rows.max() + 0.5 - uv[:, 1].max()) <= 2


def test_head_has_head_colour(standin_files):
    vertices = _rest_pose_vertices(standin_files, yaw=0.0)
    colours = part_face_colours(standin_files.smpl.faces, standin_files.smpl.weights)
    image = render(vertices, standin_files.smpl.faces, colours, ambient=1.0)[0]
    head = standin_files.smpl.weights.argmax(1) == HEAD
    u, v = _project(vertices[0, torch.as_tensor(head)]).median(0).values.long().tolist()
    expected = torch.as_tensor((PART_PALETTE[HEAD] * 255).round(), dtype=torch.uint8)
    patch = image[v - 1 : v + 2, u - 1 : u + 2].reshape(-1, 3)
    assert (patch == expected).all(-1).float().mean() >= 0.8


def _arm_pixels(image: torch.Tensor, parts: list[int]) -> int:
    colours = torch.as_tensor((PART_PALETTE[parts] * 255).round(), dtype=torch.uint8)
    return int((image[:, :, None, :] == colours).all(-1).any(-1).sum())


@pytest.mark.parametrize(
    "yaw, near_arm, far_arm", [(np.pi / 2, LEFT_ARM, RIGHT_ARM), (-np.pi / 2, RIGHT_ARM, LEFT_ARM)]
)
def test_far_arm_hidden_in_side_view(standin_files, yaw, near_arm, far_arm):
    vertices = _rest_pose_vertices(standin_files, yaw=yaw)
    colours = part_face_colours(standin_files.smpl.faces, standin_files.smpl.weights)
    image = render(vertices, standin_files.smpl.faces, colours, ambient=1.0)[0]
    near, far = _arm_pixels(image, near_arm), _arm_pixels(image, far_arm)
    assert near > 50 and far < 0.2 * near, (near, far)


def test_front_and_back_show_different_arms_on_each_side(standin_files):
    """Facing the camera, the person's left arm is on the image's right; from behind, on the left."""
    colours = part_face_colours(standin_files.smpl.faces, standin_files.smpl.weights)
    for yaw, left_on_right in ((0.0, True), (np.pi, False)):
        image = render(
            _rest_pose_vertices(standin_files, yaw), standin_files.smpl.faces, colours, ambient=1.0
        )[0]
        right_half = _arm_pixels(image[:, 112:], LEFT_ARM)
        left_half = _arm_pixels(image[:, :112], LEFT_ARM)
        assert (right_half > left_half) == left_on_right


def test_render_is_fast(people, standin_files):
    vertices, _ = people
    colours = part_face_colours(standin_files.smpl.faces, standin_files.smpl.weights)
    render(vertices[:1], standin_files.smpl.faces, colours)
    start = time.perf_counter()
    render(vertices[:1], standin_files.smpl.faces, colours)
    assert time.perf_counter() - start < 0.25  # measured ~4-9 ms on a shared 2-core CPU


def test_small_chunks_same_image(people, standin_files):
    vertices, _ = people
    faces = torch.as_tensor(standin_files.smpl.faces)
    whole = rasterize(vertices[:2], faces, (224, 224), F, C)
    chunked = rasterize(vertices[:2], faces, (224, 224), F, C, max_candidates=5000)
    assert torch.equal(whole[1], chunked[1])
    assert (whole[0] == chunked[0]).float().mean() > 0.999  # equal-depth ties may differ


def test_bad_inputs_say_how_to_fix(standin_files):
    faces = standin_files.smpl.faces
    with pytest.raises(InputError, match="vertices\\[None\\]"):
        render(torch.zeros(10, 3), faces[:1] * 0, np.zeros((1, 3)))
    with pytest.raises(InputError, match="colours must be"):
        render(torch.ones(1, 10, 3), np.array([[0, 1, 2]]), np.zeros((2, 3)))
    with pytest.raises(InputError, match="faces index vertices"):
        render(torch.ones(1, 3, 3), np.array([[0, 1, 5]]), np.zeros((1, 3)))


def test_cli_writes_crop_pngs(tmp_path, standin_dir, capsys):
    from PIL import Image

    from spinfits.cli import main

    out, images = tmp_path / "synth.npz", tmp_path / "images"
    assert (
        main(
            [
                "data",
                "make-synthetic",
                str(out),
                "--n",
                "3",
                "--model-dir",
                str(standin_dir),
                "--images",
                str(images),
            ]
        )
        == 0
    )
    data = np.load(out)
    assert bool(data["images_are_crops"])
    for name in data["imgname"]:
        array = np.asarray(Image.open(images / str(name)))
        assert array.shape == (224, 224, 3) and array.dtype == np.uint8
        assert 0.04 < (array != 255).any(-1).mean() < 0.6
    assert "images_are_crops" in capsys.readouterr().out
