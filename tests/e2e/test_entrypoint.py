"""The image's entrypoint (deploy/entrypoint.sh), run with a stub `lanenet` that prints its
arguments: each role finds the node's identity and the shared files from mounts or the
environment, and a missing piece is a clear message with exit code 2. No Docker needed."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from node.tools import testnet
from tests.e2e.stack import ROOT

ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
LAYOUT = testnet.Layout(listen_host="0.0.0.0", host_template="node{i}", same_ports=True)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "lanenet"
    stub.write_text('#!/bin/sh\necho "lanenet $*"\n')
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    home = tmp_path / "home"
    home.mkdir()
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "TMPDIR": str(tmp_path),
        "LANENET_HOME": str(home),
        "LANENET_TESTNET_DIR": str(tmp_path / "testnet"),
    }


def run(env: dict[str, str], *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *args],
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_node_without_identity_says_what_to_set(env: dict[str, str]) -> None:
    """No index, config path or config contents: exit 2 naming the three ways."""
    proc = run(env, "node")
    assert proc.returncode == 2
    assert "no node identity" in proc.stderr
    assert "LANENET_NODE_INDEX" in proc.stderr and "LANENET_CONFIG" in proc.stderr


def test_node_without_the_shared_genesis_says_so(env: dict[str, str]) -> None:
    """An index but no testnet mounted: exit 2, the genesis path named."""
    proc = run(env, "node", LANENET_NODE_INDEX="1")
    assert proc.returncode == 2
    assert "genesis" in proc.stderr and "not found" in proc.stderr


def test_node_index_runs_that_nodes_config(env: dict[str, str]) -> None:
    """With the testnet mounted, node i runs nodeI/config.toml of it."""
    directory = Path(env["LANENET_TESTNET_DIR"])
    testnet.generate(directory, validators=4, layout=LAYOUT)
    proc = run(env, "node", LANENET_NODE_INDEX="2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"lanenet node run --config {directory}/node2/config.toml"


def test_node_with_a_missing_key_names_it(env: dict[str, str]) -> None:
    """A config whose validator key is absent fails before the node starts."""
    directory = Path(env["LANENET_TESTNET_DIR"])
    testnet.generate(directory, validators=4, layout=LAYOUT)
    (directory / "node0" / "validator_key.json").unlink()
    proc = run(env, "node", LANENET_NODE_INDEX="0")
    assert proc.returncode == 2
    assert "validator key" in proc.stderr and "validator_key.json" in proc.stderr


def test_bad_index_is_refused(env: dict[str, str]) -> None:
    proc = run(env, "node", LANENET_NODE_INDEX="two")
    assert proc.returncode == 2
    assert "must be a number" in proc.stderr


def test_node_from_environment_contents(env: dict[str, str], tmp_path: Path) -> None:
    """Config, genesis and key given as contents (a Secret as env): written under the home
    directory, the key readable by its owner only, and that config is run."""
    source = tmp_path / "source"
    testnet.generate(source, validators=4, layout=LAYOUT)
    proc = run(
        env,
        "node",
        LANENET_CONFIG_TOML=(source / "node3" / "config.toml").read_text(),
        LANENET_GENESIS_JSON=(source / "genesis.json").read_text(),
        LANENET_VALIDATOR_KEY=(source / "node3" / "validator_key.json").read_text(),
    )
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(env["LANENET_HOME"]) / "run"
    assert proc.stdout.strip() == f"lanenet node run --config {run_dir}/node/config.toml"
    key = run_dir / "node" / "validator_key.json"
    assert key.read_text().strip() == (source / "node3" / "validator_key.json").read_text().strip()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_config_contents_without_genesis_is_refused(env: dict[str, str]) -> None:
    proc = run(env, "node", LANENET_CONFIG_TOML='name = "node0"')
    assert proc.returncode == 2
    assert "LANENET_GENESIS_JSON is not" in proc.stderr


def test_init_generates_the_container_layout(env: dict[str, str]) -> None:
    """init asks for a testnet with one host per node, base ports, data in the volumes, and
    keeps an existing one."""
    Path(env["LANENET_TESTNET_DIR"]).mkdir()
    proc = run(env, "init", LANENET_VALIDATORS="7")
    assert proc.returncode == 0, proc.stderr
    args = proc.stdout.split()
    assert args[:3] == ["lanenet", "testnet", "generate"]
    for flag, value in [
        ("--validators", "7"),
        ("--host-template", "node{i}"),
        ("--listen-host", "0.0.0.0"),
        ("--data-dir", f"{env['LANENET_HOME']}/data"),
    ]:
        assert args[args.index(flag) + 1] == value
    assert "--if-missing" in args and "--same-ports" in args


def test_init_needs_a_writable_testnet_dir(env: dict[str, str]) -> None:
    proc = run(env, "init")
    assert proc.returncode == 2
    assert "not writable" in proc.stderr


def test_spam_targets_every_validator_by_name(env: dict[str, str]) -> None:
    """spam sends to node0..node3 by their compose names, with the testnet's dev accounts,
    at the rate from the environment; extra arguments come last and win."""
    directory = Path(env["LANENET_TESTNET_DIR"])
    testnet.generate(directory, validators=4, layout=LAYOUT)
    proc = run(env, "spam", "--json", LANENET_SPAM_TPS="50")
    assert proc.returncode == 0, proc.stderr
    args = proc.stdout.split()
    assert args[args.index("--rpc") + 1] == ",".join(f"http://node{i}:8545" for i in range(4))
    assert args[args.index("--grpc") + 1] == ",".join(f"node{i}:9090" for i in range(4))
    assert args[args.index("--keys") + 1] == f"{directory}/accounts.json"
    assert args[args.index("--tps") + 1] == "50"
    assert args[-1] == "--json"


def test_healthcheck_outside_the_node_role_is_healthy(env: dict[str, str]) -> None:
    """The image's HEALTHCHECK in the init or spammer container has no node to ask."""
    assert run(env, "healthcheck").returncode == 0


def test_healthcheck_of_a_node_that_does_not_answer_fails(env: dict[str, str]) -> None:
    """Once the node role has started, the health check asks its metrics port."""
    directory = Path(env["LANENET_TESTNET_DIR"])
    ports = testnet.Ports(metrics=1)  # nothing listens on port 1
    testnet.generate(directory, validators=4, ports=ports, layout=LAYOUT)
    assert run(env, "node", LANENET_NODE_INDEX="0").returncode == 0
    proc = run(env, "healthcheck")
    assert proc.returncode == 1
    assert "127.0.0.1:1/healthz" in proc.stdout


def test_other_commands_go_to_lanenet(env: dict[str, str]) -> None:
    proc = run(env, "status", "http://node0:8545")
    assert proc.stdout.strip() == "lanenet status http://node0:8545"
