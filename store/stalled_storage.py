"""A bounded wait on object storage that stops answering.

icechunk 1.1.21 has no request timeout for S3 (``network_stream_timeout_seconds`` bounds reading a
response body, not waiting for one): a service that accepts connections and never answers holds
a call forever (measured: a loopback socket that accepts and never answers held
``Repository.open`` for more than 300 s with ``network_stream_timeout_seconds=2``). So on object
storage the store's calls run in a helper thread and the caller waits ``STALL_CHECK_S`` at a time;
whenever the call has not returned by then, the service is asked whether it still answers
(``StoreLocation.check_reachable``: a few seconds when it does not). If it does not, the caller
gets a ``StorageError``; if it does, the call is slow, not stalled, and the wait goes on.

The call left behind is abandoned in its (daemon) thread. If the service comes back it may still
finish: a commit then lands, as one that finished just before a crash would, and a rerun resumes
from the store either way. Until it returns, the same ``FitStore`` refuses further calls (they
would run beside it on the same state). Ctrl-C while waiting lets the call end first, as before
(a second Ctrl-C does not wait). A local store is never waited on this way.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from spinfits.errors import StorageError
from spinfits.store.location import StoreLocation

#: Seconds a storage call may run before the service is asked whether it still answers.
STALL_CHECK_S = 30.0

T = TypeVar("T")

_inside = threading.local()  # set in the helper thread: nested bounded calls run directly


def call_bounded(
    location: StoreLocation | None, action: str, call: Callable[[], T], owner: object | None = None
) -> T:
    """``call()``, waited for as the module doc says when ``location`` is object storage (None or
    a local store: called directly); ``action`` ("commit", "read the dataset") names it in the
    error. ``owner``: the object whose state ``call`` uses (a ``FitStore``); while a call of it
    that was given up on still runs, its next calls are refused (they would run beside it)."""
    if location is None or location.is_local or getattr(_inside, "active", False):
        return call()
    abandoned = getattr(owner, _ABANDONED, None)
    if abandoned is not None and not abandoned.is_set():
        raise StorageError(
            f"could not {action} in the store at {location}: an earlier call that the service "
            "stopped answering has not returned yet; rerun the job once the storage answers"
        )
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        _inside.active = True
        try:
            outcome["value"] = call()
        except BaseException as error:  # handed to the waiting caller
            outcome["error"] = error
        finally:
            done.set()

    threading.Thread(target=run, name=f"spinfits store: {action}", daemon=True).start()
    waited = 0.0
    try:
        while not done.wait(STALL_CHECK_S):
            waited += STALL_CHECK_S
            try:
                location.check_reachable()
            except StorageError as error:
                if done.is_set():  # it answered meanwhile
                    break
                if owner is not None:
                    setattr(owner, _ABANDONED, done)
                raise StorageError(
                    f"could not {action} in the store at {location}: no answer after {waited:g} s, "
                    f"and the service no longer answers ({error}). The call was abandoned: the "
                    "store stays at its last commit (or, if the service comes back, at the commit "
                    "this call was making); rerun the job once the storage answers: it resumes "
                    "from the store"
                ) from None
    except KeyboardInterrupt:
        done.wait()  # Ctrl-C: let the call end before the caller goes on (a second Ctrl-C does not wait)
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


#: Attribute of an owner holding the ``threading.Event`` of its abandoned call.
_ABANDONED = "_spinfits_abandoned_call"


def bounded(action: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorate a method of an object with a ``_location`` (``StoreLocation`` or None) so that it
    runs through ``call_bounded`` with the object as its owner."""

    def decorate(method: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> T:
            return call_bounded(self._location, action, lambda: method(self, *args, **kwargs), self)

        return wrapper

    return decorate
