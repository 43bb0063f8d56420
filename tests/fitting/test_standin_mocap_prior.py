"""The stand-in's prior learned from CMU mocap and the mocap poses it ships
(spinfits.fitting.synthetic.standin.mocap_prior, tools/build_standin_prior.py, make-standin --prior)."""

import pickle

import numpy as np
import pytest

from spinfits.cli import main
from spinfits.errors import InputError
from spinfits.fitting.mocap.prior import read_held_out
from spinfits.fitting.synthetic.standin import write_standin_files
from spinfits.fitting.synthetic.standin.mocap_prior import (
    MOCAP_BUILD_COMMAND,
    MOCAP_EVERY,
    load_mocap_poses,
    prior_from_poses,
    read_mocap_poses,
)
from spinfits.fitting.synthetic.standin.package_data import MOCAP_PRIOR, PRIOR_SOURCE, packaged


@pytest.fixture(scope="module")
def shipped_prior():
    with np.load(packaged(MOCAP_PRIOR)) as data:
        return {key: data[key] for key in data.files}


def test_shipped_poses_never_come_from_held_out_clips():
    poses = load_mocap_poses()
    held_out = read_held_out()
    assert poses.held_out == held_out
    assert len(poses) > 3000 and poses.body_pose.shape == (len(poses), 69)
    assert not set(poses.clip.tolist()) & set(held_out)
    assert len(set(poses.clip.tolist())) > 70
    assert np.isfinite(poses.body_pose).all()
    assert (poses.frame % MOCAP_EVERY == 0).all()


@pytest.mark.slow  # the mixture's fit: about a minute on one core (no Ray)
def test_shipped_prior_is_rebuilt_bit_for_bit_from_the_shipped_poses(shipped_prior):
    prior = prior_from_poses(load_mocap_poses())
    for key in ("means", "covars", "weights"):
        np.testing.assert_array_equal(getattr(prior, key), shipped_prior[key])
    assert list(shipped_prior["clips"]) == list(prior.clips)
    assert MOCAP_BUILD_COMMAND in str(shipped_prior["provenance"])


def test_make_standin_writes_the_prior_it_is_asked_for(tmp_path, capsys, shipped_prior):
    assert main(["model", "make-standin", str(tmp_path / "m")]) == 0
    assert "pose prior: mocap (learned from CMU motion capture" in capsys.readouterr().out
    gmm = pickle.loads((tmp_path / "m" / "gmm_08.pkl").read_bytes())
    np.testing.assert_array_equal(gmm["means"], shipped_prior["means"])
    readme = (tmp_path / "m" / "STANDIN.md").read_text()
    assert MOCAP_BUILD_COMMAND in readme and "cmu_aclstm/salsa_16" in readme  # a held-out clip, named
    assert f"Learned from these {len(shipped_prior['clips'])} clips" in readme
    assert main(["model", "make-standin", str(tmp_path / "a"), "--prior", "anatomy"]) == 0
    gmm = pickle.loads((tmp_path / "a" / "gmm_08.pkl").read_bytes())
    with np.load(packaged(PRIOR_SOURCE)) as anatomy:
        np.testing.assert_array_equal(gmm["means"], anatomy["means"])
    readme = (tmp_path / "a" / "STANDIN.md").read_text()
    assert "here is the stand-in's anatomy prior" in readme and "Learned from these" not in readme
    with pytest.raises(SystemExit):
        main(["model", "make-standin", str(tmp_path / "x"), "--prior", "cmu"])
    assert "invalid choice: 'cmu' (choose from 'mocap', 'anatomy')" in capsys.readouterr().err
    with pytest.raises(InputError, match="unknown stand-in prior 'cmu'; choose one of mocap, anatomy"):
        write_standin_files(tmp_path / "y", prior="cmu")


def test_a_damaged_poses_file_says_how_to_rebuild_it(tmp_path):
    path = tmp_path / "poses.npz"
    np.savez(
        path, body_pose=np.zeros((3, 72)), clip=np.array(["a", "b", "c"]), frame=np.arange(3), held_out=[]
    )
    with pytest.raises(InputError, match=r"body_pose \(3, 72\).*expected \(N, 69\).*build_standin_prior"):
        read_mocap_poses(path)
    np.savez(path, body_pose=np.zeros((3, 69)))
    with pytest.raises(InputError, match="is not a mocap poses file"):
        read_mocap_poses(path)
