"""``spinfits store report``: one self-contained HTML page about a store.

Per dataset: the loss histogram of each version (up to ``ReportConfig.versions`` of them), the
improvement timeline across commits (precompute versus training), the worst and best fits (over
their images when the caller gives pictures, ``spinfits.report.dataset_overlays``), and the failed rows
with their reasons. Its parts: ``store_report_summary`` (what is read from the store),
``store_report_figures`` (plots), ``store_report_page`` (HTML).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from pathlib import Path

from spinfits.errors import InputError
from spinfits.report.figures import improvement_timeline, loss_histograms
from spinfits.report.page import RowPictures, dataset_section, page
from spinfits.report.summary import ReportConfig, summarise_dataset
from spinfits.store import FitStore

logger = logging.getLogger(__name__)

__all__ = ["ReportConfig", "RowPictures", "build_report", "write_report"]


def build_report(
    store: FitStore,
    version: str | None = None,
    pictures: Mapping[str, RowPictures] | None = None,
    config: ReportConfig | None = None,
) -> str:
    """The report of ``store`` at ``version`` (None = tip) as HTML text.

    pictures: per dataset name, what draws its rows' fits (without one, the worst and best fits
    are listed as a table).
    """
    config = config or ReportConfig()
    pictures = dict(pictures or {})
    snapshot = store.resolve(version)
    datasets = store.datasets(snapshot)
    unknown = sorted(set(pictures) - set(datasets))
    if unknown:
        raise InputError(
            f"pictures given for {unknown}, which the store does not hold at {snapshot}; its datasets "
            f"are {sorted(datasets) or 'none'}"
        )
    history = store.history.log(snapshot)
    standin = store.body_model.is_standin
    body_note = " | stand-in body model" if standin else ""
    hint = (
        "to see these fits over their images, give `spinfits store report` the dataset file, its "
        "images and the body model: --npz NAME=DATA.npz --images-root DIR --model-dir DIR"
    )
    sections = []
    for name in sorted(datasets):
        summary = summarise_dataset(store, name, snapshot, history, config.versions)
        logger.info(
            "report: %s, %d commits, %d versions read", name, len(summary.commits), len(summary.versions)
        )
        section = dataset_section(
            summary,
            loss_histograms(summary),
            improvement_timeline(summary),
            pictures.get(name),
            config,
            body_note,
            hint,
        )
        sections.append((name, section))
    tags = store.history.tags()
    header = {
        "store": store.location,
        "version": f"{snapshot} ({version or 'tip of ' + store.branch})",
        "body model": store.body_model.describe(),
        "branches": ", ".join(sorted(store.repository.list_branches())),
        "tags": ", ".join(f"{k}={v}" for k, v in tags.items()) or "none",
        "commits": len(history),
        "written": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }
    banner = (
        "stand-in body model: this store's fits are of the generated stand-in, not SMPL; they are for "
        "tests and demos only"
        if standin
        else None
    )
    return page(f"spinfits store report: {store.location}", header, banner, sections)


def write_report(path: str | Path, text: str) -> Path:
    """Write the report's HTML to ``path`` (folders made); returns the path."""
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"the report is one HTML page: its file name must end in .html, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
