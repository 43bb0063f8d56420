"""The driver's view of a training run: a progress bar fed by rank 0's progress file.

Workers append one JSON line per step to ``<run dir>/progress/rank<r>.jsonl`` (step, losses,
seconds, store traffic, proposals); the driver follows rank 0's file on a thread and shows a tqdm
bar with the loss and the fits proposed. After a recovery the bar jumps back to the step the
run restarted from.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from tqdm import tqdm


def read_progress(path: str | Path) -> list[dict[str, Any]]:
    """Every complete record of a progress file (a partly written last line is skipped)."""
    records = []
    try:
        with open(path) as handle:
            for line in handle:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    except FileNotFoundError:
        pass
    return records


def latest_per_step(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per step, sorted by step: after a recovery a step runs again, and its last
    run is the one that counts."""
    latest = {record["step"]: record for record in records}
    return [latest[step] for step in sorted(latest)]


def step_time_split(records: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds spent per part of a step, summed over ``records``: the step's own phases
    (forward, smplify, targets, backward), ``store traffic``, and ``data + other`` (the rest)."""
    split: dict[str, float] = {}
    for record in records:
        for name, value in record["phases"].items():
            split[name] = split.get(name, 0.0) + value
        rest = record["seconds"] - record["store_seconds"] - sum(record["phases"].values())
        split["store traffic"] = split.get("store traffic", 0.0) + record["store_seconds"]
        split["data + other"] = split.get("data + other", 0.0) + rest
    return split


class ProgressFollower:
    """Context manager: follows ``path`` and shows a bar of ``steps`` steps until exit."""

    def __init__(self, path: Path, steps: int, run: str, show: bool = True, interval_s: float = 0.5) -> None:
        self._path, self._steps, self._run = path, steps, run
        self._show, self._interval = show, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)

    def __enter__(self) -> ProgressFollower:
        if self._show:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _follow(self) -> None:
        bar = tqdm(total=self._steps, unit="step", desc=f"train {self._run}", dynamic_ncols=True)
        offset, proposed = 0, 0
        while True:
            stopping = self._stop.wait(self._interval)
            try:
                with open(self._path) as handle:
                    handle.seek(offset)
                    chunk = handle.read()
            except FileNotFoundError:
                chunk = ""
            complete = chunk[: chunk.rfind("\n") + 1]
            offset += len(complete.encode())
            for line in complete.splitlines():
                record = json.loads(line)
                proposed += record["proposed"]
                bar.n = record["step"] + 1
                bar.set_postfix(
                    loss=f"{record['total']:.2f}",
                    proposed=proposed,
                    store=f"{100 * record['store_seconds'] / record['seconds']:.1f}%",
                    refresh=False,
                )
            bar.refresh()
            if stopping:
                break
        bar.close()
