"""StoreLocation.check_reachable: object storage that does not answer is refused in seconds, with
the reason; a service that answers (whatever the status below 500) passes. A plain HTTP server on
loopback plays the service."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from spinfits.errors import InputError, StorageError
from spinfits.store import S3Options, StoreLocation
from spinfits.store.location import REACHABILITY_TRIES


@pytest.fixture
def service():
    """serve(status) -> URL of a loopback HTTP service answering every request with ``status``;
    ``requests`` lists the (method, path) it got."""
    servers, requests = [], []

    def serve(status: int) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self):  # http.server's naming
                requests.append((self.command, self.path))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    serve.requests = requests
    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def at(endpoint: str, url: str = "s3://fits/runs/a") -> StoreLocation:
    return StoreLocation.parse(url, S3Options(endpoint_url=endpoint, allow_http=True, force_path_style=True))


@pytest.mark.parametrize("status", [200, 301, 403])
def test_a_service_that_answers_is_reachable(service, status):
    at(service(status)).check_reachable()
    assert service.requests == [("HEAD", "/fits")]  # one unsigned HEAD of the bucket, nothing else


def test_a_service_that_answers_404_has_no_such_bucket(service):
    endpoint = service(404)
    with pytest.raises(
        InputError, match=rf"the bucket 'fits' of store s3://fits/runs/a does not exist at {endpoint}"
    ):
        at(endpoint).check_reachable()
    assert service.requests == [("HEAD", "/fits")]  # not retried: the service answered


def test_server_errors_are_retried_then_refused(service):
    endpoint = service(503)
    start = time.monotonic()
    with pytest.raises(
        StorageError, match=rf"at {endpoint}: it answers HTTP 503 \(a server error\), 3 tries"
    ):
        at(endpoint).check_reachable()
    assert len(service.requests) == REACHABILITY_TRIES
    assert time.monotonic() - start < 10


def test_nothing_listening_is_refused_in_seconds():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    start = time.monotonic()
    with pytest.raises(StorageError) as error:
        at(endpoint).check_writable()  # what precompute and train call before any work
    assert time.monotonic() - start < 10
    message = str(error.value)
    assert f"cannot reach the object storage of store s3://fits/runs/a at {endpoint}" in message
    assert "no answer (connection refused)" in message and "nothing was read or written" in message
    assert "--endpoint-url" in message


def test_a_service_that_never_answers_is_refused_after_the_timeout(monkeypatch):
    """A port that accepts connections and stays silent: icechunk would wait on it without end
    (measured with icechunk 1.1.21: still waiting after 240 s); the probe gives up per try."""
    monkeypatch.setattr("spinfits.store.location.REACHABILITY_TIMEOUT_S", 0.3)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        start = time.monotonic()
        with pytest.raises(StorageError, match=r"no answer \(timed out after 0.3 s\), 3 tries"):
            at(f"http://127.0.0.1:{silent.getsockname()[1]}").check_reachable()
    assert time.monotonic() - start < 2 * REACHABILITY_TRIES


def test_endpoint_defaults_to_aws_and_local_stores_are_not_probed(tmp_path):
    assert StoreLocation.parse("s3://b/p", S3Options(region="eu-west-1")).endpoint() == (
        "https://s3.eu-west-1.amazonaws.com"
    )
    assert StoreLocation.parse("s3://b").endpoint() == "https://s3.amazonaws.com"
    assert at("http://127.0.0.1:9000/").endpoint() == "http://127.0.0.1:9000"
    StoreLocation.parse(tmp_path / "missing").check_reachable()  # local: nothing to reach


def test_an_endpoint_that_is_not_http_is_an_input_error():
    with pytest.raises(InputError, match=r"S3 endpoint '127.0.0.1:9000' is not an http\(s\):// URL"):
        at("127.0.0.1:9000").check_reachable()


def test_object_storage_failing_while_opening_is_a_storage_error(monkeypatch, tmp_path):
    """An S3 store whose service fails while it is opened: a StorageError (retry later), not an
    InputError ("corrupt or not a store?"); a local store that cannot be read stays an input
    problem."""
    import icechunk

    from spinfits.store import FitStore

    def fail(storage):
        raise OSError("error getting object from object store dispatch failure")

    monkeypatch.setattr(icechunk.Repository, "exists", staticmethod(fail))
    s3 = S3Options(endpoint_url="http://127.0.0.1:9", region="us-east-1", allow_http=True, anonymous=True)
    with pytest.raises(
        StorageError, match=r"cannot reach the store at s3://fits/x: .*dispatch failure.*retry"
    ):
        FitStore.open("s3://fits/x", s3=s3)
    with pytest.raises(StorageError, match="cannot reach the store at s3://fits/x"):
        FitStore.exists("s3://fits/x", s3=s3)
    (tmp_path / "local").mkdir()
    with pytest.raises(InputError, match="corrupt or not a store"):
        FitStore.open(tmp_path / "local")
