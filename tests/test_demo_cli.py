"""``spinfits demo`` on SPIN's own example image (im1010.jpg, its box and its OpenPose JSON)."""

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from spinfits.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small meshes: one thread is faster

BOX = (17, 37, 117, 142)  # im1010_bbox.json: x, y, width, height


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A training checkpoint of a fresh "small" regressor (input 112 px, as the README's demo)."""
    from spinfits.fitting.data.mean_params import spin_mean_params_path
    from spinfits.training.checkpoint import TrainingState, save_training_state
    from spinfits.training.regressor import HMR, RegressorConfig

    torch.manual_seed(0)
    model = HMR(str(spin_mean_params_path()), RegressorConfig(backbone="small"))
    folder = tmp_path_factory.mktemp("run") / "checkpoint_000000"
    folder.mkdir()
    state = TrainingState(
        step=5,
        snapshot_id="none",
        model=model.state_dict(),
        optimizer={},
        run="t",
        backbone="small",
        input_res=112,
    )
    save_training_state(folder, state)
    return folder


def read(path):
    with Image.open(path) as picture:
        return np.asarray(picture.convert("RGB")), dict(picture.text)


def test_demo_with_a_box_draws_over_the_original_image(
    shared_data, standin_dir, checkpoint, tmp_path, capsys
):
    image = shared_data / "im1010.jpg"
    out = tmp_path / "im1010"
    argv = ["demo", "--image", str(image), "--bbox", str(shared_data / "im1010_bbox.json")]
    assert (
        main([*argv, "--checkpoint", str(checkpoint), "--model-dir", str(standin_dir), "--out", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    assert "side 142.0 px" in printed and "stand-in body model" in printed

    original = np.asarray(Image.open(image).convert("RGB"))
    front, text = read(f"{out}_shape.png")
    side, side_text = read(f"{out}_shape_side.png")
    assert front.shape == side.shape == original.shape == (192, 153, 3)
    assert "stand-in body model" in text["Description"] and "stand-in body model" in side_text["Description"]
    x, y, w, h = BOX
    inside = (front[y : y + h, x : x + w] != original[y : y + h, x : x + w]).any(-1)
    assert inside.mean() > 0.1  # the body, drawn in the box
    np.testing.assert_array_equal(front[:30, :15], original[:30, :15])  # left of and above the box: the image
    assert (side[:30, :15] == 255).all()  # the side view is on white
    assert not list(tmp_path.glob("*smplify*"))


def test_demo_with_openpose_refines_with_smplify(shared_data, standin_dir, checkpoint, tmp_path, capsys):
    out = tmp_path / "person"
    code = main(
        [
            "demo",
            "--image",
            str(shared_data / "im1010.jpg"),
            "--openpose",
            str(shared_data / "im1010_openpose.json"),
            "--checkpoint",
            str(checkpoint / "training_state.pt"),
            "--model-dir",
            str(standin_dir),
            "--refine",
            "--iterations",
            "5",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    before, after = map(float, re.search(r"loss (\S+) \(regressor\) -> (\S+)", printed).groups())
    assert after < before
    regressed, _ = read(f"{out}_shape.png")
    refined, text = read(f"{out}_smplify.png")
    assert regressed.shape == refined.shape == (192, 153, 3)
    assert "SMPLify" in text["Description"] and "stand-in body model" in text["Description"]
    assert (regressed != refined).any(-1).sum() > 200  # the refined body is elsewhere
    assert read(f"{out}_smplify_side.png")[0].shape == (192, 153, 3)
    # the OpenPose keypoints are drawn: the confident nose keypoint (66.4, 47.0) is yellow-ish
    nose = refined[47, 66].astype(int)
    assert nose[0] > 200 and nose[1] > 180 and nose[2] < 80


def test_demo_input_errors_exit_2_with_a_message(shared_data, standin_dir, checkpoint, tmp_path, capsys):
    base = ["demo", "--image", str(shared_data / "im1010.jpg"), "--checkpoint", str(checkpoint)]
    base += ["--model-dir", str(standin_dir), "--out", str(tmp_path / "x")]
    assert main([*base, "--bbox", str(shared_data / "im1010_bbox.json"), "--refine"]) == 2
    assert "spinfits demo: error: --refine fits SMPLify to OpenPose keypoints" in capsys.readouterr().err

    bad = tmp_path / "box.json"
    bad.write_text(json.dumps({"box": [1, 2, 3, 4]}))
    assert main([*base, "--bbox", str(bad)]) == 2
    assert 'expected JSON {"bbox": [x, y, width, height]}' in capsys.readouterr().err

    bad.write_text(json.dumps({"bbox": [1, 2, 0, 4]}))
    assert main([*base, "--bbox", str(bad)]) == 2
    assert "width and height > 0" in capsys.readouterr().err

    assert main([*base, "--openpose", str(shared_data / "im1010_openpose.json"), "--person", "3"]) == 2
    assert "holds 1 people, asked for person 3" in capsys.readouterr().err

    base[base.index(str(checkpoint))] = str(tmp_path / "nowhere")
    assert main([*base, "--bbox", str(shared_data / "im1010_bbox.json")]) == 2
    assert "does not exist: pass a run folder" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png"))
