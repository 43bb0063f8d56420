import pytest
import ray

from spinfits.fitting.synthetic.people import SyntheticConfig, write_synthetic_dataset


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance shared by a test module (2 CPUs, like CI)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory, standin_files):
    """96 synthetic people (a few unfittable: all keypoints removed)."""
    import numpy as np

    path = tmp_path_factory.mktemp("precompute") / "people.npz"
    write_synthetic_dataset(path, standin_files, SyntheticConfig(rows=96, seed=21))
    arrays = dict(np.load(path))
    arrays["openpose"][5] = 0.0
    arrays["part"][5] = 0.0  # row 5 has no keypoints at all
    np.savez(path, **arrays)
    return path
