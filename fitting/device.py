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


#: Memory one solver slot takes on the device (bytes): the LM pool's Jacobians, normal equations and
#: joints-only evaluation of one row (every hypothesis of it). Measured on the CPU with the stand-in
#: and precompute's default fitting (peak resident memory of ``OfflineFitter.fit`` over 512 and 2048
#: slots: 450 and 515 KiB per slot); a CUDA device has not measured it yet (bench/gpu.sh).
SLOT_BYTES = 512 * 1024
#: Slots chosen for a CUDA device never exceed this: past a few thousand rows an LM iteration is
#: bound by the device's arithmetic, and a larger pool only lengthens the tail of a shard.
#: Not yet measured on a GPU (bench/gpu.sh --slots), so a round number with room on either side.
MAX_DEVICE_SLOTS = 8192
#: Slots are chosen in steps of this many rows (and never fewer: a CPU core's default).
SLOT_STEP = 256


def solver_slots_for(memory_bytes: int, share: float) -> int:
    """Solver slots for an actor that holds ``share`` (0 < share <= 1, e.g. ``--gpus-per-worker``)
    of a device with ``memory_bytes`` of memory: half its share (the rest for the body model,
    torch's allocator cache and the other actors' contexts) in ``SLOT_BYTES`` per slot, rounded
    down to ``SLOT_STEP``, between ``SLOT_STEP`` and ``MAX_DEVICE_SLOTS``. E.g. 80 GB at 0.25:
    8192; 16 GiB at 0.25: 4096; 16 GiB at 0.1: 1536."""
    if not (memory_bytes > 0 and 0 < share <= 1):
        raise ValueError(
            f"expected device memory > 0 bytes and a share in (0, 1], got {memory_bytes} and {share}"
        )
    slots = int(memory_bytes * min(share, 1.0) * 0.5 // SLOT_BYTES) // SLOT_STEP * SLOT_STEP
    return max(SLOT_STEP, min(MAX_DEVICE_SLOTS, slots))


def device_memory(device: torch.device | str) -> int:
    """Total memory of the CUDA ``device`` in bytes."""
    return int(torch.cuda.get_device_properties(torch.device(device)).total_memory)
