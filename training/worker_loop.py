"""The per-worker training loop Ray Train runs (``TorchTrainer(train_loop_per_worker=...)``).

Each worker: restores the latest checkpoint if Ray Train gives one (resume, or recovery after a
worker died), wraps the regressor in DDP, pins a store reader at the checkpoint's snapshot (or the
tip), then per step: draws its rows and augmentation from (seed, step, rank), runs
``SpinTrainingStep``, sends its proposals to the store writer without waiting, and every
``refresh_every`` steps moves its reader to the store's newest commit. Rank 0 writes the
checkpoint every ``checkpoint_every`` steps, after asking the writer to commit, so the snapshot
it records holds the run's improvements so far.

Per-step figures (losses, seconds spent in store traffic, fits proposed) are appended as JSON
lines to ``<run dir>/progress/rank<r>.jsonl`` on the worker's machine.
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

from spinfits.fitting.mean_params import spin_mean_params_path
from spinfits.fitting.model_files import load_body_model_files
from spinfits.store import FitStore
from spinfits.training.augmentation import Augmentation
from spinfits.training.best_fits import BestFits
from spinfits.training.checkpoint import TrainingState, load_training_state, save_training_state
from spinfits.training.data import TrainingData, step_generator, step_rows, step_seed
from spinfits.training.regressor import HMR, RegressorConfig
from spinfits.training.spin_step import SpinTrainingStep
from spinfits.training.store_writer import store_writer
from spinfits.training.train_config import TrainConfig

logger = logging.getLogger(__name__)


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    config: TrainConfig = loop_config["config"]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    icechunk.set_logs_filter("error")  # local stores warn on every open; commits are locked
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(config.threads)
    device = ray.train.torch.get_device()
    files = load_body_model_files(config.model_dir)
    data = TrainingData.load(config.dataset, config.images, config.input_res, config.use_gt_smpl)
    model = HMR(str(spin_mean_params_path()), RegressorConfig(backbone=config.backbone))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    start, snapshot = 0, None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            state = load_training_state(directory)
        model.load_state_dict(state.model)
        optimizer.load_state_dict(state.optimizer)
        start, snapshot = state.step, state.snapshot_id
        logger.info("rank %d resumes at step %d, store snapshot %s", rank, start, snapshot)
    model = ray.train.torch.prepare_model(model)
    store = FitStore.open(config.store, body_model=files.fingerprint, s3=config.s3)
    best = BestFits(store.reader(config.name, version=snapshot))
    writer = store_writer(config.run)
    step_fn = SpinTrainingStep(model, optimizer, files, config, device)
    progress = _progress_file(config, rank)
    for step in range(start, config.steps):
        began = time.perf_counter()
        store_seconds = 0.0
        if step > start and step % config.refresh_every == 0:
            tick = time.perf_counter()
            best.refresh()
            store_seconds += time.perf_counter() - tick
        rows = step_rows(step, rank, world, config.batch_size, len(data), config.seed)
        augmentation = Augmentation.sample(
            config.augmentation, len(rows), step_generator(config.seed, step, rank)
        )
        batch = data.batch(rows, augmentation, device)
        tick = time.perf_counter()
        stored = best.read(rows)
        store_seconds += time.perf_counter() - tick
        torch.manual_seed(step_seed(config.seed, step, rank, stream=1))  # dropout, on resume too
        outcome = step_fn(batch, stored, step)
        tick = time.perf_counter()
        if len(outcome.proposals):
            writer.propose.remote(outcome.proposals)  # never waited on
            best.record(outcome.proposals)
        store_seconds += time.perf_counter() - tick
        seconds = time.perf_counter() - began
        finite = outcome.best_loss[np.isfinite(outcome.best_loss)]
        record = {
            "step": step,
            "rank": rank,
            "pid": os.getpid(),
            "seconds": seconds,
            "store_seconds": store_seconds,
            "proposed": len(outcome.proposals),
            "valid": int(outcome.valid.sum()),
            "batch": len(rows),
            "best_fit_loss": float(finite.mean()) if finite.size else None,
            "snapshot": best.snapshot_id,
            "phases": outcome.seconds,
            **outcome.losses,
        }
        _append(progress, record)
        if rank == 0 and (step % 10 == 0 or step + 1 == config.steps):
            logger.info(
                "step %d/%d loss %.3f (keypoints %.4f, pose %.4f) proposed %d, valid %d/%d, "
                "%.2f s/step (store %.1f%%)",
                step + 1,
                config.steps,
                outcome.losses["total"],
                outcome.losses["keypoint"],
                outcome.losses["pose"],
                len(outcome.proposals),
                int(outcome.valid.sum()),
                len(rows),
                seconds,
                100 * store_seconds / seconds,
            )
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps:
            _report(config, rank, model, optimizer, step + 1, writer, outcome.losses)


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
