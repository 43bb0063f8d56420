"""Fixtures of the training tests: a tiny synthetic training set with rendered crops, a store
holding fits for some of its rows, and a small CPU regressor."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from rough_fits import rough_fits

from spinfits.fitting.data.dataset import KeypointDataset, load_spin_npz
from spinfits.fitting.smplify.fit_loss import score_fits
from spinfits.fitting.synthetic.people import SyntheticConfig, write_synthetic_dataset
from spinfits.store import BodyModelInfo, FitStore, Proposals, Source

#: Rows of the training set; row NO_KEYPOINTS has every keypoint removed; odd rows have no
#: ground-truth SMPL (has_smpl 0); rows in UNFITTED have no fit in the store.
ROWS = 24
NO_KEYPOINTS = 3
UNFITTED = (0, 3, 7, 12)
DATASET = "people"


@contextmanager
def _one_thread():
    """One torch thread: these tensors are tiny, and two threads on a busy 2-core machine
    spin-wait each other into 30x slower training steps."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class TrainingSet:
    """path: the npz; images: its image folder; dataset: it loaded; arrays: its raw arrays;
    name: its dataset name in stores; no_keypoints: the row without keypoints; unfitted: rows
    ``make_store`` leaves without a fit. Odd rows have no ground-truth SMPL."""

    path: Path
    images: Path
    dataset: KeypointDataset
    arrays: dict[str, np.ndarray]
    name: str = DATASET
    no_keypoints: int = NO_KEYPOINTS
    unfitted: tuple[int, ...] = UNFITTED


@pytest.fixture(scope="session")
def training_set(tmp_path_factory, standin_files) -> TrainingSet:
    """24 synthetic people with rendered 224-px crops (see the module constants)."""
    directory = tmp_path_factory.mktemp("training_set")
    path, images = directory / f"{DATASET}.npz", directory / "images"
    with _one_thread():
        write_synthetic_dataset(path, standin_files, SyntheticConfig(rows=ROWS, seed=11), images_dir=images)
    arrays = dict(np.load(path))
    arrays["openpose"][NO_KEYPOINTS] = 0.0
    arrays["part"][NO_KEYPOINTS] = 0.0
    arrays["has_smpl"][1::2] = 0
    np.savez(path, **arrays)
    return TrainingSet(path, images, load_spin_npz(path), arrays)


@pytest.fixture(scope="session")
def ground_truth_fits(training_set, standin_files) -> Proposals:
    """The ground-truth pose/betas of every row scored by the store's fit loss (row
    NO_KEYPOINTS: +inf), as offline proposals."""
    arrays = training_set.arrays
    pose = arrays["pose"].astype(np.float32)
    betas = arrays["shape"].astype(np.float32)
    with _one_thread():
        loss = score_fits(standin_files, pose, betas, training_set.dataset.keypoints)
    return Proposals(
        rows=np.arange(ROWS),
        pose=pose,
        betas=betas,
        cam_t=arrays["gt_cam_t"].astype(np.float32),
        loss=loss,
        source=Source.OFFLINE,
        step=0,
        time=1000.0,
    )


@pytest.fixture
def make_store(tmp_path, standin_files, training_set, ground_truth_fits):
    """make_store(name="store", fitted=True) -> a new store with the training set's dataset;
    with ``fitted``, the ground-truth fits of every row but UNFITTED merged and committed."""

    def make(name: str = "store", fitted: bool = True) -> FitStore:
        store = FitStore.create(tmp_path / name, BodyModelInfo(standin_files.fingerprint, is_standin=True))
        store.create_dataset(
            DATASET, ROWS, dataset_fingerprint=training_set.dataset.fingerprint, chunk_rows=8
        )
        if fitted:
            keep = np.setdiff1d(np.arange(ROWS), UNFITTED)
            store.merge(DATASET, ground_truth_fits.take(keep))
            store.commit("ground truth fits")
        return store

    return make


@pytest.fixture
def fit_store(make_store) -> FitStore:
    """A new store holding the ground-truth fits of every row but UNFITTED (committed)."""
    return make_store()


@pytest.fixture
def small_regressor():
    """make() -> a fresh "small" HMR, the same weights for every call in a test."""
    from spinfits.fitting.data.mean_params import spin_mean_params_path
    from spinfits.training.regressor import HMR, RegressorConfig

    def make() -> torch.nn.Module:
        torch.manual_seed(0)
        return HMR(str(spin_mean_params_path()), RegressorConfig(backbone="small"))

    return make


@pytest.fixture
def rough_store(make_store, training_set, standin_files) -> FitStore:
    """A store whose fits are the ground truth with 0.25 rad of noise on every joint, so
    SMPLify in the loop has something to improve (``rough_fits``)."""
    store = make_store(fitted=False)
    store.merge(DATASET, rough_fits(training_set.arrays, training_set.dataset, standin_files))
    store.commit("rough fits")
    return store
