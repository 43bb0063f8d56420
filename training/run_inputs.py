"""What ``spinfits train``'s driver checks before any work, without importing Ray: a bad input
fails in seconds, before Ray starts (or its import's few seconds).

``check_inputs(config)`` checks the quick inputs first (S3 options, the pretrained weights loaded
into a CPU regressor of the run's backbone, the store, the body model, the datasets and their
images, the store's datasets, the run folder) and returns what it found; ``after_a_stop`` says
what to do after a run stopped early; ``load_training_data`` and ``mix_weights`` are shared with
the workers.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spinfits.cluster.ray_job import check_outputs_outlive_the_job
from spinfits.errors import InputError
from spinfits.fitting.body.model_files import load_body_model_files
from spinfits.store import FitStore, StoreLocation
from spinfits.store.verify import check_whole
from spinfits.training.checkpoint import latest_checkpoint_dir, latest_checkpoint_step, load_training_state
from spinfits.training.data import MixedTrainingData, TrainingData
from spinfits.training.mixture import spin_partition
from spinfits.training.pretrained import PretrainedLoad, check_pretrained
from spinfits.training.train_config import TrainConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckedInputs:
    """What ``check_inputs`` found: the store, whether the body model is a stand-in, with
    ``resume`` the step of the run's latest checkpoint, and what ``pretrained`` will load."""

    store: FitStore
    is_standin: bool
    done: int | None
    pretrained: PretrainedLoad | None
    pretrained_not_read: Path | None = None

    def lines(self) -> list[str]:
        """What the user should see before the run starts: what the pretrained weights load."""
        if self.pretrained is not None:
            return [f"pretrained: {self.pretrained.describe()}"]
        if self.pretrained_not_read is not None:
            return [
                f"pretrained: {self.pretrained_not_read} not read: --resume continues from the run's "
                "checkpoint, which has the weights"
            ]
        return []


def check_inputs(config: TrainConfig) -> CheckedInputs:
    """Every input checked before any work, the quick ones first (the pretrained weights are
    loaded into a regressor of the run's backbone here, in the driver: a damaged or mismatched
    file fails in seconds, not after Ray's worker retries). Messages name the config's fields
    (the command line tells them as its flags)."""
    if config.s3 is not None and config.s3.has_credentials:
        raise InputError(
            "training was given explicit S3 keys (S3Options access_key_id/secret_access_key), "
            "but its workers and store writer run in other Ray processes, possibly on other "
            "machines, and keys are not sent there (they would travel in Ray task arguments). "
            "Leave the keys unset and give every node credentials through the AWS chain: "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment (a local cluster "
            "started by this process inherits it), a profile (AWS_PROFILE) or an instance role"
        )
    check_outputs_outlive_the_job({"store": config.store, "runs_dir": config.runs_dir})
    pretrained = None
    if config.pretrained is not None and not config.resume:
        with _named("pretrained"):
            pretrained = check_pretrained(config.pretrained, config.backbone)
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
    check_whole(store, config.names)  # a damaged row must never supervise: stop with the repair
    run_dir = config.run_dir
    done = latest_checkpoint_step(run_dir) if run_dir.exists() else None
    if not config.resume:
        if run_dir.exists() and done is None:
            raise InputError(
                f"run: {config.run!r} already exists in {run_dir} but holds no checkpoint (an earlier "
                f"start stopped before its first one): remove {run_dir} or choose another `run`"
            )
        if run_dir.exists():
            raise InputError(
                f"run: {config.run!r} already exists in {run_dir}; continue it from its latest "
                "checkpoint (`resume`), or choose another `run`"
            )
        return CheckedInputs(store, files.is_standin, None, pretrained)
    if done is None:
        raise InputError(
            f"resume: run {config.run!r} has no checkpoint in {run_dir}; start it without `resume`"
            + (f" (remove {run_dir} first)" if run_dir.exists() else "")
        )
    state = load_training_state(latest_checkpoint_dir(run_dir))
    if (state.backbone, state.input_res) != (config.backbone, config.input_res):
        raise InputError(
            f"resume: run {config.run!r} was trained with `backbone` {state.backbone} `input_res` "
            f"{state.input_res}, but this run asks for `backbone` {config.backbone} `input_res` "
            f"{config.input_res}: resume with the run's settings, or start a new `run`"
        )
    return CheckedInputs(store, files.is_standin, done, None, config.pretrained)


@contextlib.contextmanager
def _named(field_name: str) -> Iterator[None]:
    """An ``InputError`` inside told as "FIELD: ..." (the command line tells it as its flag)."""
    try:
        yield
    except InputError as error:
        raise InputError(f"{field_name}: {error}") from None


def after_a_stop(run_dir: Path) -> str:
    """What to do after a run stopped early: continue from its latest checkpoint, or, when it
    saved none, start it again (``resume`` would have nothing to continue from)."""
    step = latest_checkpoint_step(run_dir) if run_dir.exists() else None
    if step is not None:
        return f"its checkpoints are in {run_dir} (latest: step {step}): rerun with --resume to continue"
    return (
        f"it saved no checkpoint, so there is nothing to resume: fix the cause, remove {run_dir} "
        "(or choose another --run) and rerun the same command"
    )


def load_training_data(config: TrainConfig) -> MixedTrainingData:
    """The run's datasets, in its order."""
    return MixedTrainingData(
        config.names,
        [TrainingData.load(d.npz, d.images, config.input_res, config.use_gt_smpl) for d in config.datasets],
    )


def mix_weights(config: TrainConfig, sizes: list[int]) -> np.ndarray:
    """The run's mix: its explicit weights, or SPIN's partition of its datasets."""
    return np.asarray(config.mix) if config.mix is not None else spin_partition(config.names, sizes)
