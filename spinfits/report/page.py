"""The report as one self-contained HTML page: every picture inline (base64 PNG), no URL at all.

The page opens from disk in any browser, with no server and no network. A small inline script
records, once the page has loaded, how many of its images decoded: ``<body
data-images-total="N" data-images-decoded="M">`` (M = N when every picture shows).
"""

from __future__ import annotations

import base64
import datetime
import html
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from spinfits.report.png import encode_png
from spinfits.report.summary import DatasetSummary, ReportConfig
from spinfits.store import Fits, Source

#: pictures(rows (M,), fits (M rows)) -> M (h, w, 3) uint8 pictures of those rows' fits.
RowPictures = Callable[[np.ndarray, Fits], Sequence[np.ndarray]]

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.banner { background: #fff3cd; border: 1px solid #e0c36c; padding: 0.6em 1em; }
.note { color: #666; font-style: italic; }
.gallery { display: flex; flex-wrap: wrap; gap: 0.8em; }
figure { margin: 0; max-width: 330px; } figure img { max-width: 100%; border: 1px solid #ccc; }
figcaption { font-size: 0.8em; color: #444; }
img.plot { max-width: 100%; }
"""

SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var decoded = images.filter(function (image) {
    return image.complete && image.naturalWidth > 0 && image.naturalHeight > 0;
  });
  document.body.setAttribute("data-images-total", String(images.length));
  document.body.setAttribute("data-images-decoded", String(decoded.length));
});
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _loss(value: float) -> str:
    return "-" if not np.isfinite(value) else f"{value:.4g}"


def _img(data: bytes, alt: str, css: str = "") -> str:
    encoded = base64.b64encode(data).decode("ascii")
    klass = f' class="{css}"' if css else ""
    return f'<img{klass} alt="{_e(alt)}" src="data:image/png;base64,{encoded}">'


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _pairs(pairs: Sequence[tuple[str, object]]) -> str:
    """A two-column table of facts: name (header cell), value."""
    body = "".join(f"<tr><th>{_e(name)}</th><td>{_e(value)}</td></tr>" for name, value in pairs)
    return f"<table>{body}</table>"


def _when(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _source_name(code: int) -> str:
    return Source(int(code)).name.lower()


def _facts(summary: DatasetSummary) -> str:
    fits, scored = summary.fits, summary.scored
    by_source = {
        _source_name(code): int(count)
        for code, count in zip(*np.unique(fits.source[fits.source != 0], return_counts=True))
    }
    finite = fits.loss[scored]
    return _pairs(
        [
            ("rows", summary.info.n_rows),
            ("rows with a scored fit", int(scored.sum())),
            ("rows with an unscored fit", int((~scored & (fits.source != 0)).sum())),
            ("failed rows", int(summary.failures.mask.sum())),
            (
                "median / mean loss",
                f"{_loss(float(np.median(finite)))} / {_loss(float(finite.mean()))}" if finite.size else "-",
            ),
            ("rows by producer", ", ".join(f"{k} {v}" for k, v in sorted(by_source.items())) or "-"),
            ("commits that changed it", len(summary.commits)),
            ("dataset fingerprint", summary.info.dataset_fingerprint),
            ("fitting config hash", summary.info.config_hash),
        ]
    )


def _commits(summary: DatasetSummary, most: int) -> str:
    shown = summary.commits[-most:][::-1]
    rows = [
        [
            c.version.snapshot_id,
            _when(c.version.written_at),
            c.source,
            c.version.message,
            c.rows_improved,
            c.rows_failed,
        ]
        for c in shown
    ]
    more = len(summary.commits) - len(shown)
    note = f'<p class="note">and {more} older commits</p>' if more > 0 else ""
    return _table(["id", "time", "job", "message", "rows improved", "rows failed"], rows) + note


def _fits_block(
    summary: DatasetSummary, rows: np.ndarray, pictures: RowPictures | None, body_note: str
) -> str:
    if rows.size == 0:
        return '<p class="note">no row holds a scored fit yet</p>'
    fits = summary.fits.take(rows)
    captions = [
        f"row {row}: loss {_loss(float(fits.loss[i]))}, {_source_name(fits.source[i])}, step "
        f"{int(fits.step[i])}{body_note}"
        for i, row in enumerate(rows)
    ]
    if pictures is None:
        return _table(
            ["row", "loss", "producer", "step"],
            [
                [int(r), _loss(float(fits.loss[i])), _source_name(fits.source[i]), int(fits.step[i])]
                for i, r in enumerate(rows)
            ],
        )
    figures = [
        f"<figure>{_img(encode_png(picture), caption)}<figcaption>{_e(caption)}</figcaption></figure>"
        for picture, caption in zip(pictures(rows, fits), captions)
    ]
    return f'<div class="gallery">{"".join(figures)}</div>'


def _failures(summary: DatasetSummary, most: int) -> str:
    failures = summary.failures
    if not failures.mask.any():
        return '<p class="note">no failed rows</p>'
    counts = _table(["reason", "rows"], [[reason, count] for reason, count in failures.counts().items()])
    failed = np.flatnonzero(failures.mask)
    listed = _table(["row", "reason"], [[int(row), failures.reason(int(row))] for row in failed[:most]])
    more = failed.size - min(failed.size, most)
    note = f'<p class="note">and {more} more failed rows</p>' if more > 0 else ""
    hint = '<p class="note">precompute skips failed rows; <code>--retry-failed</code> fits them again</p>'
    return counts + listed + note + hint


def dataset_section(
    summary: DatasetSummary,
    histogram: bytes | None,
    timeline: bytes | None,
    pictures: RowPictures | None,
    config: ReportConfig,
    body_note: str,
    no_pictures_hint: str,
) -> str:
    """One dataset's part of the page."""
    anchor = _e(f"dataset-{summary.name}")
    parts = [f'<section id="{anchor}"><h2>{_e(summary.name)}</h2>', _facts(summary)]
    parts.append("<h3>Loss of the fitted rows, per version</h3>")
    parts.append(
        _img(histogram, f"{summary.name} loss histograms", "plot")
        if histogram
        else '<p class="note">no scored fit in any version yet</p>'
    )
    parts.append("<h3>Improvement across commits (precompute versus training)</h3>")
    parts.append(
        _img(timeline, f"{summary.name} improvement timeline", "plot")
        if timeline
        else '<p class="note">no commit changed this dataset yet</p>'
    )
    if summary.commits:
        parts.append(_commits(summary, config.commits))
    if pictures is None:
        parts.append(f'<p class="note">{_e(no_pictures_hint)}</p>')
    parts.append(f"<h3>Worst fits (highest loss, up to {config.top})</h3>")
    parts.append(_fits_block(summary, summary.worst_rows(config.top), pictures, body_note))
    parts.append(f"<h3>Best fits (lowest loss, up to {config.top})</h3>")
    parts.append(_fits_block(summary, summary.best_rows(config.top), pictures, body_note))
    parts.append("<h3>Failed rows</h3>")
    parts.append(_failures(summary, config.failed_rows))
    parts.append("</section>")
    return "\n".join(parts)


def page(
    title: str, header: Mapping[str, object], banner: str | None, sections: Sequence[tuple[str, str]]
) -> str:
    """The whole page: ``header`` facts, an optional warning ``banner``, (name, html) sections."""
    facts = _pairs(list(header.items()))
    links = " · ".join(f'<a href="#{_e("dataset-" + name)}">{_e(name)}</a>' for name, _ in sections)
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{_e(title)}</title>",
            f"<style>{STYLE}</style>",
            f"<script>{SCRIPT}</script>",
            "</head><body>",
            f"<h1>{_e(title)}</h1>",
            f'<p class="banner">{_e(banner)}</p>' if banner else "",
            facts,
            f"<p>datasets: {links}</p>" if sections else '<p class="note">the store has no dataset yet</p>',
            *(section for _, section in sections),
            "</body></html>",
        ]
    )
