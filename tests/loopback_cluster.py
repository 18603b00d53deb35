"""A real multi-node Ray cluster on this machine, started with Ray's own `ray start`.

Every node gets its own ports and its own temp folder (nodes of one machine sharing a
session folder delete each other's runtime-env files), token authentication is off on
all of them and their clients alike, and the head notices a lost node within seconds.
Nodes are stopped by their own process groups: never `ray stop`, which would stop
every Ray on the machine.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
ENV = {
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    # a killed node refuses the head's health checks at once and is declared dead after 5 of
    # them (~5 s, not Ray's default ~30 s); a live node on a loaded machine has 5 s to answer
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "5000",
    "RAY_health_check_failure_threshold": "5",
}


_TAKEN: set[int] = set()


def free_port() -> int:
    """A port free now and not handed out before by this process (Ray binds it a bit later)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _TAKEN:
            _TAKEN.add(port)
            return port


def client_env() -> dict:
    env = dict(os.environ, **ENV)
    env.pop("RAY_ADDRESS", None)
    return env


class LoopbackCluster:
    def __init__(self) -> None:
        self.port = free_port()
        self.dashboard_port = free_port()
        self.nodes: dict[str, tuple[subprocess.Popen, str]] = {}

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def _start(self, name: str, args: list[str], resources: dict) -> None:
        temp = tempfile.mkdtemp(prefix=f"ah{name[:2]}", dir="/tmp")  # short: Ray's socket paths
        ports = ["--node-manager-port", "--object-manager-port", "--metrics-export-port",
                 "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--runtime-env-agent-port"]
        command = [str(BIN / "ray"), "start", "--block", "--node-ip-address", "127.0.0.1", "--temp-dir", temp,
                   "--num-cpus", str(resources.pop("CPU", 1)), "--resources", json.dumps(resources)]
        for option in ports:
            command += [option, str(free_port())]
        log = open(os.path.join(temp, f"{name}.log"), "w")
        process = subprocess.Popen(command + args, env=client_env(), stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.nodes[name] = (process, temp)

    def start_head(self, cpus: int = 1) -> None:
        self._start("head", ["--head", "--port", str(self.port), "--dashboard-port", str(self.dashboard_port),
                             "--dashboard-host", "127.0.0.1", "--include-dashboard", "true",
                             "--ray-client-server-port", str(free_port())], {"CPU": cpus})

    def add_worker(self, name: str, cpus: int = 1) -> None:
        self._start(name, ["--address", self.address], {"CPU": cpus, name: 1})

    def all_nodes(self) -> list:
        """Every node the cluster has had (dead ones included), as Ray's state API lists them."""
        from ray.util.state import list_nodes

        return list_nodes(address=self.dashboard, limit=1000, raise_on_missing_output=False)

    def alive_nodes(self) -> list:
        return [n for n in self.all_nodes() if n.state == "ALIVE"]

    def describe(self) -> str:
        """Each node's state as the head sees it and whether its `ray start` still runs (for failures)."""
        states = {self.node_ids().get(n.node_id, "?"): n.state for n in self.all_nodes()}
        return ", ".join(f"{name}: {states.get(name, 'unknown')}, ray start "
                         f"{'running' if process.poll() is None else f'exited {process.returncode}'}"
                         for name, (process, _) in self.nodes.items())

    def wait_for_nodes(self, count: int, timeout: float = 90.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            for name, (process, temp) in self.nodes.items():
                if process.poll() is not None:
                    log = Path(temp, f"{name}.log").read_text()[-2000:]
                    raise RuntimeError(f"ray node {name} exited ({process.returncode}):\n{log}")
            try:
                if len(self.alive_nodes()) == count:
                    return
            except Exception:  # the dashboard is not up yet
                pass
            time.sleep(1.0)
        raise TimeoutError(f"the loopback cluster did not reach {count} nodes in {timeout:.0f} s")

    def node_ids(self) -> dict[str, str]:
        """Ray node id -> our node name (by the custom resource each worker carries), lost nodes included."""
        return {
            node.node_id: "head" if node.is_head_node else next((n for n in self.nodes if n in (node.resources_total or {})), "?")
            for node in self.all_nodes()
        }

    def actor_nodes(self) -> dict[int, str]:
        """pid -> Ray node id of every actor the cluster has run (dead ones included)."""
        from ray.util.state import list_actors

        actors = list_actors(address=self.dashboard, detail=True, limit=10000, raise_on_missing_output=False)
        # pids are reused on a busy machine: an actor of a later job (ids grow) wins over an old one
        return {a.pid: a.node_id for a in sorted(actors, key=lambda a: a.job_id)}

    def kill(self, name: str) -> None:
        """Lose a node the hard way: SIGKILL all its processes at once (raylet, agents and the
        workers running its trials, which are the raylet's children in their own sessions)."""
        process, _ = self.nodes[name]
        for pid in [process.pid, *_descendants(process.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait()

    def stop(self) -> None:
        """SIGTERM each node's `ray start --block` (it drains its node), then kill what is left."""
        below = [(pid, _start_time(pid)) for process, _ in self.nodes.values() for pid in _descendants(process.pid)]
        for process, _ in self.nodes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.time() + 20
        for process, _ in self.nodes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass
        for process, _ in self.nodes.values():
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
        for pid, started in below:  # a pid whose start time changed is someone else's now
            if _start_time(pid) == started:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for pid in [pid for _, temp in self.nodes.values() for pid in _pids_mentioning(temp)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (None when it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _descendants(root: int) -> list[int]:
    """All processes below `root` in the process tree (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _pids_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids
