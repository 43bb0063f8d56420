"""``spinfits init``: tools for offline initialisation (the learned keypoint regressor)."""

from __future__ import annotations

import argparse
import time

from tqdm import tqdm

from spinfits.fitting.body.model_files import load_body_model_files
from spinfits.fitting.offline.keypoint_regressor import RegressorTraining, save_keypoint_regressor
from spinfits.fitting.synthetic.regressor_training import train_keypoint_regressor


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("init", help="offline initialisation tools")
    commands = parser.add_subparsers(dest="init_command", metavar="SUBCOMMAND", required=True)
    train = commands.add_parser(
        "train-regressor",
        help="train the keypoints-to-SMPL network on synthetic people of a body model and save "
        "it beside the model files (precompute then starts from its predictions)",
    )
    train.add_argument("--model-dir", required=True, help="body model folder")
    defaults = RegressorTraining()
    train.add_argument("--steps", type=int, default=defaults.steps)
    train.add_argument(
        "--samples",
        type=int,
        default=defaults.samples,
        help="synthetic people drawn for training (a tenth is held out)",
    )
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    files = load_body_model_files(args.model_dir)
    training = RegressorTraining(steps=args.steps, samples=args.samples, seed=args.seed)
    print(f"training the keypoint regressor on {training.samples} synthetic people of {files.description}")
    start = time.perf_counter()
    with tqdm(total=training.steps, unit="step", desc="train-regressor") as bar:

        def progress(step: int, total: int, loss: float) -> None:
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(loss=f"{loss:.4f}")

        model, figures = train_keypoint_regressor(files, training, progress)
    path = save_keypoint_regressor(model, files, training, figures)
    print(
        f"wrote {path} in {time.perf_counter() - start:.0f} s; held-out rows "
        f"{int(figures['held_out_rows'])}: global orientation error median "
        f"{figures['global_orient_error_deg_median']:.1f} deg, body joints mean "
        f"{figures['body_joint_error_deg_mean']:.1f} deg"
    )
    return 0
