"""`lanenet testnet generate` writes configs a node can load, for the local layout (one host,
ports base + index) and for containers (one namespace per node: base ports, a bind address,
DNS peer hosts, data in volumes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.runtime.config import load_genesis, load_node_config
from node.tools import testnet, testnet_cli
from node.types.errors import ConfigError

CONTAINER = testnet.Layout(
    listen_host="0.0.0.0",
    host_template="node{i}",
    same_ports=True,
    data_dir=Path("/var/lib/lanenet/data"),
    archive_dir=Path("/var/lib/lanenet/archive"),
)


def test_local_layout_is_unchanged(tmp_path: Path) -> None:
    """Without a layout every node listens on 127.0.0.1 with ports base + index, its data under
    its own directory, and bootstraps gossip from /ip4 addresses of two other nodes."""
    testnet.generate(tmp_path, validators=4, deterministic=True)
    configs = [load_node_config(tmp_path / f"node{i}" / "config.toml") for i in range(4)]
    assert [c.jsonrpc_port for c in configs] == [8545, 8546, 8547, 8548]
    assert [c.metrics_port for c in configs] == [26660, 26661, 26662, 26663]
    assert {c.listen_host for c in configs} == {"127.0.0.1"}
    assert configs[0].data_dir == tmp_path / "node0" / "data"
    assert configs[2].archive_dir == tmp_path / "node2" / "archive"
    assert [(p.index, p.host, p.port) for p in configs[1].peers] == [
        (0, "127.0.0.1", 50051),
        (2, "127.0.0.1", 50053),
        (3, "127.0.0.1", 50054),
    ]
    assert len(configs[0].p2p_bootstrap) == 2
    assert configs[0].p2p_bootstrap[0].startswith("/ip4/127.0.0.1/tcp/4002/p2p/")


def test_container_layout_uses_base_ports_dns_peers_and_volumes(tmp_path: Path) -> None:
    """With the container layout every node binds 0.0.0.0 on the base ports, dials its peers
    by name (node{j}, /dns4 for gossip) and keeps data and archive at the absolute paths."""
    genesis = testnet.generate(tmp_path, validators=4, layout=CONTAINER)
    configs = [load_node_config(tmp_path / f"node{i}" / "config.toml") for i in range(4)]
    for i, cfg in enumerate(configs):
        assert cfg.name == f"node{i}"
        assert cfg.listen_host == "0.0.0.0"
        assert (cfg.grpc_port, cfg.client_port, cfg.jsonrpc_port) == (50051, 9090, 8545)
        assert (cfg.metrics_port, cfg.p2p_port) == (26660, 4001)
        assert cfg.data_dir == Path("/var/lib/lanenet/data")
        assert cfg.archive_dir == Path("/var/lib/lanenet/archive")
        assert cfg.genesis_path.resolve() == (tmp_path / "genesis.json").resolve()
        others = [j for j in range(4) if j != i]
        assert [(p.index, p.host, p.port) for p in cfg.peers] == [
            (j, f"node{j}", 50051) for j in others
        ]
        assert all(a.startswith("/dns4/node") for a in cfg.p2p_bootstrap)
        assert f"/dns4/node{i}/" not in " ".join(cfg.p2p_bootstrap)
    assert load_genesis(tmp_path / "genesis.json") == genesis


def test_ipv6_peer_hosts_become_ip6_multiaddrs(tmp_path: Path) -> None:
    """An IPv6 literal host is bootstrapped as /ip6, not as a DNS name."""
    testnet.generate(tmp_path, validators=2, layout=testnet.Layout(host="::1"))
    cfg = load_node_config(tmp_path / "node0" / "config.toml")
    assert cfg.p2p_bootstrap[0].startswith("/ip6/::1/tcp/4002/p2p/")


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        (testnet.Layout(host_template="validator"), "must contain {i}"),
        (testnet.Layout(host_template="node{j}"), "may use only {i}"),
        (testnet.Layout(same_ports=True), "would collide"),
    ],
)
def test_bad_layouts_are_refused_with_a_reason(
    tmp_path: Path, layout: testnet.Layout, message: str
) -> None:
    """A layout that would give two nodes the same address is refused before anything is
    written, with a message naming the problem."""
    with pytest.raises(ConfigError, match=message):
        testnet.generate(tmp_path, validators=4, layout=layout)
    assert not (tmp_path / "genesis.json").exists()


def test_cli_container_options_and_if_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI options write the container layout; a second run with --if-missing keeps the
    existing keys (an init container restarted), and without it the run is refused."""
    argv = [
        "generate",
        "--dir",
        str(tmp_path),
        "--validators",
        "3",
        "--host-template",
        "validator{i}",
        "--listen-host",
        "0.0.0.0",
        "--same-ports",
        "--data-dir",
        "/data",
        "--archive-dir",
        "/archive",
    ]
    assert testnet_cli.main(argv) == 0
    cfg = load_node_config(tmp_path / "node2" / "config.toml")
    assert [p.host for p in cfg.peers] == ["validator0", "validator1"]
    assert (cfg.listen_host, cfg.jsonrpc_port, cfg.data_dir) == ("0.0.0.0", 8545, Path("/data"))
    keys = (tmp_path / "node0" / "validator_key.json").read_text()
    accounts = json.loads((tmp_path / "accounts.json").read_text())

    assert testnet_cli.main([*argv, "--if-missing"]) == 0
    assert "keeping it" in capsys.readouterr().out
    assert (tmp_path / "node0" / "validator_key.json").read_text() == keys
    assert json.loads((tmp_path / "accounts.json").read_text()) == accounts

    assert testnet_cli.main(argv) == 2
    assert "already holds a testnet" in capsys.readouterr().err


def test_cli_same_ports_without_template_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--same-ports alone would put every node on one address: exit 2 with a message."""
    assert testnet_cli.main(["generate", "--dir", str(tmp_path), "--same-ports"]) == 2
    err = capsys.readouterr().err
    assert "host template" in err and "collide" in err
    assert not (tmp_path / "genesis.json").exists()
