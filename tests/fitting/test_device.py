"""The fit's device: a CUDA device on a CPU build is refused by name, bf16 counts as native only on
Ampere and later, TF32 is off inside the fit, and CUDA's sticky errors are told from bad rows.
Checked on the CPU: torch's flags and build are what these read (no GPU needed)."""

import pytest
import torch

from spinfits.errors import DeviceError
from spinfits.fitting.device import (
    checked_device,
    ieee_float32,
    is_device_failure,
    is_out_of_memory,
    native_bf16,
)
from spinfits.fitting.smplify import fitter as smplify_module
from spinfits.fitting.smplify.config import SmplifyConfig
from spinfits.fitting.smplify.fitter import SMPLify
from spinfits.fitting.synthetic.people import SyntheticConfig, make_synthetic_dataset


def test_cuda_on_a_cpu_build_says_how_to_install_the_cuda_build(body_files, monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(DeviceError, match=r"asks for device cuda, but torch .* is a CPU build") as error:
        SMPLify(body_files, device="cuda")
    assert "--index-url https://download.pytorch.org/whl/cu" in str(error.value)
    assert checked_device("cpu") == torch.device("cpu")


def test_cuda_build_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match=r"sees no GPU \(torch.cuda.is_available\(\) is False\)"):
        checked_device("cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert checked_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(DeviceError, match=r"torch sees 2 GPU\(s\) \(cuda:0 to cuda:1\)"):
        checked_device("cuda:2")


@pytest.mark.parametrize(
    "capability, native", [((7, 0), False), ((7, 5), False), ((8, 0), True), ((9, 0), True)]
)
def test_native_bf16_from_ampere_on(monkeypatch, capability, native):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert native_bf16("cuda") is native
    assert native_bf16("cpu") is False


@pytest.fixture
def tf32_on():
    """The process asked for TF32 / bf16 float32 matmuls (as a training script may)."""
    cuda, mkldnn = torch.backends.cuda.matmul, torch.backends.mkldnn.matmul
    saved = cuda.fp32_precision, mkldnn.fp32_precision
    cuda.fp32_precision, mkldnn.fp32_precision = "tf32", "bf16"
    yield
    cuda.fp32_precision, mkldnn.fp32_precision = saved


def _precision() -> tuple[str, str]:
    return torch.backends.cuda.matmul.fp32_precision, torch.backends.mkldnn.matmul.fp32_precision


def test_tf32_is_off_inside_the_fit_and_restored_after(body_files, tf32_on, monkeypatch):
    seen = []
    solve_pool = smplify_module.solve_pool

    def recording(*args, **kwargs):
        seen.append(_precision())
        return solve_pool(*args, **kwargs)

    monkeypatch.setattr(smplify_module, "solve_pool", recording)
    data = make_synthetic_dataset(body_files, SyntheticConfig(rows=3, seed=5, truncated_fraction=0.0))
    keypoints = torch.as_tensor(data["gt_keypoints"], dtype=torch.float32)
    engine = SMPLify(body_files, SmplifyConfig(camera_iterations=2, body_iterations=2))
    engine.fit(
        torch.as_tensor(data["pose"], dtype=torch.float32),
        torch.zeros(3, 10),
        torch.as_tensor(data["gt_cam_t"], dtype=torch.float32),
        keypoints,
    )
    assert seen and set(seen) == {("ieee", "ieee")}, seen
    assert _precision() == ("tf32", "bf16")  # the process's own choice, back after the fit
    with pytest.raises(RuntimeError, match="inside"), ieee_float32():
        raise RuntimeError("inside")
    assert _precision() == ("tf32", "bf16")  # restored on an error too


@pytest.mark.parametrize(
    "error, failure, oom",
    [
        (torch.AcceleratorError("CUDA error: an illegal memory access was encountered"), True, False),
        (
            RuntimeError("CUDA error: device-side assert triggered\nCompile with TORCH_USE_CUDA_DSA"),
            True,
            False,
        ),
        (RuntimeError("CUDA error: CUBLAS_STATUS_EXECUTION_FAILED when calling cublasSgemm"), True, False),
        (RuntimeError("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR"), True, False),
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), False, True),
        (RuntimeError("linalg.cholesky: The factorization could not be completed"), False, False),
        (ValueError("CUDA error in a user's message is not torch's"), False, False),
    ],
)
def test_device_failures_are_told_from_row_errors(error, failure, oom):
    assert is_device_failure(error) is failure
    assert is_out_of_memory(error) is oom


@pytest.mark.parametrize(
    "memory, share, slots",
    [
        (80 * 10**9, 0.25, 8192),  # capped: MAX_DEVICE_SLOTS
        (16 * 2**30, 0.25, 4096),  # 2 GiB for the pool at 512 KiB a slot
        (16 * 2**30, 0.1, 1536),  # rounded down to SLOT_STEP
        (2**30, 0.1, 256),  # never below a CPU core's default
    ],
)
def test_solver_slots_follow_the_device_memory(memory, share, slots):
    from spinfits.fitting.device import solver_slots_for

    assert solver_slots_for(memory, share) == slots


def test_solver_slots_need_memory_and_a_share():
    from spinfits.fitting.device import solver_slots_for

    with pytest.raises(ValueError, match=r"a share in \(0, 1\], got 1000 and 0"):
        solver_slots_for(1000, 0)
    with pytest.raises(ValueError, match="expected device memory > 0 bytes"):
        solver_slots_for(0, 0.5)
