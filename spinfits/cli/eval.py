"""``spinfits eval``: SPIN's evaluation of a trained regressor on a dataset (thin glue).

Loads the checkpoint (``training.trained_regressor``), the dataset's ground truth
(``fitting.evaluation.targets``), the body model and, when there is one, a Human3.6M regressor
(``--h36m-regressor``, or ``J_regressor_h36m.npy`` / the stand-in's beside the model files),
runs ``training.evaluate.evaluate_regressor`` and prints the figures; ``--json`` writes them,
``--predictions`` the per-row predictions and errors. The tables are shared with
``spinfits store eval``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from spinfits.cli.options import flags_in_errors
from spinfits.errors import InputError
from spinfits.fitting.evaluation.targets import GROUND_TRUTHS

log = logging.getLogger(__name__)

#: Library fields -> the flags that set them (their messages are told in flags; see cli.options).
FLAGS = {"pck_alpha": "--pck-alpha", "batch_size": "--batch", "ground_truth": "--ground-truth"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a trained regressor: MPJPE / PA-MPJPE (mm), per action, 2D PCK",
        description="SPIN's eval.py protocols: MPJPE and PA-MPJPE in mm on the 14 LSP joints (from "
        "SPIN's 49 joints) and, with a Human3.6M regressor (J_regressor_h36m.npy layout), on its "
        "14 and 17 joints; a per-action breakdown when image names carry Human3.6M actions; "
        "2D PCK of the LSP joints where the dataset has 2D ground truth (part).",
    )
    parser.add_argument(
        "--checkpoint", required=True, type=Path, help="run folder, checkpoint folder or training_state.pt"
    )
    parser.add_argument("--dataset", required=True, type=Path, help="SPIN dataset .npz")
    parser.add_argument(
        "--images", required=True, type=Path, help="folder the dataset's imgname paths are relative to"
    )
    add_evaluation_arguments(parser)
    parser.add_argument("--batch", type=int, default=32, help="rows per batch (default %(default)s)")
    parser.add_argument(
        "--predictions", type=Path, help="also write per-row predictions and errors to this .npz"
    )
    parser.set_defaults(func=cmd_eval)


def add_evaluation_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``spinfits eval`` and ``spinfits store eval``."""
    from spinfits.fitting.evaluation.fit_evaluation import DEFAULT_PCK_ALPHA

    parser.add_argument("--model-dir", required=True, type=Path, help="body model folder")
    parser.add_argument(
        "--h36m-regressor",
        type=Path,
        help="(17, V) Human3.6M joint regressor, SPIN's J_regressor_h36m.npy (default: that file, or "
        "the stand-in's J_regressor_h36m_standin.npy, in --model-dir when present)",
    )
    parser.add_argument(
        "--ground-truth",
        choices=GROUND_TRUTHS,
        default="auto",
        help="3D ground truth: the dataset's S joints, its SMPL parameters through the body model, "
        "or auto (S when present, else SMPL; default %(default)s)",
    )
    parser.add_argument(
        "--pck-alpha",
        type=float,
        default=DEFAULT_PCK_ALPHA,
        help="2D PCK threshold as a fraction of the box side (default %(default)s)",
    )
    parser.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the figures to this JSON file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def device_of(args: argparse.Namespace):
    import torch

    if args.device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(args.device)
    except RuntimeError as error:
        raise InputError(
            f"--device {args.device!r} is not a torch device ({error}); e.g. cpu, cuda:0"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {args.device}: CUDA is not available here; use --device cpu")
    return device


def make_evaluator(args: argparse.Namespace, device):
    """The body model files and an ``Evaluator`` with the Human3.6M regressor, if any."""
    from spinfits.fitting.body.model_files import load_body_model_files
    from spinfits.fitting.evaluation.fit_evaluation import Evaluator
    from spinfits.fitting.evaluation.h36m_regressor import find_h36m_regressor, load_h36m_regressor

    files = load_body_model_files(args.model_dir)
    path = args.h36m_regressor or find_h36m_regressor(files)
    h36m = None if path is None else load_h36m_regressor(path, files.smpl.num_vertices)
    if h36m is not None and h36m.is_standin and not files.is_standin:
        log.warning("%s is the stand-in's regressor, but the body model is not the stand-in", h36m.path)
    with flags_in_errors(FLAGS):
        return files, Evaluator(files, h36m, device, args.pck_alpha)


def _mm(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def figures_table(summaries: dict[str, Any]) -> str:
    """Protocol figures of one or more ``EvalSummary`` side by side (a column group per label),
    then their 2D PCK."""
    from spinfits.cli.options import table

    first = next(iter(summaries.values()))
    several = len(summaries) > 1
    headers = ["protocol (mm)"]
    for label in summaries:
        suffix = f" {label}" if several else ""
        headers += [f"rows{suffix}", f"MPJPE{suffix}", f"PA-MPJPE{suffix}"]
    rows = []
    for index, protocol in enumerate(first.protocols):
        row = [protocol.title]
        for summary in summaries.values():
            mine = summary.protocols[index]
            row += [mine.rows, _mm(mine.mpjpe_mm), _mm(mine.pa_mpjpe_mm)]
        rows.append(row)
    pck = first.pck
    shown = [
        ("" if not several else f"{label} ")
        + ("-" if s.pck.pck is None else f"{100 * s.pck.pck:.1f}% of {s.pck.joints} joints")
        for label, s in summaries.items()
    ]
    evaluated = ", ".join(f"{label} {s.rows}" if several else str(s.rows) for label, s in summaries.items())
    return (
        f"rows evaluated: {evaluated}\n"
        + table(rows, headers)
        + f"\n2D PCK@{pck.alpha:g} (LSP-14 joints within {pck.threshold_px:.1f} crop px): "
        + ", ".join(shown)
    )


def per_action_table(summaries: dict[str, Any]) -> str | None:
    """MPJPE / PA-MPJPE (mm) per Human3.6M action of SPIN's protocol (H36M-14 when computed, else
    LSP-14), a column pair per label; None when no image name carries an action."""
    from spinfits.cli.options import table

    first = next(iter(summaries.values()))
    if not first.per_action:
        return None
    index = next((i for i, p in enumerate(first.protocols) if p.protocol == "h36m14"), 0)
    headers = ["action", "rows"]
    for label in summaries:
        suffix = f" {label}" if len(summaries) > 1 else ""
        headers += [f"MPJPE{suffix}", f"PA-MPJPE{suffix}"]
    rows = []
    for action, figures in first.per_action.items():
        row = [action, figures[index].rows]
        for summary in summaries.values():
            mine = summary.per_action.get(action)
            row += ["-", "-"] if mine is None else [_mm(mine[index].mpjpe_mm), _mm(mine[index].pa_mpjpe_mm)]
        rows.append(row)
    return f"per action, {first.protocols[index].title}, mm:\n" + table(rows, headers)


def print_figures(summaries: dict[str, Any]) -> None:
    print(figures_table(summaries))
    actions = per_action_table(summaries)
    if actions:
        print()
        print(actions)
    if not any(s.has_3d for s in summaries.values()):
        print()
        print("no 3D ground truth in the dataset (no S, no SMPL parameters with has_smpl): 2D PCK only")


def write_json(path: Path, document: dict[str, Any]) -> None:
    try:
        path.write_text(json.dumps(document, indent=2) + "\n")
    except OSError as error:
        raise InputError(f"cannot write {path} ({error}); choose a writable --json path") from None
    print(f"wrote {path}")


def cmd_eval(args: argparse.Namespace) -> int:
    from spinfits.fitting.evaluation.targets import load_eval_targets
    from spinfits.training.data import TrainingData
    from spinfits.training.evaluate import evaluate_regressor
    from spinfits.training.trained_regressor import checkpoint_file, load_regressor

    if args.batch < 1:
        raise InputError(f"--batch must be >= 1, got {args.batch}")
    checkpoint_file(args.checkpoint)  # a missing checkpoint fails before anything is loaded
    device = device_of(args)
    targets = load_eval_targets(args.dataset, args.ground_truth)
    files, evaluator = make_evaluator(args, device)
    trained = load_regressor(args.checkpoint, device)
    data = TrainingData.load(args.dataset, args.images, input_res=trained.state.input_res)
    print(f"checkpoint:    {trained.source} (run {trained.state.run}, step {trained.state.step})")
    print(f"dataset:       {args.dataset} ({len(data)} rows)")
    print(f"body model:    {files.description}")
    print(
        f"H36M joints:   {evaluator.h36m.description if evaluator.h36m else 'none (LSP-14 from 49 joints only)'}"
    )
    print(f"3D truth:      {targets.describe_3d}")
    with flags_in_errors(FLAGS):
        result = evaluate_regressor(
            trained.model, data, targets, evaluator, batch_size=args.batch, progress=not args.no_progress
        )
    print()
    print_figures({"regressor": result.summary})
    if args.json:
        write_json(
            args.json,
            {
                "checkpoint": str(trained.source),
                "run": trained.state.run,
                "step": trained.state.step,
                "dataset": str(args.dataset),
                "body_model": files.description,
                "body_model_is_standin": files.is_standin,
                "h36m_regressor": None if evaluator.h36m is None else str(evaluator.h36m.path),
                "h36m_regressor_is_standin": bool(evaluator.h36m and evaluator.h36m.is_standin),
                "device": str(device),
                **result.summary.as_dict(),
            },
        )
    if args.predictions:
        np.savez(
            args.predictions,
            rows=result.rows,
            pose=result.pose,
            betas=result.betas,
            camera=result.camera,
            cam_t=result.cam_t,
            **{f"mpjpe_{name}": values for name, values in result.metrics.mpjpe.items()},
            **{f"pa_mpjpe_{name}": values for name, values in result.metrics.pa_mpjpe.items()},
        )
        print(f"wrote {args.predictions} (errors in metres, NaN without 3D ground truth)")
    return 0
