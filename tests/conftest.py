from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"../shared/data is missing (expected at {SHARED_DATA})")
    return SHARED_DATA


@pytest.fixture(scope="session")
def standin_dir(tmp_path_factory) -> Path:
    """The stand-in body model files written once per test session (SPIN's data/ layout)."""
    from spinfits.fitting.synthetic.standin import write_standin_files

    directory = tmp_path_factory.mktemp("standin_model")
    write_standin_files(directory)
    return directory


@pytest.fixture(scope="session")
def standin_files(standin_dir):
    from spinfits.fitting.model_files import load_body_model_files

    return load_body_model_files(standin_dir)


@pytest.fixture
def other_model_copy(tmp_path):
    """copy(source_dir) -> a copy of a model folder whose body (hence fingerprint) differs."""
    import pickle
    import shutil

    def copy(source: Path) -> Path:
        target = tmp_path / f"other_model_{len(list(tmp_path.glob('other_model_*')))}"
        shutil.copytree(source, target)
        pkl = target / "smpl" / "SMPL_NEUTRAL.pkl"
        data = pickle.loads(pkl.read_bytes())
        data["v_template"] = data["v_template"] * 1.01
        pkl.write_bytes(pickle.dumps(data))
        return target

    return copy


@pytest.fixture
def ray_head():
    """A Ray head on loopback started (and stopped) by the test: (ray command, env, address)."""
    import os
    import shutil
    import subprocess
    import sys

    bin_dir = Path(sys.executable).parent
    ray = shutil.which("ray", path=str(bin_dir)) or pytest.fail("the ray command is not installed")
    # a test cluster on loopback only; token authentication is for shared clusters
    env = dict(os.environ, RAY_AUTH_MODE="disabled", PATH=f"{bin_dir}:{os.environ['PATH']}")
    start = [
        ray,
        "start",
        "--head",
        "--node-ip-address=127.0.0.1",
        "--port=6391",
        "--dashboard-host=127.0.0.1",
        "--dashboard-port=8271",
        "--num-cpus=2",
        "--include-dashboard=true",
        "--disable-usage-stats",
    ]
    subprocess.run(start, env=env, check=True, capture_output=True, timeout=120)
    try:
        yield ray, env, "http://127.0.0.1:8271"
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)


@pytest.fixture
def small_filesystem(tmp_path):
    """mount(size) -> a fresh tmpfs of ``size`` (e.g. "2m") under tmp_path, with ``remount_ro``.

    Real storage faults (a full disk, a read-only store) need a real filesystem: root with
    CAP_SYS_ADMIN mounts one (this CI does); elsewhere the test is skipped, saying why.
    """
    import subprocess

    mounted: list[Path] = []

    class Mount:
        def __init__(self, size: str):
            self.path = tmp_path / f"fs{len(mounted)}"
            self.path.mkdir()
            done = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(self.path)],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                pytest.skip(
                    f"cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): {done.stderr.strip()}"
                )
            mounted.append(self.path)

        def remount(self, options: str) -> None:
            subprocess.run(
                ["mount", "-o", f"remount,{options}", str(self.path)], check=True, capture_output=True
            )

    yield Mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def one_torch_thread():
    """Run a test on one torch thread: its tensors are small, and two threads on a busy 2-core
    machine spin-wait each other into much slower steps and renders."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
