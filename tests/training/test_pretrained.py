"""load_pretrained: SPIN's, mmhuman3d's and torchvision's layouts, each written with the real names
and shapes and random values; the loaded model's forward equals SPIN's forward written
independently in torch.nn.functional (spin_hmr_reference) from the raw file."""

import os

import numpy as np
import pytest
import torch
from spin_hmr_reference import HEAD, SMALL, functional_hmr, random_hmr_state, spin_hmr_shapes

from spinfits.errors import InputError
from spinfits.training.pretrained import load_pretrained
from spinfits.training.regressor import HMR, RegressorConfig


@pytest.fixture(scope="module")
def mean_params(shared_data):
    return str(shared_data / "smpl_mean_params.npz")


@pytest.fixture(scope="module")
def images():
    """(2, 3, 64, 64) float64 stand-ins for normalised crops."""
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


@pytest.fixture(scope="module")
def resnet50_state():
    """SPIN's full HMR state dict (names and shapes of models/hmr.py), random values."""
    return random_hmr_state(spin_hmr_shapes(), seed=0)


def small_state(seed=0):
    return random_hmr_state(spin_hmr_shapes(*SMALL), seed=seed)


def assert_forward_matches(model, state, images):
    """The model's eval forward (float64) equals the functional forward of ``state``."""
    model = model.double().eval()
    with torch.no_grad():
        out = model(images)
        rotmat, betas, camera = functional_hmr(state, images)
    assert torch.isfinite(rotmat).all() and betas.abs().max() > 1e-3  # a non-trivial check
    np.testing.assert_allclose(out.rotmat.numpy(), rotmat.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(out.betas.numpy(), betas.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(out.camera.numpy(), camera.numpy(), rtol=1e-9, atol=1e-9)


def test_spins_model_checkpoint(tmp_path, mean_params, resnet50_state, images):
    path = tmp_path / "model_checkpoint.pt"
    torch.save(  # SPIN's CheckpointSaver: models, optimizers, then the loader's position
        {
            "model": resnet50_state,
            "optimizer": {"state": {}, "param_groups": [{"lr": 5e-5, "params": [0, 1]}]},
            "epoch": 12,
            "batch_idx": 0,
            "batch_size": 64,
            "dataset_perm": None,
            "total_step_count": 400000,
        },
        path,
    )
    model = HMR(mean_params)
    result = load_pretrained(model, path)
    assert (result.layout, result.source, result.loaded) == ("spin", "'model' entry", len(resnet50_state))
    assert result.left_initial == () and result.ignored == ()
    assert result.describe() == (
        f"{path}: spin layout (SPIN's HMR state dict, its 'model' entry), {len(resnet50_state)} tensors "
        "loaded; missing none; unexpected none"
    )
    assert_forward_matches(model, resnet50_state, images)


def test_mmhuman3d_hmr_checkpoint(tmp_path, mean_params, resnet50_state, images):
    state = {}
    for name, value in resnet50_state.items():
        state[("head." if name.startswith(HEAD) else "backbone.") + name] = value
    extras = {  # resnet50_hmr_pw3d also saves its discriminator and body models
        "disc.pose_discriminator.fc_layer.0.weight": torch.randn(32, 9),
        "body_model_train.shapedirs": torch.randn(6890, 3, 10),
        "body_model_test.J_regressor": torch.randn(24, 6890),
    }
    path = tmp_path / "resnet50_hmr_pw3d.pth"
    torch.save(
        {"meta": {"mmcv_version": "1.4.0", "epoch": 100, "iter": 5000}, "state_dict": {**state, **extras}},
        path,
    )
    model = HMR(mean_params)
    result = load_pretrained(model, path)
    assert (result.layout, result.source, result.loaded) == ("mmhuman3d", "'state_dict' entry", len(state))
    assert set(result.ignored) == set(extras) and result.left_initial == ()
    assert_forward_matches(model, resnet50_state, images)


def test_torchvision_resnet50_loads_the_backbone_only(tmp_path, mean_params, resnet50_state, images):
    backbone = {
        name: value
        for name, value in resnet50_state.items()
        if not name.startswith(HEAD) and not name.endswith("num_batches_tracked")  # as the 2017 file
    }
    fc = {"fc.weight": torch.randn(1000, 2048), "fc.bias": torch.randn(1000)}
    path = tmp_path / "resnet50-19c8e357.pth"
    torch.save({**backbone, **fc}, path)
    torch.manual_seed(0)
    model = HMR(mean_params)
    initial = {name: value.clone() for name, value in model.state_dict().items()}
    result = load_pretrained(model, path)
    assert (result.layout, result.source, result.loaded) == ("torchvision", "top level", len(backbone))
    assert set(result.ignored) == set(fc)
    assert (
        f"{len(backbone)} tensors loaded; missing 13 (init_pose, init_shape, init_cam (and 10 more)); "
        "unexpected 2 (fc.weight, fc.bias); 53 BatchNorm num_batches_tracked counters absent"
    ) in result.describe()
    head = {name for name in initial if name.startswith(HEAD)}
    counters = {name for name in initial if name.endswith("num_batches_tracked")}
    assert set(result.left_initial) == head | counters and len(head) == 13
    after = model.state_dict()
    for name in head | counters:
        assert torch.equal(after[name], initial[name]), name
    assert not torch.equal(after["conv1.weight"], initial["conv1.weight"])
    # the forward: the file's backbone, the model's own initial head
    assert_forward_matches(model, {**backbone, **{name: initial[name] for name in head}}, images)


def test_dataparallel_prefix_and_a_bare_state_dict(tmp_path, mean_params, images):
    state = small_state()
    path = tmp_path / "dp.pt"
    torch.save({f"module.{name}": value for name, value in state.items()}, path)
    model = HMR(mean_params, RegressorConfig(backbone="small"))
    result = load_pretrained(model, path)
    assert (result.layout, result.source, result.loaded) == ("spin", "top level", len(state))
    assert_forward_matches(model, state, images)


def test_numpy_values_beside_the_weights_load(tmp_path, mean_params, images):
    """SPIN's saver keeps the sampler's permutation beside the weights and mmcv keeps a ``meta``:
    numpy arrays and scalars there are data, and torch's safe loader is told to rebuild them."""
    state = small_state()
    path = tmp_path / "with_numpy.pt"
    meta = {"epoch": np.int64(7), "time": np.array(["2019"]), "hist": np.zeros((2, 3), np.float32)}
    torch.save({"model": state, "dataset_perm": np.random.default_rng(0).permutation(10), "meta": meta}, path)
    model = HMR(mean_params, RegressorConfig(backbone="small"))
    assert load_pretrained(model, path).loaded == len(state)
    assert_forward_matches(model, state, images)


def save_small(tmp_path, state, name="weights.pt"):
    path = tmp_path / name
    torch.save({"model": state}, path)
    return path


def test_missing_unexpected_and_wrong_shapes_are_listed(tmp_path, mean_params):
    state = small_state()
    del state["decpose.weight"], state["layer1.0.bn1.running_var"]
    state["extra.weight"] = torch.zeros(3)
    state["fc1.weight"] = torch.zeros(1024, 100)
    model = HMR(mean_params, RegressorConfig(backbone="small"))
    before = {name: value.clone() for name, value in model.state_dict().items()}
    with pytest.raises(
        InputError,
        match=r"do not fit the small regressor, read as SPIN's HMR state dict \(its 'model' entry\): "
        r"2 missing: layer1\.0\.bn1\.running_var, decpose\.weight; 1 unexpected: extra\.weight; "
        r"1 with the wrong shape: fc1\.weight \(1024, 100\) \(model \(1024, 669\)\)\. "
        r"Expected the state dict of SPIN's models/hmr\.py HMR",
    ):
        load_pretrained(model, save_small(tmp_path, state))
    for name, value in model.state_dict().items():  # nothing was copied
        assert torch.equal(value, before[name]), name


def test_long_lists_are_cut_with_a_count(tmp_path, mean_params):
    state = {name: value for name, value in small_state().items() if not name.startswith("layer4.")}
    model = HMR(mean_params, RegressorConfig(backbone="small"))
    with pytest.raises(InputError, match=r"20 missing: layer4\.0\.conv1\.weight, .* \(and 10 more\)\. "):
        load_pretrained(model, save_small(tmp_path, state))


def test_small_backbone_refuses_resnet50_weights(tmp_path, mean_params, resnet50_state):
    model = HMR(mean_params, RegressorConfig(backbone="small"))
    with pytest.raises(
        InputError,
        match=r"\d+ with the wrong shape: conv1\.weight \(64, 3, 7, 7\) \(model \(16, 3, 7, 7\)\), .*"
        r"A 'small' backbone cannot take resnet50 weights: use --backbone resnet50",
    ):
        load_pretrained(model, save_small(tmp_path, resnet50_state))


def test_resnet50_says_when_weights_are_the_small_backbones(tmp_path, mean_params):
    model = HMR(mean_params)
    with pytest.raises(InputError, match=r"These are weights of the 'small' backbone: use --backbone small"):
        load_pretrained(model, save_small(tmp_path, small_state()))


def test_non_finite_values_are_refused(tmp_path, mean_params):
    state = small_state()
    state["deccam.bias"] = torch.tensor([0.0, float("nan"), 0.0])
    model = HMR(mean_params, RegressorConfig(backbone="small"))
    with pytest.raises(InputError, match=r"1 with NaN or infinite values: deccam\.bias"):
        load_pretrained(model, save_small(tmp_path, state))


def test_mmhuman3d_with_a_neck_is_not_an_hmr(tmp_path, mean_params):
    state = {("head." if n.startswith(HEAD) else "backbone.") + n: v for n, v in small_state().items()}
    state["neck.encoder.weight_ih_l0"] = torch.zeros(3, 2)
    path = tmp_path / "vibe.pth"
    torch.save({"state_dict": state}, path)
    model = HMR(mean_params, RegressorConfig(backbone="small"))
    with pytest.raises(
        InputError,
        match=r"an mmhuman3d model with a neck \(neck\.encoder\.weight_ih_l0\).*only mmhuman3d's HMR",
    ):
        load_pretrained(model, path)


def test_a_file_of_no_known_layout_names_its_top_level_keys(tmp_path, mean_params):
    path = tmp_path / "other.pt"
    torch.save({"weights": {"encoder.weight": torch.zeros(2)}, "step": 3}, path)
    model = HMR(mean_params, RegressorConfig(backbone="small"))
    with pytest.raises(
        InputError,
        match=r"are none of the layouts spinfits reads: its top-level keys are weights, step; expected "
        r"SPIN's model_checkpoint\.pt .* an mmhuman3d HMR checkpoint .* torchvision's resnet50",
    ):
        load_pretrained(model, path)
    torch.save([torch.zeros(2)], path)
    with pytest.raises(InputError, match=r"hold a list, not a dict of tensors"):
        load_pretrained(model, path)


@pytest.mark.parametrize("content", [b"", b"not a torch file at all", b"PK\x03\x04garbage"])
def test_unreadable_or_missing_file(tmp_path, mean_params, content):
    model = HMR(mean_params, RegressorConfig(backbone="small"))
    path = tmp_path / "broken.pt"
    path.write_bytes(content)
    with pytest.raises(
        InputError,
        match=r"pretrained weights .*broken\.pt cannot be read \((torch cannot read it|it is not a file of tensors)",
    ):
        load_pretrained(model, path)
    with pytest.raises(InputError, match=r"pretrained weights .*absent\.pt do not exist"):
        load_pretrained(model, tmp_path / "absent.pt")


def test_a_file_carrying_a_pickle_payload_is_refused(tmp_path, mean_params):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "model_checkpoint.pt"
    torch.save({"model": small_state(), "optimizer": Payload()}, path)
    model = HMR(mean_params, RegressorConfig(backbone="small"))
    with pytest.raises(
        InputError, match=r"cannot be read \(it holds a pickled (posix|os)\.system, .*nothing from it was run"
    ) as caught:
        load_pretrained(model, path)
    assert "weights_only=False" not in str(caught.value) and not marker.exists()
