"""A trained regressor written in another project's checkpoint layout, for its own tools.

``export_checkpoint(source, out, layout)`` reads any checkpoint ``spinfits eval`` reads (a run
folder, a checkpoint folder, ``training_state.pt``, or a weights file) and writes:

- ``spin``: nkolot/SPIN's ``model_checkpoint.pt`` layout, ``{"model": HMR state dict,
  "optimizer": Adam's state dict, "total_step_count": step, ...}``. SPIN's ``demo.py`` and
  ``eval.py`` build ``hmr(SMPL_MEAN_PARAMS)`` and call ``model.load_state_dict(checkpoint["model"],
  strict=False)``; its trainer's ``--pretrained_checkpoint`` does the same. spinfits' HMR has
  SPIN's names and shapes, so every tensor lands (``strict=False`` would hide one that did not).
- ``mmhuman3d``: ``{"state_dict": {"backbone.*": ResNet-50, "head.*": HMRHead}, "meta": {...}}``,
  the names ``train --pretrained`` maps back.

Both hold tensors and plain values only (loadable with ``torch.load(weights_only=True)``), plus a
``spinfits`` entry (run, step, store snapshot, backbone, input size) that ``spinfits eval`` /
``demo`` read back and the other projects ignore. Only the ResNet-50 backbone is exported: SPIN
and mmhuman3d build ResNet-50, and the small backbone's weights would not fit them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from spinfits.errors import InputError
from spinfits.training.pretrained import HEAD_PREFIXES
from spinfits.training.trained_regressor import load_regressor

ExportLayout = Literal["spin", "mmhuman3d"]
LAYOUTS: tuple[ExportLayout, ...] = ("spin", "mmhuman3d")


@dataclass(frozen=True)
class ExportedCheckpoint:
    """out: the file written; source: the checkpoint read; layout; tensors: how many."""

    out: Path
    source: Path
    layout: ExportLayout
    tensors: int
    origin: str

    def describe(self) -> str:
        return f"wrote {self.out}: {self.tensors} tensors in {self.layout}'s layout ({self.origin})"


def export_checkpoint(
    source: str | Path, out: str | Path, layout: ExportLayout = "spin"
) -> ExportedCheckpoint:
    """Write the regressor of ``source`` to ``out`` in ``layout``; refuses to overwrite ``out``."""
    if layout not in LAYOUTS:
        raise InputError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    out = Path(out)
    if out.exists():
        raise InputError(f"{out} already exists: choose another output path or remove it first")
    if not out.parent.is_dir():
        raise InputError(f"the folder of {out} does not exist: create {out.parent} first")
    trained = load_regressor(source)
    if trained.backbone != "resnet50":
        raise InputError(
            f"{trained.source} is a {trained.backbone} regressor, but {layout}'s HMR is ResNet-50: its "
            "weights would not load there. Export a run trained with --backbone resnet50 (spinfits "
            "eval and demo read this run as it is)"
        )
    model = {name: tensor.detach().cpu().contiguous() for name, tensor in trained.model.state_dict().items()}
    meta: dict[str, Any] = {"backbone": trained.backbone, "input_res": trained.input_res}
    if trained.state is not None:
        meta.update(run=trained.state.run, step=trained.state.step, snapshot_id=trained.state.snapshot_id)
    elif trained.run is not None:
        meta.update(run=trained.run, step=trained.step)
    step = int(meta.get("step") or 0)
    if layout == "spin":
        content: dict[str, Any] = {"model": model, "total_step_count": step, "spinfits": meta}
        if trained.state is not None and trained.state.optimizer:
            content["optimizer"] = trained.state.optimizer
    else:
        state = {("head." if n.startswith(HEAD_PREFIXES) else "backbone.") + n: t for n, t in model.items()}
        content = {"state_dict": state, "meta": {"iter": step}, "spinfits": meta}
    partial = out.with_name(out.name + ".partial")
    try:
        torch.save(content, partial)
        os.replace(partial, out)  # a reader never sees half a file
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise InputError(f"cannot write {out} ({error}); choose a writable path") from None
    return ExportedCheckpoint(out, trained.source, layout, len(model), trained.origin)
