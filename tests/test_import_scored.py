"""`spinfits store import --score DATA.npz --model-dir DIR`: SPIN static fits scored on import."""

import numpy as np

from spinfits.cli import main
from spinfits.fitting.data.dataset import load_spin_npz
from spinfits.fitting.synthetic.people import SyntheticConfig, write_synthetic_dataset
from spinfits.store import BodyModelInfo, FitStore


def test_import_scores_static_fits(tmp_path, standin_dir, standin_files, capsys):
    data = write_synthetic_dataset(
        tmp_path / "people.npz", standin_files, SyntheticConfig(rows=40, seed=4, missing_fraction=0.0)
    )
    raw = np.load(data)
    good = np.concatenate([raw["pose"], raw["shape"]], 1)  # the truth: a near-zero loss
    bad = good.copy()
    bad[20:, 3:72] += 0.6  # a contorted half
    np.save(tmp_path / "people_fits.npy", bad)
    store = tmp_path / "store"
    FitStore.create(store, BodyModelInfo(standin_files.fingerprint, is_standin=True))
    code = main(
        [
            "store",
            "import",
            str(store),
            "people",
            str(tmp_path / "people_fits.npy"),
            "--score",
            str(data),
            "--model-dir",
            str(standin_dir),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert "scored 40 fits" in capsys.readouterr().out
    fits = FitStore.open(store).read("people")
    assert np.isfinite(fits.loss).all()
    assert np.median(fits.loss[:20]) < 5 < np.median(fits.loss[20:])
    info = FitStore.open(store).datasets()["people"]
    assert info.dataset_fingerprint == load_spin_npz(data).fingerprint  # precompute can resume


def test_score_needs_the_model_and_matching_rows(tmp_path, standin_dir, standin_files, capsys):
    data = write_synthetic_dataset(tmp_path / "people.npz", standin_files, SyntheticConfig(rows=10, seed=4))
    np.save(tmp_path / "fits.npy", np.zeros((12, 82)))
    store = tmp_path / "store"
    FitStore.create(store, BodyModelInfo(standin_files.fingerprint, is_standin=True))
    assert (
        main(["store", "import", str(store), "people", str(tmp_path / "fits.npy"), "--score", str(data)]) == 2
    )
    assert "--score needs --model-dir" in capsys.readouterr().err
    assert (
        main(
            [
                "store",
                "import",
                str(store),
                "people",
                str(tmp_path / "fits.npy"),
                "--score",
                str(data),
                "--model-dir",
                str(standin_dir),
            ]
        )
        == 2
    )
    assert "expected (10, 82): one SPIN fit" in capsys.readouterr().err
    assert len(FitStore.open(store).history.log()) == 2  # repository init + store creation only
