"""The report's plots (matplotlib, Agg), as PNG bytes: loss histograms and the improvement timeline."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from spinfits.report.summary import SOURCES, DatasetSummary

#: Colour of each job's commits (precompute blue, training orange, import green, other grey).
SOURCE_COLOURS = dict(zip(SOURCES, ("#1f77b4", "#ff7f0e", "#2ca02c", "#7f7f7f")))


def _png(figure) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()


def _label(version, source: str) -> str:
    return f"{version.snapshot_id[:8]} {source} {version.written_at:%m-%d %H:%M}"


def loss_histograms(summary: DatasetSummary) -> bytes | None:
    """Histogram of the fitted rows' losses at each of ``summary.versions`` (log-spaced bins,
    one outline per version, older lighter), or None when no version has a scored row."""
    versions = [v for v in summary.versions if v.loss.size]
    if not versions:
        return None
    every = np.concatenate([v.loss for v in versions]).astype(np.float64)
    low = max(float(every[every > 0].min()) if (every > 0).any() else 1e-6, 1e-6)
    high = max(float(every.max()), low * 10)
    bins = np.geomspace(low, high, 40)
    figure, axis = plt.subplots(figsize=(7.5, 3.6))
    shades = plt.cm.viridis(np.linspace(0.85, 0.0, len(versions)))
    for shade, version in zip(shades, versions):
        counts, _ = np.histogram(np.clip(version.loss, low, high), bins)
        axis.stairs(
            counts,
            bins,
            color=shade,
            linewidth=2.0 if version is versions[-1] else 1.2,
            label=f"{_label(version.version, version.source)} ({version.loss.size} rows)",
        )
    axis.set_xscale("log")
    axis.set_xlabel("fit loss (SPIN's reprojection loss, log scale)")
    axis.set_ylabel("rows")
    axis.set_title(f"{summary.name}: loss of the fitted rows, per version")
    axis.legend(fontsize=7, loc="upper right")
    return _png(figure)


def improvement_timeline(summary: DatasetSummary) -> bytes | None:
    """Rows improved by each commit, coloured by job (precompute / training / ...), above the
    median loss and the rows holding a fit at the versions read; None without commits."""
    if not summary.commits:
        return None
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 4.6), sharex=True, height_ratios=(3, 2))
    positions = np.arange(len(summary.commits))
    for source in SOURCES:
        mine = [i for i, c in enumerate(summary.commits) if c.source == source]
        if mine:
            bottom.bar(
                positions[mine],
                [summary.commits[i].rows_improved for i in mine],
                color=SOURCE_COLOURS[source],
                label=source,
            )
    bottom.set_ylabel("rows improved")
    bottom.set_xlabel("commit (oldest to newest)")
    bottom.legend(fontsize=7, loc="upper right")
    scored = [v for v in summary.versions if v.loss.size]
    if scored:
        where = [v.position for v in scored]
        top.plot(where, [float(np.median(v.loss)) for v in scored], color="#333333", linewidth=1.0)
        top.scatter(
            where,
            [float(np.median(v.loss)) for v in scored],
            c=[SOURCE_COLOURS[v.source] for v in scored],
            s=36,
            zorder=3,
        )
        top.set_yscale("log")
        right = top.twinx()
        counts = [v.loss.size for v in scored]
        right.plot(where, counts, color="#2ca02c", linestyle="--", linewidth=1.0)
        right.set_ylim(0, max(counts) * 1.15)
        right.set_ylabel("rows with a fit", color="#2ca02c")
    top.set_ylabel("median loss")
    top.set_title(f"{summary.name}: improvement across commits")
    bottom.set_xticks(positions if len(positions) <= 20 else positions[:: max(1, len(positions) // 10)])
    return _png(figure)
