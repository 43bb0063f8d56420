"""Where a store lives: a local directory (the default) or an S3-compatible object-store URL.

``StoreLocation.parse("runs/fits.icechunk")`` is a local path; ``"s3://bucket/prefix"`` is object
storage through icechunk's S3 storage. Credentials for S3 are given here or, when left out, found
by the AWS SDK's usual chain (environment, profile, instance role) inside icechunk.

Retries on S3: icechunk 1.1.21 retries every failed S3 request itself (10 tries, exponential
backoff with jitter from 100 ms: about 20-50 s before it gives up on an endpoint that is down or
answers 5xx), and its ``StorageRetriesSettings`` do not change that for S3 storage (measured: the
client keeps its defaults). Jobs therefore ask ``check_reachable`` first, which fails in seconds
(``REACHABILITY_TRIES`` tries of ``REACHABILITY_TIMEOUT_S`` each) instead of minutes.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import os
import re
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path

import icechunk

from spinfits.errors import InputError, StorageError

#: File inside a local store that serialises commits across processes (see ``commit_lock``).
LOCK_FILE = "spinfits-commit.lock"
#: ``check_reachable``: tries, seconds each may take (connect and answer), pause before the next.
REACHABILITY_TRIES = 3
REACHABILITY_TIMEOUT_S = 5.0
REACHABILITY_PAUSE_S = (0.5, 1.5)


@dataclass(frozen=True)
class S3Options:
    """How to reach an S3-compatible service. All optional: left out, AWS defaults apply.

    endpoint_url: e.g. ``http://127.0.0.1:9000`` for MinIO/moto; allow_http must be True for
    ``http://`` endpoints. force_path_style: ``endpoint/bucket/key`` addressing, which most
    self-hosted services need.

    access_key_id / secret_access_key: explicit keys for this process; ``repr`` shows them as
    ``'***'``. Jobs that run in other processes (Ray workers) must not carry them: send
    ``without_credentials()`` there, and each process finds its own through the AWS chain.
    """

    endpoint_url: str | None = None
    region: str | None = None
    allow_http: bool = False
    force_path_style: bool = False
    access_key_id: str | None = None
    secret_access_key: str | None = None
    anonymous: bool = False

    @property
    def has_credentials(self) -> bool:
        """Whether explicit keys are given (rather than left to the AWS chain)."""
        return bool(self.access_key_id or self.secret_access_key)

    def without_credentials(self) -> S3Options:
        """These options without explicit keys: a process opening a store with them finds its
        credentials through the AWS chain (environment, profile, instance role)."""
        return replace(self, access_key_id=None, secret_access_key=None)

    def __repr__(self) -> str:
        def shown(name: str) -> str:
            value = getattr(self, name)
            if value is not None and name in _SECRET_FIELDS:
                return "'***'"
            return repr(masked_url(value)) if name == "endpoint_url" and value else repr(value)

        return f"S3Options({', '.join(f'{f.name}={shown(f.name)}' for f in fields(self))})"


def masked_url(url: str) -> str:
    """``url`` with the password of its ``user:password@`` part shown as ``***``."""
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^/@:]*):[^/@]*@", r"\1:***@", url)


#: ``S3Options`` fields that ``repr`` (hence logs and error messages) never shows.
_SECRET_FIELDS = frozenset({"access_key_id", "secret_access_key"})


@dataclass(frozen=True)
class StoreLocation:
    """A store's address: ``url`` is a local path or ``s3://bucket/prefix``."""

    url: str
    s3: S3Options = S3Options()

    @classmethod
    def parse(cls, location: str | os.PathLike | StoreLocation, s3: S3Options | None = None) -> StoreLocation:
        if isinstance(location, StoreLocation):
            return location if s3 is None else StoreLocation(location.url, s3)
        text = os.fspath(location)
        if not text:
            raise InputError("store location is empty; give a directory path or s3://bucket/prefix")
        if "://" in text and not text.startswith("s3://"):
            scheme = text.split("://", 1)[0]
            raise InputError(
                f"store location {text!r} has scheme {scheme!r}; expected a local path or "
                "s3://bucket/prefix (S3-compatible services use s3:// with an endpoint URL)"
            )
        return cls(url=text, s3=s3 or S3Options())

    @property
    def is_local(self) -> bool:
        return not self.url.startswith("s3://")

    @property
    def path(self) -> Path:
        """The local directory (only for local locations)."""
        return Path(self.url).expanduser()

    def bucket_and_prefix(self) -> tuple[str, str]:
        rest = self.url[len("s3://") :]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise InputError(f"store location {self.url!r} has no bucket; expected s3://bucket/prefix")
        return bucket, prefix.strip("/")

    def storage(self) -> icechunk.Storage:
        """The icechunk storage for this location."""
        if self.is_local:
            return icechunk.local_filesystem_storage(str(self.path.resolve()))
        bucket, prefix = self.bucket_and_prefix()
        o = self.s3
        return icechunk.s3_storage(
            bucket=bucket,
            prefix=prefix or None,
            region=o.region,
            endpoint_url=o.endpoint_url,
            allow_http=o.allow_http,
            access_key_id=o.access_key_id,
            secret_access_key=o.secret_access_key,
            anonymous=o.anonymous or None,
            from_env=None if (o.access_key_id or o.anonymous) else True,
            force_path_style=o.force_path_style,
        )

    @contextlib.contextmanager
    def commit_lock(self) -> Iterator[None]:
        """Serialise commits of processes on this machine to a local store.

        icechunk's local filesystem storage cannot update a branch atomically, so two processes
        committing at once could both succeed and one commit would be lost. Holding an exclusive
        ``flock`` on ``<store>/spinfits-commit.lock`` while committing makes icechunk's own
        "branch moved since the session began" check reliable; a commit that loses the race then
        fails with ``icechunk.ConflictError`` as on object storage. Object storage needs no lock
        (icechunk uses conditional writes there).
        """
        if not self.is_local:
            yield
            return
        try:
            handle = open(self.path / LOCK_FILE, "a")  # noqa: SIM115 - closed below
        except OSError as error:
            raise StorageError(
                f"cannot write to the store at {self}: {error.strerror or error} "
                f"({self.path / LOCK_FILE}); the store is unchanged. Make the store directory "
                "writable for this user, or read it with commands that only read"
            ) from None
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def check_writable(self) -> None:
        """Refuse, before any work, a store this process cannot write (``StorageError``).

        A local path that does not exist yet is fine if its nearest existing parent is a writable
        directory; a path that is a file is an ``InputError``. Object storage must answer
        (``check_reachable``); credentials and permissions are the service's business, checked by
        its first write.
        """
        if not self.is_local:
            self.check_reachable()
            return
        path = self.path
        if path.exists() and not path.is_dir():
            raise InputError(f"store path {self} is a file, not a store directory; pass a directory path")
        existing = path
        while not existing.exists():
            existing = existing.parent
        where = [existing] if existing != path else [path, *(p for p in path.iterdir() if p.is_dir())]
        for folder in where:
            if not os.access(folder, os.W_OK | os.X_OK):
                raise StorageError(
                    f"cannot write to the store at {self}: {folder} is not writable by this user; "
                    "make it writable (or copy the store somewhere writable) before running a job "
                    "that writes fits"
                )

    def endpoint(self) -> str:
        """The S3 service this location talks to: ``S3Options.endpoint_url``, else AWS's regional
        endpoint (``https://s3.<region>.amazonaws.com``; no region: ``https://s3.amazonaws.com``)."""
        if self.s3.endpoint_url:
            return self.s3.endpoint_url.rstrip("/")
        return f"https://s3.{self.s3.region}.amazonaws.com" if self.s3.region else "https://s3.amazonaws.com"

    def check_reachable(self) -> None:
        """Refuse object storage whose service does not answer, in seconds rather than after
        icechunk's own retries (see module doc): ``StorageError`` when nothing answers at the
        endpoint (nothing listening, no route, a name that does not resolve, no answer within
        ``REACHABILITY_TIMEOUT_S``) or it answers with server errors (HTTP 5xx), after
        ``REACHABILITY_TRIES`` tries. Nothing is read or written: the probe is an unsigned
        ``HEAD`` of the bucket, to which a healthy service answers (usually 200, 301 or 403)
        whatever the credentials, or 404 when the bucket does not exist (``InputError`` saying so
        and how to create it); a TLS handshake that fails (a certificate this probe does not
        trust) counts as an answer too. A local location is not checked.
        """
        if self.is_local:
            return
        bucket, _ = self.bucket_and_prefix()
        endpoint = self.endpoint()
        scheme, _, rest = endpoint.partition("://")
        host = rest.split("/", 1)[0]
        if scheme not in ("http", "https") or not host:
            raise InputError(
                f"S3 endpoint {endpoint!r} is not an http(s):// URL; give e.g. http://127.0.0.1:9000"
            )
        connection_class = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        start = time.monotonic()
        for attempt in range(1, REACHABILITY_TRIES + 1):
            connection = connection_class(host, timeout=REACHABILITY_TIMEOUT_S)
            try:
                connection.request("HEAD", f"/{bucket}")
                status = connection.getresponse().status
                if status == 404:
                    raise self.missing_bucket()
                if status < 500:
                    return
                problem = f"it answers HTTP {status} (a server error)"
            except ssl.SSLError:  # a TLS answer (e.g. a private CA): certificates are icechunk's business
                return
            except (OSError, http.client.HTTPException) as error:
                problem = f"no answer ({_reason(error)})"
            finally:
                connection.close()
            if attempt < REACHABILITY_TRIES:
                time.sleep(REACHABILITY_PAUSE_S[min(attempt, len(REACHABILITY_PAUSE_S)) - 1])
        raise StorageError(
            f"cannot reach the object storage of store {self.url} at {endpoint}: {problem}, "
            f"{REACHABILITY_TRIES} tries in {time.monotonic() - start:.1f} s; nothing was read or "
            "written. Check that the service runs and is reachable from this machine, and that the "
            "endpoint (--endpoint-url, S3Options.endpoint_url) and region name it"
        )

    def bucket_is_missing(self) -> bool:
        """Whether the service answers that this location's bucket does not exist: HTTP 404 to an
        unsigned ``HEAD /bucket`` (S3 answers 404 for a missing bucket whatever the credentials,
        200/301/403 for one that exists). One try; False for a local location or no answer."""
        if self.is_local:
            return False
        scheme, _, rest = self.endpoint().partition("://")
        host = rest.split("/", 1)[0]
        connection_class = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        connection = connection_class(host, timeout=REACHABILITY_TIMEOUT_S)
        try:
            connection.request("HEAD", f"/{self.bucket_and_prefix()[0]}")
            return connection.getresponse().status == 404
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    def missing_bucket(self) -> InputError:
        """The error for a bucket that does not exist, with how to create it."""
        bucket, _ = self.bucket_and_prefix()
        endpoint = f" --endpoint-url {self.s3.endpoint_url}" if self.s3.endpoint_url else ""
        region = f" --region {self.s3.region}" if self.s3.region else ""
        return InputError(
            f"the bucket {bucket!r} of store {self.url} does not exist at {self.endpoint()} (it "
            f"answers 404 to HEAD /{bucket}); nothing was read or written. Create the bucket first, "
            f"e.g. `aws s3 mb s3://{bucket}{endpoint}{region}` (MinIO: `mc mb ALIAS/{bucket}`), or "
            "correct the bucket name in the store URL"
        )

    def __str__(self) -> str:
        return self.url


def _reason(error: BaseException) -> str:
    """``ConnectionRefusedError: [Errno 111] Connection refused`` -> ``connection refused``."""
    if isinstance(error, TimeoutError):
        return f"timed out after {REACHABILITY_TIMEOUT_S:g} s"
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return text[:1].lower() + text[1:]
