"""The embedded default's Ray workers run at the driver's priority, not Ray's niceness 15."""

import os

import pytest
import ray

from spinfits.cluster.local_ray import WORKER_NICENESS_VARIABLE, connect_or_start_ray


@ray.remote(num_cpus=0)
class NicenessProbe:
    def niceness(self) -> int:
        return os.nice(0)


@pytest.fixture
def no_ray():
    """No Ray instance before the test (it starts its own) and none after."""
    if ray.is_initialized():
        pytest.fail("Ray is already initialised in this test process; this test starts its own")
    yield
    ray.shutdown()


def test_embedded_default_runs_actors_at_normal_priority(no_ray, monkeypatch):
    monkeypatch.delenv(WORKER_NICENESS_VARIABLE, raising=False)
    assert connect_or_start_ray() is True
    # the variable only reached the processes ray.init started: the driver's stays unset
    assert WORKER_NICENESS_VARIABLE not in os.environ
    actor_niceness = ray.get(NicenessProbe.remote().niceness.remote(), timeout=60)
    assert actor_niceness <= os.nice(0)  # Ray's own default would be 15
    # already initialised: nothing to start, nothing for the caller to shut down
    assert connect_or_start_ray() is False
