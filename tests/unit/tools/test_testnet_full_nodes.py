"""`lanenet testnet generate|up --full-nodes N` and the storage options: full node configs
that follow every validator, with their own ports, and configs the node refuses clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.runtime.config import load_node_config
from node.tools import testnet, testnet_cli
from node.types.errors import ConfigError


def test_full_nodes_follow_every_validator_on_ports_of_their_own(tmp_path: Path) -> None:
    storage = testnet.Storage(hot_blocks=20, segment_blocks=10, snapshot_interval=25)
    testnet.generate(tmp_path, validators=4, p2p=False, full_nodes=2, storage=storage)
    validators = [load_node_config(d / "config.toml") for d in testnet.node_dirs(tmp_path)]
    fulls = [load_node_config(d / "config.toml") for d in testnet.full_node_dirs(tmp_path)]
    assert [f.name for f in fulls] == ["full0", "full1"]
    assert all(f.is_full_node and f.index == -1 for f in fulls)
    assert all(not v.is_full_node for v in validators)
    assert fulls[0].sync_peers == tuple(f"127.0.0.1:{v.client_port}" for v in validators)
    ports = [
        p
        for c in validators + fulls
        for p in (c.grpc_port, c.client_port, c.jsonrpc_port, c.metrics_port)
    ]
    assert len(set(ports)) == len(ports), "two nodes share a port"
    for cfg in validators + fulls:
        assert (cfg.hot_blocks, cfg.segment_blocks, cfg.snapshot_interval) == (20, 10, 25)
    assert not (tmp_path / "full0" / "validator_key.json").exists()
    assert [d.name for d in testnet.all_node_dirs(tmp_path)][-2:] == ["full0", "full1"]
    assert len(testnet.node_dirs(tmp_path)) == 4  # validator-only tools see validators only


def test_cli_generate_full_nodes_and_storage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["generate", "--dir", str(tmp_path), "--full-nodes", "1", "--hot-blocks", "30"]
    assert testnet_cli.main(argv) == 0
    assert "1 full nodes" in capsys.readouterr().out
    assert load_node_config(tmp_path / "full0" / "config.toml").hot_blocks == 30
    bad = ["generate", "--dir", str(tmp_path / "x"), "--segment-blocks", "0"]
    assert testnet_cli.main(bad) == 2
    assert "--segment-blocks must be at least 1" in capsys.readouterr().err


def test_full_nodes_are_refused_in_the_container_layout(tmp_path: Path) -> None:
    layout = testnet.Layout(host_template="node{i}", same_ports=True)
    with pytest.raises(ConfigError, match="local layout only"):
        testnet.generate(tmp_path, layout=layout, full_nodes=1)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('role = "observer"\n', "role must be 'validator' or 'full'"),
        ('role = "full"\nsync_peers = []\n', "a full node needs sync_peers"),
        ('role = "full"\nsync_peers = ["nohost"]\n', 'list of "host:port"'),
    ],
)
def test_bad_full_node_configs_say_what_is_wrong(
    tmp_path: Path, extra: str, message: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f'name = "x"\ngenesis = "g.json"\ndata_dir = "d"\n{extra}')
    with pytest.raises(ConfigError, match=message):
        load_node_config(path)
