"""`lanenet deploy`: the hosts file is checked with clear messages, the generated configs
point each node at its peers' hosts with paths that work inside the container, the config
volume's archive is owned by the image's user, and a missing image is copied or refused."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from node.runtime.config import load_node_config
from node.tools import deploy
from node.tools.deploy import Plan, config_archive, ensure_image, generate_configs, parse_plan
from node.types.errors import ConfigError

GOOD = {
    "name": "net",
    "image": "lanenet:dev",
    "base_port": 30000,
    "host": [
        {"docker_host": "ssh://ops@a", "address": "10.0.0.5", "validators": [0, 2]},
        {"docker_host": "unix:///run/b.sock", "address": "10.0.0.6", "validators": [1, 3]},
    ],
}


def plan() -> Plan:
    return parse_plan(GOOD)


def test_a_good_hosts_file_places_every_validator() -> None:
    p = plan()
    assert p.validators == 4
    assert p.host_of(2).address == "10.0.0.5" and p.host_of(3).address == "10.0.0.6"
    assert (p.ports.grpc, p.ports.jsonrpc, p.ports.metrics) == (30000, 30200, 30300)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"host": []}, "no hosts"),
        ({"hosts": None, "host": [{**GOOD["host"][0], "validators": [0, 2]}]}, "0..N-1"),  # type: ignore[dict-item]
        ({"host": [{**GOOD["host"][0], "validators": [0, 1]}, GOOD["host"][1]]}, "0..N-1"),  # type: ignore[dict-item]
        ({"host": [{**GOOD["host"][0], "docker_host": "10.0.0.5"}]}, "unix://, tcp:// or ssh://"),  # type: ignore[dict-item]
        ({"host": [{"docker_host": "tcp://a:2375", "validators": [0]}]}, "address"),
        ({"base_port": 80}, "base_port"),
        ({"name": "a b"}, "name must be"),
        ({"replicas": 3}, "unknown keys ['replicas']"),
    ],
)
def test_a_bad_hosts_file_is_refused_saying_what_is_wrong(
    change: dict[str, Any], message: str
) -> None:
    data = {**GOOD, **change}
    with pytest.raises(ConfigError) as info:
        parse_plan(data)
    assert message in str(info.value)


def test_the_command_reports_a_missing_hosts_file_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy.main(["--hosts", str(tmp_path / "nope.toml"), "status"]) == 2
    assert "nope.toml: No such file" in capsys.readouterr().err


def test_configs_dial_peers_at_their_hosts_and_keep_container_paths(tmp_path: Path) -> None:
    generate_configs(plan(), tmp_path)
    for i in range(4):
        cfg = load_node_config(tmp_path / f"node{i}" / "config.toml")
        assert cfg.listen_host == "0.0.0.0"
        assert cfg.jsonrpc_port == 30200 + i
        assert {p.index: p.host for p in cfg.peers} == {
            j: ("10.0.0.5" if j in (0, 2) else "10.0.0.6") for j in range(4) if j != i
        }
        assert cfg.data_dir == Path("/var/lib/lanenet/data")
        text = (tmp_path / f"node{i}" / "config.toml").read_text()
        assert 'genesis = "../genesis.json"' in text
        assert 'key = "validator_key.json"' in text


def test_a_second_up_keeps_the_keys_and_a_different_count_is_refused(tmp_path: Path) -> None:
    generate_configs(plan(), tmp_path)
    genesis = (tmp_path / "genesis.json").read_text()
    generate_configs(plan(), tmp_path)
    assert (tmp_path / "genesis.json").read_text() == genesis
    smaller = parse_plan({**GOOD, "host": [{**GOOD["host"][0], "validators": [0, 1]}]})
    with pytest.raises(ConfigError, match="holds a testnet of 4 validators"):
        generate_configs(smaller, tmp_path)


def test_the_config_archive_holds_genesis_config_and_a_private_key_for_the_image_user(
    tmp_path: Path,
) -> None:
    generate_configs(plan(), tmp_path)
    with tarfile.open(fileobj=io.BytesIO(config_archive(tmp_path, 2))) as tar:
        members = {m.name: m for m in tar.getmembers()}
        config = tar.extractfile("node/config.toml")
        assert config is not None and b'name = "node2"' in config.read()
    assert set(members) == {"node", "genesis.json", "node/config.toml", "node/validator_key.json"}
    assert {m.uid for m in members.values()} == {deploy.IMAGE_UID}
    assert members["node/validator_key.json"].mode == 0o600


class FakeImages:
    def __init__(self, names: set[str], saved: bytes = b"") -> None:
        self.names = names
        self.saved = saved
        self.loaded: list[bytes] = []

    def get(self, name: str) -> Any:
        if name not in self.names:
            raise docker.errors.ImageNotFound(name)
        images = self

        class Image:
            def save(self, named: bool) -> Iterator[bytes]:
                data = images.saved
                return iter([data[:3], data[3:]])

        return Image()

    def load(self, stream: io.RawIOBase) -> None:
        self.loaded.append(stream.read())
        self.names.add("lanenet:dev")


class FakeClient:
    def __init__(self, images: FakeImages) -> None:
        self.images = images


def test_a_missing_image_is_streamed_over_from_the_local_engine() -> None:
    remote = FakeClient(FakeImages(set()))
    local = FakeClient(FakeImages({"lanenet:dev"}, saved=b"tar-bytes"))
    assert ensure_image(remote, "ssh://a", "lanenet:dev", local) == "copied"
    assert remote.images.loaded == [b"tar-bytes"]
    assert ensure_image(remote, "ssh://a", "lanenet:dev", local) == "present"


def test_an_image_nowhere_is_refused_clearly() -> None:
    remote = FakeClient(FakeImages(set()))
    with pytest.raises(ConfigError, match="neither on ssh://a nor on the local engine"):
        ensure_image(remote, "ssh://a", "lanenet:dev", FakeClient(FakeImages(set())))
    with pytest.raises(ConfigError, match="no local engine"):
        ensure_image(remote, "ssh://a", "lanenet:dev", None)
