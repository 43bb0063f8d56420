"""The torch device a fit runs on: whether it is usable here, what it computes natively, its
float32 matmul precision, and which of its errors leave it unusable.

Convention: a "CUDA device" is ``torch.device("cuda")`` or ``"cuda:N"``; every check here runs
on a machine without one (they read torch's build and flags, and are tested on the CPU).
"""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Iterator

import torch

from spinfits.errors import DeviceError

#: The pip line that installs torch's CUDA build (README, "Installing on a GPU machine").
CUDA_INSTALL_HINT = (
    "install torch's CUDA build into the environment first: python -m pip install "
    f"'torch=={torch.__version__.split('+')[0]}' --index-url https://download.pytorch.org/whl/cu128 "
    "(or `bash scripts/_venv.sh --cuda cu128`; README, 'Installing on a GPU machine')"
)


def checked_device(device: torch.device | str) -> torch.device:
    """``device`` as a ``torch.device``; ``DeviceError`` naming this machine and torch's build
    when it is a CUDA device torch cannot use here (a CPU build, or no GPU visible)."""
    device = torch.device(device)
    if device.type != "cuda":
        return device
    where = f"on {platform.node()}"
    if torch.version.cuda is None:
        raise DeviceError(
            f"the fit asks for device {device}, but torch {torch.__version__} {where} is a CPU "
            f"build (torch.version.cuda is None); {CUDA_INSTALL_HINT}"
        )
    if not torch.cuda.is_available():
        raise DeviceError(
            f"the fit asks for device {device}, but torch {torch.__version__} (CUDA "
            f"{torch.version.cuda}) {where} sees no GPU (torch.cuda.is_available() is False): check "
            "the driver (nvidia-smi) and CUDA_VISIBLE_DEVICES, or fit on the CPU"
        )
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceError(
            f"the fit asks for device {device}, but {where} torch sees {torch.cuda.device_count()} "
            f"GPU(s) (cuda:0 to cuda:{torch.cuda.device_count() - 1})"
        )
    return device


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` computes bfloat16 natively: a CUDA GPU of compute capability 8.0 or
    later (Ampere, Hopper, ...). Older GPUs (V100, T4) emulate it slowly; the CPU is not counted
    (its autocast is opt-in)."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    return torch.cuda.get_device_capability(device) >= (8, 0)


#: The float32 matmul settings ``ieee_float32`` pins (torch's per-backend precision API).
_MATMUL_BACKENDS = ("cuda", "mkldnn")


@contextlib.contextmanager
def ieee_float32() -> Iterator[None]:
    """Float32 matmuls in full IEEE precision inside the block (TF32 off on CUDA, no bf16/TF32
    on the CPU's oneDNN), whatever the process set before; restored after.

    SMPLify needs it: under TF32 (10-bit mantissa) the LM's normal equations ``J^T J`` and the
    pose prior's quadratic form lose the digits its damping and convergence test rely on. Set
    through torch's per-backend ``fp32_precision`` (reading it works whichever API set it)."""
    saved = {name: _matmul(name).fp32_precision for name in _MATMUL_BACKENDS}
    try:
        for name in _MATMUL_BACKENDS:
            _matmul(name).fp32_precision = "ieee"
        yield
    finally:
        for name, value in saved.items():
            _matmul(name).fp32_precision = value


def pin_ieee_float32() -> None:
    """``ieee_float32`` for the rest of the process (a fitter actor's process, which does
    nothing but fit)."""
    for name in _MATMUL_BACKENDS:
        _matmul(name).fp32_precision = "ieee"


def _matmul(backend: str):
    return getattr(torch.backends, backend).matmul


#: Message prefixes of CUDA errors after which the CUDA context is unusable (sticky): every later
#: kernel of the process fails too. Out-of-memory is not among them (it is recoverable).
STICKY_CUDA_MESSAGES = (
    "CUDA error",
    "CUDA driver error",
    "CUBLAS_STATUS_",
    "cuBLAS error",
    "cuDNN error",
    "cusolver error",
    "CUSOLVER_STATUS_",
    "NCCL error",
)


def is_device_failure(error: BaseException) -> bool:
    """Whether ``error`` is the device failing (an illegal address, a device-side assert, a
    library's execution failure), not the data: the process must end, since a CUDA context
    that saw a sticky error fails every later call. Out-of-memory is not a device failure."""
    if isinstance(error, torch.OutOfMemoryError):
        return False
    if isinstance(error, getattr(torch, "AcceleratorError", ())):
        return True
    if not isinstance(error, RuntimeError):
        return False
    text = str(error)
    return any(marker in text for marker in STICKY_CUDA_MESSAGES) or "device-side assert" in text


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is the device running out of memory (recoverable: free, retry smaller)."""
    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and "out of memory" in str(error)
    )
