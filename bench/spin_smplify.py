"""SPIN's own SMPLify from a user's checkout of github.com/nkolot/SPIN, beside this project's fits.

    python bench/spin_smplify.py --spin-repo ~/SPIN [--device cuda] [--rows 66]
        [--keypoints openpose|lsp | --dataset REAL.npz] [--model-dir standin|toy|DIR] [--repeats 3]
    bash bench/gpu.sh --spin-repo ~/SPIN       # the same adapter in the GPU bench's table

SPIN's code is licensed by its authors and is not part of this repository: the user clones it
(``git clone https://github.com/nkolot/SPIN``) and this adapter runs it unchanged, step by step:

1. ``check_spin_checkout``: the folder holds the files SPIN's SMPLify needs (``SPIN_FILES``); an
   error names the missing ones otherwise.
2. ``write_spin_data_layout``: SPIN opens its model files by paths relative to the working
   directory (``config.SMPL_MODEL_DIR`` = ``data/smpl``, ``config.JOINT_REGRESSOR_TRAIN_EXTRA`` =
   ``data/J_regressor_extra.npy``, ``MaxMixturePrior(prior_folder='data')`` reads
   ``data/gmm_08.pkl``). A temporary folder gets a ``data/`` with copies of the project's model
   files: the SMPL pickle chumpy-free (``convert_smpl_pickle``: smplx unpickles it without
   chumpy, which does not import beside numpy 2), the other two byte for byte. Same arrays, same
   fingerprint; a stand-in stays marked as one (its marker keys and STANDIN.md come along) and
   the folder is named ``standin-spin-layout`` then.
3. ``load_spin_smplify``: SPIN's ``smplify/smplify.py`` imported from the checkout without
   running any package ``__init__.py`` and without putting the checkout on ``sys.path``:
   ``config`` and ``constants`` are loaded from their files; ``models``, ``smplify`` and
   ``utils`` become empty package modules whose ``__path__`` is the checkout's folder, so
   ``from models.smpl import SMPL``, ``from .losses import ...`` and ``from utils.geometry
   import ...`` find SPIN's files while ``models/__init__.py`` (imports ``hmr``, which imports
   torchvision) and ``utils/__init__.py`` (the trainer's data loader, saver and options) never
   run. While ``models/smpl.py`` is imported, ``smplx.body_models.ModelOutput`` is set to smplx's
   ``SMPLOutput``: SPIN was written for smplx 0.1.13, whose ``body_models.ModelOutput`` took the
   fields SPIN passes (vertices, joints, betas, body_pose, global_orient, full_pose); smplx 0.1.28
   has none, and its ``SMPLOutput`` is a dataclass of those fields. Afterwards ``sys.modules``
   and smplx are as before: SPIN's modules keep their own references, nothing else in the
   process sees SPIN's top-level names.
4. ``SpinSmplify``: SPIN's ``SMPLify`` built as SPIN's trainer builds it (``train/trainer.py``:
   ``step_size=1e-2``, ``num_iters`` 100 (its default ``--num_smplify_iters``), ``focal_length
   = constants.FOCAL_LENGTH`` (5000), ``batch_size`` the rows of one call, the device), inside
   the data layout (construction reads the files); called as the trainer calls it: (pose (B,
   72), betas (B, 10), cam_t (B, 3), camera centre ``0.5 * img_res`` = 112 px for every row,
   keypoints (B, 49, 3) in crop pixels of a 224 px crop), its fit loss the per-joint
   reprojection loss's mean, as the trainer takes it. A copy of the keypoints goes in: SPIN
   zeroes the ignored joints' confidences in place.

Both start from the same parameters: SPIN's mean pose and betas, the camera from the keypoints
by the project's ``mean_initialisation`` (what its re-implementation,
``OfflineConfig.spin_from_mean``, starts from). SPIN's trainer starts SMPLify from its network's
prediction, with the camera from the weak-perspective output; its ``estimate_translation``
uses the ground-truth joints 25-48 only and is singular on OpenPose-only rows. The timed part of
SPIN's code includes that start (as ``OfflineFitter.fit`` includes it), and runs, as the
project's fits do, with float32 matmuls in IEEE precision (torch's default on CUDA).

The standalone run prints, on the same rows and device: fits/s (fastest of --repeats, median in
brackets, after a warm-up), the 2D error (and PA-MPJPE on synthetic rows with 3D truth) of SPIN's
code, the project's re-implementation of SPIN's loop and the engine (precompute's default), and
how far SPIN's code and the re-implementation end apart (pixels between their projected joints).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import os
import shutil
import sys
import tempfile
import traceback
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from precompute_common import (
    KeypointJudge,
    QualityJudge,
    as_float_tensors,
    describe,
    model_folder,
    projected_joints,
    timed_fit,
    with_slots,
    write_keypoints,
)

from spinfits.errors import InputError
from spinfits.fitting.body.body_model import SpinBodyModel
from spinfits.fitting.body.model_files import (
    EXTRA_REGRESSOR_NAME,
    GMM_NAME,
    SMPL_RELATIVE_PATH,
    STANDIN_README,
    BodyModelFiles,
    convert_smpl_pickle,
    load_body_model_files,
)
from spinfits.fitting.data.dataset import load_spin_npz
from spinfits.fitting.data.spin_crop import CROP_RES
from spinfits.fitting.device import ieee_float32
from spinfits.fitting.offline.config import OfflineConfig, default_offline_config
from spinfits.fitting.offline.fitter import OfflineFitter
from spinfits.fitting.offline.hypotheses import mean_initialisation
from spinfits.fitting.smplify.config import SmplifyConfig
from spinfits.fitting.smplify.fitter import SMPLify as ProjectSmplify

#: What SPIN's SMPLify imports, relative to a checkout of github.com/nkolot/SPIN.
SPIN_FILES = (
    "config.py",
    "constants.py",
    "models/smpl.py",
    "smplify/smplify.py",
    "smplify/losses.py",
    "smplify/prior.py",
    "utils/geometry.py",
)
#: Top-level module names SPIN's files import each other by (restored after loading).
SPIN_MODULE_NAMES = ("config", "constants", "models", "smplify", "utils")
#: How SPIN's trainer builds SMPLify (train/trainer.py, utils/train_options.py).
SPIN_STEP_SIZE = 1e-2
SPIN_NUM_ITERS = 100
SPIN_CLONE = "git clone https://github.com/nkolot/SPIN"


class SpinCheckoutError(InputError):
    """--spin-repo is missing, is not a checkout of SPIN, or SPIN's code does not import here."""


def check_spin_checkout(spin_repo: str | Path | None) -> Path:
    """The checkout's folder, once it holds every file of ``SPIN_FILES``."""
    if spin_repo is None:
        raise SpinCheckoutError(
            f"SPIN's own SMPLify needs --spin-repo DIR, a checkout of SPIN's code ({SPIN_CLONE}); "
            f"its code is its authors' and is not part of this project"
        )
    folder = Path(spin_repo).expanduser()
    if not folder.is_dir():
        what = "is a file" if folder.exists() else "does not exist"
        raise SpinCheckoutError(
            f"--spin-repo {folder} {what}; expected the folder of a checkout of SPIN's code ({SPIN_CLONE})"
        )
    missing = [name for name in SPIN_FILES if not (folder / name).is_file()]
    if missing:
        raise SpinCheckoutError(
            f"--spin-repo {folder} is not a checkout of SPIN's code: it lacks {', '.join(missing)} "
            f"(SPIN's SMPLify needs {', '.join(SPIN_FILES)}); point it at the folder made by "
            f"`{SPIN_CLONE}`"
        )
    return folder.resolve()


def write_spin_data_layout(files: BodyModelFiles, parent: str | Path) -> Path:
    """A folder under ``parent`` whose ``data/`` holds the project's model files where SPIN's
    ``config.py`` and ``smplify.py`` look for them (module doc, step 2); returns the folder (the
    working directory to build SPIN's SMPLify in)."""
    root = Path(parent) / ("standin-spin-layout" if files.is_standin else "spin-layout")
    data = root / "data"
    convert_smpl_pickle(files.directory / SMPL_RELATIVE_PATH, data / SMPL_RELATIVE_PATH)
    for name in (EXTRA_REGRESSOR_NAME, GMM_NAME, STANDIN_README):
        if (files.directory / name).is_file():
            shutil.copyfile(files.directory / name, data / name)
    return root


@contextlib.contextmanager
def working_directory(folder: Path) -> Iterator[None]:
    """``folder`` as the working directory inside the block, the previous one after."""
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def _module_from_file(name: str, path: Path) -> types.ModuleType:
    """Import ``path`` as module ``name`` (registered in sys.modules before it runs, as an
    import does, so modules it imports can import it back)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _empty_package(name: str, folder: Path) -> types.ModuleType:
    """A package module ``name`` whose submodules are found in ``folder`` and whose
    ``__init__.py`` is never run."""
    package = types.ModuleType(name)
    package.__path__ = [str(folder)]
    package.__package__ = name
    sys.modules[name] = package
    return package


@contextlib.contextmanager
def _smplx_model_output_alias() -> Iterator[None]:
    """``smplx.body_models.ModelOutput`` (smplx 0.1.13's name, which SPIN's models/smpl.py
    imports) as smplx's ``SMPLOutput`` inside the block, where smplx lacks it; removed after."""
    import smplx.body_models
    import smplx.utils

    if hasattr(smplx.body_models, "ModelOutput"):
        yield
        return
    smplx.body_models.ModelOutput = smplx.utils.SMPLOutput
    try:
        yield
    finally:
        del smplx.body_models.ModelOutput


def load_spin_smplify(spin_repo: str | Path | None) -> type:
    """SPIN's ``SMPLify`` class from its checkout (module doc, step 3)."""
    folder = check_spin_checkout(spin_repo)
    saved = {name: sys.modules[name] for name in list(sys.modules) if name.split(".")[0] in SPIN_MODULE_NAMES}
    for name in saved:
        del sys.modules[name]
    try:
        with _smplx_model_output_alias():
            for name in ("config", "constants"):
                _module_from_file(name, folder / f"{name}.py")
            for package in ("models", "smplify", "utils"):
                _empty_package(package, folder / package)
            smplify = importlib.import_module("smplify.smplify")
        return smplify.SMPLify
    except Exception as error:
        raise SpinCheckoutError(
            f"SPIN's code in {folder} does not import here: {_failing_file(error, folder)} raised "
            f"{type(error).__name__}: {error}. Its SMPLify needs torch, numpy and smplx (here: torch "
            f"{torch.__version__}, {_smplx_version()}); check that the checkout is SPIN's, complete and "
            f"unchanged (`git -C {folder} status`)"
        ) from error
    finally:
        for name in [n for n in sys.modules if n.split(".")[0] in SPIN_MODULE_NAMES]:
            del sys.modules[name]
        sys.modules.update(saved)


def _failing_file(error: BaseException, folder: Path) -> str:
    """The checkout's file (relative path) where ``error`` was raised, or "SPIN's modules"."""
    if isinstance(error, SyntaxError) and error.filename:
        candidates = [error.filename]
    else:
        candidates = [frame.f_code.co_filename for frame, _ in traceback.walk_tb(error.__traceback__)][::-1]
    for name in candidates:
        path = Path(name).resolve()
        if path.is_relative_to(folder):
            return str(path.relative_to(folder))
    return "SPIN's modules"


def _smplx_version() -> str:
    try:
        from importlib.metadata import version

        return f"smplx {version('smplx')}"
    except Exception:  # not installed: the message says so
        return "no smplx"


@dataclass(frozen=True)
class SpinFit:
    """SPIN's SMPLify's output for B rows: pose (B, 72) axis-angle, betas (B, 10), cam_t (B, 3)
    metres, loss (B,) the per-joint reprojection loss's mean (SPIN's trainer's fit loss)."""

    pose: torch.Tensor
    betas: torch.Tensor
    cam_t: torch.Tensor
    loss: torch.Tensor


class SpinSmplify:
    """SPIN's own SMPLify on ``device`` for batches of ``batch_size`` rows (module doc, step 4),
    started from the same parameters as the project's re-implementation."""

    def __init__(
        self,
        spin_repo: str | Path | None,
        files: BodyModelFiles,
        work: str | Path,
        batch_size: int,
        device: torch.device | str,
    ) -> None:
        smplify_class = load_spin_smplify(spin_repo)
        self.device = torch.device(device)
        self.layout = write_spin_data_layout(files, work)
        with working_directory(self.layout):
            self.smplify = smplify_class(
                step_size=SPIN_STEP_SIZE,
                batch_size=batch_size,
                num_iters=SPIN_NUM_ITERS,
                focal_length=SmplifyConfig().focal_length,
                device=self.device,
            )
        # The project's engine, for the start values only (mean pose, camera from the keypoints).
        self._start = ProjectSmplify(files, SmplifyConfig.spin_reference(), self.device)

    def fit(self, keypoints: torch.Tensor | np.ndarray) -> SpinFit:
        """keypoints (N, 49, 3) crop pixels + confidence -> SPIN's fits of the N rows, one call."""
        with ieee_float32():
            given, center = self._start.checked_keypoints(keypoints)
            pose, betas, cam_t = mean_initialisation(self._start, given, center)
            _, _, pose, betas, cam_t, reprojection = self.smplify(
                pose, betas, cam_t, 0.5 * CROP_RES * torch.ones_like(center), given.clone()
            )
        return SpinFit(pose, betas, cam_t, reprojection.mean(dim=-1))


def projected_distance(model, first, second) -> torch.Tensor:
    """(N,) mean pixel distance over the 49 joints between two fits' projections (each with
    pose, betas and cam_t of N rows)."""
    pixels = [
        projected_joints(
            model, *as_float_tensors(*(getattr(f, k).detach().cpu() for k in ("pose", "betas", "cam_t")))
        )
        for f in (first, second)
    ]
    return (pixels[0] - pixels[1]).norm(dim=-1).mean(dim=-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spin-repo", help=f"a checkout of SPIN's code ({SPIN_CLONE})")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rows", type=int, default=66, help="rows, fitted in one batch by each")
    parser.add_argument("--keypoints", default="openpose", help="synthetic set: openpose or lsp")
    parser.add_argument("--dataset", help="a real SPIN npz instead (2D error against its annotation)")
    parser.add_argument("--model-dir", help="standin (default), toy (pose correctives) or a folder")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads on the CPU")
    parser.add_argument("--seed", type=int, default=31)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        _fail(f"--device {args.device} but torch {torch.__version__} sees no CUDA device; pass --device cpu")
    try:
        load_spin_smplify(args.spin_repo)  # before anything is written or fitted
    except SpinCheckoutError as error:
        _fail(str(error))
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="spinfits-spin-smplify-"))
    files = load_body_model_files(model_folder(args.model_dir, work))
    spin = SpinSmplify(args.spin_repo, files, work, args.rows, device)
    if args.dataset:
        keypoints = load_spin_npz(args.dataset).keypoints[: args.rows]
        judge, source = KeypointJudge(files, keypoints), f"{args.dataset} (first {len(keypoints)} rows)"
    else:
        dataset = write_keypoints(work / "people.npz", files, args.keypoints, args.rows, args.seed)
        keypoints = load_spin_npz(dataset).keypoints
        judge, source = (
            QualityJudge(files, dataset, keypoints),
            f"{len(keypoints)} synthetic {args.keypoints}-like rows",
        )
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} threads"
    print(f"{describe(files)}; {source}; device {name}; torch {torch.__version__}")
    print(
        f"SPIN's code: {spin.smplify.__class__.__module__} from {args.spin_repo}; data layout {spin.layout}"
    )
    fits = {
        "SPIN's smplify.py": spin.fit,
        "SPIN's loop (this project's re-implementation)": OfflineFitter(
            files, with_slots(OfflineConfig.spin_from_mean(), len(keypoints)), device=device
        ).fit,
        "engine (precompute's default)": OfflineFitter(
            files, default_offline_config(files), device=device
        ).fit,
    }
    print(f"| method | fits/s, fastest of {args.repeats} (median) | {judge.header} |")
    print("|---|---|" + "---|" * judge.columns)
    results = {}
    for label, fit in fits.items():
        fastest, median, result = timed_fit(fit, keypoints, device, args.repeats)
        results[label] = result
        quality = judge(*(getattr(result, k).detach().cpu() for k in ("pose", "betas", "cam_t", "loss")))
        print(
            f"| {label} | {len(keypoints) / fastest:.2f} ({len(keypoints) / median:.2f}) | {quality.cells()} |"
        )
    first, second = list(results.values())[:2]
    apart = projected_distance(SpinBodyModel(files), first, second)
    print(
        f"SPIN's smplify.py vs the re-implementation, same start: projected joints "
        f"{float(apart.median()):.3f} px apart (median over rows; max {float(apart.max()):.3f} px)"
    )


def _fail(message: str) -> None:
    print(f"spin_smplify: error: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
