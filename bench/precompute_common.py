"""Shared set-up of the precompute benches: model folders, keypoint sets, quality, a busy neighbour.

- ``model_folder``: the stand-in body model, or the tests' random toy model *with pose
  correctives* written as model files (``--model-dir toy``; precompute reads a folder), or a
  user's folder.
- ``write_keypoints``: a synthetic dataset in SPIN's npz layout whose keypoints look like one
  annotation source: "lsp" (LSP's 14 ground-truth joints, all visible, 2 px annotation noise, no
  OpenPose) or "openpose" (OpenPose's 25 detections only: 3 px noise, 20 % missed, 5 %
  left/right swapped, 10 % of people with one or two detections 30-80 px off, 5 % truncated).
- ``fit_quality``: ``bench/fit_quality.py``'s measures of fits against the ground truth.
- ``config_variant``: an ``OfflineConfig`` with one field, top-level or nested (dotted path), set
  from ``FIELD=VALUE``.
- ``BusyNeighbour``: an ordinary process (niceness 0) burning CPU beside a run.
- ``timed_fit``: fits/s the way the GPU benches time them (warm-up outside, repeats, min/median).
"""

from __future__ import annotations

import ast
import dataclasses
import os
import pickle
import subprocess
import sys
import time
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from _common import toy_files
from fit_quality import orientation_error, procrustes_error

from spinfits.fitting.body.body_model import SpinBodyModel
from spinfits.fitting.body.joints import SMPLIFY_IGNORED_JOINTS
from spinfits.fitting.body.model_files import BodyModelFiles
from spinfits.fitting.data.spin_crop import CROP_CENTER, FOCAL_LENGTH
from spinfits.fitting.offline.config import OfflineConfig
from spinfits.fitting.synthetic.people import SyntheticConfig, make_synthetic_dataset

#: LSP's 14 joints are the first 14 of SPIN's 24 ground-truth joints.
NUM_LSP_JOINTS = 14

#: Annotation look-alikes: SyntheticConfig fields, and which source is kept ("gt" / "openpose").
KEYPOINT_SETS: dict[str, tuple[str, dict[str, object]]] = {
    "lsp": (
        "gt",
        dict(gt_noise_px=2.0, missing_fraction=0.0, truncated_fraction=0.0, swap_fraction=0.0),
    ),
    "openpose": (
        "openpose",
        dict(
            openpose_noise_px=3.0,
            missing_fraction=0.2,
            truncated_fraction=0.05,
            swap_fraction=0.05,
            outlier_fraction=0.1,
        ),
    ),
}


def config_variant(base: OfflineConfig, text: str) -> OfflineConfig:
    """``base`` with one field set from ``FIELD=VALUE`` text (several: ``F1=V1;F2=V2``, in order).

    FIELD is a top-level field (``back_hypothesis=True``) or a dotted path into nested frozen
    dataclasses (``smplify.weights.pose_prior_weight=2.39``: each level is rebuilt with
    ``dataclasses.replace``, so its checks run). VALUE: "None"; "True"/"False" for a flag; for a
    tuple of dataclasses, either the name of a constant of the config's module
    (``stages=SMPLIFY_2016_STAGES``) or a Python literal of constructor argument tuples
    (``stages=((404, 100, 10), (4.78, 5, 30))`` -> ``(PriorStage(404, 100, 10), ...)``); else the
    field's own type (an int where the field is None).
    """
    if ";" in text:  # several fields: FIELD=VALUE;FIELD=VALUE, set in order
        for part in text.split(";"):
            base = config_variant(base, part.strip())
        return base
    if "=" not in text:
        raise ValueError(f"a config variant is FIELD=VALUE (e.g. back_hypothesis=True), got {text!r}")
    key, value = text.split("=", 1)
    return _with_field(base, key.split("."), value)


def _with_field(owner: object, path: list[str], value: str) -> object:
    """``owner`` (a frozen dataclass) with the field at ``path`` set from ``value`` text."""
    names = [f.name for f in dataclasses.fields(owner)] if dataclasses.is_dataclass(owner) else []
    if path[0] not in names:
        raise ValueError(
            f"{type(owner).__name__} has no field {path[0]!r}; its fields: {', '.join(names) or 'none'}"
        )
    current = getattr(owner, path[0])
    if len(path) > 1:
        parsed = _with_field(current, path[1:], value)
    elif value == "None":
        parsed = None
    elif isinstance(current, bool):
        parsed = value == "True"
    elif isinstance(current, tuple):
        parsed = _tuple_value(type(owner), path[0], value)
    else:
        parsed = type(current)(value) if current is not None else int(value)
    return dataclasses.replace(owner, **{path[0]: parsed})


def _tuple_value(owner_type: type, name: str, value: str) -> tuple:
    """A ``tuple[Item, ...]`` field's value: a constant of ``owner_type``'s module, or a literal
    of ``Item`` constructor argument tuples."""
    if value.isidentifier():
        return tuple(getattr(sys.modules[owner_type.__module__], value))
    (item, *_) = typing.get_args(typing.get_type_hints(owner_type)[name])
    return tuple(item(*arguments) for arguments in ast.literal_eval(value))


def private_ray() -> None:
    """Make ``ray.init()`` start a private local cluster even when another user's ``ray start``
    cluster runs on this machine (unless ``RAY_ADDRESS`` already names one)."""
    os.environ.setdefault("RAY_ADDRESS", "local")


def write_toy_model(directory: Path) -> Path:
    """The tests' random toy model (pose correctives on every vertex) as SPIN's model files."""
    files = toy_files()
    smpl = files.smpl
    (directory / "smpl").mkdir(parents=True, exist_ok=True)
    with open(directory / "smpl" / "SMPL_NEUTRAL.pkl", "wb") as handle:
        pickle.dump(
            {
                "v_template": smpl.v_template,
                "shapedirs": smpl.shapedirs,
                "posedirs": smpl.posedirs,
                "J_regressor": smpl.J_regressor,
                "weights": smpl.weights,
                "kintree_table": smpl.kintree_table,
                "f": smpl.faces,
            },
            handle,
        )
    np.save(directory / "J_regressor_extra.npy", files.J_regressor_extra)
    gmm = files.gmm
    with open(directory / "gmm_08.pkl", "wb") as handle:
        pickle.dump({"means": gmm.means, "covars": gmm.covars, "weights": gmm.weights}, handle)
    return directory


def model_folder(choice: str | None, work: Path) -> Path:
    """``None``/"standin": the stand-in written under ``work``; "toy": the random toy model with
    pose correctives; else an existing model folder."""
    if choice in (None, "standin"):
        from spinfits.fitting.synthetic.standin import write_standin_files

        write_standin_files(work / "standin")
        return work / "standin"
    if choice == "toy":
        return write_toy_model(work / "toy")
    return Path(choice)


def describe(files: BodyModelFiles) -> str:
    has = bool(np.any(files.smpl.posedirs != 0))
    kind = "random TOY model" if str(files.directory).endswith("toy") else files.description
    return f"{kind} ({'with' if has else 'WITHOUT'} pose correctives)"


def write_keypoints(path: Path, files: BodyModelFiles, kind: str, rows: int, seed: int) -> Path:
    """A synthetic dataset (SPIN's npz layout) whose keypoints look like ``kind`` (module doc)."""
    source, settings = KEYPOINT_SETS[kind]
    arrays = make_synthetic_dataset(files, SyntheticConfig(rows=rows, seed=seed, **settings))
    if source == "gt":
        arrays["openpose"] = np.zeros_like(arrays["openpose"])
        arrays["part"][:, NUM_LSP_JOINTS:] = 0.0
    else:
        arrays["part"] = np.zeros_like(arrays["part"])
    np.savez(path, **arrays)
    return path


@dataclass(frozen=True)
class Quality:
    """Per configuration: 2D error median (px, fits vs noise-free keypoints of the confident
    joints), PA-MPJPE mean / median (mm, 24 SMPL joints), wrong-facing share (> 90 degrees),
    fit loss median (SPIN's, against the keypoints as given)."""

    error_2d: float
    pa_mpjpe_mean: float
    pa_mpjpe_median: float
    wrong_facing: float
    loss_median: float

    def cells(self) -> str:
        return (
            f"{self.error_2d:.2f} | {self.pa_mpjpe_mean:.1f} / {self.pa_mpjpe_median:.1f} | "
            f"{self.wrong_facing:.1%} | {self.loss_median:.2f}"
        )


def as_float_tensors(*arrays) -> tuple[torch.Tensor, ...]:
    return tuple(torch.as_tensor(np.asarray(v)).float() for v in arrays)


def projected_joints(model: SpinBodyModel, pose, betas, cam_t) -> torch.Tensor:
    """(N, 49, 2) crop pixels of the fits' joints: pose (N, 72), betas (N, 10), cam_t (N, 3)."""
    with torch.no_grad():
        joints = torch.cat(
            [model(pose[i : i + 512], betas[i : i + 512]).joints for i in range(0, len(pose), 512)]
        )
    camera = joints + cam_t[:, None]
    return FOCAL_LENGTH * camera[..., :2] / camera[..., 2:3] + CROP_CENTER


QUALITY_HEADER = "2D err median (px) | PA-MPJPE mean / median (mm) | wrong-facing | fit loss median"


class QualityJudge:
    """Scores fits (N, ...) of a synthetic dataset against its ground truth (``bench/fit_quality``'s
    measures)."""

    header = QUALITY_HEADER
    columns = 4

    def __init__(self, files: BodyModelFiles, dataset_path: Path, keypoints: np.ndarray) -> None:
        raw = np.load(dataset_path)
        self.model = SpinBodyModel(files)
        self.gt_keypoints = torch.as_tensor(raw["gt_keypoints"])
        self.gt_pose = torch.as_tensor(raw["pose"], dtype=torch.float32)
        self.gt_betas = torch.as_tensor(raw["shape"], dtype=torch.float32)
        used = torch.ones(49, dtype=torch.bool)
        used[list(SMPLIFY_IGNORED_JOINTS)] = False
        self.visible = (torch.as_tensor(keypoints)[..., 2] > 0) & used
        with torch.no_grad():
            self.truth = self._smpl_joints(self.gt_pose, self.gt_betas)

    def _smpl_joints(self, pose: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [self.model(pose[i : i + 512], betas[i : i + 512]).smpl_joints for i in range(0, len(pose), 512)]
        )

    def __call__(self, pose, betas, cam_t, loss, rows: slice = slice(None)) -> Quality:
        """Fits of the dataset's ``rows`` (all by default): pose (N, 72), betas (N, 10), cam_t
        (N, 3), loss (N,); rows whose loss is not finite are left out."""
        pose, betas, cam_t, loss = as_float_tensors(pose, betas, cam_t, loss)
        ok = torch.isfinite(loss)
        pixels = projected_joints(self.model, pose, betas, cam_t)
        with torch.no_grad():
            fit = self._smpl_joints(pose, betas)
        distance = (pixels - self.gt_keypoints[rows, :, :2]).norm(dim=-1)
        visible = self.visible[rows]
        error_2d = (distance * visible).sum(1) / visible.sum(1).clamp_min(1)
        pa = 1000 * procrustes_error(fit.double(), self.truth[rows].double())
        wrong = orientation_error(pose, self.gt_pose[rows]) > torch.pi / 2
        return Quality(
            float(error_2d[ok].median()),
            float(pa[ok].mean()),
            float(pa[ok].median()),
            float(wrong[ok].float().mean()),
            float(loss[ok].median()),
        )


@dataclass(frozen=True)
class KeypointQuality:
    """Per configuration on real keypoints (no 3D truth): 2D error median (crop px, the fit's
    projected joints against the annotated keypoints, confident joints), the share of rows above
    10 px, fit loss median (SPIN's)."""

    error_2d: float
    above_10px: float
    loss_median: float

    def cells(self) -> str:
        return f"{self.error_2d:.2f} | {self.above_10px:.1%} | {self.loss_median:.2f}"


class KeypointJudge:
    """Scores fits (N, ...) of a real dataset against its own keypoints (``keypoints``: (N, 49, 3)
    crop pixels + confidence): what a user without 3D truth can check."""

    header = "2D err median vs annotation (crop px) | rows > 10 px | fit loss median"
    columns = 3

    def __init__(self, files: BodyModelFiles, keypoints: np.ndarray) -> None:
        self.model = SpinBodyModel(files)
        self.keypoints = torch.as_tensor(keypoints)
        used = torch.ones(49, dtype=torch.bool)
        used[list(SMPLIFY_IGNORED_JOINTS)] = False
        self.visible = (self.keypoints[..., 2] > 0) & used

    def __call__(self, pose, betas, cam_t, loss, rows: slice = slice(None)) -> KeypointQuality:
        pose, betas, cam_t, loss = as_float_tensors(pose, betas, cam_t, loss)
        ok = torch.isfinite(loss)
        pixels = projected_joints(self.model, pose, betas, cam_t)
        distance = (pixels - self.keypoints[rows, :, :2]).norm(dim=-1)
        visible = self.visible[rows]
        error = ((distance * visible).sum(1) / visible.sum(1).clamp_min(1))[ok]
        return KeypointQuality(
            float(error.median()), float((error > 10).float().mean()), float(loss[ok].median())
        )


def real_like_rows(source: Path, path: Path, repeat: int, noise_px: float, seed: int) -> Path:
    """``source`` (a SPIN npz) with its rows ``repeat`` times: the first copy as it is, each other
    with fresh N(0, noise_px) noise (image pixels) on every annotated keypoint ('part', and
    'openpose' where present), written to ``path``."""
    arrays = dict(np.load(source))
    rows = len(arrays["scale"])
    generator = np.random.default_rng(seed)
    out = {}
    for key, value in arrays.items():
        if value.ndim == 0 or len(value) != rows:
            out[key] = value
            continue
        copies = [value] * repeat
        if key in ("part", "openpose"):
            copies = [value] + [
                np.concatenate(
                    [
                        value[..., :2]
                        + generator.normal(0, noise_px, value[..., :2].shape) * (value[..., 2:] > 0),
                        value[..., 2:],
                    ],
                    axis=-1,
                ).astype(value.dtype)
                for _ in range(repeat - 1)
            ]
        out[key] = np.concatenate(copies)
    np.savez(path, **out)
    return path


_BURN = """
import hashlib, sys, threading
block = b"x" * (1 << 22)
def burn():
    while True:
        hashlib.sha256(block).digest()  # releases the GIL: one core per thread
threads = [threading.Thread(target=burn, daemon=True) for _ in range(int(sys.argv[1]))]
[t.start() for t in threads]
[t.join() for t in threads]
"""


class BusyNeighbour:
    """An ordinary process (the driver's niceness, normally 0) with ``threads`` threads burning
    CPU, for the length of a ``with`` block; ``share`` is then the machine's CPU it took
    (its CPU seconds / (wall seconds x cores))."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.share = 0.0

    def _cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> "BusyNeighbour":
        self.process = subprocess.Popen([sys.executable, "-c", _BURN, str(self.threads)])
        time.sleep(0.5)
        self.start = (time.perf_counter(), self._cpu_seconds())
        return self

    def __exit__(self, *exc) -> None:
        wall = time.perf_counter() - self.start[0]
        cpu = self._cpu_seconds() - self.start[1]
        self.share = cpu / (wall * (os.cpu_count() or 1))
        self.process.kill()
        self.process.wait()


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


#: Rows of the warm-up fit (outside the timed part): enough for every kernel shape of the pool
#: to be seen (and, with --compile, for the compiled graphs to be built).
WARM_UP_ROWS = 64


def timed_fit(fit: Callable[[np.ndarray], object], keypoints: np.ndarray, device: torch.device, repeats: int):
    """(min seconds, median seconds, result) of ``repeats`` calls ``fit(keypoints)`` (keypoints
    (N, 49, 3)), after a warm-up call on up to ``WARM_UP_ROWS`` rows that is not timed."""
    fit(keypoints[: min(WARM_UP_ROWS, len(keypoints))])
    synchronise(device)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fit(keypoints)
        synchronise(device)
        seconds.append(time.perf_counter() - start)
    return min(seconds), float(np.median(seconds)), result


def with_slots(config: OfflineConfig, slots: int) -> OfflineConfig:
    """``config`` with ``slots`` solver slots (the engine's batch size)."""
    return dataclasses.replace(config, smplify=dataclasses.replace(config.smplify, batch_size=slots))
