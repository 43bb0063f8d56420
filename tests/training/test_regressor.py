import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from spinfits.errors import InputError
from spinfits.fitting.mean_params import spin_mean_params
from spinfits.fitting.rotations import rot6d_to_rotmat
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
    assert model.backbone.stem[0].weight.grad.abs().sum() > 0


def test_resnet50_has_resnet50s_size(mean_params):
    model = HMR(mean_params)
    backbone = sum(p.numel() for p in model.backbone.parameters())
    assert abs(backbone - 23_508_032) < 1000  # torchvision's resnet50 without its fc layer
    assert model.backbone.feature_dim == 2048


def test_bad_config_and_input(mean_params):
    with pytest.raises(InputError, match="backbone must be 'resnet50' or 'small', got 'vgg'"):
        RegressorConfig(backbone="vgg")
    with pytest.raises(InputError, match=r"images must be \(B, 3, H, W\), got \(3, 224, 224\)"):
        HMR(mean_params, RegressorConfig(backbone="small"))(torch.zeros(3, 224, 224))
