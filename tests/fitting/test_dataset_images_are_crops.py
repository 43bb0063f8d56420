"""KeypointDataset.images_are_crops: read from the npz, not part of the fingerprint."""

import numpy as np

from spinfits.fitting.data.dataset import load_spin_npz


def _write(path, **extra):
    rng = np.random.default_rng(0)
    part = np.concatenate([rng.uniform(0, 500, (3, 24, 2)), np.ones((3, 24, 1))], -1)
    np.savez(
        path,
        imgname=np.array(["a.png", "b.png", "c.png"]),
        center=np.full((3, 2), 250.0),
        scale=np.full(3, 2.0),
        part=part,
        **extra,
    )
    return path


def test_images_are_crops_is_read_and_does_not_change_the_fingerprint(tmp_path):
    plain = load_spin_npz(_write(tmp_path / "plain.npz"))
    crops = load_spin_npz(_write(tmp_path / "crops.npz", images_are_crops=np.array(True)))
    not_crops = load_spin_npz(_write(tmp_path / "no.npz", images_are_crops=np.array(False)))
    assert plain.images_are_crops is False and not_crops.images_are_crops is False
    assert crops.images_are_crops is True
    assert crops.fingerprint == plain.fingerprint
