import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from toy_model import toy_body_model_files


@pytest.fixture(scope="session")
def toy_files():
    """Random SMPL-format model with pose correctives: exactness tests."""
    return toy_body_model_files(seed=0)


@pytest.fixture(scope="session")
def body_files(standin_files):
    """The stand-in body model (written once per session by the root conftest)."""
    return standin_files


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
