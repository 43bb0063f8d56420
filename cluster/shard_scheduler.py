"""Hands precompute's shards to the fitter actors and yields their results as they come; the
shards of an actor whose node is lost go to the actors left.

Ray restarts a fitter actor that dies and retries its shards (``max_restarts``,
``max_task_retries``), which is all it takes while the actor's node lives on. When the node itself
is lost, the restarted actor needs room on another node, which a cluster of fixed size may never
have (every CPU held by the other actors): its shards would wait forever, and the job with them.
So the scheduler watches the cluster's nodes (``ray.nodes()``, every ``check_every_s`` while it
waits for results). An actor whose node died is given up: killed (so that a late restart does not
take a CPU from the others), and its unfinished shards are handed to the actors left, first. The
job finishes on what is left, and every shard is yielded exactly once.

An actor that never starts (pending: no node has the room it asks for, e.g. another job holds
the GPUs) would keep its two shards for ever, and the job would never end without a word. After
``start_timeout_s`` such actors are given up the same way, their shards go to the started ones,
and the log says which resources were missing; when none has started, the job ends saying so.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import ray

from spinfits.cluster.fitter_actor import ShardResult
from spinfits.errors import SpinfitsError

logger = logging.getLogger(__name__)


class FittersLostError(SpinfitsError):
    """Every fitter actor's node was lost: no actor is left for the remaining shards."""


class ShardScheduler:
    """Fits shards on ``actors`` (fitter actor handles, with ``node_id()``), ``slots_per_actor``
    shards queued on each at a time (the next one waits while the driver merges).

    submit(actor, shard) -> ObjectRef of the actor's ``ShardResult`` for ``shard`` (one item of
    the shards given to ``results``: (S,) dataset rows, or what the caller makes a shard of);
    check_every_s: how often, while waiting, the nodes are checked for a lost one.
    start_timeout_s: an actor that has not started this long after ``results`` began (pending: the
    cluster has no room for it, e.g. another job holds the GPUs) is given up and its shards go
    to the started actors; when none has started, ``FittersLostError`` says which resources
    are missing (None: wait for ever). demand: one actor's resources (``{"CPU": 1, "GPU": 1}``),
    for that message. clock: seconds, monotonic (tests pass a fake one).
    """

    def __init__(
        self,
        actors: Sequence[ray.actor.ActorHandle],
        submit: Callable[[ray.actor.ActorHandle, Any], ray.ObjectRef],
        slots_per_actor: int = 2,
        check_every_s: float = 2.0,
        start_timeout_s: float | None = 600.0,
        demand: dict[str, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._actors = list(actors)
        self._submit = submit
        self._slots = slots_per_actor
        self._check_every_s = check_every_s
        self._start_timeout_s = start_timeout_s
        self._demand = demand or {}
        self._clock = clock
        self.lost: list[int] = []  #: indices of the actors given up (node lost, or never started)

    def results(self, shards: Sequence[np.ndarray]) -> Iterator[ShardResult]:
        """Yield the ``ShardResult`` of every shard once, in the order they finish. An error
        raised by ``fit_shard`` comes through; ``FittersLostError`` when no actor is left."""
        for _, result in self.indexed_results(shards):
            yield result

    def indexed_results(self, shards: Sequence[Any]) -> Iterator[tuple[int, ShardResult]]:
        """``results``, each with the index of its shard in ``shards``; a shard is whatever
        ``submit`` takes (precompute's: (dataset index, rows))."""
        pending = deque(range(len(shards)))
        live = list(range(len(self._actors)))
        load: Counter[int] = Counter()
        in_flight: dict[ray.ObjectRef, tuple[int, int]] = {}  # result -> (shard, actor)
        hello = {self._actors[actor].node_id.remote(): actor for actor in live}  # -> node id
        nodes: dict[int, str] = {}
        began = checked = self._clock()
        while pending or in_flight:
            if not live:
                raise FittersLostError(
                    f"the nodes of all {len(self._actors)} fitter actors were lost; {len(pending)} "
                    "shards were not fitted. What was merged is committed: rerun the job on a "
                    "cluster with room for its actors, and it resumes from the store"
                )
            while pending and (free := [a for a in live if load[a] < self._slots]):
                actor = min(free, key=lambda a: load[a])
                shard = pending.popleft()
                in_flight[self._submit(self._actors[actor], shards[shard])] = (shard, actor)
                load[actor] += 1
            ready, _ = ray.wait([*in_flight, *hello], num_returns=1, timeout=self._check_every_s)
            for ref in ready:
                if ref in hello:
                    actor = hello.pop(ref)
                    nodes[actor] = self._started(actor, ref)
                    continue
                shard, actor = in_flight.pop(ref)
                load[actor] -= 1
                yield shard, ray.get(ref)
            if self._clock() - checked >= self._check_every_s:
                checked = self._clock()
                dead = {node["NodeID"] for node in ray.nodes() if not node["Alive"]}
                for actor in [a for a in live if nodes.get(a) in dead]:
                    unfinished = self._give_up(actor, live, load, in_flight, hello, pending)
                    logger.warning(
                        "fitter actor %d was on node %s, which was lost; its %d unfinished shards go "
                        "to the %d actors left",
                        actor,
                        nodes[actor],
                        unfinished,
                        len(live),
                    )
            waited = self._clock() - began
            if self._start_timeout_s is not None and waited >= self._start_timeout_s and hello:
                self._give_up_unstarted(waited, live, nodes, load, in_flight, hello, pending)

    def _started(self, actor: int, ref: ray.ObjectRef) -> str:
        """The node id ``actor`` answered with; ``FittersLostError`` when it could not start."""
        try:
            return ray.get(ref)
        except ray.exceptions.RayActorError as error:
            raise FittersLostError(f"fitter actor {actor} could not start: {error}") from None

    def _give_up_unstarted(self, waited, live, nodes, load, in_flight, hello, pending) -> None:
        """Actors still pending after ``start_timeout_s``: their shards go to the started ones,
        or, with none started, the job ends saying which resources are missing."""
        unstarted = sorted(hello.values())
        missing = self._missing_resources()
        if not nodes:
            raise FittersLostError(
                f"none of the {len(self._actors)} fitter actors started within {waited:.0f} s: {missing}. "
                "Nothing was fitted; free those resources (or add nodes) and rerun, or lower "
                "--gpus-per-worker / --threads-per-worker"
            )
        for actor in unstarted:
            self._give_up(actor, live, load, in_flight, hello, pending)
        logger.warning(
            "fitter actor(s) %s did not start within %.0f s (%s); their shards go to the %d started actors",
            ", ".join(map(str, unstarted)),
            waited,
            missing,
            len(live),
        )

    def _missing_resources(self) -> str:
        """What one actor asks for against what the cluster has and has free."""
        total, free = ray.cluster_resources(), ray.available_resources()
        asks = ", ".join(f"{name} {amount:g}" for name, amount in self._demand.items() if amount)
        has = ", ".join(
            f"{name} {total.get(name, 0):g} ({free.get(name, 0):g} free)"
            for name, amount in self._demand.items()
            if amount
        )
        return f"each needs {asks or 'nothing named'} on one node; the cluster has {has or 'none of them'}"

    def _give_up(self, actor, live, load, in_flight, hello, pending) -> int:
        """Kill ``actor`` (no restart) and put its unfinished shards first in the queue; returns
        how many there were."""
        if actor in live:
            live.remove(actor)
            self.lost.append(actor)
            unfinished = [(ref, shard) for ref, (shard, a) in in_flight.items() if a == actor]
            for ref, shard in reversed(unfinished):
                del in_flight[ref]
                pending.appendleft(shard)
            for ref in [ref for ref, a in hello.items() if a == actor]:
                del hello[ref]
            load[actor] = 0
            ray.kill(self._actors[actor], no_restart=True)
            return len(unfinished)
        return 0
