"""bench/spin_smplify.py: the adapter that runs SPIN's own SMPLify from a user's checkout.

Its errors and its loading mechanism are checked here on a fake checkout (tiny modules of these
tests, laid out like SPIN's repository; none of SPIN's code); the data layout it builds is read
back by smplx as SPIN reads it. The test that runs SPIN's code itself needs ``--spin-repo DIR``
and skips, with the reason, without it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import smplx
import smplx.body_models
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from spin_smplify import (
    SPIN_FILES,
    SPIN_MODULE_NAMES,
    SpinCheckoutError,
    SpinSmplify,
    check_spin_checkout,
    load_spin_smplify,
    write_spin_data_layout,
)

#: A fake checkout: SPIN's file names and import statements, nothing else of SPIN's. Every
#: package ``__init__.py`` raises: the adapter must never run them.
FAKE_CHECKOUT = {
    "config.py": "SMPL_MODEL_DIR = 'data/smpl'\n",
    "constants.py": "FOCAL_LENGTH = 5000.\n",
    "models/__init__.py": "raise ImportError('models/__init__.py ran (it imports hmr, torchvision)')\n",
    "models/smpl.py": "from smplx.body_models import ModelOutput\nimport config\n\n"
    "class SMPL:\n    output_type = ModelOutput\n    folder = config.SMPL_MODEL_DIR\n",
    "utils/__init__.py": "raise ImportError('utils/__init__.py ran')\n",
    "utils/geometry.py": "def perspective_projection(*args):\n    return args\n",
    "smplify/__init__.py": "raise ImportError('smplify/__init__.py ran')\n",
    "smplify/losses.py": "from utils.geometry import perspective_projection\nimport constants\n",
    "smplify/prior.py": "class MaxMixturePrior:\n    pass\n",
    "smplify/smplify.py": "from models.smpl import SMPL\nfrom .losses import perspective_projection\n"
    "from .prior import MaxMixturePrior\nimport config\nimport constants\n\n"
    "class SMPLify:\n    model_output = SMPL.output_type\n    focal_length = constants.FOCAL_LENGTH\n"
    "    projection = staticmethod(perspective_projection)\n",
}


def write_checkout(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def spin_module_names() -> set[str]:
    return {name for name in sys.modules if name.split(".")[0] in SPIN_MODULE_NAMES}


def test_no_spin_repo_says_where_to_get_spins_code():
    with pytest.raises(
        SpinCheckoutError, match=r"needs --spin-repo DIR.*git clone https://github.com/nkolot/SPIN"
    ):
        check_spin_checkout(None)


def test_a_spin_repo_that_is_not_a_folder_is_named(tmp_path):
    with pytest.raises(SpinCheckoutError, match=r"--spin-repo .*nowhere does not exist; expected the folder"):
        check_spin_checkout(tmp_path / "nowhere")
    (tmp_path / "file").write_text("")
    with pytest.raises(SpinCheckoutError, match=r"--spin-repo .*file is a file"):
        check_spin_checkout(tmp_path / "file")


def test_a_folder_without_spins_files_names_the_missing_ones(tmp_path):
    write_checkout(tmp_path, {"config.py": "", "smplify/smplify.py": ""})
    with pytest.raises(SpinCheckoutError) as caught:
        check_spin_checkout(tmp_path)
    lacks = str(caught.value).split("it lacks ")[1].split(" (")[0]
    assert lacks.split(", ") == [
        name for name in SPIN_FILES if name not in ("config.py", "smplify/smplify.py")
    ]
    assert "is not a checkout of SPIN's code" in str(caught.value)


def test_loads_smplify_without_package_inits_and_leaves_the_process_as_it_was(tmp_path):
    checkout = write_checkout(tmp_path, FAKE_CHECKOUT)
    sentinel = object()
    sys.modules["utils"] = sentinel  # somebody else's top-level "utils" must come back
    try:
        before = spin_module_names()
        smplify = load_spin_smplify(checkout)
        assert spin_module_names() == before
        assert sys.modules["utils"] is sentinel
    finally:
        del sys.modules["utils"]
    assert smplify.__name__ == "SMPLify" and smplify.focal_length == 5000.0
    assert smplify.projection(1, 2) == (1, 2)  # utils/geometry.py, found through the empty package
    # SPIN's ModelOutput is smplx's SMPLOutput while SPIN imports it; smplx is unchanged after
    assert smplify.model_output is smplx.utils.SMPLOutput
    assert not hasattr(smplx.body_models, "ModelOutput")


def test_an_import_failure_names_the_file_and_the_cause(tmp_path):
    broken = dict(FAKE_CHECKOUT, **{"smplify/prior.py": "import a_module_that_is_not_installed\n"})
    checkout = write_checkout(tmp_path, broken)
    before = spin_module_names()
    with pytest.raises(
        SpinCheckoutError,
        match=r"does not import here: smplify/prior.py raised ModuleNotFoundError: .*a_module_that_is_not_installed",
    ):
        load_spin_smplify(checkout)
    assert spin_module_names() == before
    assert not hasattr(smplx.body_models, "ModelOutput")


def test_the_data_layout_is_read_by_smplx_as_spin_reads_it(tmp_path, standin_files):
    from spinfits.fitting.body.body_model import SpinBodyModel
    from spinfits.fitting.body.model_files import load_body_model_files

    root = write_spin_data_layout(standin_files, tmp_path)
    assert root.name == "standin-spin-layout"  # a stand-in is named as one
    copied = load_body_model_files(root / "data")
    assert copied.fingerprint == standin_files.fingerprint
    assert copied.standin_parts == standin_files.standin_parts
    # SPIN: SMPL(config.SMPL_MODEL_DIR) with config.SMPL_MODEL_DIR = 'data/smpl'
    smpl = smplx.SMPL(str(root / "data" / "smpl"), create_transl=False)
    generator = torch.Generator().manual_seed(0)
    pose, betas = 0.3 * torch.randn(2, 72, generator=generator), torch.randn(2, 10, generator=generator)
    with torch.no_grad():
        theirs = smpl(global_orient=pose[:, :3], body_pose=pose[:, 3:], betas=betas)
        ours = SpinBodyModel(standin_files)(pose, betas, return_vertices=True)
    torch.testing.assert_close(theirs.vertices, ours.vertices, atol=1e-5, rtol=0)


def test_spins_own_smplify_matches_the_reimplementation(tmp_path, standin_files, spin_repo, one_torch_thread):
    """SPIN's code and ``OfflineConfig.spin_from_mean`` from the same start end at the same fit
    (float32 rounding apart); measured 1e-6 rad on the stand-in."""
    from precompute_common import with_slots, write_keypoints

    from spinfits.fitting.data.dataset import load_spin_npz
    from spinfits.fitting.data.mean_params import spin_mean_params
    from spinfits.fitting.offline.config import OfflineConfig
    from spinfits.fitting.offline.fitter import OfflineFitter

    keypoints = load_spin_npz(
        write_keypoints(tmp_path / "people.npz", standin_files, "openpose", 4, 5)
    ).keypoints
    spin = SpinSmplify(spin_repo, standin_files, tmp_path, 4, "cpu").fit(keypoints)
    ours = OfflineFitter(standin_files, with_slots(OfflineConfig.spin_from_mean(), 4)).fit(keypoints)
    mean_pose, _ = spin_mean_params()
    assert float((spin.pose[:, 3:] - torch.as_tensor(mean_pose[3:])).abs().max()) > 0.1  # it fitted
    assert float((spin.pose - ours.pose).abs().max()) < 1e-3
    assert float((spin.cam_t - ours.cam_t).abs().max()) < 1e-3
    torch.testing.assert_close(spin.loss, ours.loss, rtol=1e-3, atol=1e-3)
