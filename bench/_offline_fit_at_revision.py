"""Run by ``precompute_cuts.py`` with another revision first on ``PYTHONPATH`` (``_revision``):
fit keypoints with that revision's ``OfflineFitter`` and default-before configuration (SMPLify
2016's four prior stages), timed as ``precompute_cuts.fit_all`` times today's, into an npz.

    python bench/_offline_fit_at_revision.py ROOT MODEL_DIR KEYPOINTS_NPZ SHARD_SIZE THREADS OUT_NPZ
"""

from __future__ import annotations

import importlib
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _revision import check_imported_from, isolate


def module(*names: str):
    """The first of ``names`` that imports: the revision's layout (flat fitting/ or grouped)."""
    for name in names:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError:
            continue
    raise SystemExit(f"none of {names} in this revision")


def main() -> None:
    root, model_dir, keypoints_npz, shard_size, threads, out = sys.argv[1:]
    isolate()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(int(threads))
    fitter_module = module("spinfits.fitting.offline.fitter", "spinfits.fitting.offline_fitter")
    config_module = module("spinfits.fitting.offline.config", "spinfits.fitting.offline_config")
    smplify_config = module("spinfits.fitting.smplify.config", "spinfits.fitting.smplify_config")
    files_module = module("spinfits.fitting.body.model_files", "spinfits.fitting.model_files")
    dataset_module = module("spinfits.fitting.data.dataset", "spinfits.fitting.dataset")
    check_imported_from(Path(root))
    files = files_module.load_body_model_files(model_dir)
    keypoints = dataset_module.load_spin_npz(keypoints_npz).keypoints
    config = config_module.OfflineConfig(
        smplify=smplify_config.SmplifyConfig(), stages=config_module.SMPLIFY_2016_STAGES
    )
    fitter = fitter_module.OfflineFitter(files, config)
    size = int(shard_size)
    fitter.fit(keypoints[:8])  # warm-up
    start = time.perf_counter(), time.process_time()
    parts = [fitter.fit(keypoints[i : i + size]) for i in range(0, len(keypoints), size)]
    wall, cpu = time.perf_counter() - start[0], time.process_time() - start[1]
    fields = ("pose", "betas", "cam_t", "loss", "iterations")
    arrays = {name: torch.cat([getattr(p, name) for p in parts]).numpy() for name in fields}
    np.savez(out, wall=wall, cpu=cpu, **arrays)


if __name__ == "__main__":
    main()
