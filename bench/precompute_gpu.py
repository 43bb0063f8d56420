"""The engine and precompute on one device vs SPIN's loop on the same device, over batch sizes.

    bash bench/gpu.sh                                   # CUDA, batch sizes 66 256 1024 4096
    python bench/precompute_gpu.py --device cpu --quick  # the same code path on the CPU, small

Per batch size B, on B synthetic people (OpenPose-like keypoints, ``precompute_common``; the
stand-in body model unless --model-dir), each timed after a warm-up on the same device:

- **SPIN's loop**: ``OfflineConfig.spin_from_mean()`` (Adam 100 + 100, full 6890-vertex forward,
  from the mean pose) with batches of B;
- **engine**: ``OfflineFitter`` with precompute's default configuration and the solver slots the
  CLI uses (``--slots``, default ``SmplifyConfig().batch_size``), in this process (no Ray), on
  the B rows;
- **precompute**: ``run_precompute`` end to end on the B rows (a local Ray cluster started by the
  run, one actor with the device: ``--gpus-per-worker 1`` on CUDA), shards of B rows; its time
  split into start-up (Ray, the actor, the body model, the store: wall time less the actor's
  fitting) and the actor's fitting (``PrecomputeSummary.fitting_seconds``);
- ``--compile``: the engine again with ``torch.compile`` on the joints-only body evaluation;
- ``--spin-repo DIR`` (a checkout of github.com/nkolot/SPIN): **SPIN's own code**, its
  ``smplify/smplify.py`` ``SMPLify`` built and called as SPIN's trainer does (``step_size`` 1e-2,
  100 + 100 iterations, focal length 5000, 224 px crop, batches of B) from the same start as
  SPIN's loop, on the same device (``bench/spin_smplify.py`` says how it is loaded; SPIN's code
  is not part of this project). Without it the table says it was not run.

Every fit is warmed up on up to 64 rows outside the timed part (compilation included), then
timed ``--repeats`` times: fits/s of the fastest run, the median's in brackets.

Printed: fits/s of each, the ratios to SPIN's loop (and the engine's to SPIN's own code), and the
2D error / PA-MPJPE of SPIN's own code (with --spin-repo), SPIN's loop and the engine
(``bench/fit_quality.py``'s measures). Fails with a message when --device cuda has no CUDA device
or --spin-repo is not a usable checkout of SPIN.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from precompute_common import (
    QualityJudge,
    describe,
    model_folder,
    private_ray,
    timed_fit,
    with_slots,
    write_keypoints,
)
from spin_smplify import SpinCheckoutError, SpinSmplify, load_spin_smplify

from spinfits.cluster.precompute import PrecomputeConfig, run_precompute
from spinfits.fitting.body.model_files import load_body_model_files
from spinfits.fitting.data.dataset import load_spin_npz
from spinfits.fitting.offline.config import OfflineConfig, default_offline_config
from spinfits.fitting.offline.fitter import OfflineFitter
from spinfits.fitting.smplify.config import SmplifyConfig


def compiled(fitter: OfflineFitter) -> OfflineFitter:
    """``fitter`` with ``torch.compile`` on its joints-only evaluation (dynamic shapes: the LM
    pool shrinks as rows converge)."""
    model = fitter.smplify.joints_model
    model.evaluate = torch.compile(model.evaluate, dynamic=True)
    return fitter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch-sizes", default="66,256,1024,4096")
    parser.add_argument("--quick", action="store_true", help="batch sizes 66 and 132 (CPU check of the path)")
    parser.add_argument("--model-dir", help="standin (default), toy (pose correctives) or a folder")
    parser.add_argument("--compile", action="store_true", help="also the engine under torch.compile")
    parser.add_argument("--skip-precompute", action="store_true")
    parser.add_argument("--threads", type=int, default=2, help="torch threads on the CPU")
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument(
        "--slots",
        type=int,
        default=SmplifyConfig().batch_size,
        help="the engine's solver slots (default: the CLI's, %(default)s); SPIN's loop uses batches of B",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed fits per cell (min and median shown)")
    parser.add_argument("--spin-repo", help="a checkout of github.com/nkolot/SPIN: its own SMPLify beside")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            f"precompute_gpu: error: --device {args.device} but torch {torch.__version__} sees no CUDA "
            f"device (torch.cuda.is_available() is False); run it on a GPU machine with a CUDA build "
            f"of torch, or pass --device cpu",
            file=sys.stderr,
        )
        sys.exit(2)
    if args.spin_repo is not None:
        try:
            load_spin_smplify(args.spin_repo)  # fail before any fit when the checkout is unusable
        except SpinCheckoutError as error:
            print(f"precompute_gpu: error: {error}", file=sys.stderr)
            sys.exit(2)
    logging.basicConfig(level=logging.WARNING)
    import icechunk

    icechunk.set_logs_filter("error")
    private_ray()
    torch.set_num_threads(args.threads)
    sizes = [66, 132] if args.quick else [int(v) for v in args.batch_sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="spinfits-gpu-"))
    model_dir = model_folder(args.model_dir, work)
    files = load_body_model_files(model_dir)
    dataset = write_keypoints(work / "people.npz", files, "openpose", max(sizes), args.seed)
    keypoints = load_spin_npz(dataset).keypoints
    judge = QualityJudge(files, dataset, keypoints)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} threads"
    print(f"{describe(files)}; device {name}; torch {torch.__version__}")
    print(
        f"engine: {args.slots} solver slots (the CLI's); fits/s from the fastest of {args.repeats} (median in ())"
    )
    own = args.spin_repo is not None
    print(
        f"SPIN's own smplify.py: from {args.spin_repo}"
        if own
        else "SPIN's own smplify.py: not run (pass --spin-repo DIR, a checkout of github.com/nkolot/SPIN)"
    )
    header = "| batch |"
    if own:
        header += " SPIN's smplify.py fits/s |"
    header += " SPIN's loop fits/s | engine fits/s | engine / SPIN's loop |"
    if own:
        header += " engine / SPIN's smplify.py |"
    if args.compile:
        header += " engine, compiled fits/s | compiled / SPIN's loop |"
    if not args.skip_precompute:
        header += (
            " precompute fits/s (end to end) | start-up s | fitting s (actor) | precompute / SPIN's loop |"
        )
    methods = ("smplify.py / " if own else "") + "SPIN's loop / engine"
    header += f" 2D err {methods} (px) | PA-MPJPE {methods} (mm) |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for size in sizes:
        rows = keypoints[:size]
        subset = slice(0, size)
        cells, fits = [f"{size}"], []
        if own:
            own_seconds, own_median, own_fit = timed_fit(
                SpinSmplify(args.spin_repo, files, work / f"spin-{size}", size, device).fit,
                rows,
                device,
                args.repeats,
            )
            cells.append(f"{size / own_seconds:.1f} ({size / own_median:.1f})")
            fits.append(own_fit)
        spin_seconds, spin_median, spin = timed_fit(
            OfflineFitter(files, with_slots(OfflineConfig.spin_from_mean(), size), device=device).fit,
            rows,
            device,
            args.repeats,
        )
        engine_config = with_slots(default_offline_config(files), args.slots)
        engine_seconds, engine_median, engine = timed_fit(
            OfflineFitter(files, engine_config, device=device).fit, rows, device, args.repeats
        )
        fits += [spin, engine]
        spin_speed, engine_speed = size / spin_seconds, size / engine_seconds
        cells += [
            f"{spin_speed:.1f} ({size / spin_median:.1f})",
            f"{engine_speed:.1f} ({size / engine_median:.1f})",
            f"{engine_speed / spin_speed:.1f}x",
        ]
        if own:
            cells.append(f"{own_seconds / engine_seconds:.1f}x")
        if args.compile:
            try:
                fitter = compiled(OfflineFitter(files, engine_config, device=device))
                compiled_seconds, compiled_median, _ = timed_fit(fitter.fit, rows, device, args.repeats)
                cells += [
                    f"{size / compiled_seconds:.1f} ({size / compiled_median:.1f})",
                    f"{size / compiled_seconds / spin_speed:.1f}x",
                ]
            except Exception as error:  # report, do not stop the table
                cells += [f"failed: {type(error).__name__}", ""]
        if not args.skip_precompute:
            summary = run_precompute(
                _precompute_config(args, dataset, work, size, model_dir, engine_config, device)
            )
            cells += [
                f"{summary.fits_per_second:.1f}",
                f"{summary.seconds - summary.fitting_seconds:.1f}",
                f"{summary.fitting_seconds:.1f}",
                f"{summary.fits_per_second / spin_speed:.1f}x",
            ]
        quality = [
            judge(*(getattr(r, k).detach().cpu() for k in ("pose", "betas", "cam_t", "loss")), rows=subset)
            for r in fits
        ]
        cells += [
            " / ".join(f"{q.error_2d:.2f}" for q in quality),
            " / ".join(f"{q.pa_mpjpe_mean:.1f}" for q in quality),
        ]
        print("| " + " | ".join(cells) + " |", flush=True)
    print(f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}")


def _precompute_config(args, dataset, work, size, model_dir, fitting, device) -> PrecomputeConfig:
    """Precompute of the first ``size`` rows: a dataset file of those rows alone."""
    subset = work / f"people-{size}.npz"
    with np.load(dataset) as arrays:
        total = len(arrays["imgname"])
        np.savez(
            subset,
            **{
                key: value[:size] if value.ndim and len(value) == total else value
                for key, value in arrays.items()
            },
        )
    return PrecomputeConfig(
        dataset=subset,
        store=str(work / f"store-{size}"),
        model_dir=model_dir,
        workers=1,
        threads_per_worker=args.threads,
        gpus_per_worker=1.0 if device.type == "cuda" else 0.0,
        shard_size=size,
        show_progress=False,
        fitting=fitting,
    )


if __name__ == "__main__":
    main()
