"""Cuts to the offline path, each measured before/after in one run: fits/s and fit quality.

    python bench/precompute_cuts.py [--model-dir standin|toy|DIR] [--rows 192] [--shard-size 128]
        [--threads 1] [--keypoints openpose,lsp] [--repeats 2] [--only NAME,NAME] [--before REV]

Every variant fits the same synthetic rows with ``OfflineFitter`` in shards of --shard-size rows
(as a precompute actor does), in this process; variants run in turn, --repeats rounds in
alternating order, and each reports its best time: CPU seconds of this process (with one
thread, the cost of the fits whatever the machine's load) and wall seconds (the CPU is shared). Quality is
``bench/fit_quality.py``'s: 2D error against the noise-free keypoints, PA-MPJPE, wrong-facing.

Variants (each one change from the line before it, unless it says "default"):
- ``before``: the offline default as it was (SMPLify 2016's four prior stages, every
  hypothesis through all of them) on the engine as it was: the code of git revision ``--before``
  (default ``BEFORE_CUTS``, the commit before issue 15's cuts), exported with ``git archive``
  and run in a subprocess (``_revision.py``, ``_offline_fit_at_revision.py``), timed the same way;
- ``engine``: the same configuration on today's engine (exact: the same iterates up to float
  rounding): the rotation Jacobian per (joint, bone) block, projected to pixels block by
  block, J^T J from the data rows and the priors' known structure, trial steps evaluated with
  their Jacobian;
- ``reuse-corrective``: the correctives' share of the Jacobian computed once per row and stage
  (``SmplifyConfig.reuse_corrective_jacobian``; no change on a model without correctives);
- ``default``: SPIN's single body stage instead of the schedule: today's ``OfflineConfig()``;
- ``default, prune-0``: hypotheses pruned after the camera stage (``prune_after_stage=0``);
- ``default, no outlier refit`` / ``default, front hypothesis only``: what those steps buy;
- ``2016 schedule, prune-1``: the old schedule with hypotheses pruned after its first stage.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from _revision import environment, exported
from precompute_common import QUALITY_HEADER, QualityJudge, describe, model_folder, write_keypoints

from spinfits.fitting.body.model_files import load_body_model_files
from spinfits.fitting.data.dataset import load_spin_npz
from spinfits.fitting.offline.config import SMPLIFY_2016_STAGES, OfflineConfig
from spinfits.fitting.offline.fitter import OfflineFitter
from spinfits.fitting.smplify.config import SmplifyConfig

#: The commit before issue 15's engine cuts (the parent of 9662a62): ``before`` runs its code.
BEFORE_CUTS = "e9c3b0d23583031fc0225c31afa0b70b84b3320b"


def variants() -> dict[str, tuple[OfflineConfig, object]]:
    """name -> (config, context manager around the fits; None: the ``--before`` revision's code)."""
    old = OfflineConfig(smplify=SmplifyConfig(), stages=SMPLIFY_2016_STAGES)  # the default before
    reuse = replace(old, smplify=replace(old.smplify, reuse_corrective_jacobian=True))
    default = OfflineConfig()
    same = contextlib.nullcontext
    return {
        "before": (old, None),
        "engine": (old, same),
        "reuse-corrective": (reuse, same),
        "default": (default, same),
        "default, prune-0": (replace(default, prune_after_stage=0), same),
        "default, no outlier refit": (replace(default, outlier_factor=None), same),
        "default, front hypothesis only": (
            replace(default, back_hypothesis=False, side_hypotheses=False),
            same,
        ),
        "2016 schedule, prune-1": (replace(reuse, prune_after_stage=1), same),
    }


def fit_all(files, config, context, keypoints, shard_size):
    fitter = OfflineFitter(files, config)
    with context():
        fitter.fit(keypoints[:8])  # warm-up
        start = time.perf_counter(), time.process_time()
        parts = [fitter.fit(keypoints[i : i + shard_size]) for i in range(0, len(keypoints), shard_size)]
        seconds = time.perf_counter() - start[0], time.process_time() - start[1]
    fields = ("pose", "betas", "cam_t", "loss", "iterations")
    return seconds, {name: torch.cat([getattr(p, name) for p in parts]) for name in fields}


def fit_at_revision(root: Path, model_dir: Path, keypoints_npz: Path, shard_size: int, threads: int):
    """``fit_all`` of the default before, in a subprocess importing the revision at ``root``."""
    out = keypoints_npz.with_suffix(".before.npz")
    script = Path(__file__).with_name("_offline_fit_at_revision.py")
    command = [sys.executable, str(script), str(root), str(model_dir), str(keypoints_npz)]
    subprocess.run([*command, str(shard_size), str(threads), str(out)], check=True, env=environment(root))
    with np.load(out) as saved:
        results = {
            name: torch.from_numpy(saved[name]) for name in ("pose", "betas", "cam_t", "loss", "iterations")
        }
        return (float(saved["wall"]), float(saved["cpu"])), results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", help="standin (default), toy (pose correctives) or a folder")
    parser.add_argument("--rows", type=int, default=192)
    parser.add_argument("--shard-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--keypoints", default="openpose,lsp")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--only", help="comma-separated variant names")
    parser.add_argument(
        "--before",
        default=BEFORE_CUTS,
        help="git revision whose code the 'before' variant runs (default %(default)s)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="spinfits-cuts-"))
    model_dir = model_folder(args.model_dir, work)
    files = load_body_model_files(model_dir)
    table = variants()
    names = args.only.split(",") if args.only else list(table)
    root = exported(args.before, work / "before") if "before" in names else None
    print(
        f"{describe(files)}; {args.rows} rows per keypoint set, shards of {args.shard_size}, "
        f"{args.threads} threads, best of {args.repeats} (alternating order); load average "
        f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}"
        + (f"; before = revision {args.before}" if root else "")
    )
    for kind in args.keypoints.split(","):
        path = write_keypoints(work / f"{kind}.npz", files, kind, args.rows, args.seed)
        keypoints = load_spin_npz(path).keypoints
        judge = QualityJudge(files, path, keypoints)
        best: dict[str, float] = {}
        cpu: dict[str, float] = {}
        results = {}
        for repeat in range(args.repeats):
            for name in names if repeat % 2 == 0 else reversed(names):
                config, context = table[name]
                if context is None:
                    (wall, used), results[name] = fit_at_revision(
                        root, model_dir, path, args.shard_size, args.threads
                    )
                else:
                    (wall, used), results[name] = fit_all(files, config, context, keypoints, args.shard_size)
                best[name] = min(best.get(name, float("inf")), wall)
                cpu[name] = min(cpu.get(name, float("inf")), used)
        print(f"\n{kind}-like keypoints ({args.rows} rows)")
        print(
            f"| variant | fits per CPU second | speed vs before (CPU) | fits/s (wall) | {QUALITY_HEADER} "
            "| LM iterations of the kept fit |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        reference = cpu.get("before")
        for name in names:
            fits = args.rows / best[name]
            ratio = f"{reference / cpu[name]:.2f}x" if reference else ""
            out = results[name]
            quality = judge(out["pose"], out["betas"], out["cam_t"], out["loss"])
            print(
                f"| {name} | {args.rows / cpu[name]:.1f} | {ratio} | {fits:.1f} | {quality.cells()} | "
                f"{out['iterations'].float().mean():.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
