"""Hypothesis state machine: the store against a plain dict model through merges, commits,
rollbacks, past reads, reopening, a reader that refreshes and garbage collection; once with the
default write policy (tiny datasets: every commit rewrites its column chunks) and once with a
policy that appends to the update log and folds it every few commits.

Every fit is made from a small integer ``seed``: its pose/betas/cam_t are filled with the seed,
its loss is ``LOSS[seed]`` (distinct finite values, or NaN/inf). Equal losses then mean equal
fits, so the model needs no tie-break: a row keeps the lowest finite loss proposed.
"""

import shutil
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from store_helpers import BODY

from spinfits.errors import InputError
from spinfits.store import FitStore, Proposals, Source, WritePolicy

N_ROWS = 12
LOSS = [0.5, 0.25, 2.0, 1.5, float("nan"), 0.75, float("inf"), 1.25, 0.125, 3.0]
SEEDS = st.integers(0, len(LOSS) - 1)


def pose_value(seed):
    """The pose values of a seed's proposal: radians a body can have (the store refuses others)."""
    return np.float32(seed) * np.float32(0.1)


def proposals(pairs):
    rows = np.array([r for r, _ in pairs], dtype=np.int64)
    seeds = np.array([s for _, s in pairs], dtype=np.float32)
    m = len(pairs)
    return (
        Proposals(
            rows=rows,
            pose=np.repeat(pose_value(seeds)[:, None], 72, axis=1),
            betas=np.repeat(seeds[:, None], 10, axis=1),
            cam_t=np.repeat(seeds[:, None], 3, axis=1),
            loss=np.array([LOSS[s] for _, s in pairs], dtype=np.float32),
            source=Source.IN_LOOP,
            step=3,
            time=100.0,
        )
        if m
        else Proposals(
            rows=rows,
            pose=np.zeros((0, 72)),
            betas=np.zeros((0, 10)),
            cam_t=np.zeros((0, 3)),
            loss=np.zeros(0),
            time=100.0,
        )
    )


class StoreMachine(RuleBasedStateMachine):
    policy: WritePolicy | None = None

    @initialize()
    def create(self):
        self.dir = Path(tempfile.mkdtemp())
        self.path = self.dir / "s"
        self.store = FitStore.create(self.path, BODY, write_policy=self.policy)
        self.store.create_dataset("d", N_ROWS, dataset_fingerprint="d", chunk_rows=5)
        self.reader = None
        self.committed: dict[int, int] = {}  # row -> seed of the stored fit
        self.working: dict[int, int] = {}
        self.history = [(self.store.tip(), {})]  # (snapshot id, model) along the branch

    def teardown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(pairs=st.lists(st.tuples(st.integers(0, N_ROWS - 1), SEEDS), max_size=8))
    def merge(self, pairs):
        before = dict(self.working)
        for row, seed in pairs:  # the plain rule, one proposal at a time
            loss = LOSS[seed]
            if np.isfinite(loss) and (row not in self.working or loss < LOSS[self.working[row]]):
                self.working[row] = seed
        improved = self.store.merge("d", proposals(pairs))
        assert improved == sum(before.get(r) != s for r, s in self.working.items())

    @rule(message=st.sampled_from(["a", "b"]))
    def commit(self, message):
        version = self.store.commit(message)
        if self.working == self.committed:
            assert version is None
        else:
            assert version.rows_improved == sum(self.committed.get(r) != s for r, s in self.working.items())
            self.committed = dict(self.working)
            self.history.append((version.snapshot_id, dict(self.committed)))
        if self.reader is not None:  # a reader follows every commit, reading only what changed
            self.reader.refresh()
            assert self.reader.snapshot_id == self.store.tip()
            self.check(self.reader.read_all(), self.committed)

    @precondition(lambda self: not self.store.has_pending)  # rollback refuses pending merges
    @rule(data=st.data())
    def rollback(self, data):
        index = data.draw(st.integers(0, len(self.history) - 1))
        snapshot, model = self.history[index]
        self.store.history.rollback(snapshot)
        self.history = self.history[: index + 1]
        self.committed = dict(model)
        self._reset_working()

    @rule()
    def reopen(self):
        self.store = FitStore.open(self.path, body_model=BODY, write_policy=self.policy)
        self._reset_working()

    @rule()
    def refresh_reader(self):
        if self.reader is None:
            self.reader = FitStore.open(self.path).reader("d")
        else:
            self.reader.refresh()
        self.check(self.reader.read_all(), self.committed)

    @precondition(lambda self: len(self.history) > 1)
    @rule(keep=st.integers(1, 3))
    def gc(self, keep):
        branch = [version.snapshot_id for version in self.store.history.log()]  # newest first
        report = self.store.history.gc(keep_last=keep)
        expired = set(report.expired)
        kept = branch[:keep] + [snapshot for snapshot in branch[-1:] if snapshot not in branch[:keep]]
        assert expired == set(branch) - set(kept)  # icechunk keeps the repository's first snapshot
        assert [version.snapshot_id for version in self.store.history.log()] == kept
        self.history = [(snapshot, model) for snapshot, model in self.history if snapshot not in expired]
        for snapshot in expired:
            try:
                self.store.read("d", snapshot)
            except InputError:
                continue
            raise AssertionError(f"expired snapshot {snapshot} still reads")

    @rule()
    def discard(self):
        self.store.discard()
        self._reset_working()

    @rule(data=st.data())
    def read_past_version(self, data):
        snapshot, model = data.draw(st.sampled_from(self.history))
        self.check(self.store.read("d", snapshot), model)

    @invariant()
    def tip_matches_committed_model(self):
        if hasattr(self, "store"):
            self.check(self.store.read("d"), self.committed)

    def _reset_working(self):
        self.working = dict(self.committed)

    @staticmethod
    def check(fits, model):
        for row in range(N_ROWS):
            if row in model:
                seed = model[row]
                assert fits.loss[row] == np.float32(LOSS[seed]) and fits.pose[row, 0] == pose_value(seed)
                assert fits.source[row] == Source.IN_LOOP and fits.step[row] == 3
            else:
                assert np.isinf(fits.loss[row]) and fits.source[row] == Source.NONE


class LogStoreMachine(StoreMachine):
    """Commits append to the update log's ``recent`` level (chunks of 2 records), settle it into
    ``settled`` past 4 records and fold the log into the columns past 8 settled ones."""

    policy = WritePolicy(
        log_chunk=2,
        recent_records=4,
        settled_chunk=2,
        min_log_records=8,
        max_log_fraction=0.0,
        fold_cost_ratio=0.0,
    )


StoreMachine.TestCase.settings = settings(max_examples=12, stateful_step_count=12, deadline=None)
LogStoreMachine.TestCase.settings = settings(max_examples=12, stateful_step_count=12, deadline=None)
TestStoreMachine = StoreMachine.TestCase
TestLogStoreMachine = LogStoreMachine.TestCase
