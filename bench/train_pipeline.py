"""The training input pipeline on real JPEGs: images/s of the pipeline alone at 0, 1, 2 DataLoader
workers, and training steps/s with it (how long a step waits on data).

Data: the real images in ../shared/data — four Human3.6M frames (SPIN's npz), four COCO images
(converted with `spinfits data from-coco`) and MPI-INF-3DHP frames (`from-mmpose-3dhp`) — mixed
as SPIN mixes them, decoded, cropped to SPIN's 224-px crop and augmented as SPIN does. The images
repeat (the sample is small), but each step decodes its images from disk again, as training does.

Steps: SPIN's training step without SMPLify (--no-smplify's step, so the figure is the input
pipeline's share, not SMPLify's) with the small CPU backbone at 224 px, stand-in body model.

    python bench/train_pipeline.py [--steps 30] [--batch 16] [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from spinfits.fitting.body.model_files import load_body_model_files
from spinfits.fitting.converters.coco import convert_coco
from spinfits.fitting.converters.mmpose_3dhp import convert_mmpose_3dhp
from spinfits.fitting.converters.spin_rows import write_spin_npz
from spinfits.fitting.data.mean_params import spin_mean_params_path
from spinfits.fitting.synthetic.standin import write_standin_files
from spinfits.store import Fits
from spinfits.training.augmentation import AugmentationConfig
from spinfits.training.data import MixedTrainingData, StepBatches, TrainingData, training_loader
from spinfits.training.mixture import MixedSampler, spin_partition
from spinfits.training.regressor import HMR, RegressorConfig
from spinfits.training.spin_step import SpinTrainingStep
from spinfits.training.train_config import TrainConfig, TrainDataset


def real_mix(shared: Path, scratch: Path) -> MixedTrainingData:
    coco = write_spin_npz(
        convert_coco(shared / "coco_sample" / "test_coco.json", shared / "coco_sample"), scratch / "coco.npz"
    )
    hp = write_spin_npz(
        convert_mmpose_3dhp(shared / "mpi_inf_3dhp_sample" / "test_3dhp_train.npz"),
        scratch / "mpi_inf_3dhp.npz",
    )
    del coco, hp
    specs = [
        ("h36m", shared / "h36m_spin_sample.npz", shared / "h36m_images"),
        ("coco", scratch / "coco.npz", shared / "coco_sample"),
        ("mpi_inf_3dhp", scratch / "mpi_inf_3dhp.npz", shared / "mpi_inf_3dhp_sample"),
    ]
    return MixedTrainingData([s[0] for s in specs], [TrainingData.load(s[1], s[2], 224) for s in specs])


def measure(data, sampler, steps: int, workers: int, train_step=None) -> tuple[float, float, float]:
    """(seconds, images/s, share of the time spent waiting on the loader) over ``steps`` steps,
    after one warm-up step (the workers' start)."""
    batches = StepBatches(data, sampler, AugmentationConfig(), 0, 0, 0, steps + 1)
    loader = iter(training_loader(batches, workers, pin_memory=False))
    next(loader)
    began, waited, images = time.perf_counter(), 0.0, 0
    for step in range(1, steps + 1):
        tick = time.perf_counter()
        batch = next(loader)
        waited += time.perf_counter() - tick
        images += len(batch)
        if train_step is not None:
            train_step(batch, Fits.empty(len(batch)), step)
    seconds = time.perf_counter() - began
    return seconds, images / seconds, waited / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the training process")
    parser.add_argument(
        "--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        data = real_mix(args.shared, scratch)
        weights = spin_partition(data.names, data.sizes)
        sampler = MixedSampler(data.sizes, weights, args.batch, 1, seed=0)
        print(
            f"real JPEGs: {dict(zip(data.names, data.sizes))} rows, SPIN's mix "
            f"{', '.join(f'{n} {w:.0%}' for n, w in zip(data.names, weights))}; batch {args.batch}, "
            f"224 px, SPIN's augmentation; {args.steps} steps after one warm-up; torch threads {args.threads}"
        )
        print("\npipeline alone (decode + crop + augment):")
        print("| loader workers | images/s |")
        print("|---|---|")
        for workers in (0, 1, 2):
            _, rate, _ = measure(data, sampler, args.steps, workers)
            print(f"| {workers} | {rate:.1f} |")

        write_standin_files(scratch / "model")
        files = load_body_model_files(scratch / "model")
        config = TrainConfig(
            datasets=tuple(TrainDataset(Path(f"{n}.npz"), scratch) for n in data.names),
            store="unused",
            model_dir=scratch / "model",
            backbone="small",
            batch_size=args.batch,
            run_smplify=False,
        )
        torch.manual_seed(0)
        model = HMR(str(spin_mean_params_path()), RegressorConfig(backbone="small"))
        step = SpinTrainingStep(model, torch.optim.Adam(model.parameters(), lr=5e-5), files, config)
        print("\ntraining steps with the pipeline (small backbone, no SMPLify, stand-in body):")
        print("| loader workers | steps/s | images/s | time waiting on data |")
        print("|---|---|---|---|")
        for workers in (0, 1, 2):
            seconds, rate, waiting = measure(data, sampler, args.steps, workers, step)
            print(f"| {workers} | {args.steps / seconds:.2f} | {rate:.1f} | {waiting:.0%} |")
    print(f"\n(numpy {np.__version__}, torch {torch.__version__})")


if __name__ == "__main__":
    main()
