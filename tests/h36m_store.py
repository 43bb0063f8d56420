"""A small store of fits of the four real Human3.6M frames in ../shared/data, made through the store API.

Version 1 ("precompute" commit): rows 0-2 fitted (the frames' SMPL pose and shape, a little
disturbed, with SPIN's camera from the keypoints), row 3 recorded as failed. Version 2
("training" commit): rows 0 and 1 refined by SMPLify, with a lower loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spinfits.fitting.body.joints_only import JointsOnlyBody
from spinfits.fitting.body.model_files import BodyModelFiles
from spinfits.fitting.data.dataset import KeypointDataset, load_spin_npz
from spinfits.fitting.offline.refine import refine_fits
from spinfits.fitting.smplify.config import SmplifyConfig
from spinfits.fitting.smplify.fit_loss import fit_loss
from spinfits.fitting.smplify.fitter import SMPLify
from spinfits.store import BodyModelInfo, FitStore, Proposals, Source

NAME = "h36m"
FAILED_ROW = 3
FAILED_REASON = "SMPLify diverged (loss nan)"
REFINED_ROWS = (0, 1)


@dataclass(frozen=True)
class H36mStore:
    """store: the store; path: its folder; npz, images: the dataset file and its image folder;
    dataset: it loaded; versions: the snapshot ids of version 1 and 2."""

    store: FitStore
    path: Path
    npz: Path
    images: Path
    dataset: KeypointDataset
    versions: tuple[str, str]


def make_h36m_store(path: Path, files: BodyModelFiles, shared_data: Path) -> H36mStore:
    npz, images = shared_data / "h36m_spin_sample.npz", shared_data / "h36m_images"
    dataset = load_spin_npz(npz)
    arrays = np.load(npz)
    rows = np.arange(3)
    generator = np.random.default_rng(0)
    pose = arrays["pose"][rows].astype(np.float32)
    pose[:, 3:] += generator.normal(0.0, 0.15, pose[:, 3:].shape).astype(np.float32)
    betas = arrays["shape"][rows].astype(np.float32)
    keypoints = torch.as_tensor(dataset.keypoints[rows])
    loss, cam_t = fit_loss(
        JointsOnlyBody(files, "cpu", torch.float32), torch.as_tensor(pose), torch.as_tensor(betas), keypoints
    )

    store = FitStore.create(path, BodyModelInfo(files.fingerprint, is_standin=files.is_standin))
    store.create_dataset(NAME, len(dataset), dataset_fingerprint=dataset.fingerprint)
    store.merge(NAME, Proposals(rows, pose, betas, cam_t.numpy(), loss.numpy(), Source.OFFLINE, 0, 1000.0))
    store.record_failures(NAME, [FAILED_ROW], [FAILED_REASON])
    first = store.commit("precompute h36m: 3 rows proposed", metadata={"source": "precompute"}).snapshot_id

    refine = list(REFINED_ROWS)
    smplify = SMPLify(files, SmplifyConfig(camera_iterations=5, body_iterations=8))
    fit = refine_fits(smplify, pose[refine], betas[refine], dataset.keypoints[refine])
    assert (fit.loss.numpy() < loss.numpy()[refine]).all(), "SMPLify should lower these losses"
    store.merge(
        NAME,
        Proposals(
            np.array(refine),
            fit.pose.numpy(),
            fit.betas.numpy(),
            fit.cam_t.numpy(),
            fit.loss.numpy(),
            Source.IN_LOOP,
            40,
            2000.0,
        ),
    )
    second = store.commit(
        "training t: steps 0-40", metadata={"source": "training", "steps": [0, 40]}
    ).snapshot_id
    return H36mStore(store, path, npz, images, dataset, (first, second))
