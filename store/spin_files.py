"""SPIN's static fits files: ``<dataset>_fits.npy``, an (N, 82) array of pose (72) + betas (10).

SPIN's files carry no loss and no camera. ``import_spin_fits`` takes losses when they are known
(computed by the fitting engine against the dataset's keypoints); without them every row gets
loss +inf: the imported pose/betas are stored as the row's content (``Source.IMPORTED``) but are
"unscored", so any later finite-loss proposal replaces them. Camera translation is zero for
imported rows. Import never overwrites a scored fit with an unscored one.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from spinfits.errors import InputError
from spinfits.npy_files import load_npy
from spinfits.store.fits import Fits, Proposals
from spinfits.store.schema import Source

log = logging.getLogger(__name__)

#: Columns of a SPIN fits row: pose then betas.
SPIN_POSE = slice(0, 72)
SPIN_BETAS = slice(72, 82)
SPIN_WIDTH = 82
#: The lowest loss an imported fit may carry without ``trust_losses``: SPIN's reprojection loss
#: sums robust residuals over confident keypoints and no real fit gets below it; a loss of 1e-30
#: would lock its row against every honest fit as surely as a negative one (docs/store.md).
MIN_IMPORTED_LOSS = 1e-6


def spin_proposals(
    fits: Any, losses: Any = None, *, step: int = 0, time: float | None = None, trust_losses: bool = False
) -> Proposals:
    """Proposals for every row of a SPIN fits array.

    fits: (N, 82) float, pose 72 + betas 10; losses: (N,) float or None (= +inf, unknown);
    finite or +inf only.
    """
    fits = np.asarray(fits)
    if fits.ndim != 2 or fits.shape[1] != SPIN_WIDTH:
        raise InputError(
            f"SPIN fits must have shape (N, {SPIN_WIDTH}) (pose 72 + betas 10 per row), got {fits.shape}"
        )
    if not np.issubdtype(fits.dtype, np.floating):
        raise InputError(f"SPIN fits must be a float array, got dtype {fits.dtype}")
    if not np.isfinite(fits).all():
        bad = np.flatnonzero(~np.isfinite(fits).all(axis=1))
        raise InputError(
            f"SPIN fits have NaN/inf in {bad.size} row(s) (first: row {int(bad[0])}); fix or drop those rows"
        )
    n = fits.shape[0]
    if losses is None:
        losses = np.full(n, np.inf, dtype=np.float32)
    losses = np.asarray(losses)
    if losses.shape != (n,) or not np.issubdtype(losses.dtype, np.floating):
        raise InputError(
            f"losses must be a float array of shape ({n},) (one per fits row), got {losses.dtype} {losses.shape}"
        )
    bad = np.isnan(losses) | (losses < 0)
    if bad.any():
        raise InputError(
            f"losses must be >= 0 and finite, or +inf (unknown): {int(bad.sum())} are NaN or "
            f"negative (first at row {int(np.flatnonzero(bad)[0])}: {losses[bad][0]}); a negative "
            "loss would beat every real fit and lock the row forever. Fix the losses file, or "
            "leave --losses out to import the fits unscored"
        )
    low = losses < MIN_IMPORTED_LOSS
    if low.any() and not trust_losses:
        raise InputError(
            f"losses must be >= {MIN_IMPORTED_LOSS:g} (the floor below which no SMPLify fit's loss "
            f"lands), or +inf: {int(low.sum())} are lower (first at row {int(np.flatnonzero(low)[0])}: "
            f"{losses[low][0]:g}); such a loss would beat every real fit and lock the row. Fix the "
            "losses file, or pass --trust-losses (trust_losses=True) if they are genuine"
        )
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise InputError(f"step must be an integer >= 0 (the producer's step), got {step!r}")
    return Proposals(
        rows=np.arange(n, dtype=np.int64),
        pose=fits[:, SPIN_POSE],
        betas=fits[:, SPIN_BETAS],
        cam_t=np.zeros((n, 3), dtype=np.float32),
        loss=losses,
        source=Source.IMPORTED,
        step=step,
        time=time,
    )


def import_spin_fits(
    store: Any,
    dataset: str,
    fits: Any,
    losses: Any = None,
    *,
    step: int = 0,
    time: float | None = None,
    trust_losses: bool = False,
) -> int:
    """Merge a SPIN fits array (or ``*_fits.npy`` path) into ``dataset``; returns rows changed.

    store: a ``FitStore``; losses: (N,) array, path or None (unknown: imported as unscored, loss
    +inf). N must equal the dataset's rows. Call ``store.commit(...)`` afterwards.
    """
    if isinstance(fits, (str, os.PathLike)):
        fits = load_npy(fits, "SPIN fits")
    if isinstance(losses, (str, os.PathLike)):
        losses = load_npy(losses, "losses")
    n_rows = store.dataset(dataset).n_rows
    fits = np.asarray(fits)
    if fits.ndim >= 1 and fits.shape[0] != n_rows:
        raise InputError(
            f"SPIN fits have {fits.shape[0]} rows but dataset {dataset!r} has {n_rows}; "
            "import the fits file that belongs to this dataset"
        )
    proposals = spin_proposals(fits, losses, step=step, time=time, trust_losses=trust_losses)
    changed = store.merge(dataset, proposals, accept_unscored=True)
    log.info("imported %d SPIN fits into %s: %d rows changed", len(proposals), dataset, changed)
    return changed


def to_spin_fits(fits: Fits) -> tuple[np.ndarray, np.ndarray]:
    """(N, 82) float32 pose + betas and (N,) float32 losses of a dataset's fits."""
    return np.concatenate([fits.pose, fits.betas], axis=1), fits.loss.copy()


def export_spin_fits(store: Any, dataset: str, version: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """SPIN layout of ``dataset`` at ``version``: ``(fits (N, 82) float32, losses (N,) float32)``.

    Rows with no fit are zeros (SPIN's mean-pose fallback is the caller's business), loss +inf.
    A version holding damaged rows is refused (``DamagedStoreError``).
    """
    reader = store.reader(dataset, version)
    reader.check_whole()
    return to_spin_fits(reader.read_all())
