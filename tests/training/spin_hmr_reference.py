"""SPIN's HMR written out independently of spinfits, for tests.

``spin_hmr_shapes``: the state-dict names and shapes nkolot/SPIN ``models/hmr.py`` gives
(``HMR(Bottleneck, [3, 4, 6, 3], ...)``: conv1, bn1, layer1..4 built by ``_make_layer`` with a
downsample on the first block of every layer, fc1 .. deccam, the init_* buffers).
``random_hmr_state``: random values of those shapes, scaled so 16 residual blocks stay finite.
``functional_hmr``: SPIN's forward in torch.nn.functional from a raw state dict (eval mode:
batch norm with running statistics, dropout off; global mean pooling; 6D -> rotation matrix
by Gram-Schmidt, SPIN's interleaved layout).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

RESNET50 = ((3, 4, 6, 3), 64)
SMALL = ((1, 1, 1, 1), 16)
HEAD = ("fc1.", "fc2.", "decpose.", "decshape.", "deccam.", "init_pose", "init_shape", "init_cam")


def spin_hmr_shapes(blocks=RESNET50[0], width=RESNET50[1], head=True) -> dict[str, tuple[int, ...]]:
    """name -> shape of SPIN's HMR state dict (the backbone alone when ``head`` is False)."""
    shapes: dict[str, tuple[int, ...]] = {}

    def batch_norm(prefix: str, channels: int) -> None:
        for field in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{field}"] = (channels,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    shapes["conv1.weight"] = (width, 3, 7, 7)
    batch_norm("bn1", width)
    inplanes = width
    for layer, count in enumerate(blocks, start=1):
        planes = width * 2 ** (layer - 1)
        for index in range(count):
            prefix = f"layer{layer}.{index}"
            shapes[f"{prefix}.conv1.weight"] = (planes, inplanes, 1, 1)
            batch_norm(f"{prefix}.bn1", planes)
            shapes[f"{prefix}.conv2.weight"] = (planes, planes, 3, 3)
            batch_norm(f"{prefix}.bn2", planes)
            shapes[f"{prefix}.conv3.weight"] = (planes * 4, planes, 1, 1)
            batch_norm(f"{prefix}.bn3", planes * 4)
            if index == 0:  # stride 2 (layers 2-4) or inplanes != planes * 4 (layer 1)
                shapes[f"{prefix}.downsample.0.weight"] = (planes * 4, inplanes, 1, 1)
                batch_norm(f"{prefix}.downsample.1", planes * 4)
            inplanes = planes * 4
    if head:
        for name, (rows, cols) in {
            "fc1": (1024, inplanes + 144 + 10 + 3),
            "fc2": (1024, 1024),
            "decpose": (144, 1024),
            "decshape": (10, 1024),
            "deccam": (3, 1024),
        }.items():
            shapes[f"{name}.weight"] = (rows, cols)
            shapes[f"{name}.bias"] = (rows,)
        shapes.update({"init_pose": (1, 144), "init_shape": (1, 10), "init_cam": (1, 3)})
    return shapes


def random_hmr_state(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random float32 values (int64 counters) of ``shapes``: He-scaled convolutions, batch norms
    near identity (residual branches damped), 1/sqrt(fan-in) linear layers."""
    generator = torch.Generator().manual_seed(seed)

    def uniform(shape, low, high):
        return low + (high - low) * torch.rand(shape, generator=generator)

    state = {}
    for name, shape in shapes.items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.randint(0, 10**6, (), generator=generator)
        elif name.endswith("running_var"):
            state[name] = uniform(shape, 0.5, 1.5)
        elif name.endswith(("bn3.weight", "downsample.1.weight")):
            state[name] = uniform(shape, 0.2, 0.5)
        elif name.endswith(("bn1.weight", "bn2.weight")):
            state[name] = uniform(shape, 0.5, 1.5)
        elif len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            state[name] = torch.randn(shape, generator=generator) * (2.0 / fan_in) ** 0.5
        elif len(shape) == 2 and name.endswith(".weight"):
            state[name] = torch.randn(shape, generator=generator) / shape[1] ** 0.5
        else:  # biases, running means, init_pose / init_shape / init_cam
            state[name] = 0.1 * torch.randn(shape, generator=generator)
    if "init_cam" in state:
        state["init_cam"][0, 0] += 0.9  # a plausible weak-perspective scale
    return state


def functional_hmr(state: dict[str, torch.Tensor], images: torch.Tensor, iterations: int = 3):
    """SPIN's HMR forward (eval mode) from a raw state dict: rotmat (B, 24, 3, 3), betas (B, 10),
    camera (B, 3). Computed in the dtype of ``images``."""
    sd = {
        name: value.to(images.dtype) if value.is_floating_point() else value for name, value in state.items()
    }

    def bn(x, prefix):
        return F.batch_norm(
            x,
            sd[f"{prefix}.running_mean"],
            sd[f"{prefix}.running_var"],
            sd[f"{prefix}.weight"],
            sd[f"{prefix}.bias"],
            training=False,
            eps=1e-5,
        )

    x = F.relu(bn(F.conv2d(images, sd["conv1.weight"], stride=2, padding=3), "bn1"))
    x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    for layer in range(1, 5):
        index = 0
        while f"layer{layer}.{index}.conv1.weight" in sd:
            p = f"layer{layer}.{index}"
            stride = 2 if layer > 1 and index == 0 else 1
            out = F.relu(bn(F.conv2d(x, sd[f"{p}.conv1.weight"]), f"{p}.bn1"))
            out = F.relu(bn(F.conv2d(out, sd[f"{p}.conv2.weight"], stride=stride, padding=1), f"{p}.bn2"))
            out = bn(F.conv2d(out, sd[f"{p}.conv3.weight"]), f"{p}.bn3")
            if f"{p}.downsample.0.weight" in sd:
                x = bn(F.conv2d(x, sd[f"{p}.downsample.0.weight"], stride=stride), f"{p}.downsample.1")
            x = F.relu(out + x)
            index += 1
    features = x.mean(dim=(2, 3))  # (B, C): SPIN's AvgPool2d(7) at 224 px
    batch = images.shape[0]
    pose = sd["init_pose"].expand(batch, -1)
    betas = sd["init_shape"].expand(batch, -1)
    camera = sd["init_cam"].expand(batch, -1)
    for _ in range(iterations):
        hidden = torch.cat([features, pose, betas, camera], dim=1)
        hidden = F.linear(
            F.linear(hidden, sd["fc1.weight"], sd["fc1.bias"]), sd["fc2.weight"], sd["fc2.bias"]
        )
        pose = pose + F.linear(hidden, sd["decpose.weight"], sd["decpose.bias"])
        betas = betas + F.linear(hidden, sd["decshape.weight"], sd["decshape.bias"])
        camera = camera + F.linear(hidden, sd["deccam.weight"], sd["deccam.bias"])
    columns = pose.reshape(batch, 24, 3, 2)  # [R[:, 0], R[:, 1]] interleaved per row
    first = columns[..., 0] / columns[..., 0].norm(dim=-1, keepdim=True)
    second = columns[..., 1] - (first * columns[..., 1]).sum(-1, keepdim=True) * first
    second = second / second.norm(dim=-1, keepdim=True)
    rotmat = torch.stack([first, second, torch.linalg.cross(first, second)], dim=-1)
    return rotmat, betas, camera
