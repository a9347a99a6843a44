"""Where `lanenet perturb` acts: the local process testnet, or a docker compose project.

Each target applies an action to one node and undoes it (``revert``) when its time is up:

    action      apply                         revert (after --for)
    kill        SIGKILL                       start the node again
    pause       SIGSTOP / docker pause        SIGCONT / docker unpause
    restart     SIGTERM, wait, start          -
    disconnect  cut the node off the network  reconnect it

Local disconnect: the nodes share 127.0.0.1, so no interface can go down. The node's
process moves into a cgroup of its own, and two iptables rules drop what it sends (cgroup
match on OUTPUT) and what reaches its ports (INPUT): peers and clients alike stop hearing
it, as with ``docker network disconnect``. This needs root and iptables; without them the
action fails with a message saying so.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from node.runtime.config import load_node_config
from node.tools import testnet
from node.types.errors import ConfigError

ACTIONS = ("kill", "pause", "restart", "disconnect")
CRASHING = ("kill", "restart")  # the node loses its memory (mempool)
STOP_GRACE_S = 10.0
CGROUP2_ROOTS = (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))
_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class NodeInfo:
    name: str
    index: int
    jsonrpc: str


class Target(Protocol):
    def nodes(self) -> list[NodeInfo]: ...

    def apply(self, action: str, node: str) -> None: ...

    def revert(self, action: str, node: str) -> None: ...


# ------------------------------------------------------------------------------ local


class LocalTarget:
    """The testnet of ``lanenet testnet up`` in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._dirs = {d.name: d for d in testnet.node_dirs(directory)}
        self._cut: dict[str, _Cut] = {}

    def nodes(self) -> list[NodeInfo]:
        out = []
        for node_dir in self._dirs.values():
            cfg = load_node_config(node_dir / "config.toml")
            url = f"http://{_client_host(cfg.listen_host)}:{cfg.jsonrpc_port}"
            out.append(NodeInfo(cfg.name, cfg.index, url))
        return sorted(out, key=lambda n: n.index)

    def _dir(self, node: str) -> Path:
        try:
            return self._dirs[node]
        except KeyError:
            names = ", ".join(self._dirs)
            raise ConfigError(f"no node {node!r} in {self.directory} (nodes: {names})") from None

    def _running_pid(self, node: str) -> int:
        pid = testnet._pid(self._dir(node))
        if pid is None:
            raise ConfigError(f"{node} is not running (start it with `lanenet testnet up`)")
        return pid

    def apply(self, action: str, node: str) -> None:
        if action == "kill":
            pid = self._running_pid(node)
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, STOP_GRACE_S)
        elif action == "pause":
            os.kill(self._running_pid(node), signal.SIGSTOP)
        elif action == "restart":
            pid = self._running_pid(node)
            os.kill(pid, signal.SIGTERM)
            if not _wait_gone(pid, STOP_GRACE_S):
                os.kill(pid, signal.SIGKILL)
                _wait_gone(pid, STOP_GRACE_S)
            testnet.up(self.directory)
        elif action == "disconnect":
            if node in self._cut:
                raise ConfigError(f"{node} is already disconnected")
            cfg = load_node_config(self._dir(node) / "config.toml")
            ports = [cfg.grpc_port, cfg.client_port, cfg.jsonrpc_port, cfg.metrics_port]
            ports += [cfg.p2p_port] if cfg.p2p_enabled else []
            self._cut[node] = _Cut.make(node, self._running_pid(node), ports)
        else:
            raise ConfigError(f"unknown action {action!r} (one of {', '.join(ACTIONS)})")

    def revert(self, action: str, node: str) -> None:
        if action == "kill":
            # `testnet up` starts every node that is not running (this one, and any other
            # stopped node): the same launch as `lanenet testnet up`
            testnet.up(self.directory)
        elif action == "pause":
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._running_pid(node), signal.SIGCONT)
        elif action == "disconnect":
            cut = self._cut.pop(node, None)
            if cut is not None:
                cut.undo()

    def close(self) -> None:
        """Undo what must not outlive the tool: reconnect every node still cut off."""
        for node in list(self._cut):
            self.revert("disconnect", node)


def _client_host(listen_host: str) -> str:
    return "127.0.0.1" if listen_host in ("0.0.0.0", "") else listen_host


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while testnet._alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL_S)
    return True


@dataclass
class _Cut:
    """A local node cut off the network: its cgroup, and the iptables rules to delete."""

    cgroup: Path
    pid: int
    home: Path
    rules: list[list[str]]

    @staticmethod
    def make(node: str, pid: int, ports: list[int]) -> _Cut:
        iptables = shutil.which("iptables")
        if os.geteuid() != 0 or iptables is None:
            raise ConfigError(
                "disconnect of a local node needs root and iptables (it drops the node's "
                "traffic by cgroup and port); use --target compose, or pause to stop a node"
            )
        root = next((r for r in CGROUP2_ROOTS if (r / "cgroup.procs").exists() and
                     (r / "cgroup.threads").exists()), None)  # fmt: skip
        if root is None:
            raise ConfigError("disconnect of a local node needs a cgroup v2 hierarchy")
        home = _cgroup_of(pid, root)
        cgroup = root / f"lanenet-perturb-{node}-{pid}"
        cgroup.mkdir(exist_ok=True)
        (cgroup / "cgroup.procs").write_text(str(pid))
        relative = str(cgroup.relative_to(root))
        dports = ",".join(str(p) for p in ports)
        rules = [
            ["OUTPUT", "-m", "cgroup", "--path", relative, "-j", "DROP"],
            ["INPUT", "-p", "tcp", "-m", "multiport", "--dports", dports, "-j", "DROP"],
        ]
        cut = _Cut(cgroup, pid, home, [])
        try:
            for rule in rules:
                _iptables(iptables, "-I", rule)
                cut.rules.append(rule)
        except ConfigError:
            cut.undo()
            raise
        return cut

    def undo(self) -> None:
        iptables = shutil.which("iptables") or "iptables"
        for rule in self.rules:
            with contextlib.suppress(ConfigError):
                _iptables(iptables, "-D", rule)
        self.rules = []
        with contextlib.suppress(OSError):
            (self.home / "cgroup.procs").write_text(str(self.pid))
        with contextlib.suppress(OSError):
            self.cgroup.rmdir()


def _cgroup_of(pid: int, root: Path) -> Path:
    """The cgroup v2 directory ``pid`` is in now (its line ``0::/path``)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return root / line[3:].lstrip("/")
    return root


def _iptables(binary: str, op: str, rule: list[str]) -> None:
    done = subprocess.run(
        [binary, "-w", op, *rule], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise ConfigError(f"iptables {op} {' '.join(rule)}: {done.stderr.strip()}")


# ------------------------------------------------------------------------------ compose


def compose_project_name(explicit: str | None, cwd: Path) -> str:
    """--project, else COMPOSE_PROJECT_NAME, else the directory's name as compose makes it."""
    name = explicit or os.environ.get("COMPOSE_PROJECT_NAME") or cwd.resolve().name
    return re.sub(r"[^-_a-z0-9]", "", name.lower())


class ComposeTarget:
    """The containers of a compose project, by service name, through the docker SDK."""

    def __init__(self, project: str, rpc_port: int = 8545, client: Any = None) -> None:
        if client is None:
            import docker

            try:
                client = docker.from_env()
                client.ping()
            except docker.errors.DockerException as exc:
                raise ConfigError(f"cannot reach the docker engine: {exc}") from None
        self.client = client
        self.project = project
        self.rpc_port = rpc_port
        self._links: dict[str, list[tuple[Any, list[str]]]] = {}

    def _containers(self, service: str | None = None) -> list[Any]:
        labels = [f"com.docker.compose.project={self.project}"]
        if service is not None:
            labels.append(f"com.docker.compose.service={service}")
        found: list[Any] = self.client.containers.list(all=True, filters={"label": labels})
        return found

    def _container(self, node: str) -> Any:
        found = self._containers(node)
        if not found:
            services = sorted(
                {c.labels.get("com.docker.compose.service", "?") for c in self._containers()}
            )
            raise ConfigError(
                f"no container for service {node!r} in compose project {self.project!r} "
                f"(services: {', '.join(services) or 'none; is the project up?'})"
            )
        return found[0]

    def nodes(self) -> list[NodeInfo]:
        """Every container of the project that publishes the JSON-RPC port."""
        out = []
        for c in self._containers():
            ports = c.attrs.get("NetworkSettings", {}).get("Ports") or {}
            bindings = ports.get(f"{self.rpc_port}/tcp") or []
            if not bindings:
                continue
            host = bindings[0].get("HostIp") or "127.0.0.1"
            host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            service = c.labels.get("com.docker.compose.service", c.name)
            out.append(NodeInfo(service, 0, f"http://{host}:{bindings[0]['HostPort']}"))
        out.sort(key=lambda n: (len(n.name), n.name))
        return [NodeInfo(n.name, i, n.jsonrpc) for i, n in enumerate(out)]

    def apply(self, action: str, node: str) -> None:
        container = self._container(node)
        if action == "kill":
            container.kill()
        elif action == "pause":
            container.pause()
        elif action == "restart":
            container.restart(timeout=int(STOP_GRACE_S))
        elif action == "disconnect":
            self._disconnect(node, container)
        else:
            raise ConfigError(f"unknown action {action!r} (one of {', '.join(ACTIONS)})")

    def revert(self, action: str, node: str) -> None:
        container = self._container(node)
        if action == "kill":
            container.start()
        elif action == "pause":
            container.unpause()
        elif action == "disconnect":
            for network, aliases in self._links.pop(node, []):
                network.connect(container, aliases=aliases or None)

    def _disconnect(self, node: str, container: Any) -> None:
        if node in self._links:
            raise ConfigError(f"{node} is already disconnected")
        links = []
        short = container.id[:12]
        networks = container.attrs.get("NetworkSettings", {}).get("Networks") or {}
        for name, settings in networks.items():
            aliases = [a for a in (settings.get("Aliases") or []) if a not in (short, container.id)]
            network = self.client.networks.get(name)
            network.disconnect(container)
            links.append((network, aliases))
        if not links:
            raise ConfigError(f"{node} is on no network")
        self._links[node] = links

    def close(self) -> None:
        for node in list(self._links):
            self.revert("disconnect", node)
