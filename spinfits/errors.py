"""Exceptions shared by every spinfits package, grouped by what the caller should do.

- ``InputError``: the call or a file is wrong; the message says what was expected, what came
  and how to fix it. Fix the input and call again.
- ``ConflictError``: somebody else changed shared state first; re-read and retry.
- ``StorageError``: the storage failed (read-only, disk full, unreachable); the store stays at
  its last commit. Fix the storage and retry.
- ``DeviceError``: the device asked for cannot be used here (torch's CPU build on a GPU job, no
  GPU visible); install or choose another device, then retry.
- ``Interrupted``: the user stopped a run (Ctrl-C); what it committed stays. The command-line
  tool prints its message and exits with status 130, as a shell does for SIGINT.
- ``SpinfitsError``: base class; the command-line tool prints its message and exits with status 2.
"""


class SpinfitsError(Exception):
    """Base class of every error spinfits raises on purpose."""


class InputError(SpinfitsError, ValueError):
    """Bad input (argument, file, array): fix it and call again."""


class ConflictError(SpinfitsError):
    """A concurrent change won a race: re-read and retry."""


class StorageError(SpinfitsError):
    """The storage failed (read-only, full, unreachable); nothing was half-written. Fix the
    storage and retry."""


class DeviceError(SpinfitsError):
    """The device asked for cannot be used on this machine (a CPU build of torch, no GPU): install
    torch's CUDA build or choose another device, and retry."""


class Interrupted(SpinfitsError):
    """The user stopped a run (Ctrl-C / SIGINT); what it committed before stays in the store."""
