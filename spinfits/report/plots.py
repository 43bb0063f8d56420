"""Pictures a person would rather look at than read: body model previews (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.collections import PolyCollection

from spinfits.fitting.body.body_model import SpinBodyModel
from spinfits.fitting.body.joints import NUM_OPENPOSE_JOINTS, SMPL_PARENTS
from spinfits.fitting.body.model_files import BodyModelFiles
from spinfits.training.progress import latest_per_step, step_time_split


def _save(figure, path: str | Path, dpi: int) -> Path:
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    return path


def _silhouette(axis, vertices: np.ndarray, faces: np.ndarray, columns: tuple[int, int]) -> None:
    triangles = vertices[faces][:, :, list(columns)]
    axis.add_collection(PolyCollection(triangles, facecolor="#c9d6e8", edgecolor="none"))


def _skeleton(axis, smpl_joints: np.ndarray, spin_joints: np.ndarray, columns: tuple[int, int]) -> None:
    a, b = columns
    for child, parent in enumerate(SMPL_PARENTS):
        if parent >= 0:
            axis.plot(
                smpl_joints[[parent, child], a],
                smpl_joints[[parent, child], b],
                color="#1f4e8c",
                linewidth=1.5,
            )
    axis.scatter(
        smpl_joints[:, a], smpl_joints[:, b], s=10, color="#1f4e8c", zorder=3, label="SMPL joints (24)"
    )
    axis.scatter(
        spin_joints[:NUM_OPENPOSE_JOINTS, a],
        spin_joints[:NUM_OPENPOSE_JOINTS, b],
        s=8,
        marker="x",
        color="#d1495b",
        zorder=4,
        label="OpenPose joints (25)",
    )
    axis.scatter(
        spin_joints[NUM_OPENPOSE_JOINTS:, a],
        spin_joints[NUM_OPENPOSE_JOINTS:, b],
        s=12,
        facecolors="none",
        edgecolors="#2e933c",
        zorder=4,
        label="SPIN GT joints (24)",
    )


@torch.no_grad()
def plot_body_model(files: BodyModelFiles, path: str | Path) -> Path:
    """Front and side views of the body at zero pose: mesh silhouette, skeleton, SPIN's joints."""
    model = SpinBodyModel(files)
    output = model(torch.zeros(1, 72), torch.zeros(1, 10), return_vertices=True)
    vertices = output.vertices[0].numpy()
    smpl_joints, spin_joints = output.smpl_joints[0].numpy(), output.joints[0].numpy()
    faces = files.smpl.faces

    figure, axes = plt.subplots(1, 2, figsize=(11, 7), gridspec_kw={"width_ratios": [1.6, 1]})
    for axis, columns, title in (
        (axes[0], (0, 1), "front (x right = person's left, y up)"),
        (axes[1], (2, 1), "side (z = facing direction, y up)"),
    ):
        _silhouette(axis, vertices, faces, columns)
        _skeleton(axis, smpl_joints, spin_joints, columns)
        axis.set_title(title, fontsize=10)
        axis.set_aspect("equal")
        axis.autoscale_view()
        axis.grid(alpha=0.3)
        axis.set_xlabel("metres")
    axes[0].legend(loc="lower left", fontsize=8)
    height = vertices[:, 1].max() - vertices[:, 1].min()
    kind = "STAND-IN body model (not SMPL)" if files.is_standin else "SMPL body model"
    figure.suptitle(
        f"{kind}, zero pose, betas 0: height {height:.2f} m, "
        f"{len(vertices)} vertices, fingerprint {files.fingerprint}",
        fontsize=11,
    )
    return _save(figure, path, dpi=110)


def plot_precompute_report(summary, path: str | Path) -> Path:
    """Precompute report: loss histogram of the store's fits, and fits/s over the run."""
    losses = summary.store_losses[np.isfinite(summary.store_losses)]
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    if losses.size:
        bins = np.logspace(np.log10(max(losses.min(), 1e-3)), np.log10(losses.max() + 1e-3), 40)
        left.hist(losses, bins=bins, color="#1f4e8c")
        left.set_xscale("log")
        left.axvline(np.median(losses), color="#d1495b", label=f"median {np.median(losses):.2f}")
        left.legend()
    left.set_xlabel("fit loss (SPIN's: mean over 49 joints, px²-like GMoF)")
    left.set_ylabel("rows")
    left.set_title(f"{losses.size} of {summary.rows_total} rows hold a fit")
    if len(summary.timeline) > 1:
        times, counts = np.array(summary.timeline, dtype=float).T
        rate = np.diff(counts) / np.maximum(np.diff(times), 1e-6)
        right.plot(times[1:], rate, marker=".", color="#2e933c")
        right.axhline(
            summary.fits_per_second,
            color="grey",
            linestyle="--",
            label=f"overall {summary.fits_per_second:.1f} fits/s, Ray start-up included",
        )
        right.legend()
    right.set_xlabel("seconds since start")
    right.set_ylabel("fits/s (per shard)")
    right.set_title(
        f"{summary.rows_fitted} rows fitted in {summary.seconds:.1f} s, {summary.rows_failed} failed"
    )
    standin = "STAND-IN body model (not SMPL)" if "STAND-IN" in summary.body_model else "SMPL"
    figure.suptitle(f"precompute {summary.dataset} — {standin}", fontsize=11)
    return _save(figure, path, dpi=100)


def _moving_average(values: np.ndarray, window: int) -> np.ndarray:
    if values.size < window:
        return values
    return np.convolve(values, np.ones(window) / window, mode="valid")


def plot_training_report(summary, ranks: list[list[dict]], path: str | Path) -> Path:
    """Training report from the workers' progress records: SPIN's loss per step (each rank,
    moving average), the fits proposed to the store, and where a step's time goes."""
    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.5))
    window = 20
    for rank, records in enumerate(ranks):
        latest = latest_per_step(records)  # a restarted step counts once (its last run)
        if not latest:
            continue
        steps = np.array([r["step"] for r in latest])
        total = np.array([r["total"] for r in latest])
        left.plot(steps, total, alpha=0.2, color=f"C{rank}")
        left.plot(
            steps[window - 1 :] if steps.size >= window else steps,
            _moving_average(total, window),
            color=f"C{rank}",
            label=f"rank {rank}",
        )
        middle.plot(steps, np.cumsum([r["proposed"] for r in latest]), color=f"C{rank}", label=f"rank {rank}")
    left.set(xlabel="step", ylabel="SPIN loss", title=f"training loss ({window}-step average)")
    left.legend()
    middle.set(
        xlabel="step",
        ylabel="fits proposed (cumulative)",
        title=f"store mean fit loss {summary.loss_before:.2f} -> {summary.loss_after:.2f}",
    )
    middle.legend()
    phases = step_time_split([r for records in ranks for r in records])
    total_time = sum(phases.values()) or 1.0
    names = list(phases)
    right.barh(names, [100 * phases[n] / total_time for n in names], color="C2")
    right.set(xlabel="% of step time", title="where a step's time goes")
    standin = "STAND-IN body model (not SMPL)" if summary.is_standin else "body model"
    resumed = f" (this invocation from step {summary.first_step})" if summary.first_step else ""
    figure.suptitle(f"training run {summary.run}: steps 0-{summary.steps}{resumed} — {standin}", fontsize=11)
    return _save(figure, path, dpi=100)
