"""spinfits.store: the versioned best-fit store (icechunk on Zarr v3) with SPIN's merge rule.

See docs/store.md. Main entry points: ``FitStore`` (create/open, merge, commit; its history: ``store.history``),
``Proposals`` (what producers offer), ``FitReader`` (pinned snapshot reads for training),
``StoreWriter`` (the one writer of a job: merges, commits when due), ``import_spin_fits``/``export_spin_fits`` (SPIN ``*_fits.npy``) and ``export_parquet``;
``WritePolicy`` (update log or column chunks) and ``FitStore.history.gc`` (``GcReport``) keep the store small.
"""

from spinfits.store.diff import FitDiff
from spinfits.store.fit_store import FitStore
from spinfits.store.fits import Fits, Proposals
from spinfits.store.garbage_collection import GcReport
from spinfits.store.location import S3Options, StoreLocation
from spinfits.store.merge_rule import best_per_row, merge_into
from spinfits.store.parquet_export import export_parquet
from spinfits.store.reader import FitReader
from spinfits.store.schema import CHUNK_ROWS, COLUMNS, BodyModelInfo, DatasetInfo, Source, config_hash
from spinfits.store.spin_files import export_spin_fits, import_spin_fits
from spinfits.store.versions import Version
from spinfits.store.write_policy import WritePolicy
from spinfits.store.writer import StoreWriter, WriterStats

__all__ = [
    "CHUNK_ROWS",
    "COLUMNS",
    "BodyModelInfo",
    "DatasetInfo",
    "FitDiff",
    "FitReader",
    "FitStore",
    "Fits",
    "GcReport",
    "Proposals",
    "S3Options",
    "Source",
    "StoreWriter",
    "StoreLocation",
    "Version",
    "WritePolicy",
    "WriterStats",
    "best_per_row",
    "config_hash",
    "export_parquet",
    "export_spin_fits",
    "import_spin_fits",
    "merge_into",
]
