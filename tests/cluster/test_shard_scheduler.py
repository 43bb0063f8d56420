"""ShardScheduler on local Ray with stand-in fitters: every shard yielded once, and the shards of
an actor whose node is reported lost (``ray.nodes()`` replaced) go to the actors left. The real
node loss is in test_two_nodes_s3.py."""

from __future__ import annotations

import time

import numpy as np
import pytest
import ray

from spinfits.cluster.fitter_actor import ShardResult
from spinfits.cluster.shard_scheduler import FittersLostError, ShardScheduler


@ray.remote(num_cpus=0)
class StandInFitter:
    """Claims to run on ``node``; ``hangs``: its shards take a minute (as if it waited for room to
    restart; long enough to fail the tests below, not to hang them, if nothing notices)."""

    def __init__(self, node: str, hangs: bool = False) -> None:
        self.node, self.hangs = node, hangs

    def node_id(self) -> str:
        return self.node

    def fit_shard(self, rows: np.ndarray) -> ShardResult:
        time.sleep(60 if self.hangs else 0.02)
        count = len(rows)
        return ShardResult(
            rows=rows,
            pose=np.zeros((count, 72), np.float32),
            betas=np.zeros((count, 10), np.float32),
            cam_t=np.zeros((count, 3), np.float32),
            loss=np.ones(count, np.float32),
            seconds=0.02,
            worker=self.node,
        )


def shards(count: int) -> list[np.ndarray]:
    return [np.arange(4 * i, 4 * i + 4) for i in range(count)]


def submit(actor, rows):
    return actor.fit_shard.remote(rows)


def nodes_reporting_lost(monkeypatch, lost: set[str]) -> None:
    monkeypatch.setattr(
        ray, "nodes", lambda: [{"NodeID": node, "Alive": node not in lost} for node in ("a", "b")]
    )


def test_every_shard_is_yielded_once(local_ray):
    actors = [StandInFitter.remote("a"), StandInFitter.remote("b")]
    scheduler = ShardScheduler(actors, submit, check_every_s=0.2)
    results = list(scheduler.results(shards(10)))
    assert sorted(int(r.rows[0]) for r in results) == [4 * i for i in range(10)]
    assert {r.worker for r in results} == {"a", "b"} and scheduler.lost == []


def test_shards_of_an_actor_on_a_lost_node_go_to_the_actors_left(local_ray, monkeypatch, caplog):
    nodes_reporting_lost(monkeypatch, {"b"})
    actors = [StandInFitter.remote("a"), StandInFitter.remote("b", hangs=True)]
    scheduler = ShardScheduler(actors, submit, slots_per_actor=2, check_every_s=0.2)
    with caplog.at_level("WARNING"):
        results = list(scheduler.results(shards(7)))
    assert sorted(int(r.rows[0]) for r in results) == [4 * i for i in range(7)]  # each once
    assert {r.worker for r in results} == {"a"} and scheduler.lost == [1]
    assert "on node b, which was lost; its 2 unfinished shards go to the 1 actors left" in caplog.text
    with pytest.raises(ray.exceptions.RayActorError):  # given up: killed, not restarted
        ray.get(actors[1].node_id.remote(), timeout=30)


def test_no_actor_left_is_an_error_not_a_hang(local_ray, monkeypatch):
    nodes_reporting_lost(monkeypatch, {"a", "b"})
    actors = [StandInFitter.remote("a", hangs=True), StandInFitter.remote("b", hangs=True)]
    with pytest.raises(FittersLostError, match=r"nodes of all 2 fitter actors were lost; 5 shards were not"):
        list(ShardScheduler(actors, submit, check_every_s=0.2).results(shards(5)))


class FakeClock:
    """The scheduler's clock: each reading is ``step`` seconds after the previous one."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_shards_of_an_actor_that_never_starts_go_to_the_started_ones(local_ray, caplog):
    """An actor left pending (its GPU held by another job: here a resource no node has) would keep
    its two shards for ever; after the start timeout they go to the started actor, and the log
    says what the pending one needed."""
    nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    actors = [StandInFitter.remote(nodes[0]), StandInFitter.options(num_gpus=1).remote(nodes[0])]
    ray.get(actors[0].node_id.remote(), timeout=120)  # started before the fake clock runs (under load too)
    scheduler = ShardScheduler(
        actors,
        submit,
        check_every_s=0.2,
        start_timeout_s=60,
        demand={"CPU": 0, "GPU": 1},
        clock=FakeClock(1.0),
    )
    with caplog.at_level("WARNING"):
        results = list(scheduler.results(shards(6)))
    assert sorted(int(r.rows[0]) for r in results) == [4 * i for i in range(6)]  # each once
    assert scheduler.lost == [1]
    assert "fitter actor(s) 1 did not start within" in caplog.text
    assert "each needs GPU 1 on one node; the cluster has GPU 0 (0 free)" in caplog.text


def test_no_actor_started_is_an_error_naming_the_missing_resources(local_ray):
    actors = [StandInFitter.options(num_gpus=1).remote("a") for _ in range(2)]
    scheduler = ShardScheduler(
        actors,
        submit,
        check_every_s=0.2,
        start_timeout_s=30,
        demand={"CPU": 1, "GPU": 1},
        clock=FakeClock(5.0),
    )
    with pytest.raises(
        FittersLostError,
        match=r"none of the 2 fitter actors started within \d+ s: each needs CPU 1, GPU 1 on one node; "
        r"the cluster has CPU 2 \([\d.]+ free\), GPU 0 \(0 free\)",
    ):
        list(scheduler.results(shards(3)))
    assert scheduler.lost == []
    for actor in actors:  # precompute kills its actors when the job ends
        ray.kill(actor)
