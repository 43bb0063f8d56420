"""Pictures and pages about a store and a run: the store's HTML report, its figures, body model and
run plots (matplotlib, Agg), PNG captions, and store fits drawn over their dataset's images.

Above every other package: reads the store, the fitting and training packages; none of them imports it.

- ``store_report``: ``spinfits store report``: one self-contained HTML page about a store.
- ``figures``: The report's plots (matplotlib, Agg), as PNG bytes: loss histograms and the improvement timeline.
- ``page``: The report as one self-contained HTML page: every picture inline (base64 PNG), no URL at all.
- ``summary``: What the report says about one store dataset, read from the store (numpy only, no drawing).
- ``plots``: Pictures a person would rather look at than read: body model previews (matplotlib, Agg).
- ``png``: Pictures out: a caption drawn into an image, and PNG files or bytes that carry it as text.
- ``dataset_overlays``: A store dataset's fits drawn over the dataset's own images, with the keypoints they fit.
"""

from spinfits.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".store_report": "build_report write_report",
        ".figures": "SOURCE_COLOURS loss_histograms improvement_timeline",
        ".page": "RowPictures STYLE SCRIPT dataset_section page",
        ".summary": "SOURCES ReportConfig commit_source CommitPoint VersionLosses DatasetSummary dataset_commits spread summarise_dataset",
        ".plots": "plot_body_model plot_precompute_report plot_training_report",
        ".png": "add_caption encode_png write_png",
        ".dataset_overlays": "DatasetOverlays",
    },
)
