"""Fits per second and final fit loss: SPIN's SMPLify configuration vs the engine's default.

Same synthetic keypoints and initialisation for both, in one run, on 2 CPU threads by default
(SPIN's reference: full 6890-vertex smplx forward, Adam lr 1e-2, 100 + 100 iterations, batch 66).
The CPU of a shared machine is noisy: each mode reports the best of ``--repeats`` timings.

Body model: the stand-in by default. Since issue 15 it has pose-corrective blend shapes
(``posedirs`` on every vertex, as SMPL's), so the fast path pays their Jacobian as it would
with the real SMPL; ``--model-dir DIR`` reads any SMPL-format folder. ``--model-dir toy`` is
the tests' RANDOM model (random geometry and random correctives, not a body): it stays only
to reproduce the rows RESULTS.md recorded before the stand-in had correctives, and as a
heavier case of the joints-only path (its random skinning gives 211 (joint, bone) pairs
against the stand-in's 86). Its losses say nothing about fitting people.

    python bench/fit_speed.py [--model-dir DIR|toy] [--rows 528] [--reference-rows 132] [--threads 2]
"""

from __future__ import annotations

import argparse
import logging
import time

import torch
from _common import body_files, synthetic_rows

from spinfits.fitting.smplify.config import SmplifyConfig
from spinfits.fitting.smplify.fitter import SMPLify


def run(name, files, config, rows, count, device, repeats=1):
    """Fit the first ``count`` rows; the best of ``repeats`` timings (the CPU is shared)."""
    engine = SMPLify(files, config, device=device)
    args = [t[:count].to(device) for t in (rows.init_pose, rows.init_betas, rows.init_cam_t, rows.keypoints)]
    engine.fit(*[a[:2] for a in args])  # warm-up
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = engine.fit(*args)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    loss = result.loss[torch.isfinite(result.loss)].cpu()
    speed = count / min(seconds)
    print(
        f"{name:<28} rows {count:5d}  {min(seconds):8.2f} s (of {len(seconds)})  "
        f"{speed:8.2f} fits/s  loss mean {loss.mean():9.3f}  median {loss.median():8.3f}  "
        f"iterations mean {result.iterations.float().mean():6.1f}  "
        f"converged {result.converged.float().mean():5.1%}",
        flush=True,
    )
    return speed, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir")
    parser.add_argument("--rows", type=int, default=528)
    parser.add_argument("--reference-rows", type=int, default=132)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--init-noise", type=float, default=0.2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2, help="best of N timings per mode")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="also run the default with one field changed, e.g. batch_size=128",
    )
    options = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(options.threads)
    device = torch.device(options.device)
    files = body_files(options.model_dir)
    rows = synthetic_rows(files, max(options.rows, options.reference_rows), options.seed, options.init_noise)
    print(f"{files.description}\ndevice {device}, {torch.get_num_threads()} threads")
    if options.reference_rows:
        spin_speed, spin = run(
            "SPIN reference (a)",
            files,
            SmplifyConfig.spin_reference(),
            rows,
            options.reference_rows,
            device,
            options.repeats,
        )
    fast_speed, fast = run(
        "engine default (b)", files, SmplifyConfig(), rows, options.rows, device, options.repeats
    )
    for variant in options.variant:
        key, value = variant.split("=")
        kind = type(getattr(SmplifyConfig(), key))
        value = value == "True" if kind is bool else kind(value)
        run(f"variant {variant}", files, SmplifyConfig(**{key: value}), rows, options.rows, device)
    if not options.reference_rows:
        return
    same = slice(0, options.reference_rows)
    common = torch.isfinite(spin.loss) & torch.isfinite(fast.loss[same])
    print(
        f"on the {int(common.sum())} rows both fitted: loss mean SPIN "
        f"{spin.loss[common].mean():.3f} vs default {fast.loss[same][common].mean():.3f}, "
        f"median {spin.loss[common].median():.3f} vs {fast.loss[same][common].median():.3f}; "
        f"default lower on {(fast.loss[same][common] <= spin.loss[common]).float().mean():.0%}"
    )
    print(f"speed ratio default / SPIN reference: {fast_speed / spin_speed:.1f}x")


if __name__ == "__main__":
    main()
