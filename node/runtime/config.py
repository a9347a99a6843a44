"""Genesis (shared by every node of a network) and per-node configuration files.

Both are loaded defensively: any missing or malformed field is a ``ConfigError`` naming the
file and the field, so an operator sees exactly what to fix and the node exits non-zero.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from node.protocol.config import ProtocolConfig
from node.types.committee import Committee, Validator
from node.types.errors import ConfigError

DEFAULT_BASE_FEE = 1_000_000_000  # 1 gwei, fixed until a fee market exists
DEFAULT_HOT_BLOCKS = 1_000
DEFAULT_SEGMENT_BLOCKS = 100
DEFAULT_SNAPSHOT_INTERVAL = 1_000
ROLES = ("validator", "full")
ARCHIVE_MODES = ("keep", "prune")


@dataclass(frozen=True, slots=True)
class Genesis:
    chain_id: int
    validators: tuple[Validator, ...]
    protocol: ProtocolConfig
    alloc: dict[str, int]
    base_fee: int = DEFAULT_BASE_FEE
    genesis_time: int = 0

    @property
    def committee(self) -> Committee:
        return Committee(self.chain_id, self.validators)

    def to_json(self) -> str:
        doc = {
            "chain_id": self.chain_id,
            "genesis_time": self.genesis_time,
            "base_fee": self.base_fee,
            "protocol": asdict(self.protocol),
            "validators": [
                {"name": v.name, "public_key": v.public_key.hex(), "weight": v.weight}
                for v in self.validators
            ],
            "alloc": {addr: str(balance) for addr, balance in sorted(self.alloc.items())},
        }
        return json.dumps(doc, indent=2) + "\n"


def _require(doc: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in doc:
        raise ConfigError(f"{where}: missing field {key!r}")
    value = doc[key]
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise ConfigError(f"{where}: field {key!r} must be {kind.__name__}, got {value!r}")
    return value


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None


def load_genesis(path: Path) -> Genesis:
    where = str(path)
    try:
        doc = json.loads(_read(path))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: expected a JSON object")
    chain_id = _require(doc, "chain_id", int, where)
    raw_validators = _require(doc, "validators", list, where)
    validators = []
    for i, v in enumerate(raw_validators):
        at = f"{where}: validators[{i}]"
        if not isinstance(v, dict):
            raise ConfigError(f"{at}: expected an object")
        try:
            key = bytes.fromhex(_require(v, "public_key", str, at))
        except ValueError:
            raise ConfigError(f"{at}: public_key is not hex") from None
        if len(key) != 32:
            raise ConfigError(f"{at}: public_key must be 32 bytes")
        weight = v.get("weight", 1)
        if not isinstance(weight, int) or weight <= 0:
            raise ConfigError(f"{at}: weight must be a positive integer")
        validators.append(Validator(i, _require(v, "name", str, at), key, weight))
    proto_doc = doc.get("protocol", {})
    if not isinstance(proto_doc, dict):
        raise ConfigError(f"{where}: protocol must be an object")
    known = {f.name for f in fields(ProtocolConfig)}
    unknown = set(proto_doc) - known
    if unknown:
        raise ConfigError(f"{where}: unknown protocol settings {sorted(unknown)}")
    protocol = ProtocolConfig(**proto_doc)
    alloc_doc = doc.get("alloc", {})
    if not isinstance(alloc_doc, dict):
        raise ConfigError(f"{where}: alloc must be an object")
    alloc: dict[str, int] = {}
    for addr, balance in alloc_doc.items():
        if not (isinstance(addr, str) and addr.startswith("0x") and len(addr) == 42):
            raise ConfigError(f"{where}: alloc address {addr!r} is not 0x + 40 hex digits")
        try:
            alloc[addr.lower()] = int(balance)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: alloc balance of {addr} is not an integer") from None
    base_fee = doc.get("base_fee", DEFAULT_BASE_FEE)
    if not isinstance(base_fee, int) or base_fee < 0:
        raise ConfigError(f"{where}: base_fee must be a non-negative integer")
    genesis = Genesis(
        chain_id, tuple(validators), protocol, alloc, base_fee, int(doc.get("genesis_time", 0))
    )
    genesis.committee  # noqa: B018 - validates the committee now, with the file named
    return genesis


@dataclass(frozen=True, slots=True)
class PeerAddress:
    index: int
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """One validator's settings. Paths are resolved relative to the config file."""

    name: str
    index: int
    genesis_path: Path
    key_path: Path
    data_dir: Path
    archive_dir: Path
    listen_host: str = "127.0.0.1"
    grpc_port: int = 50051
    client_port: int = 9090
    jsonrpc_port: int = 8545
    metrics_port: int = 26660
    p2p_port: int = 4001
    p2p_enabled: bool = True
    p2p_bootstrap: tuple[str, ...] = ()
    peers: tuple[PeerAddress, ...] = field(default_factory=tuple)
    log_format: str = "console"
    log_level: str = "info"
    mempool_max_txs: int = 50_000
    # storage (node/storage/archiver.py): heights kept in LevelDB behind the executed one,
    # what happens to older ones ("keep": sealed into archive_dir; "prune": dropped), how
    # many heights one archive segment holds, and the state snapshot interval in heights
    hot_blocks: int = DEFAULT_HOT_BLOCKS
    archive: str = "keep"
    segment_blocks: int = DEFAULT_SEGMENT_BLOCKS
    snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL
    # "validator" (index and key required) or "full": a non-validating node that follows the
    # committed blocks of ``sync_peers`` (client-API gRPC addresses "host:port"), executes
    # them and serves the client APIs (node/runtime/full_node.py); ``sync_peers`` are also
    # where ``node run --state-sync`` fetches a snapshot from
    role: str = "validator"
    sync_peers: tuple[str, ...] = ()

    @property
    def is_full_node(self) -> bool:
        return self.role == "full"

    def to_toml(self) -> str:
        lines = [f'name = "{self.name}"', f'role = "{self.role}"']
        if not self.is_full_node:
            lines += [f"index = {self.index}", f'key = "{self.key_path}"']
        lines += [
            f'genesis = "{self.genesis_path}"',
            f'data_dir = "{self.data_dir}"',
            f'archive_dir = "{self.archive_dir}"',
            f'listen_host = "{self.listen_host}"',
            f"grpc_port = {self.grpc_port}",
            f"client_port = {self.client_port}",
            f"jsonrpc_port = {self.jsonrpc_port}",
            f"metrics_port = {self.metrics_port}",
            f"p2p_port = {self.p2p_port}",
            f"p2p_enabled = {'true' if self.p2p_enabled else 'false'}",
            "p2p_bootstrap = [" + ", ".join(f'"{a}"' for a in self.p2p_bootstrap) + "]",
            f'log_format = "{self.log_format}"',
            f'log_level = "{self.log_level}"',
            f"mempool_max_txs = {self.mempool_max_txs}",
            f"hot_blocks = {self.hot_blocks}",
            f'archive = "{self.archive}"',
            f"segment_blocks = {self.segment_blocks}",
            f"snapshot_interval = {self.snapshot_interval}",
            "sync_peers = [" + ", ".join(f'"{a}"' for a in self.sync_peers) + "]",
            "",
        ]
        for p in self.peers:
            lines += [
                "[[peers]]",
                f"index = {p.index}",
                f'host = "{p.host}"',
                f"port = {p.port}",
                "",
            ]
        return "\n".join(lines)


def _port(doc: dict[str, Any], key: str, default: int, where: str) -> int:
    value = doc.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
        raise ConfigError(f"{where}: {key} must be a port number 0-65535, got {value!r}")
    return value


def _positive(doc: dict[str, Any], key: str, default: int, where: str) -> int:
    value = doc.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{where}: {key} must be a positive integer, got {value!r}")
    return value


def load_node_config(path: Path) -> NodeConfig:
    where = str(path)
    try:
        doc = tomllib.loads(_read(path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML ({exc})") from None
    base = path.parent

    def resolve(key: str) -> Path:
        p = Path(_require(doc, key, str, where))
        return p if p.is_absolute() else (base / p)

    peers = []
    for i, p in enumerate(doc.get("peers", [])):
        at = f"{where}: peers[{i}]"
        if not isinstance(p, dict):
            raise ConfigError(f"{at}: expected a table")
        peers.append(
            PeerAddress(
                _require(p, "index", int, at), _require(p, "host", str, at), _port(p, "port", 0, at)
            )
        )
    log_format = doc.get("log_format", "console")
    if log_format not in ("console", "json"):
        raise ConfigError(f"{where}: log_format must be 'console' or 'json'")
    bootstrap = doc.get("p2p_bootstrap", [])
    if not isinstance(bootstrap, list) or not all(isinstance(a, str) for a in bootstrap):
        raise ConfigError(f"{where}: p2p_bootstrap must be a list of multiaddr strings")
    mempool_max = _positive(doc, "mempool_max_txs", 50_000, where)
    archive = doc.get("archive", "keep")
    if archive not in ARCHIVE_MODES:
        raise ConfigError(
            f"{where}: archive must be 'keep' (seal old heights into archive_dir) or "
            f"'prune' (drop them), got {archive!r}"
        )
    role = doc.get("role", "validator")
    if role not in ROLES:
        raise ConfigError(
            f"{where}: role must be 'validator' or 'full' (a non-validating node), got {role!r}"
        )
    sync_peers = doc.get("sync_peers", [])
    if not isinstance(sync_peers, list) or not all(
        isinstance(a, str) and a.rpartition(":")[2].isdigit() for a in sync_peers
    ):
        raise ConfigError(f'{where}: sync_peers must be a list of "host:port" strings')
    if role == "full" and not sync_peers:
        raise ConfigError(f"{where}: a full node needs sync_peers (validators' client_port)")
    full = role == "full"
    return NodeConfig(
        name=_require(doc, "name", str, where),
        index=-1 if full else _require(doc, "index", int, where),
        genesis_path=resolve("genesis"),
        key_path=Path() if full else resolve("key"),
        data_dir=resolve("data_dir"),
        archive_dir=resolve("archive_dir")
        if "archive_dir" in doc
        else resolve("data_dir") / "archive",
        listen_host=str(doc.get("listen_host", "127.0.0.1")),
        grpc_port=_port(doc, "grpc_port", 50051, where),
        client_port=_port(doc, "client_port", 9090, where),
        jsonrpc_port=_port(doc, "jsonrpc_port", 8545, where),
        metrics_port=_port(doc, "metrics_port", 26660, where),
        p2p_port=_port(doc, "p2p_port", 4001, where),
        p2p_enabled=bool(doc.get("p2p_enabled", True)),
        p2p_bootstrap=tuple(bootstrap),
        peers=tuple(peers),
        log_format=log_format,
        log_level=str(doc.get("log_level", "info")),
        mempool_max_txs=mempool_max,
        hot_blocks=_positive(doc, "hot_blocks", DEFAULT_HOT_BLOCKS, where),
        archive=archive,
        segment_blocks=_positive(doc, "segment_blocks", DEFAULT_SEGMENT_BLOCKS, where),
        snapshot_interval=_positive(doc, "snapshot_interval", DEFAULT_SNAPSHOT_INTERVAL, where),
        role=role,
        sync_peers=tuple(sync_peers),
    )


def load_validator_key(path: Path) -> bytes:
    """The 32-byte ed25519 seed from a key file ``{"seed": "<hex>"}``."""
    try:
        doc = json.loads(_read(path))
        seed = bytes.fromhex(doc["seed"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise ConfigError(f'{path}: expected {{"seed": "<64 hex digits>"}}') from None
    if len(seed) != 32:
        raise ConfigError(f"{path}: seed must be 32 bytes")
    return seed


def p2p_identity_seed(validator_seed: bytes) -> bytes:
    """The libp2p identity of a validator, derived from (never equal to) its validator key."""
    return hashlib.sha256(b"lanenet-p2p/" + validator_seed).digest()


def p2p_peer_id(identity_seed: bytes) -> str:
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.id import ID

    return ID.from_pubkey(create_new_key_pair(identity_seed).public_key).to_base58()
