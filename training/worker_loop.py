"""The per-worker training loop Ray Train runs (``TorchTrainer(train_loop_per_worker=...)``).

Each worker: restores the latest checkpoint if Ray Train gives one (resume, or recovery after a
worker died) or starts from ``pretrained`` weights, wraps the regressor in DDP, pins a store reader
per dataset at the checkpoint's snapshot (or the tip), then per step: takes its batch from the
DataLoader (samples and augmentation drawn from (seed, step, rank), built ahead by loader
processes), runs
``SpinTrainingStep``, sends its proposals to the store writer without waiting, and every
``refresh_every`` steps moves its reader to the store's newest commit. Rank 0 writes the
checkpoint every ``checkpoint_every`` steps, after asking the writer to commit, so the snapshot
it records holds the run's improvements so far.

Per-step figures (losses, seconds spent in store traffic, fits proposed) are appended as JSON
lines to ``<run dir>/progress/rank<r>.jsonl`` on the worker's machine; rank 0 also writes
TensorBoard summaries to ``<run dir>/tensorboard``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import icechunk
import numpy as np
import ray
import ray.train
import ray.train.torch
import torch

from spinfits.fitting.body.model_files import load_body_model_files
from spinfits.fitting.data.mean_params import spin_mean_params_path
from spinfits.fitting.device import checked_device
from spinfits.fitting.synthetic.render import part_face_colours
from spinfits.store import FitStore
from spinfits.training.best_fits import MixedBestFits
from spinfits.training.checkpoint import (
    TrainingState,
    load_training_state,
    prepared_with_optimizer,
    save_training_state,
)
from spinfits.training.data import StepBatches, step_seed, training_loader
from spinfits.training.mixture import MixedSampler
from spinfits.training.pretrained import load_pretrained
from spinfits.training.regressor import HMR, RegressorConfig
from spinfits.training.run_inputs import load_training_data, mix_weights
from spinfits.training.spin_step import SpinTrainingStep
from spinfits.training.store_writer import store_writer
from spinfits.training.summaries import RunSummaries, crops_to_rgb, draw_fits, fit_grid
from spinfits.training.train_config import TrainConfig

logger = logging.getLogger(__name__)


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    config: TrainConfig = loop_config["config"]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    icechunk.set_logs_filter("error")  # local stores warn on every open; commits are locked
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(config.threads)
    if config.device == "cuda":  # a CPU build of torch on a GPU node: say so before any work
        checked_device("cuda")
    device = ray.train.torch.get_device()
    files = load_body_model_files(config.model_dir)
    data = load_training_data(config)
    sampler = MixedSampler(data.sizes, mix_weights(config, data.sizes), config.batch_size, world, config.seed)
    model = HMR(str(spin_mean_params_path()), RegressorConfig(backbone=config.backbone))
    start, snapshot, state = 0, None, None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            state = load_training_state(directory)
        start, snapshot = state.step, state.snapshot_id
        logger.info("rank %d resumes at step %d, store snapshot %s", rank, start, snapshot)
    elif config.pretrained is not None:
        loaded = load_pretrained(model, config.pretrained)
        if rank == 0:
            logger.info("started from %s", loaded)
    # the optimiser's state follows the parameters to the worker's device (made after the move)
    model, optimizer = prepared_with_optimizer(
        model, state, config.learning_rate, ray.train.torch.prepare_model
    )
    store = FitStore.open(config.store, body_model=files.fingerprint, s3=config.s3)
    best = MixedBestFits(config.names, [store.reader(name, version=snapshot) for name in config.names])
    writer = store_writer(config.run)
    step_fn = SpinTrainingStep(model, optimizer, files, config, device)
    progress = _progress_file(config, rank)
    summaries = RunSummaries(config.run_dir / "tensorboard" if rank == 0 and config.summary_every else None)
    batches = StepBatches(data, sampler, config.augmentation, config.seed, rank, start, config.steps)
    loader = iter(training_loader(batches, config.loader_workers, pin_memory=device.type == "cuda"))
    for step in range(start, config.steps):
        began = time.perf_counter()
        store_seconds = 0.0
        if step > start and step % config.refresh_every == 0:
            tick = time.perf_counter()
            best.refresh()
            store_seconds += time.perf_counter() - tick
        tick = time.perf_counter()
        batch = next(loader).to(device, non_blocking=True)
        data_seconds = time.perf_counter() - tick
        tick = time.perf_counter()
        stored = best.read(batch.dataset, batch.rows)
        store_seconds += time.perf_counter() - tick
        torch.manual_seed(step_seed(config.seed, step, rank, stream=1))  # dropout, on resume too
        draw = rank == 0 and config.images_every > 0 and step % config.images_every == 0
        outcome = step_fn(batch, stored, step, visuals=draw)
        tick = time.perf_counter()
        for name, part in outcome.proposals.items():
            if len(part):
                writer.propose.remote(part, name)  # never waited on
        best.record(outcome.proposals)
        store_seconds += time.perf_counter() - tick
        seconds = time.perf_counter() - began
        record = _step_record(
            config, step, rank, batch, outcome, best.snapshot_id, seconds, store_seconds, data_seconds
        )
        _append(progress, record)
        if rank == 0:
            _summarise(summaries, config, step, record, optimizer, batch, outcome, step_fn)
        if rank == 0 and (step % 10 == 0 or step + 1 == config.steps):
            _log_step(config, step, record, outcome)
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps:
            _report(config, rank, model, optimizer, step + 1, writer, outcome.losses)
    summaries.close()


def _step_record(
    config, step, rank, batch, outcome, snapshot_id, seconds, store_seconds, data_seconds
) -> dict[str, Any]:
    """One step's line of ``progress/rank<r>.jsonl``: losses, seconds by phase, fits proposed."""
    finite = outcome.best_loss[np.isfinite(outcome.best_loss)]
    return {
        "step": step,
        "rank": rank,
        "pid": os.getpid(),
        "seconds": seconds,
        "store_seconds": store_seconds,
        "data_seconds": data_seconds,
        "proposed": sum(len(part) for part in outcome.proposals.values()),
        "proposed_per_dataset": {name: len(part) for name, part in outcome.proposals.items()},
        "samples_per_dataset": {
            name: int((batch.dataset == index).sum()) for index, name in enumerate(config.names)
        },
        "datasets": batch.dataset.tolist(),  # the samples drawn (checked on resume)
        "rows": batch.rows.tolist(),
        "valid": int(outcome.valid.sum()),
        "batch": len(batch),
        "best_fit_loss": float(finite.mean()) if finite.size else None,
        "snapshot": snapshot_id,
        "phases": outcome.seconds,
        **outcome.losses,
    }


def _log_step(config, step, record, outcome) -> None:
    """rank 0's log line of a step: losses, proposals, seconds and where they went."""
    seconds = record["seconds"]
    logger.info(
        "step %d/%d loss %.3f (keypoints %.4f, pose %.4f) proposed %d, valid %d/%d, "
        "%.2f s/step (store %.1f%%, waiting on data %.1f%%)",
        step + 1,
        config.steps,
        outcome.losses["total"],
        outcome.losses["keypoint"],
        outcome.losses["pose"],
        record["proposed"],
        record["valid"],
        record["batch"],
        seconds,
        100 * record["store_seconds"] / seconds,
        100 * record["data_seconds"] / seconds,
    )


def _summarise(summaries, config, step, record, optimizer, batch, outcome, step_fn) -> None:
    """rank 0's TensorBoard scalars (every ``summary_every`` steps) and fit images."""
    if config.summary_every and step % config.summary_every == 0:
        values = {f"loss/{name}": value for name, value in outcome.losses.items()}
        values["train/learning_rate"] = optimizer.param_groups[0]["lr"]
        values["train/seconds_per_step"] = record["seconds"]
        values["train/store_share"] = record["store_seconds"] / record["seconds"]
        values["train/data_wait_share"] = record["data_seconds"] / record["seconds"]
        values["fits/proposed"] = record["proposed"]
        values["fits/valid_share"] = record["valid"] / record["batch"]
        values["fits/best_fit_loss"] = record["best_fit_loss"]
        summaries.scalars(step, values)
    if outcome.visuals is not None:
        shown = min(4, len(batch))
        crops = crops_to_rgb(batch.images[:shown].cpu())
        smpl = step_fn.body.files.smpl
        faces, colours = smpl.faces, part_face_colours(smpl.faces, smpl.weights)
        cam_t = outcome.visuals["cam_t"][:shown]
        pred = draw_fits(crops, outcome.visuals["pred_vertices"][:shown], cam_t, faces, colours)
        opt = draw_fits(crops, outcome.visuals["opt_vertices"][:shown], cam_t, faces, colours)
        summaries.image(step, "fits/input_prediction_best_fit", fit_grid([crops, pred, opt]))


def _report(
    config: TrainConfig, rank: int, model, optimizer, next_step: int, writer, losses: dict[str, float]
) -> None:
    metrics = {"step": next_step, **losses}
    if rank != 0:
        ray.train.report(metrics, checkpoint=None)
        return
    snapshot = ray.get(writer.flush.remote())  # the checkpoint records the run's fits so far
    module = model.module if hasattr(model, "module") else model
    with tempfile.TemporaryDirectory() as directory:
        save_training_state(
            directory,
            TrainingState(
                step=next_step,
                snapshot_id=snapshot,
                model=module.state_dict(),
                optimizer=optimizer.state_dict(),
                run=config.run,
                backbone=config.backbone,
                input_res=config.input_res,
            ),
        )
        ray.train.report(
            {**metrics, "snapshot": snapshot}, checkpoint=ray.train.Checkpoint.from_directory(directory)
        )


def _progress_file(config: TrainConfig, rank: int) -> Path | None:
    folder = config.run_dir / "progress"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        logger.warning("no progress file for rank %d (%s)", rank, error)
        return None
    return folder / f"rank{rank}.jsonl"


def _append(path: Path | None, record: dict[str, Any]) -> None:
    if path is not None:
        with open(path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
