"""A learned initialiser: a small network from 2D keypoints to SMPL pose and shape.

SPIN's authors made their static fits this way (SPIN issue 67): a network trained on keypoints
projected from bodies (with noise and randomly removed keypoints) predicts SMPL parameters, and
SMPLify starts from its prediction. It is trained on the body model's own synthetic people
(``spinfits.fitting.synthetic.regressor_training``) and saved beside the model files, tied to
the model's fingerprint: ``spinfits init train-regressor --model-dir DIR`` writes
``DIR/keypoint_regressor.pt``. This module holds what a fitter needs to use it (the network,
its saved file) and imports neither synthetic data nor the rasteriser.

Input: (B, 49, 3) crop keypoints, normalised per row (confident keypoints centred on their mean
and divided by their largest extent; missing ones zero) plus the confidence mask. Output: SMPL
pose as 24 rotations in SPIN's 6D layout and 10 betas. The camera is not predicted: the caller
estimates it from the keypoints for the predicted body (least squares), as for the mean start.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from scipy.spatial.transform import Rotation
from torch import nn

from spinfits.errors import InputError
from spinfits.fitting.body.joints import NUM_SPIN_JOINTS
from spinfits.fitting.body.model_files import BodyModelFiles
from spinfits.fitting.body.rotations import rot6d_to_rotmat
from spinfits.fitting.data.torch_load import describe_load_error

REGRESSOR_FILE = "keypoint_regressor.pt"


@dataclass(frozen=True)
class RegressorTraining:
    """How the keypoint regressor is trained (on synthetic people of the body model).

    Saved with the network (``save_keypoint_regressor``): ``hidden`` is the network's width, which
    a reader needs to rebuild it. Training itself: ``fitting.synthetic.regressor_training``.
    """

    samples: int = 20000
    steps: int = 4000
    batch_size: int = 256
    learning_rate: float = 1e-3
    hidden: int = 1024
    noise_px: float = 3.0
    max_dropout: float = 0.3
    seed: int = 1234


class KeypointRegressor(nn.Module):
    """(B, 49, 3) crop keypoints -> pose (B, 72) axis-angle and betas (B, 10)."""

    def __init__(self, hidden: int = 1024) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(NUM_SPIN_JOINTS * 3, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 24 * 6 + 10),
        )

    @staticmethod
    def normalise(keypoints: torch.Tensor) -> torch.Tensor:
        """(B, 49, 3) -> (B, 147): centred, scale-free x, y of confident keypoints + mask."""
        mask = (keypoints[..., 2] > 0).to(keypoints.dtype)
        count = mask.sum(1, keepdim=True).clamp(min=1)
        xy = keypoints[..., :2]
        center = (xy * mask[..., None]).sum(1) / count
        big = torch.finfo(keypoints.dtype).max
        low = torch.where(mask[..., None] > 0, xy, torch.full_like(xy, big)).amin(1)
        high = torch.where(mask[..., None] > 0, xy, torch.full_like(xy, -big)).amax(1)
        extent = (high - low).amax(-1, keepdim=True).clamp(min=1.0)
        normalised = (xy - center[:, None]) / extent[..., None] * mask[..., None]
        return torch.cat([normalised, mask[..., None]], -1).flatten(1)

    def forward(self, keypoints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(self.normalise(keypoints))
        rotmat = rot6d_to_rotmat(out[:, :144])
        return _rotmat_to_axis_angle(rotmat).reshape(-1, 72), out[:, 144:]

    def rotmats(self, keypoints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(self.normalise(keypoints))
        return rot6d_to_rotmat(out[:, :144]), out[:, 144:]


def _rotmat_to_axis_angle(rotmat: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 3); via scipy (prediction only, no gradient needed)."""
    flat = rotmat.detach().reshape(-1, 3, 3).cpu().double().numpy()
    vectors = Rotation.from_matrix(flat).as_rotvec()
    return torch.as_tensor(vectors, dtype=rotmat.dtype, device=rotmat.device).reshape(*rotmat.shape[:-2], 3)


def save_keypoint_regressor(
    model: KeypointRegressor,
    files: BodyModelFiles,
    config: RegressorTraining,
    figures: dict[str, float],
    directory: str | Path | None = None,
) -> Path:
    """Save beside the model files (``DIR/keypoint_regressor.pt``), tied to the fingerprint."""
    path = Path(directory or files.directory) / REGRESSOR_FILE
    torch.save(
        {
            "state_dict": model.state_dict(),
            "fingerprint": files.fingerprint,
            "standin": files.is_standin,
            "training": asdict(config),
            "figures": figures,
        },
        path,
    )
    return path


def has_keypoint_regressor(files: BodyModelFiles) -> bool:
    """Whether a regressor trained for exactly these model files sits beside them.

    A file there that is no keypoint regressor (truncated, foreign) raises ``InputError``.
    """
    path = Path(files.directory) / REGRESSOR_FILE
    if not path.is_file():
        return False
    return _read_saved(path, files)["fingerprint"] == files.fingerprint


def load_keypoint_regressor(
    files: BodyModelFiles, path: str | Path | None = None, device: torch.device | str = "cpu"
) -> KeypointRegressor:
    """Load the regressor trained for ``files``; a regressor of another model is refused."""
    path = Path(path or Path(files.directory) / REGRESSOR_FILE)
    if not path.is_file():
        raise InputError(
            f"no keypoint regressor at {path}; train one with "
            f"`spinfits init train-regressor --model-dir {files.directory}`"
        )
    saved = _read_saved(path, files)
    if saved["fingerprint"] != files.fingerprint:
        raise InputError(
            f"{path} was trained for body model {saved['fingerprint']}, not for "
            f"{files.fingerprint}; retrain it with `spinfits init train-regressor`"
        )
    return _build_model(saved, path, files).to(device).eval()


#: What ``save_keypoint_regressor`` writes, and what a reader needs of it.
_SAVED_KEYS = ("state_dict", "fingerprint", "training")


def _not_a_regressor(path: Path, files: BodyModelFiles, what: str) -> InputError:
    return InputError(
        f"{path} is not a usable keypoint regressor: {what}. Expected a keypoint regressor saved "
        f"by `spinfits init train-regressor` for the model in {files.directory}. Delete the file "
        f"and retrain it with `spinfits init train-regressor --model-dir {files.directory}`"
    )


def _read_saved(path: Path, files: BodyModelFiles) -> dict:
    """The saved dict (CPU tensors and plain values only), checked for the keys a reader needs."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load of a damaged file raises anything
        raise _not_a_regressor(path, files, describe_load_error(error)) from None
    if not isinstance(saved, dict):
        raise _not_a_regressor(path, files, f"it holds a {type(saved).__name__}, not a dict")
    missing = [key for key in _SAVED_KEYS if key not in saved]
    if missing:
        raise _not_a_regressor(
            path,
            files,
            f"its dict has no {', '.join(repr(k) for k in missing)} "
            f"(keys: {', '.join(repr(k) for k in list(saved)[:8])})",
        )
    return saved


def _build_model(saved: dict, path: Path, files: BodyModelFiles) -> KeypointRegressor:
    """The network the saved state_dict describes; wrong shapes or keys name the file."""
    state = saved["state_dict"]
    try:
        hidden = int(saved["training"]["hidden"])
        first = state["net.0.weight"]
        if tuple(first.shape) != (hidden, NUM_SPIN_JOINTS * 3):
            raise ValueError(
                f"net.0.weight has shape {tuple(first.shape)}, expected "
                f"({hidden}, {NUM_SPIN_JOINTS * 3}) for hidden={hidden}"
            )
        model = KeypointRegressor(hidden)
        model.load_state_dict(state)
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise _not_a_regressor(
            path, files, f"its weights do not fit the network ({type(error).__name__}: {detail})"
        ) from None
    return model
