"""`spinfits model make-standin`: SMPL-format files that smplx loads unchanged."""

import pickle

import numpy as np
import pytest
import scipy.sparse
import smplx
import torch

from spinfits.cli import main
from spinfits.errors import InputError
from spinfits.fitting.body.model_files import load_body_model_files
from spinfits.fitting.synthetic.natural_poses import sample_body_poses
from spinfits.fitting.synthetic.standin import write_standin_files

#: keys of the official SMPL_NEUTRAL.pkl and the type each holds
OFFICIAL_KEYS = {
    "J_regressor_prior": scipy.sparse.csc_matrix,
    "f": np.ndarray,
    "J_regressor": scipy.sparse.csc_matrix,
    "kintree_table": np.ndarray,
    "J": np.ndarray,
    "weights_prior": np.ndarray,
    "weights": np.ndarray,
    "vert_sym_idxs": np.ndarray,
    "posedirs": np.ndarray,
    "pose_training_info": dict,
    "bs_style": str,
    "v_template": np.ndarray,
    "shapedirs": np.ndarray,
    "bs_type": str,
}


def test_smpl_pickle_has_the_official_keys_shapes_and_dtypes(standin_dir):
    with open(standin_dir / "smpl" / "SMPL_NEUTRAL.pkl", "rb") as handle:
        data = pickle.load(handle, encoding="latin1")
    for key, kind in OFFICIAL_KEYS.items():
        assert isinstance(data[key], kind), key
    assert data["v_template"].shape == (6890, 3) and data["v_template"].dtype == np.float64
    assert data["shapedirs"].shape == (6890, 3, 10)
    assert data["posedirs"].shape == (6890, 3, 207)
    assert data["J_regressor"].shape == (24, 6890)
    assert data["weights"].shape == (6890, 24)
    assert data["kintree_table"].shape == (2, 24) and data["kintree_table"][0, 0] == 4294967295
    assert data["f"].shape == (13776, 3) and data["f"].dtype == np.uint32
    assert "STAND-IN" in data["spinfits_standin"].upper() or "stand-in" in data["spinfits_standin"]
    extra = np.load(standin_dir / "J_regressor_extra.npy")
    assert extra.shape == (9, 6890) and extra.dtype == np.float64
    with open(standin_dir / "gmm_08.pkl", "rb") as handle:
        gmm = pickle.load(handle, encoding="latin1")
    assert gmm["means"].shape == (8, 69) and gmm["covars"].shape == (8, 69, 69)
    assert gmm["weights"].shape == (8,)
    assert "STAND-IN" in (standin_dir / "STANDIN.md").read_text()


def test_smplx_loads_the_standin_unchanged(standin_dir):
    model = smplx.SMPL(model_path=str(standin_dir / "smpl"))  # smplx's own pickle loader
    output = model(betas=torch.zeros(1, 10), body_pose=torch.zeros(1, 69), global_orient=torch.zeros(1, 3))
    assert output.vertices.shape == (1, 6890, 3)
    assert torch.isfinite(output.joints).all()


def test_loaded_files_are_named_as_standin(standin_files):
    assert standin_files.is_standin
    assert "STAND-IN" in standin_files.description
    assert "smpl/SMPL_NEUTRAL.pkl" in standin_files.standin_parts
    assert "gmm_08.pkl" in standin_files.standin_parts


def test_fingerprint_is_stable_and_sensitive(tmp_path, standin_files):
    again = write_standin_files(tmp_path / "again")
    assert load_body_model_files(tmp_path / "again").fingerprint == standin_files.fingerprint
    with open(again.smpl, "rb") as handle:
        data = pickle.load(handle)
    data["v_template"][100, 1] += 1e-4
    with open(again.smpl, "wb") as handle:
        pickle.dump(data, handle)
    assert load_body_model_files(tmp_path / "again").fingerprint != standin_files.fingerprint


def test_refuses_to_overwrite_without_flag(tmp_path):
    write_standin_files(tmp_path)
    with pytest.raises(InputError, match="already holds model files.*--overwrite"):
        write_standin_files(tmp_path)
    write_standin_files(tmp_path, overwrite=True)


def test_cli_make_standin_says_standin(tmp_path, capsys):
    assert main(["model", "make-standin", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "STAND-IN" in out and "not the licensed SMPL" in out
    assert main(["model", "info", str(tmp_path / "m")]) == 0
    assert "STAND-IN" in capsys.readouterr().out


def _gmm_nll(files, body_pose):
    """SMPLify's max-mixture negative log-likelihood (numpy), per pose."""
    gmm = files.gmm
    precisions = np.linalg.inv(gmm.covars)
    diff = body_pose[:, None, :] - gmm.means[None]
    quadratic = np.einsum("bmi,mij,bmj->bm", diff, precisions, diff)
    logdet = np.linalg.slogdet(gmm.covars)[1]
    return (0.5 * quadratic + 0.5 * logdet - np.log(gmm.weights)).min(1)


def test_pose_prior_prefers_natural_poses(standin_files):
    rng = np.random.default_rng(5)
    natural = sample_body_poses(500, rng)
    unnatural = natural.copy()
    unnatural[:, 9] = -1.2  # left knee bent forwards (backwards-bending knee)
    unnatural[:, 12] = -1.2
    random_poses = rng.uniform(-1.0, 1.0, natural.shape)
    nll_natural = _gmm_nll(standin_files, natural)
    assert np.median(nll_natural) < np.median(_gmm_nll(standin_files, unnatural))
    assert np.median(nll_natural) < np.median(_gmm_nll(standin_files, random_poses))
    # the rest pose (T-pose) and a relaxed stand are both more likely than random poses
    assert _gmm_nll(standin_files, np.zeros((1, 69)))[0] < np.median(_gmm_nll(standin_files, random_poses))
