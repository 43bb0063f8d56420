from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_addoption(parser):
    parser.addoption(
        "--spin-repo",
        default=None,
        help="a checkout of github.com/nkolot/SPIN: also run the tests of bench/spin_smplify.py "
        "that run SPIN's own code (skipped without it)",
    )


@pytest.fixture(scope="session")
def spin_repo(request) -> Path:
    """The SPIN checkout given with --spin-repo; tests that need SPIN's code skip, with a reason, without it."""
    given = request.config.getoption("--spin-repo")
    if given is None:
        pytest.skip("needs SPIN's own code: pass --spin-repo DIR, a checkout of github.com/nkolot/SPIN")
    return Path(given)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data beside the checkout (../shared/data); tests that need it skip, with a reason, without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the real data in ../shared/data (not found at {SHARED_DATA})")
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
    from spinfits.fitting.body.model_files import load_body_model_files

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


# Fixtures that start Ray: a test using one is marked ``slow`` (pyproject registers the marker);
# tests that start Ray another way (ray.init in the test, a training run) carry the mark themselves.
RAY_FIXTURES = {"local_ray", "ray_head", "ray_clusters", "no_ray"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if RAY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def ray_head():
    """A Ray head on loopback (2 CPUs) started (and stopped) by the test: (ray command, env, job
    API address for ``ray job submit --address``). Stopping kills only this head's processes."""
    from ray_nodes import LocalRayCluster

    cluster = LocalRayCluster()
    try:
        cluster.start_head(num_cpus=2)
        yield cluster.ray, cluster.env, cluster.dashboard
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def ray_clusters():
    """start(extra_env=None) -> a new ``ray_nodes.LocalRayCluster`` (no nodes yet: ``start_head``,
    then ``add_node``), with ``extra_env`` in its nodes' environment (and so their workers'). Every
    cluster started is stopped at the end of the module, killing only its own processes."""
    from ray_nodes import LocalRayCluster

    clusters = []

    def start(extra_env: dict[str, str] | None = None) -> LocalRayCluster:
        clusters.append(LocalRayCluster(extra_env))
        return clusters[-1]

    yield start
    for cluster in clusters:
        cluster.stop()


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
