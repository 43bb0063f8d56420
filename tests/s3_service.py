"""An S3 service on loopback for tests: moto's server, behind an endpoint the test can break.

``FaultyEndpoint`` forwards TCP connections to moto's server while ``up``; ``error()`` makes it
answer every request with HTTP 503 (a service failing), ``down()`` closes its port (nothing
listening, as a stopped server) and drops the open connections, ``stall()`` accepts connections
and never answers (a service that hangs); ``up()`` restores it. moto keeps
its data meanwhile, so a test can compare the store before and after an outage.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import boto3

#: Credentials moto accepts; tests hand them to processes through the environment (the AWS chain).
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}

_SLOW_DOWN = (
    b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n"
    b"Connection: close\r\n\r\n%s"
)
_SLOW_DOWN_BODY = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"


def moto_options(url: str):
    """``S3Options`` reaching the S3 service at ``url`` with the credentials moto accepts."""
    from spinfits.store import S3Options

    return S3Options(
        endpoint_url=url,
        region=CREDENTIALS["AWS_DEFAULT_REGION"],
        allow_http=True,
        force_path_style=True,
        access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MotoServer:
    """``python -m moto.server`` on a free loopback port; ``url``; ``create_bucket``; ``stop``."""

    def __init__(self) -> None:
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.url + "/moto-api/", timeout=1)
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)

    def create_bucket(self, name: str) -> None:
        boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        ).create_bucket(Bucket=name)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class FaultyEndpoint:
    """A loopback TCP endpoint forwarding to ``target`` ("host:port"): ``up()``, ``error()``
    (HTTP 503 to every request), ``down()`` (port closed), ``stall()`` (connections accepted,
    never answered). ``url`` is what clients use."""

    def __init__(self, target_url: str) -> None:
        host, port = target_url.removeprefix("http://").split(":")
        self._target = (host, int(port))
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.mode = "down"
        self._listener: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.up()

    def up(self) -> None:
        with self._lock:
            self.mode = "up"
            if self._listener is None:
                listener = socket.socket()
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind(("127.0.0.1", self.port))
                listener.listen(64)
                self._listener = listener
                threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def error(self) -> None:
        self.up()
        with self._lock:
            self.mode = "error"
        self._drop_connections()

    def stall(self) -> None:
        self.up()
        with self._lock:
            self.mode = "stall"
        self._drop_connections()

    def down(self) -> None:
        with self._lock:
            self.mode = "down"
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        self._drop_connections()

    def _drop_connections(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by down()
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with self._lock:
            mode = self.mode
            if mode in ("up", "stall"):
                self._connections.add(client)
        if mode == "stall":  # read and drop what comes, answer nothing, until it is closed
            try:
                while client.recv(65536):
                    pass
            except OSError:
                pass
            return
        if mode == "error":
            self._answer_slow_down(client)
            return
        if mode != "up":
            client.close()
            return
        try:
            server = socket.create_connection(self._target, timeout=10)
        except OSError:
            client.close()
            return
        server.settimeout(None)
        with self._lock:
            self._connections.add(server)
        threading.Thread(target=self._pump, args=(server, client), daemon=True).start()
        self._pump(client, server)

    @staticmethod
    def _answer_slow_down(client: socket.socket) -> None:
        client.settimeout(5)
        try:
            received = b""
            while b"\r\n\r\n" not in received:
                chunk = client.recv(65536)
                if not chunk:
                    break
                received += chunk
            client.sendall(_SLOW_DOWN % (len(_SLOW_DOWN_BODY), _SLOW_DOWN_BODY))
        except OSError:
            pass
        finally:
            client.close()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()
