"""SPIN's regressor (HMR), layer for layer and name for name as nkolot/SPIN ``models/hmr.py``.

A ResNet-50 (torchvision's Bottleneck, stride on the 3x3 ``conv2`` as in SPIN's own Bottleneck)
whose pooled features feed an iterative regressor: starting from SPIN's mean parameters
(``smpl_mean_params.npz``: 24 rotations in 6D, 10 betas, camera [s, tx, ty]), each of three
iterations adds a correction predicted from [features, current pose, shape, camera] through
fc1 -> drop1 -> fc2 -> drop2 -> decpose / decshape / deccam (no nonlinearity between them, as in
SPIN). ``state_dict`` keys are SPIN's (``conv1``, ``bn1``, ``layer1``..``layer4`` with
torchvision's Bottleneck names, ``fc1``, ``fc2``, ``decpose``, ``decshape``, ``deccam``, buffers
``init_pose``, ``init_shape``, ``init_cam``), so SPIN's checkpoints and torchvision's ImageNet
ResNet-50 load by name (``spinfits.training.pretrained``).

One deliberate difference: pooling is adaptive average pooling to 1x1 instead of SPIN's
``AvgPool2d(7, stride=1)``. At SPIN's 224 px input layer4 is 7x7, where both are the same global
mean; the adaptive one also works at other input sizes. ``backbone="small"`` is the same network
narrower (base width 16 instead of 64, one block per layer): same names, smaller shapes, a
512-d feature instead of 2048-d, for CPU runs. torchvision is not installed beside this torch
build, so the backbone is written here.

Convention: images (B, 3, H, W) RGB normalised with ImageNet statistics (224 px in SPIN);
rotations in SPIN's 6D layout (first two columns of the rotation matrix, interleaved per row);
camera is SPIN's weak perspective (s, tx, ty), turned into a translation with
``camera_translation``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from spinfits.errors import InputError
from spinfits.fitting.body.rotations import rot6d_to_rotmat
from spinfits.fitting.data.spin_crop import CROP_RES, FOCAL_LENGTH

POSE_DIM = 24 * 6
"""SPIN's pose vector: 24 SMPL rotations in 6D."""
SHAPE_DIM = 10
CAM_DIM = 3
HIDDEN = 1024
"""Width of fc1 and fc2."""

BACKBONES = {"resnet50": ((3, 4, 6, 3), 64), "small": ((1, 1, 1, 1), 16)}
"""backbone name -> (blocks per layer, base width)."""


@dataclass(frozen=True)
class RegressorConfig:
    """The regressor's shape.

    backbone: "resnet50" (SPIN's; takes SPIN's and ImageNet weights) or "small" (CPU-friendly,
        same layer names, base width 16, one block per layer).
    iterations: regressor iterations per forward; SPIN uses 3.
    """

    backbone: Literal["resnet50", "small"] = "resnet50"
    iterations: int = 3

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise InputError(f"backbone must be 'resnet50' or 'small', got {self.backbone!r}")
        if self.iterations < 1:
            raise InputError(f"iterations must be >= 1, got {self.iterations}")


class Bottleneck(nn.Module):
    """SPIN's (= torchvision's v1.5) bottleneck: 1x1 -> 3x3 (carries the stride) -> 1x1, x4 wide.

    (B, inplanes, H, W) -> (B, planes * 4, H / stride, W / stride).
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


def _make_layer(inplanes: int, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
    """SPIN's ``_make_layer``: ``blocks`` Bottlenecks, the first changing width / resolution
    through a downsample path (1x1 conv with the stride, batch norm)."""
    width = planes * Bottleneck.expansion
    downsample = None
    if stride != 1 or inplanes != width:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, width, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(width)
        )
    layers = [Bottleneck(inplanes, planes, stride, downsample)]
    layers += [Bottleneck(width, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def camera_translation(
    camera: torch.Tensor, focal_length: float = FOCAL_LENGTH, crop_res: int = CROP_RES
) -> torch.Tensor:
    """SPIN's weak-perspective camera (B, 3) = (s, tx, ty) -> translation (B, 3), metres."""
    depth = 2 * focal_length / (crop_res * camera[:, 0] + 1e-9)
    return torch.stack([camera[:, 1], camera[:, 2], depth], dim=-1)


@dataclass(frozen=True)
class RegressorOutput:
    """rotmat: (B, 24, 3, 3) SMPL rotations; betas: (B, 10); camera: (B, 3) weak perspective."""

    rotmat: torch.Tensor
    betas: torch.Tensor
    camera: torch.Tensor


class HMR(nn.Module):
    """SPIN's regressor. ``mean_params``: path of SPIN's ``smpl_mean_params.npz``.

    Modules (SPIN's names): conv1, bn1, relu, maxpool, layer1..layer4 (Bottleneck stacks),
    avgpool, fc1 (feature_dim + 157 -> 1024), drop1, fc2 (1024 -> 1024), drop2, decpose
    (1024 -> 144), decshape (1024 -> 10), deccam (1024 -> 3). Buffers: init_pose (1, 144),
    init_shape (1, 10), init_cam (1, 3), SPIN's mean parameters.
    """

    def __init__(self, mean_params: str, config: RegressorConfig | None = None) -> None:
        super().__init__()
        self.config = config or RegressorConfig()
        blocks, width = BACKBONES[self.config.backbone]
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        expand = Bottleneck.expansion
        self.layer1 = _make_layer(width, width, blocks[0])
        self.layer2 = _make_layer(width * expand, width * 2, blocks[1], stride=2)
        self.layer3 = _make_layer(width * 2 * expand, width * 4, blocks[2], stride=2)
        self.layer4 = _make_layer(width * 4 * expand, width * 8, blocks[3], stride=2)
        self.feature_dim = width * 8 * expand
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(self.feature_dim + POSE_DIM + SHAPE_DIM + CAM_DIM, HIDDEN)
        self.drop1 = nn.Dropout()
        self.fc2 = nn.Linear(HIDDEN, HIDDEN)
        self.drop2 = nn.Dropout()
        self.decpose = nn.Linear(HIDDEN, POSE_DIM)
        self.decshape = nn.Linear(HIDDEN, SHAPE_DIM)
        self.deccam = nn.Linear(HIDDEN, CAM_DIM)
        self._init_weights()
        with np.load(mean_params) as params:
            for name, key in (("init_pose", "pose"), ("init_shape", "shape"), ("init_cam", "cam")):
                self.register_buffer(name, torch.as_tensor(params[key], dtype=torch.float32)[None])

    def _init_weights(self) -> None:
        """SPIN's: decoders xavier-uniform with gain 0.01 (predictions start near the mean),
        convolutions normal(0, sqrt(2 / (k * k * out_channels))), batch norms weight 1 bias 0,
        fc1 / fc2 and the decoder biases at torch's Linear default. Same order as SPIN."""
        for layer in (self.decpose, self.decshape, self.deccam):
            nn.init.xavier_uniform_(layer.weight, gain=0.01)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) -> (B, feature_dim) pooled layer4 features (2048 for resnet50)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, images: torch.Tensor) -> RegressorOutput:
        """images: (B, 3, H, W) normalised crops (224 px in SPIN)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise InputError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        features = self.features(images)
        batch = images.shape[0]
        pose = self.init_pose.expand(batch, -1)  # (B, 144)
        shape = self.init_shape.expand(batch, -1)  # (B, 10)
        camera = self.init_cam.expand(batch, -1)  # (B, 3)
        for _ in range(self.config.iterations):
            x = torch.cat([features, pose, shape, camera], dim=1)
            x = self.drop2(self.fc2(self.drop1(self.fc1(x))))  # (B, 1024); no ReLU, as SPIN
            pose = self.decpose(x) + pose
            shape = self.decshape(x) + shape
            camera = self.deccam(x) + camera
        return RegressorOutput(rotmat=rot6d_to_rotmat(pose), betas=shape, camera=camera)
