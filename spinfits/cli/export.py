"""``spinfits export-checkpoint``: a trained regressor in SPIN's (or mmhuman3d's) checkpoint layout."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export-checkpoint",
        help="write a trained regressor in SPIN's model_checkpoint.pt layout (or mmhuman3d's)",
        description="Reads a training run (its latest checkpoint), a checkpoint folder, a "
        "training_state.pt or a weights file, and writes the regressor in another project's "
        "layout: 'spin' is SPIN's model_checkpoint.pt (its demo.py and eval.py load it with "
        "load_state_dict(checkpoint['model'])), 'mmhuman3d' an mmhuman3d HMR checkpoint "
        "(backbone.* and head.*). ResNet-50 regressors only: SPIN's HMR is ResNet-50.",
    )
    parser.add_argument("checkpoint", type=Path, metavar="RUN", help="run folder, checkpoint folder or file")
    parser.add_argument("out", type=Path, metavar="OUT.pt", help="the file to write (must not exist)")
    parser.add_argument(
        "--layout",
        choices=("spin", "mmhuman3d"),
        default="spin",
        help="the layout written (default %(default)s)",
    )
    parser.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from spinfits.training.export_checkpoint import export_checkpoint

    print(export_checkpoint(args.checkpoint, args.out, args.layout).describe())
    return 0
