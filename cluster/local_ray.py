"""Connect a job's driver to Ray, or start the embedded default at normal priority.

``ray.init()`` connects to the cluster named by ``RAY_ADDRESS`` (``ray job submit`` sets it) or
started by ``ray start`` on this machine, and otherwise starts a local cluster for this process
(the embedded default). Ray starts its worker processes at niceness 15 (its ``worker_niceness``
setting, environment variable ``RAY_worker_niceness``): fitter actors and training workers would
then yield the CPU to every normal-priority process on the machine, Ray's own agents included,
and a job beside one busy neighbour all but stops. The local cluster started here runs its
workers at niceness 0 instead, unless ``RAY_worker_niceness`` is already set in the environment
(then that value is kept).

A cluster started with ``ray start`` keeps the niceness it was started with: start its nodes
with ``RAY_worker_niceness=0 ray start ...`` (``docs/cluster.md``).

Ray 2.60 warns on every local start that it turned token authentication on ("Token
authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled to opt out...").
That is Ray's default and the safe one, so the warning is held back during ``ray.init()`` and one
INFO line of ours says it instead; every other Ray message (the warning that authentication is
*disabled* included) passes as it is.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import ray

logger = logging.getLogger(__name__)

#: Ray's environment variable for the niceness of the worker processes a raylet starts.
WORKER_NICENESS_VARIABLE = "RAY_worker_niceness"
#: The embedded default's worker niceness: the same priority as the driver and its neighbours.
EMBEDDED_WORKER_NICENESS = 0


@contextmanager
def _variable_default(name: str, value: str) -> Iterator[None]:
    """``os.environ[name] = value`` for the block, unless ``name`` is already set."""
    if name in os.environ:
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)


def connect_or_start_ray() -> bool:
    """``ray.init()`` for a job's driver (see module doc); True when this call initialised Ray
    (the caller then shuts it down), False when Ray was already initialised in this process.

    The processes Ray starts inherit the driver's environment, so ``RAY_worker_niceness`` set
    during ``ray.init()`` reaches a local cluster's raylet and its workers; a cluster that is
    only connected to ignores it.
    """
    if ray.is_initialized():
        return False
    with (
        _variable_default(WORKER_NICENESS_VARIABLE, str(EMBEDDED_WORKER_NICENESS)),
        quiet_token_banner() as banner,
    ):
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    restrict_token_file()
    if banner.seen:
        logger.info("Ray: token authentication on (Ray's default; its token in %s, owner-only)", TOKEN_FILE)
    return True


#: The Ray logger that warns, on each local start, that token authentication was turned on.
TOKEN_SETUP_LOGGER = "ray._private.authentication.authentication_token_setup"
#: The start of that warning.
TOKEN_BANNER = "Token authentication is enabled for this Ray cluster"


class _TokenBannerFilter(logging.Filter):
    """Drops Ray's "token authentication is enabled" warning, remembering that it came."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith(TOKEN_BANNER):
            self.seen = True
            return False
        return True


@contextmanager
def quiet_token_banner() -> Iterator[_TokenBannerFilter]:
    """Hold back Ray's token banner for the block (see the module docstring); the filter
    yielded says whether it came (``.seen``)."""
    banner = _TokenBannerFilter()
    source = logging.getLogger(TOKEN_SETUP_LOGGER)
    source.addFilter(banner)
    try:
        yield banner
    finally:
        source.removeFilter(banner)


#: Where Ray keeps the token of its token authentication (written world-readable by Ray 2.60).
TOKEN_FILE = Path.home() / ".ray" / "auth_token"


def restrict_token_file(path: Path = TOKEN_FILE) -> None:
    """Make Ray's auth token readable by its owner only (0600): with the token, any local user
    could talk to the cluster's authenticated ports."""
    try:
        if path.is_file() and path.stat().st_uid == os.getuid() and path.stat().st_mode & 0o077:
            path.chmod(0o600)
    except OSError as error:  # another user's home, a read-only file system: say so, go on
        logger.warning("could not make %s private (chmod 600): %s", path, error)
