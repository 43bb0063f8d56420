"""The store writer of a training run: one Ray actor merges every worker's proposals and commits.

The actor is ``spinfits.store.StoreWriter``, the writer precompute uses too. Training workers
send ``propose(proposals)`` without waiting for it (fire and forget): merging is in memory and
commits happen on the writer's own clock (every ``commit_every_s`` seconds, on
a background thread), so a worker never waits on storage. Each commit is attributed to the run
(message ``training <run>: steps a-b``, metadata ``source: training``, ``run``, ``steps``).

If the writer is killed, Ray restarts it (``max_restarts=-1``) and replays the calls that had not
run; proposals it had merged but not committed are lost, which costs only improvements, never
correctness: the store only ever holds committed fits, each better than the one it replaced.
"""

from __future__ import annotations

import ray

from spinfits.store import FitStore, S3Options
from spinfits.store.writer import StoreWriter as BaseStoreWriter
from spinfits.store.writer import WriterStats
from spinfits.training.train_config import COMMIT_EVERY_S

__all__ = ["WRITER_NAME_PREFIX", "StoreWriter", "WriterStats", "start_store_writer", "store_writer"]

#: The writer actor of run R is named ``spinfits-store-writer-R``.
WRITER_NAME_PREFIX = "spinfits-store-writer-"


class StoreWriter(BaseStoreWriter):
    """The run's writer: ``spinfits.store.StoreWriter`` on the store at ``store``, with commits
    attributed to the run (``training RUN: steps a-b``) and a commit clock.

    body_model: fingerprint the store must hold fits of (InputError otherwise).
    """

    def __init__(
        self,
        store: str,
        dataset: str | tuple[str, ...],
        body_model: str,
        run: str,
        commit_every_s: float = COMMIT_EVERY_S,
        s3: S3Options | None = None,
    ) -> None:
        super().__init__(
            FitStore.open(store, body_model=body_model, s3=s3),
            dataset,
            job=f"training {run}",
            source="training",
            commit_every_s=commit_every_s,
            by_steps=True,
            metadata={"run": run},
            clock=True,
        )


def start_store_writer(
    store: str,
    dataset: str | tuple[str, ...],
    body_model: str,
    run: str,
    commit_every_s: float,
    s3: S3Options | None = None,
) -> ray.actor.ActorHandle:
    """Start (or find, when resuming) the run's named writer actor; restarts when killed."""
    actor = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)(StoreWriter)
    return actor.options(name=WRITER_NAME_PREFIX + run, get_if_exists=True).remote(
        store, dataset, body_model, run, commit_every_s, s3
    )


def store_writer(run: str) -> ray.actor.ActorHandle:
    """The writer of ``run`` (from a training worker)."""
    return ray.get_actor(WRITER_NAME_PREFIX + run)
