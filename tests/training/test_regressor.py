import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from spin_hmr_reference import HEAD, RESNET50, SMALL, spin_hmr_shapes

from spinfits.errors import InputError
from spinfits.fitting.body.rotations import rot6d_to_rotmat
from spinfits.fitting.data.mean_params import spin_mean_params
from spinfits.training.regressor import HMR, RegressorConfig, camera_translation


@pytest.fixture(scope="module")
def mean_params(shared_data):
    return str(shared_data / "smpl_mean_params.npz")


def test_rot6d_to_rotmat_recovers_rotations():
    matrices = Rotation.random(10, random_state=0).as_matrix()
    rot6d = torch.as_tensor(matrices[:, :, :2].reshape(1, 60))
    np.testing.assert_allclose(rot6d_to_rotmat(rot6d)[0].numpy(), matrices, atol=1e-12)


def test_small_regressor_starts_at_spins_mean(mean_params):
    torch.manual_seed(0)
    model = HMR(mean_params, RegressorConfig(backbone="small")).eval()
    out = model(torch.randn(2, 3, 224, 224))
    assert out.rotmat.shape == (2, 24, 3, 3) and out.betas.shape == (2, 10)
    mean_pose, mean_betas = spin_mean_params(mean_params)
    expected = Rotation.from_rotvec(mean_pose.reshape(24, 3)).as_matrix()
    # the decoders start tiny (xavier, gain 0.01): predictions start near the mean, on average
    assert np.abs(out.rotmat[0].detach().numpy() - expected).mean() < 0.1
    assert np.abs(out.betas[0].detach().numpy() - mean_betas).mean() < 0.1
    with torch.no_grad():  # with silent decoders the prediction IS SPIN's mean
        for layer in (model.decpose, model.decshape, model.deccam):
            layer.weight.zero_()
            layer.bias.zero_()
        out = model(torch.randn(2, 3, 224, 224))
    np.testing.assert_allclose(out.rotmat[1].numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(out.betas[1].numpy(), mean_betas, atol=1e-6)
    cam_t = camera_translation(out.camera)
    assert (cam_t[:, 2] > 30).all()  # SPIN's mean camera s=0.9: about 50 m at f=5000


def test_gradients_reach_the_backbone(mean_params):
    model = HMR(mean_params, RegressorConfig(backbone="small"))
    out = model(torch.randn(2, 3, 64, 64))
    (out.betas.sum() + out.rotmat.sum()).backward()
    assert model.conv1.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("backbone, layout", [("resnet50", RESNET50), ("small", SMALL)])
def test_state_dict_is_spins(mean_params, backbone, layout):
    """The names and shapes of nkolot/SPIN models/hmr.py (written out in spin_hmr_reference)."""
    state = HMR(mean_params, RegressorConfig(backbone=backbone)).state_dict()
    assert {name: tuple(value.shape) for name, value in state.items()} == spin_hmr_shapes(*layout)


def test_resnet50_has_spins_size(mean_params):
    model = HMR(mean_params)
    backbone = sum(p.numel() for name, p in model.named_parameters() if not name.startswith(HEAD))
    assert backbone == 23_508_032  # torchvision's resnet50 (25,557,032) without its fc (2048 * 1000 + 1000)
    head = (2048 + 157) * 1024 + 1024 + 1024 * 1024 + 1024 + (1024 + 1) * (144 + 10 + 3)
    assert sum(p.numel() for p in model.parameters()) == backbone + head
    assert model.feature_dim == 2048


def test_the_head_is_affine_in_the_features(mean_params):
    """SPIN has no ReLU after fc1 / fc2: with dropout off, three iterations of affine maps give
    outputs affine in the features, so the midpoint of two feature vectors maps to the midpoint."""
    torch.manual_seed(0)
    model = HMR(mean_params, RegressorConfig(backbone="small")).eval()
    first, second = torch.randn(1, model.feature_dim), torch.randn(1, model.feature_dim)
    outputs = []
    for features in (first, second, (first + second) / 2):
        model.features = lambda images, features=features: features.expand(images.shape[0], -1)
        with torch.no_grad():
            outputs.append(model(torch.zeros(1, 3, 64, 64)))
    for field in ("betas", "camera"):
        a, b, middle = (getattr(out, field) for out in outputs)
        assert (a - b).abs().max() > 1e-4  # the features matter
        torch.testing.assert_close(middle, (a + b) / 2, rtol=0, atol=1e-6)


def test_pooling_is_spins_average_pool_at_224(mean_params):
    """Adaptive average pooling equals SPIN's AvgPool2d(7, stride=1) on the 7x7 layer4 at 224 px."""
    torch.manual_seed(0)
    model = HMR(mean_params, RegressorConfig(backbone="small")).eval()
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        x = model.maxpool(model.relu(model.bn1(model.conv1(images))))
        x = model.layer4(model.layer3(model.layer2(model.layer1(x))))
        assert x.shape[-2:] == (7, 7)
        torch.testing.assert_close(model.features(images), torch.nn.AvgPool2d(7, stride=1)(x).flatten(1))


def test_spins_weight_initialisation(mean_params):
    torch.manual_seed(0)
    model = HMR(mean_params)
    conv = model.layer3[1].conv2.weight  # normal(0, sqrt(2 / (3 * 3 * 256)))
    assert abs(conv.std().item() / (2 / (9 * 256)) ** 0.5 - 1) < 0.02
    assert torch.equal(model.layer2[0].bn3.weight, torch.ones(512))
    assert torch.equal(model.layer2[0].bn3.bias, torch.zeros(512))
    bound = 0.01 * (6 / (1024 + 144)) ** 0.5  # xavier uniform, gain 0.01
    assert model.decpose.weight.abs().max() <= bound and model.decpose.weight.abs().max() > 0.9 * bound


def test_bad_config_and_input(mean_params):
    with pytest.raises(InputError, match="backbone must be 'resnet50' or 'small', got 'vgg'"):
        RegressorConfig(backbone="vgg")
    with pytest.raises(InputError, match=r"images must be \(B, 3, H, W\), got \(3, 224, 224\)"):
        HMR(mean_params, RegressorConfig(backbone="small"))(torch.zeros(3, 224, 224))
