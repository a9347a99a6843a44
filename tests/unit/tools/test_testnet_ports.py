"""`testnet up` on ports something else holds refuses before starting any node, naming the
ports; a node that cannot listen exits with a configuration error, not a traceback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.runtime.config import load_node_config
from node.runtime.process import run_node
from node.storage.kv import LevelDBKV
from node.tools import testnet
from node.types.errors import ConfigError


@pytest.fixture
def held_port() -> Iterator[int]:
    """A loopback port some other program listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def one_validator(directory: Path, jsonrpc: int) -> Path:
    """A 1-validator testnet whose JSON-RPC port is ``jsonrpc`` (others free)."""
    base = jsonrpc + 1 if jsonrpc < 60_000 else jsonrpc - 10
    ports = testnet.Ports(grpc=base + 1, client=base + 2, jsonrpc=jsonrpc, metrics=base + 3,
                          p2p=base + 4)
    testnet.generate(directory, 1, ports=ports, p2p=False)
    return directory / "node0"


def test_up_refuses_ports_in_use_and_starts_nothing(tmp_path: Path, held_port: int) -> None:
    node_dir = one_validator(tmp_path, held_port)
    assert [kind for kind, _, _ in testnet.busy_ports(
        load_node_config(node_dir / "config.toml")
    )] == ["JSON-RPC"]
    with pytest.raises(ConfigError, match=f"node0 JSON-RPC 127.0.0.1:{held_port}"):
        testnet.up(tmp_path)
    assert not (node_dir / "pid").exists()


def test_a_node_that_cannot_listen_exits_with_a_configuration_error(
    tmp_path: Path, held_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    node_dir = one_validator(tmp_path, held_port)
    assert run_node(node_dir / "config.toml") == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{held_port} for JSON-RPC" in err
    assert "already in use" in err
    LevelDBKV(node_dir / "data" / "db").close()  # the failed start let go of its database
