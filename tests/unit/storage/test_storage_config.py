"""The storage settings of a node's config file: sensible defaults, round trip through
to_toml, and a clear ConfigError for each bad value."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from node.runtime.config import load_node_config
from node.types.errors import ConfigError

BASE = 'name = "v0"\nindex = 0\ngenesis = "genesis.json"\nkey = "key.json"\ndata_dir = "data"\n'


def write(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(BASE + extra)
    return path


def test_defaults_suit_a_local_testnet(tmp_path: Path) -> None:
    """Unset, a node keeps 1,000 hot heights and archives older ones in 100-height segments."""
    config = load_node_config(write(tmp_path))
    assert (config.hot_blocks, config.archive, config.segment_blocks) == (1000, "keep", 100)
    assert config.snapshot_interval == 1000
    assert config.archive_dir == tmp_path / "data" / "archive"


def test_storage_settings_round_trip_through_to_toml(tmp_path: Path) -> None:
    """Settings written by to_toml load back equal."""
    config = replace(
        load_node_config(write(tmp_path)),
        hot_blocks=64,
        archive="prune",
        segment_blocks=16,
        snapshot_interval=500,
    )
    path = tmp_path / "written.toml"
    path.write_text(config.to_toml())
    assert load_node_config(path) == config


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('archive = "sometimes"', "archive must be 'keep'"),
        ("hot_blocks = 0", "hot_blocks must be a positive integer, got 0"),
        ('hot_blocks = "10"', "hot_blocks must be a positive integer"),
        ("segment_blocks = -5", "segment_blocks must be a positive integer"),
        ("snapshot_interval = true", "snapshot_interval must be a positive integer"),
    ],
)
def test_bad_storage_settings_name_the_field(tmp_path: Path, line: str, message: str) -> None:
    """Each bad value is a ConfigError naming the file and the setting."""
    path = write(tmp_path, line + "\n")
    with pytest.raises(ConfigError, match=message) as info:
        load_node_config(path)
    assert str(path) in str(info.value)
