"""How much a real training run grows the best-fit store per hour (issue 16), measured, not extrapolated.

    python bench/train_store_growth.py [--minutes 10] [--rows 2000] [--work-dir DIR | --keep]
        [--inputs DIR] [--json OUT.json] [--commit-every-s 5] [--replay-rows 100000] [--quick]

``bench/store_growth.py`` extrapolates a long run's growth from synthetic commits; this runs the
real thing. It prepares what ``scripts/demo.sh`` prepares, each step the same ``spinfits``
command in a subprocess: the stand-in body model, a synthetic dataset of ``--rows`` people with
rendered crops, the learned initialiser and ``spinfits precompute``'s static fits into a store
(``WORK/inputs``; ``--inputs DIR`` reuses such a folder: a kept work folder's ``inputs`` or the
demo's ``out/demo``). It copies that store to ``WORK/store`` and runs ``spinfits train`` on it
with the demo's settings (2 CPU workers, small backbone, 112 px, batch 8, SMPLify in the loop)
and ``--steps`` too large to reach, for ``--minutes`` of wall time, then sends the driver SIGINT.
What the trainer does on it: Ray Train's SIGINT handler asks the run's controller to abort, the
driver's wait in ``trainer.fit()`` ends with ``SystemExit(1)``, and ``run_training``'s
``finally`` closes the run's store writer, which commits what it had merged; the driver exits
with status 1 without its summary, its Ray processes stopped. The bench checks that the last
step with proposals was committed and that no process of the run outlived it. Every Ray process
is the run's own (``RAY_ADDRESS=local`` unless set: a private local cluster).

Printed: the store folder's bytes before and after; the commits the run made
(``FitStore.history.log()``), the rows they improved and the steps run; growth per commit and per hour
(over the run's wall time, Ray start-up included, and at the commits' own rate); the write
policy's figures (commits that appended to the update log, settled it, folded it, and the bytes
of each, from the names and mtimes of the store's objects); where the bytes went (chunks,
manifests, snapshots, transaction logs); the run's commits replayed (the rows each improved, with
random values) into a copy of the store it started from (checks the replay against the measured
bytes) and, for one whole update-log cycle (appends, settles, the fold that empties the log), into
a fresh store of the run's size and of each ``--replay-rows`` size: growth per hour of the same
training on a larger dataset, amortised over the cycle as bench/store_growth.py does; then the
store after ``spinfits store gc --keep-run RUN`` (its defaults: commits younger than 7 days are
kept, so it collects only unreachable objects) and after ``--keep-last 1 --keep-run RUN``, what
each gave back, and a check that the tip and the checkpoints' snapshots read the same fits.

Everything it writes goes to ``--work-dir`` (default: a temporary folder, removed at the end
unless ``--keep``). ``--quick`` (about two minutes on 2 busy cores): 200 rows, no learned
initialiser, 45 s of training, checkpoints every 10 steps, a 10000-row replay.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import icechunk
import numpy as np
from store_growth import fill, folder_bytes, new_store, proposals, scattered

from spinfits.store import CHUNK_ROWS, FitStore, Version
from spinfits.training.progress import latest_per_step, read_progress

#: The dataset's name in the store (its npz's stem) and the training run's name.
DATASET, RUN = "synthetic", "growth"
#: Steps the run is given: more than any wall time here reaches; SIGINT stops it.
UNREACHABLE_STEPS = 10_000_000
#: A store object written within this many seconds of a commit's time belongs to that commit.
COMMIT_WINDOW_S = 2.0


@dataclass(frozen=True)
class Inputs:
    """What training needs, prepared as scripts/demo.sh prepares it."""

    model: Path
    dataset: Path
    images: Path
    store: Path

    @classmethod
    def at(cls, folder: Path) -> Inputs:
        return cls(folder / "model", folder / f"{DATASET}.npz", folder / "images", folder / "store")

    def missing(self) -> list[str]:
        return [str(p) for p in (self.model, self.dataset, self.images, self.store) if not p.exists()]


@dataclass(frozen=True)
class Sample:
    """The store folder's size ``bytes`` at ``seconds`` after the training subprocess started."""

    seconds: float
    bytes: int


@dataclass(frozen=True)
class TrainingRun:
    """The training subprocess: wall seconds (start to exit), seconds from SIGINT to exit (None
    if it ended by itself), exit status, the store folder's size over time, when it started (unix
    seconds), the end of its output, whether processes of its session outlived it."""

    wall_s: float
    stop_s: float | None
    returncode: int
    samples: list[Sample]
    started_at: float
    output_tail: str
    leftover_processes: bool


@dataclass(frozen=True)
class CommitFigures:
    """One commit of the run: seconds after the run started, rows it improved, how the update
    log took them (``recent``, ``settle``, ``fold``), bytes it wrote."""

    seconds: float
    rows_improved: int
    written: str
    bytes: int


@dataclass
class Figures:
    """Everything the bench reports (also written with ``--json``): the dataset's rows, the
    settings, the machine's load, the store folder's bytes before and after the run, the run's
    commits, rows improved and steps (rank 0; its summed step seconds), the last step with
    proposals and the last committed, the subprocess's figures, commits by how the update log
    took them (count, and each one's bytes), growth per store folder, the replays, each gc, one
    record per commit and the store's size over the run."""

    rows: int
    minutes: float
    commit_every_s: float
    load_average_before: list[float]
    load_average_after: list[float] = field(default_factory=list)
    bytes_before: int = 0
    bytes_after: int = 0
    commits: int = 0
    rows_improved: int = 0
    steps: int = 0
    step_seconds: float = 0.0
    last_step_proposed: int = -1
    last_step_committed: int = -1
    wall_s: float = 0.0
    stop_s: float | None = None
    returncode: int = 0
    leftover_processes: bool = False
    commit_span_s: float = 0.0
    written: dict[str, int] = field(default_factory=dict)
    bytes_by_written: dict[str, list[int]] = field(default_factory=dict)
    growth_by_folder: dict[str, int] = field(default_factory=dict)
    gc: dict[str, dict[str, int | str]] = field(default_factory=dict)
    per_commit: list[CommitFigures] = field(default_factory=list)
    replay_same: dict[str, object] = field(default_factory=dict)
    replay_cycles: list[dict[str, object]] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)


def bytes_by_folder(path: Path) -> dict[str, int]:
    """Bytes under each of the store's top-level folders (``other``: files at the top)."""
    out: dict[str, int] = {}
    for d, _, files in os.walk(path):
        rel = Path(d).relative_to(path).parts
        kind = rel[0] if rel else "other"
        out[kind] = out.get(kind, 0) + sum(os.path.getsize(Path(d) / f) for f in files)
    return out


def mb(n: float) -> str:
    return f"{n / 1e6:,.2f} MB"


def kb(n: float) -> str:
    return f"{n / 1e3:,.1f} kB"


def private_env() -> dict[str, str]:
    """The subprocesses' environment: ``ray.init()`` starts a private local cluster even when
    another user's ``ray start`` cluster runs on this machine (unless RAY_ADDRESS names one)."""
    env = dict(os.environ)
    env.setdefault("RAY_ADDRESS", "local")
    return env


def spinfits(args: list[str], log: Path) -> str:
    """Run ``spinfits ARGS`` to completion (output to ``log``); its output, or SystemExit."""
    command = [sys.executable, "-m", "spinfits.cli", *args]
    print("$ spinfits " + " ".join(args), flush=True)
    with open(log, "w") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=private_env())
    text = log.read_text()
    if done.returncode != 0:
        raise SystemExit(f"spinfits {args[0]} failed (exit {done.returncode}); its output:\n{text[-3000:]}")
    return text


def prepare_inputs(folder: Path, rows: int, learned: bool, logs: Path) -> Inputs:
    """scripts/demo.sh's steps 1-4: stand-in model, synthetic dataset with rendered crops, the
    learned initialiser (when ``learned``), precompute's static fits."""
    inputs = Inputs.at(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model, data = str(inputs.model), str(inputs.dataset)
    spinfits(["model", "make-standin", model, "--overwrite"], logs / "make_standin.log")
    synthetic = ["data", "make-synthetic", data, "--n", str(rows), "--model-dir", model]
    spinfits([*synthetic, "--images", str(inputs.images)], logs / "make_synthetic.log")
    if learned:
        spinfits(["init", "train-regressor", "--model-dir", model], logs / "train_regressor.log")
    spinfits(
        ["precompute", "--dataset", data, "--store", str(inputs.store), "--model-dir", model]
        + ["--shard-size", "128"],
        logs / "precompute.log",
    )
    return inputs


def train_command(
    inputs: Inputs, store: Path, runs: Path, commit_every_s: float, checkpoint_every: int
) -> list[str]:
    """scripts/demo.sh's step 5 (`spinfits train`), with steps it does not reach."""
    return [
        "train",
        "--dataset", str(inputs.dataset), str(inputs.images),
        "--store", str(store),
        "--model-dir", str(inputs.model),
        "--runs-dir", str(runs),
        "--run", RUN,
        "--workers", "2", "--loader-workers", "1",
        "--steps", str(UNREACHABLE_STEPS),
        "--batch", "8", "--backbone", "small", "--input-res", "112", "--lr", "3e-4",
        "--ignore-gt-smpl", "--images-every", "50",
        "--commit-every", f"{commit_every_s:g}", "--checkpoint-every", str(checkpoint_every),
    ]  # fmt: skip


def train_for(
    command: list[str], store: Path, seconds: float, sample_every_s: float, log: Path, stop_timeout_s: float
) -> TrainingRun:
    """Run ``spinfits COMMAND`` for ``seconds`` of wall time, then SIGINT its driver and wait;
    samples the store folder's size every ``sample_every_s`` seconds meanwhile."""
    print("$ spinfits " + " ".join(command) + f"   (SIGINT after {seconds:.0f} s)", flush=True)
    with open(log, "w") as handle:
        started_at = time.time()
        start = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "spinfits.cli", *command],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=private_env(),
            start_new_session=True,  # a Ctrl-C of the bench reaches the run only through us
        )
        samples = [Sample(0.0, folder_bytes(store))]
        stop_at, stopped = start + seconds, None
        try:
            while process.poll() is None:
                now = time.monotonic()
                if stopped is None and now >= stop_at:
                    process.send_signal(signal.SIGINT)  # Ray Train's graceful abort
                    stopped = now
                elif stopped is not None and now - stopped > stop_timeout_s:
                    print(f"the run did not stop {stop_timeout_s:.0f} s after SIGINT: killing it")
                    process.kill()
                    process.wait()
                    break
                time.sleep(min(sample_every_s, max(stop_at - now, 0.05)) if stopped is None else 0.5)
                samples.append(Sample(time.monotonic() - start, folder_bytes(store)))
        except BaseException:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(stop_timeout_s)
                except subprocess.TimeoutExpired:
                    process.kill()
            raise
        end = time.monotonic()
    leftover = ray_leftovers(process.pid)
    samples.append(Sample(end - start, folder_bytes(store)))
    return TrainingRun(
        wall_s=end - start,
        stop_s=None if stopped is None else end - stopped,
        returncode=process.returncode,
        samples=samples,
        started_at=started_at,
        output_tail=log.read_text()[-2000:],
        leftover_processes=leftover,
    )


def ray_leftovers(group: int, wait_s: float = 30.0) -> bool:
    """Whether processes of the run's session (``group``: the driver's pid, the run's own Ray
    processes with it) outlived the driver by ``wait_s`` seconds; those are then terminated."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.5)
    print(
        f"processes of the run's session {group} still ran {wait_s:.0f} s after its driver: terminating them"
    )
    os.killpg(group, signal.SIGTERM)
    return True


def run_commits(store: FitStore, before: str) -> list[Version]:
    """The commits made after snapshot ``before`` (oldest first)."""
    out = []
    for version in store.history.log():
        if version.snapshot_id == before:
            return out[::-1]
        out.append(version)
    raise SystemExit(f"snapshot {before} is no longer in the store's history")


def bytes_per_commit(path: Path, commits: list[Version], since: float) -> dict[str, int]:
    """Snapshot id -> bytes the commit wrote: its snapshot and transaction log (named by its id)
    and the chunks and manifests written within COMMIT_WINDOW_S of its time (file mtimes;
    commits are seconds apart). Objects written after ``since`` near no commit are ``other``."""
    times = np.array([c.written_at.timestamp() for c in commits])
    ids = {c.snapshot_id for c in commits}
    out = {c.snapshot_id: 0 for c in commits} | {"other": 0}
    for d, _, files in os.walk(path):
        rel = Path(d).relative_to(path).parts
        for name in files:
            stat = (Path(d) / name).stat()
            if rel and rel[0] in ("snapshots", "transactions") and name in ids:
                out[name] += stat.st_size
            elif rel and rel[0] in ("chunks", "manifests") and stat.st_mtime >= since:
                near = int(np.argmin(np.abs(times - stat.st_mtime))) if len(times) else -1
                if near >= 0 and abs(times[near] - stat.st_mtime) <= COMMIT_WINDOW_S:
                    out[commits[near].snapshot_id] += stat.st_size
                else:
                    out["other"] += stat.st_size
    return out


def checked_gc(
    store_path: Path, run_dir: Path, extra: list[str], logs: Path, label: str
) -> dict[str, int | str]:
    """``spinfits store gc STORE --keep-run RUN EXTRA``: sizes before and after, what it printed,
    and a check that the tip and every checkpoint's snapshot read the same fits afterwards."""
    from spinfits.cli.store_gc import checkpoint_snapshots

    store = FitStore.open(str(store_path))
    has_checkpoints = any(run_dir.glob("checkpoint_*/training_state.pt"))
    keep = ["--keep-run", str(run_dir)] if has_checkpoints else []  # a run too short to checkpoint
    pinned = [store.tip(), *(checkpoint_snapshots([run_dir]) if has_checkpoints else [])]
    before_fits = {s: store.read(DATASET, version=s) for s in pinned}
    size_before = folder_bytes(store_path)
    text = spinfits(["store", "gc", str(store_path), *keep, *extra], logs / f"gc_{label}.log")
    store = FitStore.open(str(store_path))
    for snapshot, fits in before_fits.items():
        if not store.read(DATASET, version=snapshot).equals(fits):
            raise SystemExit(f"gc {label}: snapshot {snapshot} reads other fits than before gc")
    return {
        "size_before": size_before,
        "size_after": folder_bytes(store_path),
        "commits_left": len(store.history.log()),
        "checked_snapshots": len(pinned),
        "output": text.strip(),
    }


#: Most commits a cycle replay runs before giving up on seeing a fold.
MAX_CYCLE_COMMITS = 20_000


def replay(
    store: FitStore, dataset: str, rows_per_commit: list[int], commits: int | None = None
) -> dict[str, object]:
    """Replay a run's commits into ``store``: commit ``k`` improves ``rows_per_commit[k % len]``
    scattered rows of ``dataset`` (random values, bench/store_growth.py's helpers), ``commits``
    commits, or with None up to and including the first fold (one whole cycle of the update
    log, when the store's log starts empty). Returns the commits made, the bytes they added to
    the store's folder and how the update log took them."""
    path = Path(store.location.url)
    n_rows = store.dataset(dataset).n_rows
    rng = np.random.default_rng(0)
    before = folder_bytes(path)
    written: Counter[str] = Counter()
    k = 0
    while (k < commits) if commits is not None else (not written["fold"] and k < MAX_CYCLE_COMMITS):
        m = min(rows_per_commit[k % len(rows_per_commit)], n_rows)
        if m:  # a lower loss at every commit: each replayed row improves
            batch = proposals(rng, scattered(rng, n_rows, m), 1.0, k + 1)
            store.merge(dataset, replace(batch, loss=np.full(m, 1.0 / (k + 2), np.float32)))
        version = store.commit(f"replayed commit {k}")
        if version is not None:
            written[version.metadata["written"][dataset]] += 1
        k += 1
    return {"rows": n_rows, "commits": k, "bytes": folder_bytes(path) - before, "written": dict(+written)}


def replays(
    start: Path, rows_per_commit: list[int], sizes: list[int], tmp: Path
) -> tuple[dict[str, object], list[dict[str, object]]]:
    """The run's commits replayed into a copy of the store it started from (the same update-log
    state: checks the replay against the measured bytes), and one whole update-log cycle
    replayed into a fresh store of each size (filled by a precompute that folds, so its log
    starts empty)."""
    shutil.copytree(start, tmp / "start")
    same = replay(FitStore.open(str(tmp / "start")), DATASET, rows_per_commit, len(rows_per_commit))
    cycles = []
    for n_rows in sizes:
        store, _ = new_store(tmp, f"cycle-{n_rows}", n_rows, CHUNK_ROWS)
        fill(store, np.random.default_rng(1), n_rows)
        cycles.append(replay(store, "d", rows_per_commit))
    return same, cycles


def report(figures: Figures, command: list[str]) -> None:
    f = figures
    grown = f.bytes_after - f.bytes_before
    per_commit = grown / max(f.commits, 1)
    commits_per_hour = 3600 * (f.commits - 1) / f.commit_span_s if f.commit_span_s else float("nan")
    print(f"\n== a real training run's store growth ({f.rows}-row synthetic dataset, stand-in model)")
    print(
        "machine: 2 CPU cores shared with other jobs; load average (1, 5, 15 min) before "
        f"{f.load_average_before}, after {f.load_average_after}"
    )
    print("command: spinfits " + " ".join(command))
    stop = (
        "ended by itself"
        if f.stop_s is None
        else f"SIGINT after {f.minutes:g} min, exited {f.stop_s:.1f} s later"
    )
    print(
        f"run: {f.wall_s:.1f} s wall (Ray start-up and stop included), {stop}, exit status "
        f"{f.returncode}; processes outliving it: {'yes (terminated)' if f.leftover_processes else 'none'}"
    )
    lost = "none" if f.last_step_committed >= f.last_step_proposed else "SOME (last proposals not committed)"
    print(
        f"steps run: {f.steps} ({f.steps / max(f.step_seconds, 1e-9):.2f} steps/s over rank 0's "
        f"{f.step_seconds:.0f} s of steps); last step with proposals {f.last_step_proposed}, last "
        f"step committed {f.last_step_committed}: proposals lost at the stop: {lost}"
    )
    print(
        f"commits by the run: {f.commits} over {f.commit_span_s:.0f} s (one every "
        f"{f.commit_span_s / max(f.commits - 1, 1):.1f} s; --commit-every {f.commit_every_s:g} s); "
        f"rows improved: {f.rows_improved} ({f.rows_improved / max(f.commits, 1):.1f} per commit)"
    )
    gaps = np.diff([c.seconds for c in f.per_commit])
    if len(gaps):
        print(
            f"   seconds between commits: median {np.median(gaps):.1f}, min {gaps.min():.1f}, max "
            f"{gaps.max():.1f}; {int((gaps < 0.8 * f.commit_every_s).sum())} of {len(gaps)} under "
            f"0.8 x --commit-every"
        )
    print(f"store folder: {mb(f.bytes_before)} before, {mb(f.bytes_after)} after: grew {mb(grown)}")
    print(
        f"growth: {kb(per_commit)} per commit ({grown / max(f.rows_improved, 1):,.0f} B per row "
        f"improved); per hour: {mb(grown * 3600 / f.wall_s)} over the wall time, "
        f"{mb(per_commit * commits_per_hour)} at the commits' own rate ({commits_per_hour:.0f} commits/h)"
    )
    print("where the bytes went: " + ", ".join(f"{k} {kb(v)}" for k, v in f.growth_by_folder.items()))
    parts = []
    for kind in ("recent", "settle", "fold"):
        sizes = f.bytes_by_written.get(kind, [])
        if f.written.get(kind):
            parts.append(
                f"{f.written[kind]} {kind} (median {kb(float(np.median(sizes)))}, total {kb(sum(sizes))})"
            )
    print("write policy (update log): " + ("; ".join(parts) or "no commits"))
    unattributed = f.bytes_by_written.get("other", [0])[0]
    print(f"   chunks and manifests written near no commit's time: {kb(unattributed)}")

    def policy(r: dict) -> str:
        return ", ".join(f"{r['written'].get(kind, 0)} {kind}" for kind in ("recent", "settle", "fold"))

    same = f.replay_same
    print(
        f"replay of the run's {same['commits']} commits (the rows each improved, random values) into "
        f"a copy of the store it started from: {mb(same['bytes'])} (the run: {mb(grown)}); {policy(same)}"
    )
    for r in f.replay_cycles:
        per_commit_r = r["bytes"] / r["commits"]
        folded = "" if r["written"].get("fold") else f" (no fold within {r['commits']} commits)"
        print(
            f"one whole update-log cycle of such commits on a fresh {r['rows']}-row store: "
            f"{r['commits']} commits ({policy(r)}){folded}, {mb(r['bytes'])}: {kb(per_commit_r)} per "
            f"commit, {mb(per_commit_r * commits_per_hour)} per hour at {commits_per_hour:.0f} commits/h"
        )
    for label, gc in f.gc.items():
        freed = int(gc["size_before"]) - int(gc["size_after"])
        print(
            f"after spinfits store gc {label}: {mb(int(gc['size_before']))} -> "
            f"{mb(int(gc['size_after']))} (gave back {mb(freed)}; {gc['commits_left']} commits left "
            f"on main; the tip and {int(gc['checked_snapshots']) - 1} checkpoint snapshots read the "
            "same fits as before)"
        )
        for line in str(gc["output"]).splitlines():
            if line.startswith(("expired", "freed", "size")):
                print("   " + line)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--minutes", type=float, default=10.0, help="training wall time (default %(default)s)"
    )
    parser.add_argument(
        "--rows", type=int, default=2000, help="synthetic people (default %(default)s, the demo's)"
    )
    parser.add_argument("--work-dir", type=Path, help="where everything goes (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the temp work folder (its path is printed)")
    parser.add_argument(
        "--inputs",
        type=Path,
        help="reuse prepared inputs: a folder with model/, synthetic.npz, images/, store/",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--replay-rows",
        default="100000",
        help="comma-separated dataset sizes, besides the run's, on which one whole update-log cycle "
        "of the run's commits is replayed (0: none; default %(default)s, bench/store_growth.py's size)",
    )
    parser.add_argument("--commit-every-s", type=float, default=5.0, help="the writer's commit period")
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=50,
        help="training steps between checkpoints (train's default)",
    )
    parser.add_argument(
        "--sample-every-s", type=float, default=10.0, help="store size samples while training"
    )
    parser.add_argument(
        "--stop-timeout-s", type=float, default=180.0, help="wait after SIGINT before killing"
    )
    parser.add_argument(
        "--no-learned-init", action="store_true", help="precompute without the learned initialiser"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 200 rows, no initialiser, 45 s, checkpoints every 10 steps",
    )
    args = parser.parse_args()
    args.replay_rows = [int(n) for n in args.replay_rows.split(",")]
    if args.quick:
        args.rows, args.minutes, args.no_learned_init, args.checkpoint_every = 200, 0.75, True, 10
        args.replay_rows = [10_000]
    if args.work_dir is not None and args.work_dir.exists() and any(args.work_dir.iterdir()):
        raise SystemExit(f"--work-dir {args.work_dir} is not empty: give a new or empty folder")
    icechunk.set_logs_filter("error")
    temp = None
    if args.work_dir is None:
        temp = Path(tempfile.mkdtemp(prefix="spinfits-train-growth-"))
    work = (args.work_dir or temp).resolve()
    print(f"work folder: {work}{' (kept)' if args.keep or temp is None else ''}")
    try:
        run(args, work)
    finally:
        if temp is not None and not args.keep:
            shutil.rmtree(temp, ignore_errors=True)


def run(args: argparse.Namespace, work: Path) -> None:
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    if args.inputs is not None:
        inputs = Inputs.at(args.inputs.resolve())
        if inputs.missing():
            raise SystemExit(f"--inputs {args.inputs}: missing {', '.join(inputs.missing())}")
    else:
        inputs = prepare_inputs(work / "inputs", args.rows, not args.no_learned_init, logs)
    store_path, runs = work / "store", work / "runs"
    shutil.copytree(inputs.store, store_path)  # the inputs' static fits stay as they are
    before_tip = FitStore.open(str(store_path)).tip()
    figures = Figures(
        rows=FitStore.open(str(store_path)).dataset(DATASET).n_rows,
        minutes=args.minutes,
        commit_every_s=args.commit_every_s,
        load_average_before=[round(x, 2) for x in os.getloadavg()],
    )
    folders_before = bytes_by_folder(store_path)
    command = train_command(inputs, store_path, runs, args.commit_every_s, args.checkpoint_every)
    training = train_for(
        command, store_path, args.minutes * 60, args.sample_every_s, logs / "train.log", args.stop_timeout_s
    )
    figures.load_average_after = [round(x, 2) for x in os.getloadavg()]
    print(training.output_tail.replace("\r", "\n").strip().splitlines()[-1])
    store = FitStore.open(str(store_path))
    commits = run_commits(store, before_tip)
    if not commits:
        raise SystemExit(f"the run made no commit; its output is in {logs / 'train.log'}")
    folders_after = bytes_by_folder(store_path)
    figures.bytes_before = training.samples[0].bytes
    figures.bytes_after = folder_bytes(store_path)
    figures.samples = training.samples
    figures.wall_s, figures.stop_s, figures.returncode = training.wall_s, training.stop_s, training.returncode
    figures.leftover_processes = training.leftover_processes
    figures.commits = len(commits)
    figures.rows_improved = sum(c.rows_improved or 0 for c in commits)
    figures.commit_span_s = (commits[-1].written_at - commits[0].written_at).total_seconds()
    figures.growth_by_folder = {
        k: folders_after.get(k, 0) - folders_before.get(k, 0) for k in sorted(folders_after | folders_before)
    }
    progress = runs / RUN / "progress"
    rank0 = latest_per_step(read_progress(progress / "rank0.jsonl"))
    figures.steps = len(rank0)
    figures.step_seconds = sum(record["seconds"] for record in rank0)
    proposing = [r["step"] for p in progress.glob("rank*.jsonl") for r in read_progress(p) if r["proposed"]]
    figures.last_step_proposed = max(proposing, default=-1)
    figures.last_step_committed = max((c.metadata.get("steps", [0, -1])[1] for c in commits), default=-1)
    how = [c.metadata.get("written", {}).get(DATASET, "none") for c in commits]
    figures.written = dict(Counter(how))
    per_commit = bytes_per_commit(store_path, commits, training.started_at)
    for commit, kind in zip(commits, how):
        figures.bytes_by_written.setdefault(kind, []).append(per_commit[commit.snapshot_id])
        figures.per_commit.append(
            CommitFigures(
                round(commit.written_at.timestamp() - training.started_at, 3),
                commit.rows_improved or 0,
                kind,
                per_commit[commit.snapshot_id],
            )
        )
    figures.bytes_by_written["other"] = [per_commit["other"]]
    figures.gc["(defaults) --keep-run RUN"] = checked_gc(store_path, runs / RUN, [], logs, "defaults")
    figures.gc["--keep-last 1 --keep-run RUN"] = checked_gc(
        store_path, runs / RUN, ["--keep-last", "1"], logs, "keep_last_1"
    )
    rows_per_commit = [c.rows_improved for c in figures.per_commit]
    sizes = [figures.rows, *(n for n in args.replay_rows if n)]
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        figures.replay_same, figures.replay_cycles = replays(inputs.store, rows_per_commit, sizes, Path(tmp))
    report(figures, command)
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(figures), indent=1, default=str))
        print(f"figures: {args.json}")


if __name__ == "__main__":
    main()
