"""`lanenet deploy --hosts FILE up|down|status`: validators on several Docker hosts.

The hosts file (TOML, or YAML) places each validator on a Docker host::

    name = "lanenet"            # prefix of containers and volumes, and their label
    image = "lanenet:dev"       # must be on each host, or on the local engine (copied over)
    chain_id = 7357
    base_port = 30000           # optional: JSON-RPC base+8..; default the testnet's ports
    [[host]]
    docker_host = "ssh://ops@10.0.0.5"    # or unix:///path, tcp://host:2375
    address = "10.0.0.5"                  # where the other validators reach this host
    validators = [0, 1]

up: copies the image to hosts that lack it (``docker save`` on the local engine, ``load``
there), generates keys, genesis and configs once into ``--state`` (``testnet generate``,
then each node's peer list points at the hosts its peers run on), and on each host creates
the node's volumes (data, archive, config: the config volume gets the node's config, key
and the genesis before the container starts) and a container on the host's network, ports
base + index. It waits until every node answers and sees all its peers and prints the
endpoints. down removes the containers (and with --volumes the volumes); status prints
each node's container state and heights. Everything carries the label
``lanenet.deploy=NAME``, so down and status need only the hosts file.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import io
import json
import sys
import tarfile
import time
import tomllib
import urllib.error
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.runtime.config import PeerAddress, load_node_config
from node.tools import testnet
from node.tools.testnet import Layout, Ports
from node.types.errors import ConfigError

LABEL = "lanenet.deploy"
NODE_HOME = "/var/lib/lanenet"
CONFIG_MOUNT = "/etc/lanenet"
IMAGE_UID = 10001  # the lanenet user of deploy/Dockerfile
READY_TIMEOUT_S = 90.0
_POLL_S = 0.5


@dataclass(frozen=True, slots=True)
class Host:
    docker_host: str
    address: str
    validators: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    image: str
    chain_id: int
    ports: Ports
    hosts: tuple[Host, ...]

    @property
    def validators(self) -> int:
        return sum(len(h.validators) for h in self.hosts)

    def host_of(self, index: int) -> Host:
        return next(h for h in self.hosts if index in h.validators)


# ------------------------------------------------------------------------------ the hosts file


def load_plan(path: Path) -> Plan:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            data: Any = importlib.import_module("yaml").safe_load(text)
        else:
            data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 (yaml's error classes are not typed)
        raise ConfigError(f"{path}: {exc}") from None
    return parse_plan(data, str(path))


def parse_plan(data: Any, where: str = "hosts file") -> Plan:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table with a list of hosts")
    known = {"name", "image", "chain_id", "base_port", "host", "hosts"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown} (known: {sorted(known)})")
    raw_hosts = data.get("host", data.get("hosts"))
    if not isinstance(raw_hosts, list) or not raw_hosts:
        raise ConfigError(f"{where}: no hosts (a list named 'host' or 'hosts')")
    hosts = tuple(_parse_host(h, f"{where}: host {i + 1}") for i, h in enumerate(raw_hosts))
    placed = sorted(i for h in hosts for i in h.validators)
    if placed != list(range(len(placed))):
        raise ConfigError(
            f"{where}: validators must be 0..N-1, each on one host; placed {placed}"
        )
    name = data.get("name", "lanenet")
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"{where}: name must be letters, digits, - or _, not {name!r}")
    image = data.get("image", "lanenet:dev")
    chain_id = data.get("chain_id", 7357)
    if not isinstance(image, str) or not image:
        raise ConfigError(f"{where}: image must be an image name such as lanenet:dev")
    if not isinstance(chain_id, int) or chain_id < 1:
        raise ConfigError(f"{where}: chain_id must be a positive integer")
    return Plan(name, image, chain_id, _ports(data.get("base_port"), where), hosts)


def _parse_host(raw: Any, where: str) -> Host:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table with docker_host, address, validators")
    unknown = sorted(set(raw) - {"docker_host", "address", "validators"})
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}")
    url, address, validators = raw.get("docker_host"), raw.get("address"), raw.get("validators")
    if not isinstance(url, str) or not url.startswith(("unix://", "tcp://", "ssh://")):
        raise ConfigError(f"{where}: docker_host must be a unix://, tcp:// or ssh:// URL")
    if not isinstance(address, str) or not address:
        raise ConfigError(f"{where}: address (where peers reach this host) is required")
    if (
        not isinstance(validators, list)
        or not validators
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in validators)
    ):
        raise ConfigError(f"{where}: validators must be a list of validator indices")
    return Host(url, address, tuple(validators))


def _ports(base: Any, where: str) -> Ports:
    if base is None:
        return Ports()
    if not isinstance(base, int) or not 1024 <= base <= 65000:
        raise ConfigError(f"{where}: base_port must be a port number between 1024 and 65000")
    # five blocks of 100 ports: up to 100 validators per host
    return Ports(grpc=base, client=base + 100, jsonrpc=base + 200, metrics=base + 300,
                 p2p=base + 400)  # fmt: skip


# ------------------------------------------------------------------------------ configs


def generate_configs(plan: Plan, state: Path) -> None:
    """Keys, genesis and node configs in ``state`` (kept: a second up reuses them), each
    node listening on every interface and dialling its peers at their hosts' addresses."""
    if (state / "genesis.json").exists():
        found = len(testnet.node_dirs(state))
        if found != plan.validators:
            raise ConfigError(
                f"{state} holds a testnet of {found} validators, the hosts file places "
                f"{plan.validators}: remove it (or give another --state) to generate anew"
            )
        return
    layout = Layout(
        host="127.0.0.1",
        listen_host="0.0.0.0",
        data_dir=Path(NODE_HOME) / "data",
        archive_dir=Path(NODE_HOME) / "archive",
    )
    testnet.generate(
        state, plan.validators, plan.chain_id, plan.ports, p2p=False, layout=layout
    )
    for node_dir in testnet.node_dirs(state):
        path = node_dir / "config.toml"
        cfg = load_node_config(path)
        peers = tuple(
            PeerAddress(p.index, plan.host_of(p.index).address, p.port) for p in cfg.peers
        )
        # the loader made the paths absolute; in the container they are relative again
        cfg = dataclasses.replace(
            cfg,
            peers=peers,
            genesis_path=Path("../genesis.json"),
            key_path=Path("validator_key.json"),
            log_format="json",
        )
        path.write_text(cfg.to_toml())


def config_archive(state: Path, index: int) -> bytes:
    """A tar of genesis.json and node/{config.toml, validator_key.json}, owned by the image's
    user, for the node's config volume."""
    buf = io.BytesIO()
    node_dir = state / f"node{index}"
    files = (
        ("genesis.json", state / "genesis.json", 0o644),
        ("node/config.toml", node_dir / "config.toml", 0o644),
        ("node/validator_key.json", node_dir / "validator_key.json", 0o600),
    )
    with tarfile.open(fileobj=buf, mode="w") as tar:
        folder = tarfile.TarInfo("node")
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        folder.uid = folder.gid = IMAGE_UID
        tar.addfile(folder)
        for name, source, mode in files:
            data = source.read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), mode, IMAGE_UID, IMAGE_UID
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# ------------------------------------------------------------------------------ docker


def connect(url: str) -> Any:
    import docker

    try:
        client = docker.DockerClient(base_url=url, use_ssh_client=url.startswith("ssh://"))
        client.ping()
    except docker.errors.DockerException as exc:
        raise ConfigError(f"{url}: cannot reach the docker engine: {exc}") from None
    return client


def ensure_image(client: Any, url: str, image: str, local: Any | None) -> str:
    """Make ``image`` present on ``client``: 'present', or 'copied' from the local engine."""
    import docker

    try:
        client.images.get(image)
        return "present"
    except docker.errors.ImageNotFound:
        pass
    if local is None:
        raise ConfigError(f"{url}: image {image} is missing, and no local engine to copy it from")
    try:
        source = local.images.get(image)
    except docker.errors.ImageNotFound:
        raise ConfigError(
            f"image {image} is neither on {url} nor on the local engine: build it first "
            "(deploy/Dockerfile)"
        ) from None
    client.images.load(_Stream(source.save(named=True)))
    client.images.get(image)
    return "copied"


class _Stream(io.RawIOBase):
    """A file over the chunks of ``docker save``, so the image is streamed, not buffered."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._rest:
            try:
                self._rest = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._rest))
        buffer[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n


def container_name(plan: Plan, index: int) -> str:
    return f"{plan.name}-node{index}"


def start_node(client: Any, plan: Plan, state: Path, index: int) -> None:
    import docker

    name = container_name(plan, index)
    labels = {LABEL: plan.name, "lanenet.node": str(index)}
    try:
        old = client.containers.get(name)
    except docker.errors.NotFound:
        old = None
    if old is not None:
        if old.status != "running":
            old.start()
        return
    volumes = {}
    for kind, mount in (("data", f"{NODE_HOME}/data"), ("archive", f"{NODE_HOME}/archive"),
                        ("config", CONFIG_MOUNT)):  # fmt: skip
        volume = f"{name}-{kind}"
        try:
            client.volumes.get(volume)
        except docker.errors.NotFound:
            client.volumes.create(volume, labels=labels)
        volumes[volume] = {"bind": mount, "mode": "rw"}
    cfg = load_node_config(state / f"node{index}" / "config.toml")
    labels["lanenet.jsonrpc"] = f"http://{plan.host_of(index).address}:{cfg.jsonrpc_port}"
    container = client.containers.create(
        plan.image,
        command=["node"],
        name=name,
        labels=labels,
        environment={"LANENET_CONFIG": f"{CONFIG_MOUNT}/node/config.toml"},
        network_mode="host",
        volumes=volumes,
        restart_policy={"Name": "unless-stopped"},
    )
    container.put_archive(CONFIG_MOUNT, config_archive(state, index))
    container.start()


def our_containers(client: Any, name: str) -> list[Any]:
    found: list[Any] = client.containers.list(all=True, filters={"label": f"{LABEL}={name}"})
    return sorted(found, key=lambda c: int(c.labels.get("lanenet.node", "0")))


# ------------------------------------------------------------------------------ commands


def up(plan: Plan, state: Path, ready_timeout: float) -> list[dict[str, object]]:
    clients = {h.docker_host: connect(h.docker_host) for h in plan.hosts}
    local = _local_engine()
    for host in plan.hosts:
        how = ensure_image(clients[host.docker_host], host.docker_host, plan.image, local)
        _say(f"{host.docker_host}: image {plan.image} {how}")
    generate_configs(plan, state)
    for host in plan.hosts:
        for index in host.validators:
            start_node(clients[host.docker_host], plan, state, index)
            _say(f"{host.docker_host}: started {container_name(plan, index)}")
    return wait_ready(plan, clients, ready_timeout)


def _local_engine() -> Any | None:
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException:
        return None
    return client


def wait_ready(plan: Plan, clients: dict[str, Any], timeout: float) -> list[dict[str, object]]:
    """Until every node answers JSON-RPC and sees all its peers; a node whose container
    exits fails at once, with the tail of its log."""
    deadline = time.monotonic() + timeout
    while True:
        rows = status(plan, clients)
        for row in rows:
            if row["state"] not in ("running", "created"):
                client = clients[str(row["docker_host"])]
                tail = client.containers.get(row["container"]).logs(tail=20).decode(
                    errors="replace"
                )
                raise ConfigError(f"{row['container']} is {row['state']}:\n{tail}")
        if all(row["peers"] == plan.validators - 1 for row in rows):
            return rows
        if time.monotonic() > deadline:
            late = [r["container"] for r in rows if r["peers"] != plan.validators - 1]
            raise ConfigError(f"not ready within {timeout:g} s: {late} (see docker logs)")
        time.sleep(_POLL_S)


def status(plan: Plan, clients: dict[str, Any]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for host in plan.hosts:
        for c in our_containers(clients[host.docker_host], plan.name):
            url = c.labels.get("lanenet.jsonrpc", "")
            row: dict[str, object] = {
                "container": c.name,
                "docker_host": host.docker_host,
                "state": c.status,
                "jsonrpc": url,
                "committed_height": None,
                "executed_height": None,
                "peers": None,
            }
            try:
                info = testnet.rpc_call(url, "lanenet_status", [])
            except (OSError, urllib.error.URLError, RuntimeError, ValueError):
                info = None
            if isinstance(info, dict):
                for key in ("committed_height", "executed_height", "peers"):
                    row[key] = info.get(key)
            rows.append(row)
    return rows


def down(plan: Plan, clients: dict[str, Any], volumes: bool) -> int:
    removed = 0
    for host in plan.hosts:
        client = clients[host.docker_host]
        for c in our_containers(client, plan.name):
            c.remove(force=True)
            removed += 1
        if volumes:
            for v in client.volumes.list(filters={"label": f"{LABEL}={plan.name}"}):
                v.remove(force=True)
    return removed


def _say(message: str) -> None:
    print(f"deploy: {message}", file=sys.stderr, flush=True)


def _print_rows(rows: Sequence[dict[str, object]], as_json: bool) -> None:
    if as_json:
        print(json.dumps({"nodes": list(rows)}))
        return
    print(f"{'container':20} {'state':9} {'committed':>9} {'executed':>9}  jsonrpc  (docker host)")
    for r in rows:
        committed = "-" if r["committed_height"] is None else r["committed_height"]
        executed = "-" if r["executed_height"] is None else r["executed_height"]
        print(
            f"{r['container']!s:20} {r['state']!s:9} {committed!s:>9} {executed!s:>9}  "
            f"{r['jsonrpc']}  ({r['docker_host']})"
        )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lanenet deploy", description="run a testnet's validators on several Docker hosts"
    )
    p.add_argument("--hosts", type=Path, required=True, help="the hosts file (TOML or YAML)")
    p.add_argument("action", choices=("up", "down", "status"))
    p.add_argument("--state", type=Path, help="where keys and configs are kept (up)")
    p.add_argument("--volumes", action="store_true", help="down: remove the volumes too")
    p.add_argument("--wait", type=float, default=READY_TIMEOUT_S, help="up: seconds to be ready")
    p.add_argument("--json", action="store_true")
    return p


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    try:
        plan = load_plan(args.hosts)
        if args.action == "up":
            state = args.state or Path(f"deploy-{plan.name}")
            rows = up(plan, state, args.wait)
            _print_rows(rows, args.json)
            return 0
        clients = {h.docker_host: connect(h.docker_host) for h in plan.hosts}
        if args.action == "down":
            removed = down(plan, clients, args.volumes)
            print(f"removed {removed} containers" + (" and their volumes" if args.volumes else ""))
            return 0
        rows = status(plan, clients)
        _print_rows(rows, args.json)
        return 0 if rows and all(r["state"] == "running" for r in rows) else 1
    except ConfigError as exc:
        print(f"lanenet deploy: {exc}", file=sys.stderr)
        return 2
