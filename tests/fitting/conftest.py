import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from toy_model import toy_body_model_files  # noqa: E402

from spinfits.errors import InputError  # noqa: E402
from spinfits.fitting.model_files import load_body_model_files  # noqa: E402


@pytest.fixture(scope="session")
def toy_files():
    """Random SMPL-format model with pose correctives: exactness tests."""
    return toy_body_model_files(seed=0)


@pytest.fixture(scope="session")
def body_files(tmp_path_factory, toy_files):
    """The stand-in body model written to a tmp dir, or the toy model until it is available."""
    from spinfits.fitting.standin import write_standin_files

    directory = tmp_path_factory.mktemp("standin")
    try:
        write_standin_files(directory)
    except InputError:
        return toy_files
    return load_body_model_files(directory)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
