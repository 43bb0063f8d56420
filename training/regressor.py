"""SPIN's regressor (HMR): an image backbone and an iterative SMPL/camera regressor, plain torch.

torchvision is not available beside this torch build, so the ResNet-50 backbone is written here
(the standard bottleneck architecture, layers 3-4-6-3, 2048-d features); ``backbone="small"``
is a narrow 4-stage ResNet for CPU runs. The head is SPIN's: starting from SPIN's mean
parameters (``smpl_mean_params.npz``: 24 rotations in 6D, 10 betas, camera [s, tx, ty]), three
iterations each add a correction predicted from [features, current pose, shape, camera].

Convention: images (B, 3, 224, 224) normalised with ImageNet statistics; rotations in SPIN's 6D
layout (first two columns of the rotation matrix, interleaved per row); camera is SPIN's weak
perspective (s, tx, ty), turned into a translation with ``camera_translation``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from spinfits.errors import InputError
from spinfits.fitting.rotations import rot6d_to_rotmat
from spinfits.fitting.spin_crop import CROP_RES, FOCAL_LENGTH


@dataclass(frozen=True)
class RegressorConfig:
    """backbone: "resnet50" (SPIN's) or "small" (CPU-friendly); iterations: SPIN uses 3."""

    backbone: Literal["resnet50", "small"] = "resnet50"
    iterations: int = 3

    def __post_init__(self) -> None:
        if self.backbone not in ("resnet50", "small"):
            raise InputError(f"backbone must be 'resnet50' or 'small', got {self.backbone!r}")
        if self.iterations < 1:
            raise InputError(f"iterations must be >= 1, got {self.iterations}")


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        width = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, width, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.downsample = None
        if stride != 1 or inplanes != width:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, width, 1, stride=stride, bias=False), nn.BatchNorm2d(width)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return F.relu(self.bn3(self.conv3(out)) + identity)


class ResNetBackbone(nn.Module):
    """Bottleneck ResNet without its classifier: (B, 3, H, W) -> (B, feature_dim)."""

    def __init__(self, blocks: tuple[int, int, int, int], base_width: int = 64) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, base_width, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(base_width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        layers, inplanes = [], base_width
        for stage, count in enumerate(blocks):
            planes = base_width * 2**stage
            for index in range(count):
                stride = 2 if index == 0 and stage > 0 else 1
                layers.append(Bottleneck(inplanes, planes, stride))
                inplanes = planes * Bottleneck.expansion
        self.layers = nn.Sequential(*layers)
        self.feature_dim = inplanes

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(self.layers(self.stem(images)), 1), 1)


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
    """SPIN's regressor. ``mean_params``: path of SPIN's ``smpl_mean_params.npz``."""

    def __init__(self, mean_params: str, config: RegressorConfig | None = None) -> None:
        super().__init__()
        self.config = config or RegressorConfig()
        self.backbone = (
            ResNetBackbone((3, 4, 6, 3))
            if self.config.backbone == "resnet50"
            else ResNetBackbone((1, 1, 1, 1), base_width=16)
        )
        features = self.backbone.feature_dim
        with np.load(mean_params) as params:
            for name, key in (("init_pose", "pose"), ("init_betas", "shape"), ("init_cam", "cam")):
                self.register_buffer(name, torch.as_tensor(params[key], dtype=torch.float32)[None])
        self.fc1 = nn.Linear(features + 144 + 10 + 3, 1024)
        self.fc2 = nn.Linear(1024, 1024)
        self.drop1, self.drop2 = nn.Dropout(), nn.Dropout()
        self.decpose, self.decshape, self.deccam = (
            nn.Linear(1024, 144),
            nn.Linear(1024, 10),
            nn.Linear(1024, 3),
        )
        for layer in (self.decpose, self.decshape, self.deccam):  # start near the mean, as SPIN
            nn.init.xavier_uniform_(layer.weight, gain=0.01)

    def forward(self, images: torch.Tensor) -> RegressorOutput:
        """images: (B, 3, 224, 224) normalised crops."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise InputError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        features = self.backbone(images)
        batch = images.shape[0]
        pose = self.init_pose.expand(batch, -1)
        betas = self.init_betas.expand(batch, -1)
        camera = self.init_cam.expand(batch, -1)
        for _ in range(self.config.iterations):
            x = torch.cat([features, pose, betas, camera], dim=1)
            x = self.drop2(F.relu(self.fc2(self.drop1(F.relu(self.fc1(x))))))
            pose = pose + self.decpose(x)
            betas = betas + self.decshape(x)
            camera = camera + self.deccam(x)
        return RegressorOutput(rotmat=rot6d_to_rotmat(pose), betas=betas, camera=camera)
