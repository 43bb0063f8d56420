"""Processes for the memory benches: run a function in a fresh process, read memory from /proc.

Linux only (``/proc``). Memory figures are bytes of resident memory (RSS) as the kernel counts
them: ``VmRSS`` now and ``VmHWM``, the peak since the process started or since
``reset_peak_rss``.

- ``run_in_child(fn, *args, serve=...)``: ``fn(link, *args)`` in a fresh, spawned Python process,
  so its memory starts from a clean interpreter and leaves nothing behind; returns what ``fn``
  returns. ``link.ask(message)`` in the child hands ``message`` to the parent's ``serve`` and
  returns its answer (the parent acts between the child's steps, e.g. commits to a store the
  child reads, without its memory counting in the child's).
- ``PeakWatcher``: the peak RSS of every process below a root whose command line starts with a
  prefix (Ray's actors are named ``ray::ClassName`` and run below the driver that started a
  local cluster), sampled on a thread.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import re
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

_KIB = 1024


def _status_bytes(pid: int | str, field: str) -> int:
    """``field`` ("VmRSS", "VmHWM") of /proc/<pid>/status, in bytes."""
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE).group(1)) * _KIB


def rss_bytes(pid: int | str = "self") -> int:
    """Resident memory of ``pid`` now."""
    return _status_bytes(pid, "VmRSS")


def peak_rss_bytes(pid: int | str = "self") -> int:
    """Peak resident memory of ``pid`` (since it started, or since ``reset_peak_rss``)."""
    return _status_bytes(pid, "VmHWM")


def reset_peak_rss() -> bool:
    """Start this process's ``peak_rss_bytes`` again from its RSS now (``/proc/self/clear_refs``);
    False where the kernel does not allow it (the peak then counts from the process start)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def descendants(root: int) -> list[int]:
    """Pids of every process below ``root`` (children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class PeakWatcher:
    """Peak RSS of the processes below ``root`` whose command line starts with ``prefix``,
    sampled every ``interval_s`` while the ``with`` block runs: ``peaks`` maps pid -> bytes.

    VmHWM only grows, so the last sample of a process is its peak up to then; a process that
    ends between two samples loses at most ``interval_s`` of its history.
    """

    def __init__(self, root: int, prefix: str, interval_s: float = 0.2) -> None:
        self.root, self.prefix, self.interval_s = root, prefix, interval_s
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _sample(self) -> None:
        for pid in descendants(self.root):
            if not command_line(pid).startswith(self.prefix):
                continue
            with contextlib.suppress(OSError, AttributeError):  # ended meanwhile
                self.peaks[pid] = max(self.peaks.get(pid, 0), peak_rss_bytes(pid))

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> PeakWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Link:
    """The child's end of ``run_in_child``'s pipe."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def ask(self, message: Any) -> Any:
        """Hand ``message`` to the parent's ``serve`` and return its answer."""
        self._connection.send(("ask", message))
        return self._connection.recv()


def _child_main(connection: Any, fn: Callable[..., Any], args: tuple) -> None:
    logging.basicConfig(level=logging.WARNING)
    try:
        connection.send(("result", fn(Link(connection), *args)))
    except BaseException:  # reported to the parent, which raises it
        connection.send(("error", traceback.format_exc()))


def run_in_child(fn: Callable[..., Any], *args: Any, serve: Callable[[Any], Any] | None = None) -> Any:
    """``fn(link, *args)`` in a fresh spawned process (``fn`` a module-level function, ``args``
    picklable); returns its result, or raises ``RuntimeError`` with the child's traceback."""
    context = multiprocessing.get_context("spawn")
    parent_end, child_end = context.Pipe()
    child = context.Process(target=_child_main, args=(child_end, fn, args))
    child.start()
    child_end.close()
    try:
        while True:
            try:
                kind, payload = parent_end.recv()
            except EOFError:
                child.join()
                raise RuntimeError(
                    f"{fn.__name__} ended without a result (exit code {child.exitcode}; "
                    "-9 is usually the kernel's out-of-memory killer)"
                ) from None
            if kind == "result":
                return payload
            if kind == "error":
                raise RuntimeError(f"{fn.__name__} failed in its process:\n{payload}")
            if serve is None:
                raise RuntimeError(f"{fn.__name__} asked {payload!r} but no serve function was given")
            parent_end.send(serve(payload))
    finally:
        child.join()
        parent_end.close()
