"""What a training checkpoint holds: model, optimiser, the next step and the store snapshot seen.

A checkpoint is a folder with one file, ``training_state.pt`` (``torch.save`` of a dict), which
Ray Train copies into the run's storage. Resuming restores the model and optimiser, continues at
``step`` and pins the workers' store readers to ``snapshot_id``, so the resumed run starts from
exactly the fits the checkpointed one had seen.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spinfits.errors import InputError
from spinfits.fitting.data.spin_crop import CROP_RES
from spinfits.fitting.data.torch_load import describe_load_error

STATE_FILE = "training_state.pt"


@dataclass(frozen=True)
class TrainingState:
    """step: the next step to run; snapshot_id: the store snapshot the run had seen;
    backbone / input_res: the regressor the model state belongs to."""

    step: int
    snapshot_id: str
    model: dict[str, Any]
    optimizer: dict[str, Any]
    run: str
    backbone: str = "resnet50"
    input_res: int = CROP_RES


def save_training_state(directory: str | Path, state: TrainingState) -> Path:
    path = Path(directory) / STATE_FILE
    torch.save(
        {
            "step": state.step,
            "snapshot_id": state.snapshot_id,
            "model": state.model,
            "optimizer": state.optimizer,
            "run": state.run,
            "backbone": state.backbone,
            "input_res": state.input_res,
        },
        path,
    )
    return path


def load_training_state(directory: str | Path) -> TrainingState:
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        raise InputError(f"{directory} is not a spinfits training checkpoint: {STATE_FILE} is missing")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(raw, dict):
            raise ValueError(f"it holds a {type(raw).__name__}, not a dict")
        return TrainingState(
            step=int(raw["step"]),
            snapshot_id=str(raw["snapshot_id"]),
            model=raw["model"],
            optimizer=raw["optimizer"],
            run=str(raw["run"]),
            backbone=str(raw.get("backbone", "resnet50")),
            input_res=int(raw.get("input_res", CROP_RES)),
        )
    except Exception as error:  # torch.load of a damaged file raises anything
        raise InputError(
            f"training checkpoint {path} cannot be read ({describe_load_error(error)}); "
            "resume from an earlier checkpoint or start a new run"
        ) from None


def prepared_with_optimizer(
    model: nn.Module,
    state: TrainingState | None,
    learning_rate: float,
    prepare: Callable[[nn.Module], nn.Module],
) -> tuple[nn.Module, torch.optim.Optimizer]:
    """``prepare(model)`` (Ray Train's ``prepare_model``: to the worker's device, DDP) and its
    Adam optimiser, both restored from ``state`` when given (resume, or a restarted worker).

    The order matters on a GPU: the model's weights are loaded before the move (the checkpoint is
    read to the CPU), the optimiser is made and loaded after it, so ``load_state_dict`` puts
    Adam's moments on the parameters' device. Loaded before the move they would stay on the CPU
    and the first ``step()`` would meet a device mismatch."""
    if state is not None:
        model.load_state_dict(state.model)
    model = prepare(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    if state is not None:
        optimizer.load_state_dict(state.optimizer)
    return model, optimizer


def latest_checkpoint_dir(run_dir: str | Path) -> Path | None:
    """The folder of the run's latest registered checkpoint (None if none yet)."""
    latest = _latest_result(run_dir)
    name = latest.get("checkpoint_dir_name")
    return Path(run_dir) / name if name else None


def latest_checkpoint_step(run_dir: str | Path) -> int | None:
    """The step of the run's latest checkpoint Ray Train has registered (None if none yet).

    Read from Ray Train's ``checkpoint_manager_snapshot.json`` in the run folder. Ray registers
    a reported checkpoint at its next poll of the workers (about 2 s later), so a worker that
    dies within that window restarts from the checkpoint before.
    """
    step = (_latest_result(run_dir).get("metrics") or {}).get("step")
    return int(step) if step is not None else None


def _latest_result(run_dir: str | Path) -> dict[str, Any]:
    """Ray Train's record of the latest registered checkpoint ({} if none)."""
    path = Path(run_dir) / "checkpoint_manager_snapshot.json"
    try:
        return json.loads(path.read_text()).get("latest_checkpoint_result") or {}
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
