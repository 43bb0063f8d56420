"""A trained regressor ready to run: from a run folder, a checkpoint folder or a weights file.

``load_regressor(path)`` is what evaluation and the demo use: it finds the newest checkpoint of a
run (``runs/<run>``), or takes a checkpoint folder or its ``training_state.pt``, or any weights
file ``train --pretrained`` reads with a regressor head (SPIN's released ``model_checkpoint.pt``,
a file ``spinfits export-checkpoint`` wrote, an mmhuman3d HMR checkpoint), rebuilds the HMR with
the weights' backbone and returns it in eval mode on ``device``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from spinfits.errors import InputError
from spinfits.fitting.data.mean_params import spin_mean_params_path
from spinfits.fitting.data.spin_crop import CROP_RES
from spinfits.training.checkpoint import STATE_FILE, TrainingState, latest_checkpoint_dir, load_training_state
from spinfits.training.pretrained import load_pretrained, read_pretrained
from spinfits.training.regressor import HMR, RegressorConfig


@dataclass(frozen=True)
class TrainedRegressor:
    """model: the HMR in eval mode; source: its file; backbone / input_res: the regressor's;
    origin: what the weights are, for people ("run spin, step 300", "SPIN's layout ...");
    state: the spinfits checkpoint it came from (None for a weights file: ``run`` / ``step``
    are then those ``export-checkpoint`` recorded, when it did)."""

    model: HMR
    source: Path
    backbone: str
    input_res: int
    origin: str
    state: TrainingState | None = None
    run: str | None = None
    step: int | None = None


def checkpoint_file(path: str | Path) -> Path:
    """The file that ``path`` (a run folder, a checkpoint folder or the file itself) stands for."""
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
            f"(runs/<run>, with checkpoints), a checkpoint folder with {STATE_FILE}, that file, or "
            "a weights file such as SPIN's model_checkpoint.pt"
        )
    raise InputError(
        f"checkpoint {path} does not exist: pass a run folder (runs/<run>), a checkpoint folder, "
        f"its {STATE_FILE}, or a weights file such as SPIN's model_checkpoint.pt"
    )


def load_regressor(path: str | Path, device: torch.device | str = "cpu") -> TrainedRegressor:
    """The regressor of the checkpoint ``path`` stands for (see ``checkpoint_file``), eval mode."""
    source = checkpoint_file(path)
    if source.name == STATE_FILE:
        return _from_training_state(source, device)
    return _from_weights_file(source, device)


def _from_training_state(source: Path, device: torch.device | str) -> TrainedRegressor:
    state = load_training_state(source.parent)
    model = HMR(str(spin_mean_params_path()), RegressorConfig(backbone=state.backbone))
    try:
        model.load_state_dict(state.model)
    except RuntimeError as error:
        raise InputError(
            f"{source} does not fit the {state.backbone} regressor ({error}); was it written by "
            "another spinfits version? Retrain, or load SPIN's own weights with --pretrained"
        ) from None
    return TrainedRegressor(
        model.to(device).eval(),
        source,
        state.backbone,
        state.input_res,
        f"run {state.run}, step {state.step}",
        state,
        state.run,
        state.step,
    )


def _from_weights_file(source: Path, device: torch.device | str) -> TrainedRegressor:
    weights = read_pretrained(source)
    if weights.layout == "torchvision":
        raise InputError(
            f"{source} is torchvision's resnet50 (a backbone without SPIN's regressor head): there "
            "is no trained regressor to run; train from it with `spinfits train --pretrained`"
        )
    meta = weights.spinfits
    backbone = str(meta.get("backbone", weights.backbone))
    model = HMR(str(spin_mean_params_path()), RegressorConfig(backbone=backbone))
    load_pretrained(model, weights)
    run, step = meta.get("run"), meta.get("step")
    origin = f"{weights.layout} layout ({weights.source})"
    if run is not None:
        origin += f", exported from run {run}, step {step}"
    return TrainedRegressor(
        model.to(device).eval(),
        source,
        backbone,
        int(meta.get("input_res", CROP_RES)),
        origin,
        None,
        None if run is None else str(run),
        None if step is None else int(step),
    )
