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
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import ray
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig, TrainingFailedError
from ray.train.torch import TorchTrainer

from spinfits.cluster.local_ray import connect_or_start_ray
from spinfits.errors import InputError, Interrupted, SpinfitsError
from spinfits.fitting.body.model_files import load_body_model_files
from spinfits.store import FitStore, StoreLocation
from spinfits.training.checkpoint import latest_checkpoint_dir, latest_checkpoint_step, load_training_state
from spinfits.training.progress import ProgressFollower
from spinfits.training.store_writer import WriterStats, start_store_writer
from spinfits.training.train_config import TrainConfig
from spinfits.training.worker_loop import load_training_data, mix_weights, train_loop_per_worker

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


def check_inputs(config: TrainConfig) -> tuple[FitStore, bool, int | None]:
    """Every input checked before any work; returns the store, whether the model is a stand-in
    and, with ``resume``, the step of the run's latest checkpoint. Messages name the config's
    fields (the command line tells them as its flags)."""
    if config.s3 is not None and config.s3.has_credentials:
        raise InputError(
            "training was given explicit S3 keys (S3Options access_key_id/secret_access_key), "
            "but its workers and store writer run in other Ray processes, possibly on other "
            "machines, and keys are not sent there (they would travel in Ray task arguments). "
            "Leave the keys unset and give every node credentials through the AWS chain: "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment (a local cluster "
            "started by this process inherits it), a profile (AWS_PROFILE) or an instance role"
        )
    StoreLocation.parse(config.store, config.s3).check_writable()
    files = load_body_model_files(config.model_dir)
    data = load_training_data(config)
    if config.mix is None:
        logger.info(
            "dataset mix (SPIN's partition): %s",
            ", ".join(f"{n} {w:.1%}" for n, w in zip(config.names, mix_weights(config, data.sizes))),
        )
    store = FitStore.open(config.store, body_model=files.fingerprint, s3=config.s3)
    held = store.datasets()
    for spec, dataset in zip(config.datasets, data.datasets):
        if spec.name not in held:
            raise InputError(
                f"datasets: store {store.location} has no dataset {spec.name!r} (it has "
                f"{sorted(held)}); fill it first: spinfits precompute --dataset {spec.npz} "
                f"--name {spec.name} --store {config.store} --model-dir {config.model_dir}"
            )
        if held[spec.name].dataset_fingerprint != dataset.dataset.fingerprint:
            raise InputError(
                f"datasets: store dataset {spec.name!r} was made from another file than {spec.npz} "
                "(fingerprints differ); give it the name of the matching store dataset (`datasets`)"
            )
    if config.pretrained is not None and not Path(config.pretrained).is_file():
        raise InputError(f"pretrained: file {config.pretrained} does not exist")
    run_dir = config.run_dir
    if not config.resume:
        if run_dir.exists():
            raise InputError(
                f"run: {config.run!r} already exists in {run_dir}; continue it from its latest "
                "checkpoint (`resume`), or choose another `run`"
            )
        return store, files.is_standin, None
    done = latest_checkpoint_step(run_dir)
    if done is None:
        raise InputError(
            f"resume: run {config.run!r} has no checkpoint in {run_dir}; start it without `resume`"
        )
    state = load_training_state(latest_checkpoint_dir(run_dir))
    if (state.backbone, state.input_res) != (config.backbone, config.input_res):
        raise InputError(
            f"resume: run {config.run!r} was trained with `backbone` {state.backbone} `input_res` "
            f"{state.input_res}, but this run asks for `backbone` {config.backbone} `input_res` "
            f"{config.input_res}: resume with the run's settings, or start a new `run`"
        )
    return store, files.is_standin, done


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


def run_training(config: TrainConfig) -> TrainSummary:
    start = time.perf_counter()
    store, is_standin, done = check_inputs(config)
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
    resources = (
        {"CPU": config.threads} if config.device == "cpu" else {"CPU": 1, "GPU": config.gpus_per_worker}
    )
    trainer = TorchTrainer(
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
    follower = ProgressFollower(
        config.run_dir / "progress" / "rank0.jsonl", config.steps, config.run, show=config.show_progress
    )
    interrupted = False
    try:
        with follower:
            result = trainer.fit()
    except TrainingFailedError as error:
        raise TrainingError(
            f"training run {config.run!r} failed: {error}; its checkpoints are in "
            f"{config.run_dir}: rerun with --resume to continue"
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
            f"stay (last {stats.last_commit or 'none'}, training steps {stats.steps or 'none'}); its "
            f"checkpoints are in {config.run_dir}: rerun with --resume to continue"
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
