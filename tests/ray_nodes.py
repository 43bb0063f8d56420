"""Ray nodes on loopback for tests: a head and more nodes joining it, each started with ``ray start``
in its own temp dir, and stopped (or killed mid-run) by killing only that node's processes.

``ray stop`` kills every Ray process of the machine, other people's clusters included; a node here
is instead the set of processes whose command line names its temp dir (its raylet, agents, log
monitor and, on the head, the GCS and the dashboard) with all their descendants (the worker
processes, whose command line Ray replaces with ``ray::...``). Every port is picked free, and the
cluster's address file (``ray_current_cluster``) is written in the node's own temp dir, so a
``ray.init()`` elsewhere on the machine never finds this cluster.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

#: Environment of every node: no token authentication (loopback only), workers at normal priority
#: (Ray's niceness 15 starves them on a busy machine), a dead node noticed within a few seconds.
NODE_ENVIRONMENT = {
    "RAY_AUTH_MODE": "disabled",
    "RAY_worker_niceness": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}
#: Per-node object store: small, several nodes share this machine's /dev/shm.
OBJECT_STORE_BYTES = 150 * 1024 * 1024


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class RayNode:
    """One node: ``name`` (also a custom resource of 1 on it, ``<name>_node``), its temp dir, the
    CPUs it offers, and whether it is the head."""

    name: str
    temp_dir: Path
    num_cpus: int
    head: bool

    @property
    def resource(self) -> str:
        """The custom resource only this node has: ``{node.resource: 0.001}`` pins work to it."""
        return f"{self.name}_node"


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def is_alive(pid: int) -> bool:
    """Running (a zombie, killed but not yet reaped, counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class LocalRayCluster:
    """Ray nodes on 127.0.0.1, all started (and stopped) by the test.

    ``start_head`` first, then ``add_node`` for each other node; ``kill(node)`` SIGKILLs one
    node's processes (a machine lost mid-run) and waits until they are gone; ``stop`` kills every
    node and removes their temp dirs. ``address`` is the GCS address for ``RAY_ADDRESS``,
    ``dashboard`` the job API's URL for ``ray job submit --address``; ``env`` is the environment of
    the nodes and of drivers run by the test.
    """

    def __init__(self, extra_env: dict[str, str] | None = None) -> None:
        bin_dir = Path(sys.executable).parent
        self.ray = shutil.which("ray", path=str(bin_dir))
        if self.ray is None:
            raise RuntimeError(f"the ray command is not installed in {bin_dir}")
        self.env = dict(os.environ, **NODE_ENVIRONMENT, **(extra_env or {}))
        self.env["PATH"] = f"{bin_dir}:{os.environ['PATH']}"
        self.env.pop("RAY_ADDRESS", None)
        self.nodes: list[RayNode] = []
        self.address: str | None = None
        self.dashboard: str | None = None

    def start_head(self, num_cpus: int, name: str = "head") -> RayNode:
        port, dashboard_port = free_port(), free_port()
        node = self._start(
            name,
            num_cpus,
            head=True,
            extra=[
                "--head",
                f"--port={port}",
                "--include-dashboard=true",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={dashboard_port}",
                f"--ray-client-server-port={free_port()}",
            ],
        )
        self.address = f"127.0.0.1:{port}"
        self.dashboard = f"http://127.0.0.1:{dashboard_port}"
        return node

    def add_node(self, name: str, num_cpus: int) -> RayNode:
        if self.address is None:
            raise RuntimeError("start the head first")
        return self._start(name, num_cpus, head=False, extra=[f"--address={self.address}"])

    def _start(self, name: str, num_cpus: int, head: bool, extra: list[str]) -> RayNode:
        temp_dir = Path(tempfile.mkdtemp(prefix=f"sf-ray-{name}-"))  # short: Ray's socket paths
        node = RayNode(name, temp_dir, num_cpus, head)
        command = [
            self.ray,
            "start",
            *extra,
            "--node-ip-address=127.0.0.1",
            f"--temp-dir={temp_dir}",
            f"--num-cpus={num_cpus}",
            f'--resources={{"{node.resource}": 1}}',
            f"--object-store-memory={OBJECT_STORE_BYTES}",
            f"--node-manager-port={free_port()}",
            f"--object-manager-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            "--disable-usage-stats",
        ]
        self.nodes.append(node)  # before starting: a half-started node is stopped too
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            raise RuntimeError(
                f"ray start of node {name} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
        return node

    def pids(self, node: RayNode) -> list[int]:
        """The node's processes: those naming its temp dir, and their descendants."""
        parents = _parents()
        mine = {pid for pid in parents if str(node.temp_dir) in _command_line(pid)}
        grown = True
        while grown:
            children = {pid for pid, parent in parents.items() if parent in mine} - mine
            mine |= children
            grown = bool(children)
        mine.discard(os.getpid())
        return sorted(pid for pid in mine if is_alive(pid))

    def live_nodes(self) -> list[RayNode]:
        """The nodes started and not killed (whose processes still run)."""
        return [node for node in self.nodes if self.pids(node)]

    def titles(self, node: RayNode) -> set[str]:
        """What the node's Ray processes are doing: ``ray::FitterActor.fit_shard`` while a worker
        runs that task, ``ray::FitterActor`` while the actor is idle, ``ray::IDLE``, ..."""
        return {title for pid in self.pids(node) if (title := _command_line(pid).strip()).startswith("ray::")}

    def processes_titled(self, node: RayNode, title: str) -> list[int]:
        """The node's processes whose command line starts with ``title`` (e.g. ``ray::FitterActor``)."""
        return [pid for pid in self.pids(node) if _command_line(pid).startswith(title)]

    def kill(self, node: RayNode, timeout: float = 30.0) -> list[int]:
        """SIGKILL every process of ``node`` (as a machine that is lost) and wait until they are
        gone; returns their pids."""
        killed: set[int] = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = self.pids(node)  # again: a dying raylet may still have spawned a worker
            if not pids:
                return sorted(killed)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed.update(pids)
            time.sleep(0.2)
        raise RuntimeError(f"processes of node {node.name} still alive after SIGKILL: {self.pids(node)}")

    def stop(self) -> None:
        """Kill every node (the head last) and remove their temp dirs."""
        for node in sorted(self.nodes, key=lambda n: n.head):
            try:
                self.kill(node)
            finally:
                shutil.rmtree(node.temp_dir, ignore_errors=True)
        self.nodes = []
