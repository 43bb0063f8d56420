"""``spinfits export-checkpoint``: a trained ResNet-50 regressor written in SPIN's
model_checkpoint.pt layout loads as SPIN's demo.py / eval.py load it (every name and shape of SPIN's
HMR, forward equal to SPIN's written independently), and round-trips through spinfits."""

import numpy as np
import pytest
import torch
from spin_hmr_reference import functional_hmr, spin_hmr_shapes

from spinfits.cli import main
from spinfits.training.checkpoint import TrainingState, save_training_state
from spinfits.training.pretrained import read_pretrained
from spinfits.training.trained_regressor import load_regressor


def _checkpoint(folder, backbone="resnet50", seed=0):
    from spinfits.fitting.data.mean_params import spin_mean_params_path
    from spinfits.training.regressor import HMR, RegressorConfig

    torch.manual_seed(seed)
    model = HMR(str(spin_mean_params_path()), RegressorConfig(backbone=backbone))
    with torch.no_grad():  # non-trivial batch statistics, so the forward checks them
        for name, value in model.state_dict().items():
            if name.endswith("running_var"):
                value.uniform_(0.5, 1.5)
            elif name.endswith("running_mean"):
                value.normal_(0, 0.1)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-5)
    model(torch.randn(1, 3, 64, 64)).betas.sum().backward()
    optimizer.step()
    folder.mkdir(parents=True)
    state = TrainingState(
        step=42,
        snapshot_id="SNAP",
        model=model.state_dict(),
        optimizer=optimizer.state_dict(),
        run="exp",
        backbone=backbone,
        input_res=224,
    )
    save_training_state(folder, state)
    return folder


@pytest.fixture(scope="module")
def run_checkpoint(tmp_path_factory):
    return _checkpoint(tmp_path_factory.mktemp("runs") / "checkpoint_000000")


def test_spin_layout_loads_as_spins_demo_loads_it(run_checkpoint, tmp_path, capsys):
    out = tmp_path / "model_checkpoint.pt"
    assert main(["export-checkpoint", str(run_checkpoint), str(out), "--layout", "spin"]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out}: 331 tensors in spin's layout (run exp, step 42)")
    # SPIN: checkpoint = torch.load(path); model.load_state_dict(checkpoint['model'], strict=False)
    saved = torch.load(out, weights_only=True)  # tensors and plain values only
    shapes = spin_hmr_shapes()
    assert {name: tuple(value.shape) for name, value in saved["model"].items()} == shapes
    assert saved["total_step_count"] == 42 and saved["spinfits"]["snapshot_id"] == "SNAP"
    assert len(saved["optimizer"]["state"]) == len(saved["optimizer"]["param_groups"][0]["params"])
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    trained = load_regressor(run_checkpoint)
    with torch.no_grad():
        ours = trained.model.double()(images)
        rotmat, betas, camera = functional_hmr(saved["model"], images)
    np.testing.assert_allclose(ours.rotmat.numpy(), rotmat.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ours.betas.numpy(), betas.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ours.camera.numpy(), camera.numpy(), rtol=1e-9, atol=1e-9)
    # ... and back: spinfits reads the exported file with its run and step
    back = load_regressor(out)
    assert (back.backbone, back.input_res, back.run, back.step) == ("resnet50", 224, "exp", 42)
    assert back.origin == "spin layout ('model' entry), exported from run exp, step 42"
    for name, value in trained.model.state_dict().items():
        assert torch.equal(back.model.state_dict()[name].to(value.dtype), value), name


def test_mmhuman3d_layout_round_trips(run_checkpoint, tmp_path, capsys):
    out = tmp_path / "hmr.pth"
    assert main(["export-checkpoint", str(run_checkpoint), str(out), "--layout", "mmhuman3d"]) == 0
    weights = read_pretrained(out)
    assert (weights.layout, weights.source, weights.ignored) == ("mmhuman3d", "'state_dict' entry", ())
    names = torch.load(out, weights_only=True)["state_dict"]
    assert "backbone.layer4.2.bn3.running_var" in names and "head.decpose.weight" in names
    trained = load_regressor(run_checkpoint)
    for name, value in trained.model.state_dict().items():
        assert torch.equal(weights.tensors[name], value), name


def test_export_refusals(run_checkpoint, tmp_path, capsys):
    small = _checkpoint(tmp_path / "small" / "checkpoint_000000", backbone="small")
    out = tmp_path / "out.pt"
    assert main(["export-checkpoint", str(small), str(out)]) == 2
    error = capsys.readouterr().err
    assert "is a small regressor, but spin's HMR is ResNet-50" in error and "--backbone resnet50" in error
    out.write_bytes(b"keep me")
    assert main(["export-checkpoint", str(run_checkpoint), str(out)]) == 2
    assert f"{out} already exists: choose another output path" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me"
    assert main(["export-checkpoint", str(tmp_path / "none"), str(tmp_path / "x.pt")]) == 2
    assert "does not exist: pass a run folder" in capsys.readouterr().err
