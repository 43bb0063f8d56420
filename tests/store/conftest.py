"""Fixtures of the store tests: a fresh store on every back end (zarr-python's habit).

``store`` is parametrised over the back ends, ``local`` (a path) and ``s3`` (moto's server on
loopback, started once per session and only when an s3 test runs), for every test that takes it
without ``store_path`` (a test that opens the files under the path stays local) and without
``@pytest.mark.local_only`` (a test that needs a local store for another reason says which). ``store_helpers.reopen(store)``
opens a second handle on the same store whatever its back end.
"""

from __future__ import annotations

import itertools

import pytest
from store_helpers import BODY

from spinfits.store import FitStore, S3Options

BACKENDS = ("local", "s3")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "local_only(reason): a store test that runs on the local back end only (not over S3)"
    )


def pytest_generate_tests(metafunc):
    local = "store_path" in metafunc.fixturenames or metafunc.definition.get_closest_marker("local_only")
    if "store" in metafunc.fixturenames and not local:
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture
def backend(request) -> str:
    """The back end of ``store``: "local" unless the test is parametrised over them."""
    return getattr(request, "param", "local")


@pytest.fixture(scope="session")
def moto_s3() -> S3Options:
    """Options reaching a moto S3 server with bucket ``fits`` (one server for the session)."""
    from s3_service import MotoServer, moto_options

    server = MotoServer()
    try:
        server.create_bucket("fits")
        yield moto_options(server.url)
    finally:
        server.stop()


_prefixes = itertools.count()


@pytest.fixture
def store_location(backend, tmp_path, request):
    """(location, s3 options or None) of a new store on ``backend``."""
    if backend == "local":
        return tmp_path / "fits.icechunk", None
    return f"s3://fits/{next(_prefixes)}-{request.node.name[:60]}", request.getfixturevalue("moto_s3")


@pytest.fixture
def store_path(tmp_path):
    return tmp_path / "fits.icechunk"


@pytest.fixture
def store(request, backend) -> FitStore:
    """A new store with dataset ``coco`` of 50 rows, chunks of 16 rows, on ``backend``."""
    if "store_path" in request.fixturenames:
        location, s3 = request.getfixturevalue("store_path"), None
    else:
        location, s3 = request.getfixturevalue("store_location")
    s = FitStore.create(location, BODY, s3=s3)
    s.create_dataset(
        "coco", 50, dataset_fingerprint="coco-npz-1", fitting_config={"iters": 10}, chunk_rows=16
    )
    return s
