"""What a commit writes for one dataset: the rows it changed, once, in a writable session.

``FitStore`` buffers merges in memory (its working copy of each dataset: every row's loss and the
rows changed since the commit it started from, ``WorkingCopy``) and calls ``write_dataset`` once
per dataset at commit: the changed rows are appended to the ``recent`` level of the dataset's update log, or ``recent``
is settled with them into the ``settled`` level, or the whole log is folded with them into the
column chunks they fall in, as ``WritePolicy.plan`` decides (failed rows are written chunk by
chunk by ``spinfits.store.failures.write_failures``). Nothing is written between commits, so each
chunk is written at most once per commit however many merges it saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from spinfits.store.layout import mark_format, open_columns
from spinfits.store.update_log import LEVELS, UpdateLog, append_records, clear_level
from spinfits.store.working_copy import WorkingCopy
from spinfits.store.write_policy import WritePolicy

_NO_ROWS = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class DatasetWrite:
    """How a commit wrote a dataset's changed rows: ``how`` is ``"recent"``, ``"settle"`` or
    ``"fold"`` (see ``WritePolicy``); ``log`` the dataset's update log afterwards; ``chunks`` the
    column chunks rewritten (0 unless folded)."""

    how: str
    log: UpdateLog
    chunks: int


def write_dataset(store: Any, working: WorkingCopy, policy: WritePolicy) -> DatasetWrite:
    """Write the rows merged into ``working`` (the dataset's working copy; at least one row)
    into the dataset's group of ``store`` (a writable session's)."""
    info, log, changed = working.info, working.log, working.changed_rows
    how = policy.plan(info.n_rows, info.chunk_rows, log, changed)
    if how == "fold":
        columns = open_columns(store, info.name, mode="r+")
        chunks = 0
        for start, block in working.blocks(np.union1d(log.all_rows, changed).astype(np.int64)):
            for name, values in block.columns().items():
                columns[name][start : start + len(block)] = values
            chunks += 1
        for level in LEVELS:
            log = log.with_level(level, clear_level(store, info.name, level, log.states[level]), _NO_ROWS)
        return DatasetWrite(how, log, chunks)
    if not any(state.exists for state in log.states.values()):
        mark_format(store)
    if how == "recent":
        state = append_records(
            store,
            info.name,
            "recent",
            changed,
            working.values(changed),
            log.states["recent"],
            policy.log_chunk,
        )
        return DatasetWrite(how, log.with_level("recent", state, np.union1d(log.rows["recent"], changed)), 0)
    moving = np.union1d(log.rows["recent"], changed).astype(np.int64)  # latest values: the working copy's
    state = append_records(
        store,
        info.name,
        "settled",
        moving,
        working.values(moving),
        log.states["settled"],
        policy.settled_chunk,
    )
    log = log.with_level("settled", state, np.union1d(log.rows["settled"], moving))
    log = log.with_level("recent", clear_level(store, info.name, "recent", log.states["recent"]), _NO_ROWS)
    return DatasetWrite(how, log, 0)
