"""A trained regressor ready to run: from a run folder, a checkpoint folder or its state file.

``load_regressor(path)`` is what evaluation and the demo use: it finds the newest checkpoint of a
run (``runs/<run>``), or takes a checkpoint folder or its ``training_state.pt``, rebuilds the HMR
with the checkpoint's backbone and returns it in eval mode on ``device``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from spinfits.errors import InputError
from spinfits.fitting.data.mean_params import spin_mean_params_path
from spinfits.training.checkpoint import STATE_FILE, TrainingState, latest_checkpoint_dir, load_training_state
from spinfits.training.regressor import HMR, RegressorConfig


@dataclass(frozen=True)
class TrainedRegressor:
    """model: the HMR in eval mode; state: the checkpoint it came from; source: its file."""

    model: HMR
    state: TrainingState
    source: Path


def checkpoint_file(path: str | Path) -> Path:
    """The ``training_state.pt`` that ``path`` (a run folder, a checkpoint folder or the file
    itself) stands for."""
    path = Path(path)
    if path.is_file():
        return path
    if (path / STATE_FILE).is_file():
        return path / STATE_FILE
    if path.is_dir():
        latest = latest_checkpoint_dir(path)
        if latest is not None and (latest / STATE_FILE).is_file():
            return latest / STATE_FILE
        raise InputError(
            f"{path} holds no training checkpoint: expected a run folder of `spinfits train` "
            f"(runs/<run>, with checkpoints), a checkpoint folder with {STATE_FILE}, or that file"
        )
    raise InputError(
        f"checkpoint {path} does not exist: pass a run folder (runs/<run>), a checkpoint folder "
        f"or its {STATE_FILE}"
    )


def load_regressor(path: str | Path, device: torch.device | str = "cpu") -> TrainedRegressor:
    """The regressor of the checkpoint ``path`` stands for (see ``checkpoint_file``), eval mode."""
    source = checkpoint_file(path)
    state = load_training_state(source.parent) if source.name == STATE_FILE else None
    if state is None:
        raise InputError(
            f"{source} is not a spinfits training checkpoint (expected a file named {STATE_FILE})"
        )
    model = HMR(str(spin_mean_params_path()), RegressorConfig(backbone=state.backbone))
    try:
        model.load_state_dict(state.model)
    except RuntimeError as error:
        raise InputError(
            f"{source} does not fit the {state.backbone} regressor ({error}); was it written by "
            "another spinfits version? Retrain, or load SPIN's own weights with --pretrained"
        ) from None
    return TrainedRegressor(model.to(device).eval(), state, source)
