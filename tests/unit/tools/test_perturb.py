"""`lanenet perturb`: scripts parse or fail with a clear message, steps play in time order
with their ends, and the compose target finds, perturbs and reconnects containers by
service through the docker SDK (a fake client here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from node.cli import main as lanenet
from node.tools import perturb
from node.tools.perturb import Script, Step, check_overlaps, load_script, parse_script, play
from node.tools.perturb_load import derive_keys
from node.tools.perturb_targets import ComposeTarget, compose_project_name
from node.types.errors import ConfigError

TOML = """
load_tps = 5
liveness_bound = 12
[[step]]
at = 1
action = "kill"
node = "node1"
for = 3
[[step]]
at = 0
action = "pause"
node = "node2"
"""


def test_a_toml_script_parses_sorted_by_time_with_default_durations(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(TOML)
    script = load_script(path)
    assert script.load_tps == 5 and script.liveness_bound == 12 and script.settle == 30
    assert script.steps == (Step(0.0, "pause", "node2", 10.0), Step(1.0, "kill", "node1", 3.0))


def test_json_and_yaml_scripts_say_the_same_as_toml(tmp_path: Path) -> None:
    steps = [{"at": 0, "action": "restart", "node": "node0"}]
    (tmp_path / "s.json").write_text(json.dumps({"steps": steps}))
    (tmp_path / "s.yaml").write_text("steps:\n  - {at: 0, action: restart, node: node0}\n")
    expected = (Step(0.0, "restart", "node0", None),)
    assert load_script(tmp_path / "s.json").steps == expected
    assert load_script(tmp_path / "s.yaml").steps == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"step": []}, "no steps"),
        ({"step": [{"at": 0, "action": "explode", "node": "node1"}]}, "'explode' is not one of"),
        ({"step": [{"action": "kill", "node": "node1"}]}, "'at' is required"),
        ({"step": [{"at": -1, "action": "kill", "node": "node1"}]}, "'at' must be a number"),
        ({"step": [{"at": 0, "action": "kill", "node": 3}]}, "node must be a node name"),
        ({"step": [{"at": 0, "action": "restart", "node": "n", "for": 2}]}, "restart has no"),
        ({"step": [{"at": 0, "action": "kill", "node": "n", "wait": 2}]}, "unknown keys ['wait']"),
        ({"step": [{"at": 0, "action": "kill", "node": "n"}], "tps": 3}, "unknown keys ['tps']"),
    ],
)
def test_a_bad_script_is_refused_saying_what_is_wrong(data: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_script(data)
    assert message in str(info.value)


def test_an_unreadable_or_unknown_script_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        load_script(tmp_path / "missing.toml")
    (tmp_path / "s.ini").write_text("x")
    with pytest.raises(ConfigError, match=r"\.toml, \.json or \.yaml"):
        load_script(tmp_path / "s.ini")
    (tmp_path / "bad.toml").write_text("[[step]\n")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        load_script(tmp_path / "bad.toml")


def test_overlapping_kills_of_two_local_nodes_are_refused() -> None:
    """A local kill ends with `testnet up`, which would also start the other killed node."""
    script = Script((Step(0, "kill", "node1", 5.0), Step(3, "kill", "node2", 5.0)))
    with pytest.raises(ConfigError, match="overlap"):
        check_overlaps(script)
    check_overlaps(Script((Step(0, "kill", "node1", 5.0), Step(6, "kill", "node2", 5.0))))
    check_overlaps(Script((Step(0, "kill", "node1", 5.0), Step(1, "pause", "node2", 5.0))))


class RecordingTarget:
    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.fail = fail

    def nodes(self) -> list[Any]:
        return []

    def apply(self, action: str, node: str) -> None:
        if node == self.fail:
            raise ConfigError(f"{node} is not running")
        self.calls.append(("apply", action, node))

    def revert(self, action: str, node: str) -> None:
        self.calls.append(("revert", action, node))


def test_steps_and_their_ends_play_in_time_order_and_crashes_are_recorded() -> None:
    """pause node2 [0, 0.2), kill node1 [0.1, 0.15): the kill starts and ends inside the
    pause; only the kill counts as a crash; restart has no end."""
    target = RecordingTarget()
    script = Script(
        (
            Step(0.0, "pause", "node2", 0.2),
            Step(0.1, "kill", "node1", 0.05),
            Step(0.25, "restart", "node3", None),
        )
    )
    result = play(target, script)
    assert target.calls == [
        ("apply", "pause", "node2"),
        ("apply", "kill", "node1"),
        ("revert", "kill", "node1"),
        ("revert", "pause", "node2"),
        ("apply", "restart", "node3"),
    ]
    assert [c.node for c in result.crashes] == ["node1", "node3"]
    assert all(p.applied_at is not None for p in result.played)


def test_a_step_that_cannot_be_applied_is_recorded_and_never_reverted() -> None:
    target = RecordingTarget(fail="node1")
    result = play(target, Script((Step(0.0, "pause", "node1", 0.01),)))
    assert target.calls == []
    assert result.played[0].error == "node1 is not running"


def test_the_command_refuses_bad_arguments_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lanenet(["perturb", "--target", "local", "--dir", str(tmp_path)]) == 2
    assert "give --action and --node, or --script FILE" in capsys.readouterr().err
    code = lanenet(
        ["perturb", "--target", "local", "--dir", str(tmp_path), "--action", "kill", "--node", "x"]
    )
    assert code == 2
    assert "no testnet here" in capsys.readouterr().err


def test_load_keys_cover_every_lane() -> None:
    """The recording load has accounts owned by every node, so any node's fault shows."""
    from node.execution.signing import address_of
    from node.mempool.routing import lane_of

    keys = derive_keys(4, 2, salt=b"x")
    assert sorted(lane_of(address_of(k), 4) for k in keys) == [0, 0, 1, 1, 2, 2, 3, 3]


def test_accepted_file_takes_lines_or_a_json_list_and_refuses_junk(tmp_path: Path) -> None:
    h = "0x" + "ab" * 32
    (tmp_path / "a.txt").write_text(f"{h}\n{h}\n")
    (tmp_path / "a.json").write_text(json.dumps([h]))
    (tmp_path / "bad.txt").write_text("0x12\n")
    assert [a.tx_hash for a in perturb._accepted_file(tmp_path / "a.txt")] == [h, h]
    assert [a.tx_hash for a in perturb._accepted_file(tmp_path / "a.json")] == [h]
    with pytest.raises(ConfigError, match="not a transaction hash: '0x12'"):
        perturb._accepted_file(tmp_path / "bad.txt")


# ------------------------------------------------------------------------------ compose


class FakeContainer:
    def __init__(self, service: str, rpc_host_port: str | None, networks: dict[str, Any]) -> None:
        self.id = f"{service:0<12}" + "f" * 52
        self.name = f"proj-{service}-1"
        self.labels = {"com.docker.compose.service": service, "com.docker.compose.project": "p"}
        ports = {"8545/tcp": [{"HostIp": "0.0.0.0", "HostPort": rpc_host_port}]}
        self.attrs = {
            "NetworkSettings": {"Ports": ports if rpc_host_port else {}, "Networks": networks}
        }
        self.log: list[str] = []

    def kill(self) -> None:
        self.log.append("kill")

    def start(self) -> None:
        self.log.append("start")

    def pause(self) -> None:
        self.log.append("pause")

    def unpause(self) -> None:
        self.log.append("unpause")

    def restart(self, timeout: int) -> None:
        self.log.append("restart")


class FakeNetwork:
    def __init__(self, name: str) -> None:
        self.name = name
        self.log: list[tuple[str, str, Any]] = []

    def disconnect(self, container: FakeContainer) -> None:
        self.log.append(("disconnect", container.name, None))

    def connect(self, container: FakeContainer, aliases: list[str] | None = None) -> None:
        self.log.append(("connect", container.name, aliases))


class FakeDocker:
    def __init__(self, containers: list[FakeContainer], networks: dict[str, FakeNetwork]) -> None:
        outer = self

        class Containers:
            def list(self, **kwargs: Any) -> list[FakeContainer]:
                assert kwargs["all"] is True  # stopped (killed) containers are found too
                wanted = dict(label.split("=", 1) for label in kwargs["filters"]["label"])
                return [
                    c
                    for c in outer._containers
                    if all(c.labels.get(k) == v for k, v in wanted.items())
                ]

        class Networks:
            def get(self, name: str) -> FakeNetwork:
                return outer._networks[name]

        self._containers = containers
        self._networks = networks
        self.containers = Containers()
        self.networks = Networks()


def compose_fixture() -> tuple[ComposeTarget, dict[str, FakeContainer], FakeNetwork]:
    net = FakeNetwork("p_default")
    containers = {
        name: FakeContainer(
            name,
            port,
            {"p_default": {"Aliases": [name, f"{name:0<12}"]}},
        )
        for name, port in (("node1", "8546"), ("node0", "8545"), ("prometheus", None))
    }
    client = FakeDocker(list(containers.values()), {"p_default": net})
    return ComposeTarget("p", client=client), containers, net


def test_compose_nodes_are_the_services_publishing_json_rpc_in_name_order() -> None:
    target, _, _ = compose_fixture()
    nodes = target.nodes()
    assert [(n.name, n.index, n.jsonrpc) for n in nodes] == [
        ("node0", 0, "http://127.0.0.1:8545"),
        ("node1", 1, "http://127.0.0.1:8546"),
    ]


def test_compose_actions_reach_the_service_container() -> None:
    target, containers, _ = compose_fixture()
    for action in ("kill", "pause", "restart"):
        target.apply(action, "node1")
        target.revert(action, "node1")
    assert containers["node1"].log == ["kill", "start", "pause", "unpause", "restart"]
    assert containers["node0"].log == []


def test_compose_disconnect_reconnects_with_the_same_aliases_but_not_the_id() -> None:
    target, _, net = compose_fixture()
    target.apply("disconnect", "node1")
    with pytest.raises(ConfigError, match="already disconnected"):
        target.apply("disconnect", "node1")
    target.revert("disconnect", "node1")
    assert net.log == [
        ("disconnect", "proj-node1-1", None),
        ("connect", "proj-node1-1", ["node1"]),
    ]


def test_compose_unknown_service_lists_the_services_there_are() -> None:
    target, _, _ = compose_fixture()
    with pytest.raises(ConfigError, match="services: node0, node1, prometheus"):
        target.apply("kill", "node9")


def test_compose_project_name_follows_compose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMPOSE_PROJECT_NAME", raising=False)
    assert compose_project_name(None, Path("/x/My.Lanenet_Repo")) == "mylanenet_repo"
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", "ci")
    assert compose_project_name(None, Path("/x/y")) == "ci"
    assert compose_project_name("Given", Path("/x/y")) == "given"
