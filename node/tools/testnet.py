"""`lanenet testnet generate|up|down|status`: a local multi-process testnet on loopback.

generate writes, under DIR: genesis.json, accounts.json (dev accounts with private keys, like
anvil's), and nodeN/{config.toml, validator_key.json}. By default every node listens on one
host with its own ports (base + index); for containers, where each node has its own network
namespace, a ``Layout`` gives every node the base ports (``same_ports``), a bind address
(``listen_host``, e.g. 0.0.0.0), a per-node peer host (``host_template``, e.g. "node{i}", a
DNS name that libp2p dials as /dns4/) and absolute data and archive directories (volumes).
up starts one `lanenet node run`
process per validator (logs in nodeN/node.log, pid in nodeN/pid); down stops them (SIGTERM,
then SIGKILL after a grace period); status asks every node's JSON-RPC for its heights.

Non-validating full nodes (``full_nodes``, ``add_full_node``) live in fullJ/ with a config of
``role = "full"`` that follows the validators' client API; on one host their ports are the
base ports + FULL_PORT_OFFSET + J. ``up`` starts them after the validators.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from node.crypto.signing import Ed25519Signer
from node.execution.signing import address_of
from node.protocol.config import ProtocolConfig
from node.runtime.config import (
    DEFAULT_HOT_BLOCKS,
    DEFAULT_SEGMENT_BLOCKS,
    DEFAULT_SNAPSHOT_INTERVAL,
    Genesis,
    NodeConfig,
    PeerAddress,
    load_node_config,
    p2p_identity_seed,
    p2p_peer_id,
)
from node.types.committee import Validator
from node.types.errors import ConfigError

DEV_ACCOUNTS = 10
DEV_BALANCE = 10**24  # 1,000,000 ETH in wei
TESTNET_PROTOCOL = ProtocolConfig(
    car_interval_ms=150,
    view_timeout_ms=1000,
    max_view_timeout_ms=8000,
    fast_path_timeout_ms=20,
    parallel_slots=4,
)


FULL_PORT_OFFSET = 100
PORT_WAIT_S = 3.0
"""How long `up` waits for a port in use to be let go before it refuses."""


@dataclass(frozen=True, slots=True)
class Storage:
    """Storage settings written into every node's config (node/runtime/config.py)."""

    hot_blocks: int = DEFAULT_HOT_BLOCKS
    archive: str = "keep"
    segment_blocks: int = DEFAULT_SEGMENT_BLOCKS
    snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL


@dataclass(frozen=True, slots=True)
class Ports:
    grpc: int = 50051
    client: int = 9090
    jsonrpc: int = 8545
    metrics: int = 26660
    p2p: int = 4001


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the nodes of a testnet listen and find each other.

    The default is the local layout: every node on ``host`` with ports base + index. For
    containers: ``same_ports`` gives every node the base ports, ``listen_host`` is what a node
    binds (e.g. 0.0.0.0) when that differs from the address peers dial, ``host_template``
    ("node{i}") names each node's peer host, and absolute ``data_dir``/``archive_dir`` point
    into volumes (relative ones are per node directory, as the config resolves them).
    """

    host: str = "127.0.0.1"
    listen_host: str | None = None
    host_template: str | None = None
    same_ports: bool = False
    data_dir: Path = Path("data")
    archive_dir: Path = Path("archive")

    def validate(self) -> None:
        if self.host_template is not None:
            try:
                probe = self.host_template.format(i=0)
            except (KeyError, IndexError, ValueError):
                raise ConfigError(
                    f"host template {self.host_template!r} may use only {{i}} (the node index)"
                ) from None
            if not probe or probe == self.host_template.format(i=1):
                raise ConfigError(
                    f"host template {self.host_template!r} must contain {{i}} "
                    "so that every node gets its own host"
                )
        if self.same_ports and self.host_template is None:
            raise ConfigError(
                "same ports need a host template (one host per node): on one host the nodes' "
                "ports would collide"
            )

    def peer_host(self, i: int) -> str:
        return self.host if self.host_template is None else self.host_template.format(i=i)

    def bind_host(self, i: int) -> str:
        return self.listen_host if self.listen_host is not None else self.peer_host(i)

    def offset(self, i: int) -> int:
        return 0 if self.same_ports else i


def _multiaddr_host(host: str) -> str:
    """The multiaddr prefix for ``host``: /ip4 or /ip6 for literals, /dns4 for names."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"/dns4/{host}"
    return f"/ip{address.version}/{host}"


def dev_private_key(i: int, salt: bytes) -> bytes:
    return hashlib.sha256(b"lanenet-dev-account/" + salt + b"/%d" % i).digest()


def generate(
    directory: Path,
    validators: int = 4,
    chain_id: int = 7357,
    ports: Ports = Ports(),
    host: str = "127.0.0.1",
    deterministic: bool = False,
    p2p: bool = True,
    protocol: ProtocolConfig = TESTNET_PROTOCOL,
    layout: Layout | None = None,
    full_nodes: int = 0,
    storage: Storage = Storage(),
) -> Genesis:
    """Write keys, genesis and per-node configs for ``validators`` nodes under ``directory``.

    ``layout`` (default: every node on ``host``, ports base + index) says where nodes listen
    and find each other; ``host`` is ignored when a layout is given.
    """
    if validators < 1:
        raise ConfigError("a testnet needs at least one validator")
    layout = layout if layout is not None else Layout(host=host)
    layout.validate()
    if full_nodes and layout.same_ports:
        raise ConfigError("full nodes are generated for the local layout only (not --same-ports)")
    directory.mkdir(parents=True, exist_ok=True)
    salt = b"deterministic" if deterministic else os.urandom(16)
    seeds = [
        hashlib.sha256(b"lanenet-validator/" + salt + b"/%d" % i).digest()
        for i in range(validators)
    ]
    members = tuple(
        Validator(i, f"node{i}", Ed25519Signer(seed).public_key) for i, seed in enumerate(seeds)
    )
    accounts = []
    for i in range(DEV_ACCOUNTS):
        key = dev_private_key(i, salt)
        accounts.append({"address": "0x" + address_of(key).hex(), "private_key": "0x" + key.hex()})
    alloc = {a["address"]: DEV_BALANCE for a in accounts}
    genesis = Genesis(chain_id, members, protocol, alloc, genesis_time=int(time.time()))
    (directory / "genesis.json").write_text(genesis.to_json())
    (directory / "accounts.json").write_text(json.dumps(accounts, indent=2) + "\n")
    peers = tuple(
        PeerAddress(i, layout.peer_host(i), ports.grpc + layout.offset(i))
        for i in range(validators)
    )
    peer_ids = [p2p_peer_id(p2p_identity_seed(seed)) for seed in seeds] if p2p else []
    bootstrap = [
        f"{_multiaddr_host(layout.peer_host(j))}/tcp/{ports.p2p + layout.offset(j)}/p2p/{pid}"
        for j, pid in enumerate(peer_ids)
    ]
    for i, seed in enumerate(seeds):
        node_dir = directory / f"node{i}"
        node_dir.mkdir(exist_ok=True)
        key_path = node_dir / "validator_key.json"
        key_path.write_text(json.dumps({"seed": seed.hex()}) + "\n")
        key_path.chmod(0o600)
        config = NodeConfig(
            name=f"node{i}",
            index=i,
            genesis_path=Path("../genesis.json"),
            key_path=Path("validator_key.json"),
            data_dir=layout.data_dir,
            archive_dir=layout.archive_dir,
            listen_host=layout.bind_host(i),
            grpc_port=ports.grpc + layout.offset(i),
            client_port=ports.client + layout.offset(i),
            jsonrpc_port=ports.jsonrpc + layout.offset(i),
            metrics_port=ports.metrics + layout.offset(i),
            p2p_port=ports.p2p + layout.offset(i),
            p2p_enabled=p2p,
            p2p_bootstrap=tuple(a for j, a in enumerate(bootstrap) if j != i)[:2],
            peers=tuple(p for p in peers if p.index != i),
            hot_blocks=storage.hot_blocks,
            archive=storage.archive,
            segment_blocks=storage.segment_blocks,
            snapshot_interval=storage.snapshot_interval,
            # where `node run --state-sync` fetches a snapshot and blocks: the others' client API
            sync_peers=tuple(
                f"{layout.peer_host(j)}:{ports.client + layout.offset(j)}"
                for j in range(validators)
                if j != i
            ),
        )
        (node_dir / "config.toml").write_text(config.to_toml())
    for _ in range(full_nodes):
        add_full_node(directory, storage=storage)
    return genesis


def add_full_node(
    directory: Path, *, ports: Ports | None = None, storage: Storage | None = None
) -> Path:
    """Write the config of one more full node (fullJ/) following every validator of the
    testnet in ``directory``; returns its directory. Ports default to validator 0's base
    ports + FULL_PORT_OFFSET + J; storage settings to validator 0's."""
    validators = [load_node_config(d / "config.toml") for d in node_dirs(directory)]
    first = validators[0]
    j = len(full_node_dirs(directory))
    offset = FULL_PORT_OFFSET + j
    ports = ports or Ports(
        first.grpc_port + offset,
        first.client_port + offset,
        first.jsonrpc_port + offset,
        first.metrics_port + offset,
        first.p2p_port + offset,
    )
    storage = storage or Storage(
        first.hot_blocks, first.archive, first.segment_blocks, first.snapshot_interval
    )
    node_dir = directory / f"full{j}"
    node_dir.mkdir(exist_ok=True)
    config = NodeConfig(
        name=f"full{j}",
        index=-1,
        genesis_path=Path("../genesis.json"),
        key_path=Path(),
        data_dir=Path("data"),
        archive_dir=Path("archive"),
        listen_host=first.listen_host,
        grpc_port=ports.grpc,
        client_port=ports.client,
        jsonrpc_port=ports.jsonrpc,
        metrics_port=ports.metrics,
        p2p_port=ports.p2p,
        p2p_enabled=False,
        hot_blocks=storage.hot_blocks,
        archive=storage.archive,
        segment_blocks=storage.segment_blocks,
        snapshot_interval=storage.snapshot_interval,
        role="full",
        sync_peers=tuple(f"{v.listen_host}:{v.client_port}" for v in validators),
    )
    (node_dir / "config.toml").write_text(config.to_toml())
    return node_dir


def full_node_dirs(directory: Path) -> list[Path]:
    return sorted(
        (p for p in directory.glob("full*") if (p / "config.toml").exists()),
        key=lambda p: int(p.name[4:]) if p.name[4:].isdigit() else 0,
    )


def all_node_dirs(directory: Path) -> list[Path]:
    """Validators, then full nodes."""
    return node_dirs(directory) + full_node_dirs(directory)


def node_dirs(directory: Path) -> list[Path]:
    dirs = sorted(
        (p for p in directory.glob("node*") if (p / "config.toml").exists()),
        key=lambda p: int(p.name[4:]) if p.name[4:].isdigit() else 0,
    )
    if not dirs:
        raise ConfigError(f"{directory}: no testnet here (run `lanenet testnet generate`)")
    return dirs


def _pid(node_dir: Path) -> int | None:
    try:
        pid = int((node_dir / "pid").read_text())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) else None


def up(directory: Path) -> list[int]:
    """Start every node (validators, then full nodes) that is not already running; return
    their pids. ``ConfigError`` naming every port that is taken, before starting any node,
    if a node to start would not be able to listen (another testnet on the same ports)."""
    starting = [d for d in all_node_dirs(directory) if _pid(d) is None]
    configs = [(d.name, load_node_config(d / "config.toml")) for d in starting]
    deadline = time.monotonic() + PORT_WAIT_S
    while True:  # a process that is just exiting lets go of its ports within moments
        busy = [
            f"{name} {kind} {host}:{port}"
            for name, config in configs
            for kind, host, port in busy_ports(config)
        ]
        if not busy or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if busy:
        shown = ", ".join(busy[:4]) + (f" and {len(busy) - 4} more" if len(busy) > 4 else "")
        raise ConfigError(
            f"ports already in use: {shown} (another testnet or program "
            "listens there: stop it, e.g. `lanenet testnet down --dir DIR`, or generate "
            "this one on other ports)"
        )
    pids = []
    for node_dir in all_node_dirs(directory):
        running = _pid(node_dir)
        pids.append(running if running is not None else start_node(node_dir))
    return pids


def busy_ports(config: NodeConfig) -> list[tuple[str, str, int]]:
    """The (kind, host, port) this node listens on that something else holds already."""
    ports = [
        ("peer gRPC", config.grpc_port),
        ("client gRPC", config.client_port),
        ("JSON-RPC", config.jsonrpc_port),
        ("metrics", config.metrics_port),
    ]
    if config.p2p_enabled and not config.is_full_node:
        ports.append(("libp2p", config.p2p_port))
    host = config.listen_host
    return [(kind, host, port) for kind, port in ports if _taken(host, port)]


def _taken(host: str, port: int) -> bool:
    """True if something listens on ``host:port`` (a connection is accepted). A bind test
    would also trip over the closing connections of a node just killed, and miss a gRPC
    listener (SO_REUSEPORT lets a second one bind and split the traffic)."""
    target = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    try:
        with socket.create_connection((target, port), timeout=0.5):
            return True
    except OSError:
        return False


def start_node(node_dir: Path, extra_args: tuple[str, ...] = ()) -> int:
    """Start `lanenet node run` for the node in ``node_dir`` (log appended to node.log)."""
    with (node_dir / "node.log").open("ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "node.cli",
                "node",
                "run",
                "--config",
                str(node_dir / "config.toml"),
                *extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    (node_dir / "pid").write_text(str(proc.pid))
    return proc.pid


def down(directory: Path, grace: float = 10.0) -> int:
    """Stop every running node: SIGTERM, then SIGKILL after ``grace`` seconds."""
    pids = [p for p in (_pid(d) for d in all_node_dirs(directory)) if p is not None]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _alive(p)]
        if alive:
            time.sleep(0.1)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for node_dir in all_node_dirs(directory):
        (node_dir / "pid").unlink(missing_ok=True)
    return len(pids)


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its new parent) is not running
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        # ... unless only its main thread is: the others still exit and hold its files
        # (listening sockets, the database lock) until the last one is gone
        threads = len(os.listdir(f"/proc/{pid}/task"))
    except (OSError, IndexError):
        return True
    return state != "Z" or threads > 1


def rpc_call(url: str, method: str, params: list[object], timeout: float = 2.0) -> object:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        reply = json.loads(resp.read())
    if "error" in reply:
        raise RuntimeError(reply["error"].get("message", "rpc error"))
    return reply.get("result")


def status(directory: Path) -> list[dict[str, object]]:
    """One row per node: URLs, pid, and heights (None when the node does not answer)."""
    rows: list[dict[str, object]] = []
    for node_dir in all_node_dirs(directory):
        cfg = load_node_config(node_dir / "config.toml")
        host = cfg.listen_host
        row: dict[str, object] = {
            "name": cfg.name,
            "role": cfg.role,
            "pid": _pid(node_dir),
            "jsonrpc": f"http://{host}:{cfg.jsonrpc_port}",
            "grpc": f"{host}:{cfg.client_port}",
            "peer_grpc": f"{host}:{cfg.grpc_port}",
            "metrics": f"http://{host}:{cfg.metrics_port}/metrics",
            "committed_height": None,
            "executed_height": None,
        }
        if row["pid"] is None and (node_dir / "pid").exists():
            rows.append(row)  # started here and exited: whatever answers on its port is not it
            continue
        try:
            info = rpc_call(str(row["jsonrpc"]), "lanenet_status", [])
            if isinstance(info, dict):
                row["committed_height"] = info.get("committed_height")
                row["executed_height"] = info.get("executed_height")
        except (OSError, urllib.error.URLError, RuntimeError, ValueError):
            pass
        rows.append(row)
    return rows


def load_accounts(directory: Path) -> list[dict[str, str]]:
    path = directory / "accounts.json"
    try:
        accounts = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found (run `lanenet testnet generate`)") from None
    if not isinstance(accounts, list):
        raise ConfigError(f"{path}: expected a list of accounts")
    return accounts
