"""Small gaps found by the attacks of issue 24: each has its check and message."""

from __future__ import annotations

import numpy as np
import pytest

from spinfits.cli import main
from spinfits.cluster.precompute import PrecomputeConfig
from spinfits.errors import InputError
from spinfits.store import S3Options
from spinfits.store.spin_files import spin_proposals


@pytest.mark.parametrize("value", ["nan", "-1", "inf"])
def test_commit_every_must_be_positive_seconds(tmp_path, capsys, value):
    (tmp_path / "d.npz").write_bytes(b"")
    argv = ["precompute", "--dataset", str(tmp_path / "d.npz"), "--store", str(tmp_path / "s")]
    assert main([*argv, "--model-dir", str(tmp_path), "--commit-every", value]) == 2
    err = capsys.readouterr().err
    assert "--commit-every (commit_every_s) must be a finite number of seconds >= 0" in err
    assert not (tmp_path / "s").exists()


def test_imported_step_and_losses_below_the_floor_are_refused(tmp_path, capsys):
    fits = np.zeros((4, 82), np.float32)
    with pytest.raises(InputError, match="step must be an integer >= 0"):
        spin_proposals(fits, step=-5)
    tiny = np.full(4, 1e-30, np.float32)
    with pytest.raises(InputError, match=r"losses must be >= 1e-06 .*--trust-losses"):
        spin_proposals(fits, tiny)
    assert len(spin_proposals(fits, tiny, trust_losses=True)) == 4
    np.save(tmp_path / "f_fits.npy", fits)
    np.save(tmp_path / "l.npy", tiny)
    store = str(tmp_path / "s.icechunk")
    assert main(["store", "import", store, "coco", str(tmp_path / "f_fits.npy"), "--step", "-5"]) == 2
    assert "step must be an integer >= 0" in capsys.readouterr().err
    assert (
        main(
            [
                "store",
                "import",
                store,
                "coco",
                str(tmp_path / "f_fits.npy"),
                "--losses",
                str(tmp_path / "l.npy"),
            ]
        )
        == 2
    )
    assert "--trust-losses" in capsys.readouterr().err


def test_password_in_the_endpoint_url_is_masked():
    options = S3Options(endpoint_url="http://admin:hunter2@127.0.0.1:9000", allow_http=True)
    assert "hunter2" not in repr(options) and "admin:***@127.0.0.1:9000" in repr(options)
    assert "127.0.0.1:9000" in repr(S3Options(endpoint_url="http://127.0.0.1:9000", allow_http=True))


def test_a_300_character_path_component_is_one_line(tmp_path, capsys):
    assert main(["store", "init", str(tmp_path / ("x" * 300)), "--body-model", "m"]) == 2
    err = capsys.readouterr().err
    assert "too long" in err and err.count("\n") == 1


def test_a_directory_as_dataset_says_so(tmp_path):
    from spinfits.fitting.data.dataset import load_spin_npz

    with pytest.raises(InputError, match="is a directory"):
        load_spin_npz(tmp_path)
    with pytest.raises(InputError, match="commit_every_s must be"):
        PrecomputeConfig(dataset=tmp_path, store="s", model_dir=tmp_path, commit_every_s=float("nan"))
