"""Start SPIN's regressor from published weights: SPIN's, mmhuman3d's HMR, or ImageNet's ResNet-50.

``load_pretrained(model, path)`` reads ``path`` (``torch.load(weights_only=True)``: files are
untrusted, pickled code is refused), finds which of three layouts it holds, maps its names onto
``HMR``'s (SPIN's) and copies the tensors in place:

- ``spin``: nkolot/SPIN's ``model_checkpoint.pt``, a dict whose ``model`` entry is HMR's state
  dict (beside ``optimizer``, ``epoch``, ...), or that state dict alone. Names are HMR's as they
  are; every tensor of the model must be there.
- ``mmhuman3d``: an mmhuman3d HMR checkpoint (``configs/hmr/resnet50_hmr_pw3d.py``):
  ``{"state_dict": ...}`` with ``backbone.*`` (mmcv's ResNet-50: ``backbone.conv1``,
  ``backbone.bn1``, ``backbone.layer1.0.conv1`` ..., stride on conv2, as SPIN) and ``head.*``
  (``HMRHead``: ``head.fc1`` ... ``head.deccam`` and its ``init_pose`` / ``init_shape`` /
  ``init_cam`` buffers, SPIN's 6D layout and weak-perspective camera). ``backbone.`` and
  ``head.`` are dropped; the discriminator and body models the checkpoint also holds
  (``disc.*``, ``body_model_train.*``, ...) are ignored. A checkpoint with a ``neck.*`` is not
  an HMR and is refused. mmhuman3d normalises images with the same ImageNet mean / std.
- ``torchvision``: torchvision's ``resnet50`` state dict (``conv1.weight``, ``bn1.*``,
  ``layer1.0.conv1.weight`` ..., ``fc.weight`` (1000, 2048)): the backbone only, SPIN's default
  ImageNet start. ``fc.*`` is ignored; the regressor head keeps its initial values.

``DataParallel``'s ``module.`` prefix is removed. ``num_batches_tracked`` counters absent from
older files (torchvision's 2017 ResNet-50) stay at their initial value; every other missing,
unexpected or wrongly shaped tensor is an ``InputError`` that lists them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from spinfits.errors import InputError
from spinfits.fitting.data.torch_load import describe_load_error
from spinfits.training.regressor import BACKBONES, HMR

logger = logging.getLogger(__name__)

Layout = Literal["spin", "mmhuman3d", "torchvision"]

HEAD_PREFIXES = ("fc1.", "fc2.", "decpose.", "decshape.", "deccam.", "init_pose", "init_shape", "init_cam")
"""Names of HMR's regressor head (everything else is the backbone)."""

ACCEPTED = (
    "SPIN's model_checkpoint.pt (a dict whose 'model' entry is HMR's state dict: conv1.weight, "
    "layer1.0.conv1.weight, ..., fc1.weight, decpose.weight, init_pose), or that state dict alone; "
    "an mmhuman3d HMR checkpoint ({'state_dict': {'backbone.conv1.weight', ..., 'head.fc1.weight', "
    "...}}); or torchvision's resnet50 state dict (conv1.weight, ..., fc.weight) for the backbone alone"
)

_DESCRIPTION = {
    "spin": "SPIN's HMR state dict",
    "mmhuman3d": "an mmhuman3d HMR checkpoint (backbone.* -> ResNet, head.* -> HMRHead)",
    "torchvision": "torchvision's resnet50 state dict (backbone only)",
}
_SHOWN = 10
"""How many names an error lists of each kind."""


@dataclass(frozen=True)
class PretrainedLoad:
    """What ``load_pretrained`` did.

    path: the file read; layout: which of the three layouts it held; source: where in the file
    the state dict was (``"'model' entry"``, ``"'state_dict' entry"``, ``"top level"``).
    loaded: how many tensors were copied into the model.
    left_initial: the model's state-dict names left at their initial values (the regressor head
        for a torchvision backbone; ``num_batches_tracked`` counters the file lacked).
    ignored: the file's names not used (torchvision's ``fc.*``, mmhuman3d's ``disc.*``, ...).
    """

    path: Path
    layout: Layout
    source: str
    loaded: int
    left_initial: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        """One line for a log or the command line: the layout, where in the file, how many
        tensors, and the model's tensors the file lacked (missing: left at their initial values)
        and the file's tensors the model has no place for (unexpected: ignored)."""
        counters = tuple(name for name in self.left_initial if name.endswith("num_batches_tracked"))
        missing = tuple(name for name in self.left_initial if name not in counters)
        text = (
            f"{self.path}: {self.layout} layout ({_DESCRIPTION[self.layout]}, its {self.source}), "
            f"{self.loaded} tensors loaded; missing {_counted(missing)}; unexpected {_counted(self.ignored)}"
        )
        if counters:
            text += f"; {len(counters)} BatchNorm num_batches_tracked counters absent (harmless)"
        return text


@dataclass(frozen=True)
class _Mapped:
    """A file's state dict in HMR's names: tensors by HMR name, names ignored, the layout."""

    layout: Layout
    source: str
    tensors: dict[str, Any]
    ignored: tuple[str, ...]


@dataclass(frozen=True)
class PretrainedWeights:
    """A weights file read and mapped onto HMR's names (``read_pretrained``), not yet loaded.

    path: the file; layout / source: as ``PretrainedLoad``; tensors: by HMR name; ignored: the
    file's names not used; spinfits: what ``spinfits export-checkpoint`` recorded beside SPIN's
    entries (``run``, ``step``, ``snapshot_id``, ``backbone``, ``input_res``; empty otherwise).
    """

    path: Path
    layout: Layout
    source: str
    tensors: dict[str, Any]
    ignored: tuple[str, ...]
    spinfits: dict[str, Any]

    @property
    def backbone(self) -> str:
        """The backbone the weights belong to, told by the stem convolution's width (its base
        width in ``regressor.BACKBONES``: 64 for ResNet-50, SPIN's; 16 for the small one)."""
        stem = self.tensors.get("conv1.weight")
        width = stem.shape[0] if isinstance(stem, torch.Tensor) and stem.ndim == 4 else None
        return next((name for name, (_, base) in BACKBONES.items() if base == width), "resnet50")


def read_pretrained(path: str | Path) -> PretrainedWeights:
    """Read ``path`` and map its names onto HMR's (any of the three layouts); ``InputError`` for a
    file that is unreadable or of no known layout."""
    path = Path(path)
    raw = _read(path)
    mapped = _map_names(_find_state_dict(raw, path), path)
    spinfits = raw.get("spinfits") if isinstance(raw.get("spinfits"), dict) else {}
    return PretrainedWeights(path, mapped.layout, mapped.source, mapped.tensors, mapped.ignored, spinfits)


def load_pretrained(model: HMR, path: str | Path | PretrainedWeights) -> PretrainedLoad:
    """Copy the weights in ``path`` (a file, or one ``read_pretrained`` read) into ``model`` in
    place (any device, any mode) and say what was loaded. Raises ``InputError`` naming what does
    not fit, before changing anything."""
    weights = path if isinstance(path, PretrainedWeights) else read_pretrained(path)
    path = weights.path
    mapped = _Mapped(weights.layout, weights.source, weights.tensors, weights.ignored)
    target = model.state_dict()
    wanted = [
        name
        for name in target
        if mapped.layout != "torchvision" or not name.startswith(HEAD_PREFIXES)  # backbone only
    ]
    _check(model, path, mapped, target, wanted)
    with torch.no_grad():
        for name, tensor in mapped.tensors.items():
            target[name].copy_(tensor)
    result = PretrainedLoad(
        path=path,
        layout=mapped.layout,
        source=mapped.source,
        loaded=len(mapped.tensors),
        left_initial=tuple(name for name in target if name not in mapped.tensors),
        ignored=mapped.ignored,
    )
    logger.debug("%s", result.describe())
    return result


def check_pretrained(path: str | Path, backbone: str) -> PretrainedLoad:
    """Load ``path`` into a fresh CPU regressor of ``backbone`` as training will, to refuse a
    damaged or mismatched file before any work starts (``InputError``, as ``load_pretrained``);
    returns what would be loaded."""
    from spinfits.fitting.data.mean_params import spin_mean_params_path
    from spinfits.training.regressor import RegressorConfig

    model = HMR(str(spin_mean_params_path()), RegressorConfig(backbone=backbone))
    return load_pretrained(model, path)


def numpy_data_globals() -> list[Any]:
    """What torch's safe loader needs to rebuild numpy arrays and scalars, which checkpoints keep
    beside their weights (a sampler's permutation, mmcv's ``meta``): data, never code."""
    core = getattr(np, "_core", None) or np.core
    dtypes = {type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDGUSO"}
    return [core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray, np.dtype, *dtypes]


def _read(path: Path) -> Any:
    if not path.is_file():
        raise InputError(f"pretrained weights {path} do not exist (or are not a file); expected {ACCEPTED}")
    try:
        with torch.serialization.safe_globals(numpy_data_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load of a damaged file raises anything
        raise InputError(
            f"pretrained weights {path} cannot be read ({describe_load_error(error)}); give a file of "
            "tensors and plain values saved with torch.save, e.g. the 'model' entry of SPIN's "
            "checkpoint saved on its own"
        ) from None


def _find_state_dict(raw: Any, path: Path) -> tuple[dict[str, Any], str, list[str]]:
    """(state dict, where it was, the file's top-level keys) of a loaded file."""
    if not isinstance(raw, dict):
        raise InputError(
            f"pretrained weights {path} hold a {type(raw).__name__}, not a dict of tensors; expected {ACCEPTED}"
        )
    top = [str(key) for key in raw]
    for entry in ("model", "state_dict"):
        if isinstance(raw.get(entry), dict):
            return raw[entry], f"'{entry}' entry", top
    return raw, "top level", top


def _map_names(found: tuple[dict[str, Any], str, list[str]], path: Path) -> _Mapped:
    """The layout of a state dict and its tensors under HMR's names."""
    state, source, top = found
    names = list(state)
    if not all(isinstance(name, str) for name in names):
        odd = [repr(name) for name in names if not isinstance(name, str)]
        raise InputError(
            f"pretrained weights {path} are not a state dict: its {source} has keys that are not "
            f"names ({_listing(odd)}); expected {ACCEPTED}"
        )
    if names and all(name.startswith("module.") for name in names):
        state = {name.removeprefix("module."): value for name, value in state.items()}  # DataParallel
        names = list(state)
    if any(name.startswith(("backbone.", "head.")) for name in names):
        return _map_mmhuman3d(state, source, path)
    if any(name.startswith(HEAD_PREFIXES) for name in names):
        return _Mapped("spin", source, dict(state), ())
    if "conv1.weight" in names or any(name.startswith("layer1.") for name in names):
        kept = {name: value for name, value in state.items() if not name.startswith("fc.")}
        return _Mapped("torchvision", source, kept, tuple(name for name in names if name.startswith("fc.")))
    raise InputError(
        f"pretrained weights {path} are none of the layouts spinfits reads: its top-level keys are "
        f"{_listing(top)}; expected {ACCEPTED}"
    )


def _map_mmhuman3d(state: dict[str, Any], source: str, path: Path) -> _Mapped:
    tensors, ignored, neck = {}, [], []
    for name, value in state.items():
        if name.startswith("backbone."):
            tensors[name.removeprefix("backbone.")] = value
        elif name.startswith("head."):
            tensors[name.removeprefix("head.")] = value
        elif name.startswith("neck."):
            neck.append(name)
        else:
            ignored.append(name)  # disc.*, body_model_train.*, body_model_test.*: not the network
    if neck:
        raise InputError(
            f"pretrained weights {path} are an mmhuman3d model with a neck ({_listing(neck)}): its "
            "features pass through layers SPIN's HMR does not have; only mmhuman3d's HMR (ResNet-50 "
            "backbone + HMRHead, configs/hmr/) loads"
        )
    return _Mapped("mmhuman3d", source, tensors, tuple(ignored))


def _check(
    model: HMR, path: Path, mapped: _Mapped, target: dict[str, torch.Tensor], wanted: list[str]
) -> None:
    """Every wanted tensor present (``num_batches_tracked`` may be absent), nothing unexpected,
    the same shapes, finite values; otherwise one InputError listing them all."""
    missing = [n for n in wanted if n not in mapped.tensors and not n.endswith("num_batches_tracked")]
    unexpected = [name for name in mapped.tensors if name not in wanted]
    not_tensors = [
        name
        for name in mapped.tensors
        if name in wanted and not isinstance(mapped.tensors[name], torch.Tensor)
    ]
    known = [name for name in mapped.tensors if name in wanted and name not in not_tensors]
    wrong_shape = [
        f"{name} {tuple(mapped.tensors[name].shape)} (model {tuple(target[name].shape)})"
        for name in known
        if mapped.tensors[name].shape != target[name].shape
    ]
    non_finite = [
        name
        for name in known
        if mapped.tensors[name].is_floating_point() and not torch.isfinite(mapped.tensors[name]).all()
    ]
    problems = [
        f"{len(names)} {what}: {_listing(names)}"
        for what, names in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("with the wrong shape", wrong_shape),
            ("not tensors", not_tensors),
            ("with NaN or infinite values", non_finite),
        )
        if names
    ]
    if problems:
        raise InputError(
            f"pretrained weights {path} do not fit the {model.config.backbone} regressor, read as "
            f"{_DESCRIPTION[mapped.layout]} (its {mapped.source}): {'; '.join(problems)}. "
            f"{_hint(model, mapped, target)}"
        )


def _hint(model: HMR, mapped: _Mapped, target: dict[str, torch.Tensor]) -> str:
    """How to fix a file that does not fit: the other backbone, or the right kind of file."""
    stem = mapped.tensors.get("conv1.weight")
    if isinstance(stem, torch.Tensor) and stem.ndim == 4 and stem.shape != target["conv1.weight"].shape:
        if model.config.backbone == "small" and stem.shape[0] == 64:
            return "A 'small' backbone cannot take resnet50 weights: use --backbone resnet50"
        if model.config.backbone == "resnet50" and stem.shape[0] == BACKBONES["small"][1]:
            return "These are weights of the 'small' backbone: use --backbone small"
    return {
        "spin": "Expected the state dict of SPIN's models/hmr.py HMR (ResNet-50 backbone); is this "
        "a checkpoint of another model?",
        "mmhuman3d": "Only mmhuman3d's HMR (ResNet-50 backbone + HMRHead, e.g. configs/hmr/"
        "resnet50_hmr_pw3d.py) maps onto SPIN's HMR.",
        "torchvision": "Expected torchvision's resnet50 (ResNet-18/34 and other architectures do not fit).",
    }[mapped.layout]


def _counted(names: tuple[str, ...]) -> str:
    """ "none", or how many with the first few names: "2 (fc.weight, fc.bias)"."""
    return f"{len(names)} ({_listing(list(names), shown=3)})" if names else "none"


def _listing(names: list[str], shown: int = _SHOWN) -> str:
    text = ", ".join(names[:shown])
    return text + (f" (and {len(names) - shown} more)" if len(names) > shown else "")
