"""``spinfits train``: SPIN training on Ray Train with the best-fit store in the loop.

The driver checks every input before any work (dataset and images, body model, store and that the
store holds this dataset's fits for this model, the run folder), starts the run's store writer
actor and a ``TorchTrainer`` (DDP; CPU or one GPU per worker with the same code). Ray Train keeps
checkpoints in ``runs_dir/run``; a worker that dies is replaced and the group restarts from the
latest checkpoint (``max_failures``); ``resume`` continues a stopped run from it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import ray
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig, TrainingFailedError
from ray.train.torch import TorchTrainer

from spinfits.cluster.local_ray import connect_or_start_ray
from spinfits.errors import Interrupted, SpinfitsError
from spinfits.store import FitStore
from spinfits.training.progress import ProgressFollower
from spinfits.training.run_inputs import CheckedInputs, after_a_stop, check_inputs
from spinfits.training.store_writer import WriterStats, start_store_writer
from spinfits.training.train_config import TrainConfig
from spinfits.training.worker_loop import train_loop_per_worker

logger = logging.getLogger(__name__)

#: The resolved configuration of a run, saved in its folder at every start.
CONFIG_FILE = "config.json"


class TrainingError(SpinfitsError):
    """A training run failed after its inputs were accepted (worker errors beyond max_failures)."""


@dataclass(frozen=True)
class TrainSummary:
    """What a run did: store mean fit loss (finite rows) and fitted rows before and after,
    the writer's figures, the last checkpoint's step and store snapshot."""

    run: str
    first_step: int
    steps: int
    seconds: float
    loss_before: float
    loss_after: float
    fitted_before: int
    fitted_after: int
    writer: WriterStats
    checkpoint_step: int | None
    checkpoint_snapshot: str | None
    is_standin: bool
    nothing_to_do: bool = False

    def lines(self) -> list[str]:
        model = "stand-in body model" if self.is_standin else "body model"
        if self.nothing_to_do:
            return [
                f"nothing to do: run {self.run} is already at step {self.checkpoint_step} "
                f"(pass a larger --steps with --resume to train further)"
            ]
        return [
            f"run {self.run}: steps {self.first_step}-{self.steps} in {self.seconds:.1f} s ({model})",
            f"store mean fit loss {self.loss_before:.3f} -> {self.loss_after:.3f} over fitted rows "
            f"({self.fitted_before} -> {self.fitted_after} rows fitted)",
            f"in-loop proposals {self.writer.proposals}, rows improved {self.writer.rows_improved}, "
            f"commits by this run {self.writer.commits}",
            f"last checkpoint: step {self.checkpoint_step}, store snapshot {self.checkpoint_snapshot}",
        ]


def _store_figures(store: FitStore, names: tuple[str, ...]) -> tuple[float, int]:
    """Mean fit loss over fitted rows, and how many rows are fitted, over the run's datasets."""
    losses = np.concatenate([store.losses(name) for name in names])  # 4 B a row, not the fits
    finite = losses[np.isfinite(losses)]
    return (float(finite.mean()) if finite.size else float("nan")), int(finite.size)


def worker_config(config: TrainConfig) -> TrainConfig:
    """The config the Ray Train workers and the store writer actor get: absolute paths (they
    run in other folders, possibly on other machines) and S3 options without explicit keys
    (each process finds its own credentials through the AWS chain)."""
    return replace(
        config,
        datasets=tuple(spec.resolved() for spec in config.datasets),
        runs_dir=Path(config.runs_dir).resolve(),
        model_dir=Path(config.model_dir).resolve(),
        pretrained=None if config.pretrained is None else Path(config.pretrained).resolve(),
        store=config.store if "://" in config.store else str(Path(config.store).resolve()),
        s3=None if config.s3 is None else config.s3.without_credentials(),
    )


def _torch_trainer(config: TrainConfig) -> TorchTrainer:
    """Ray Train's trainer of the run: ``config.workers`` workers (threads or a GPU share each),
    checkpoints kept under the run's folder, ``max_failures`` recoveries."""
    resources = (
        {"CPU": config.threads} if config.device == "cpu" else {"CPU": 1, "GPU": config.gpus_per_worker}
    )
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"config": config},
        scaling_config=ScalingConfig(
            num_workers=config.workers, use_gpu=config.device == "cuda", resources_per_worker=resources
        ),
        run_config=RunConfig(
            name=config.run,
            storage_path=str(config.run_dir.parent),
            failure_config=FailureConfig(max_failures=config.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=3),
        ),
    )


def run_training(
    config: TrainConfig, announce: Callable[[str], None] = logger.info, checked: CheckedInputs | None = None
) -> TrainSummary:
    """Check every input (unless ``checked`` is ``check_inputs(config)`` already: the command line
    checks before importing Ray), then train on Ray; ``announce`` gets the lines the user should
    see before the run starts (``CheckedInputs.lines``)."""
    start = time.perf_counter()
    checked = checked or check_inputs(config)
    store, is_standin, done = checked.store, checked.is_standin, checked.done
    for line in checked.lines():
        announce(line)
    loss_before, fitted_before = _store_figures(store, config.names)
    if done is not None and done >= config.steps:
        return TrainSummary(
            run=config.run,
            first_step=done,
            steps=done,
            seconds=time.perf_counter() - start,
            loss_before=loss_before,
            loss_after=loss_before,
            fitted_before=fitted_before,
            fitted_after=fitted_before,
            writer=WriterStats(0, 0, 0, None, None),
            checkpoint_step=done,
            checkpoint_snapshot=None,
            is_standin=is_standin,
            nothing_to_do=True,
        )
    config = worker_config(config)
    config.run_dir.mkdir(parents=True, exist_ok=True)
    config.save(config.run_dir / CONFIG_FILE)  # `spinfits train --config` reruns it
    connect_or_start_ray()  # workers' output goes to the run's progress files instead
    writer = start_store_writer(
        config.store, config.names, store.body_model.fingerprint, config.run, config.commit_every_s, config.s3
    )
    trainer = _torch_trainer(config)
    follower = ProgressFollower(
        config.run_dir / "progress" / "rank0.jsonl", config.steps, config.run, show=config.show_progress
    )
    interrupted = False
    try:
        with follower:
            result = trainer.fit()
    except TrainingFailedError as error:
        raise TrainingError(
            f"training run {config.run!r} failed: {error}; {after_a_stop(config.run_dir)}"
        ) from None
    except (KeyboardInterrupt, SystemExit):  # Ray Train turns SIGINT into SystemExit in fit()
        interrupted = True
    finally:
        ray.get(writer.close.remote())  # commits what the workers proposed before the stop
        stats = ray.get(writer.stats.remote())
        ray.kill(writer)
    if interrupted:
        raise Interrupted(
            f"training run {config.run!r} was stopped; its {stats.commits} commit(s) to the store "
            f"stay (last {stats.last_commit or 'none'}, training steps {stats.steps or 'none'}); "
            f"{after_a_stop(config.run_dir)}"
        )
    metrics = result.metrics or {}
    loss_after, fitted_after = _store_figures(store, config.names)  # read() reads the tip
    return TrainSummary(
        run=config.run,
        first_step=done or 0,
        steps=config.steps,
        seconds=time.perf_counter() - start,
        loss_before=loss_before,
        loss_after=loss_after,
        fitted_before=fitted_before,
        fitted_after=fitted_after,
        writer=stats,
        checkpoint_step=metrics.get("step"),
        checkpoint_snapshot=metrics.get("snapshot"),
        is_standin=is_standin,
    )
