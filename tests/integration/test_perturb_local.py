"""`lanenet perturb --target local` on a real 4-process testnet: a scripted kill and pause
under load keep every invariant, and a node left dead is caught as a liveness violation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.tools import perturb
from tests.integration.conftest import VALIDATORS, Testnet

pytestmark = pytest.mark.integration

SCRIPT = """
load_tps = 30
liveness_bound = 30
settle = 30
warmup = 2
[[step]]
at = 0
action = "kill"
node = "node1"
for = 3
[[step]]
at = 5
action = "pause"
node = "node2"
for = 3
"""


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    code = perturb.main([*args, "--json"])
    lines = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(lines[-1])


def test_kill_and_pause_under_load_keep_the_invariants(
    fresh_testnet: Testnet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """node1 killed for 3 s, then node2 paused for 3 s, under 30 tx/s: every node lists the
    same blocks, every accepted transfer is in exactly one block (or gave its nonce to a resent
    one), node1's too, and all four commit again; node1 runs as a new process afterwards."""
    net = fresh_testnet
    old_pid = net.pid(1)
    script = tmp_path / "script.toml"
    script.write_text(SCRIPT)
    code, report = run(
        ["--target", "local", "--dir", str(net.directory), "--script", str(script)], capsys
    )
    assert report["violations"] == []
    assert code == 0
    steps = report["steps"]
    assert isinstance(steps, list)
    assert [(s["action"], s["node"], s["error"]) for s in steps] == [
        ("kill", "node1", None),
        ("pause", "node2", None),
    ]
    assert all(s["reverted_at"] is not None for s in steps)
    txs = report["txs"]
    assert isinstance(txs, dict)
    assert txs["accepted"] > 100
    # nothing node1 accepted is lost with it; replaced: a reply lost in the kill, the nonce
    # sent again
    assert txs["committed_once"] + txs["replaced"] == txs["accepted"]
    assert txs["replaced"] <= 10
    assert txs["missing"] == txs["duplicated"] == txs["lost_in_crash"] == 0
    heights = report["heights"]
    assert isinstance(heights, dict) and len(heights) == VALIDATORS
    # every height all nodes hold was compared (heights only some nodes reached yet, while
    # the last blocks of the load were still executing, are compared too)
    assert report["compared_heights"] >= report["common_height"] + 1 > 10
    assert net.pid(1) != old_pid
    net.wait_ready()  # node2 is running again too (SIGCONT) and sees its peers


def test_a_node_left_dead_is_a_liveness_violation(
    fresh_testnet: Testnet, capsys: pytest.CaptureFixture[str]
) -> None:
    """kill node3 with no --for and check: the other three go on, node3 does not commit
    again, and the report names it; the exit code is 1."""
    net = fresh_testnet
    args = ["--target", "local", "--dir", str(net.directory), "--action", "kill"]
    code, report = run([*args, "--node", "node3", "--check", "--liveness-bound", "4"], capsys)
    assert code == 1
    violations = report["violations"]
    assert isinstance(violations, list)
    assert [v["invariant"] for v in violations][:2] == ["liveness", "agreement"]
    assert violations[0]["message"].startswith("node3 did not commit above height")
    assert violations[1]["message"] == "node3: does not answer"
    # transactions node3 accepted for its own lane wait on its disk while it stays dead:
    # reported as never committed, and only those
    for violation in violations[2:]:
        assert violation["invariant"] == "exactly_once"
        assert "accepted by node3" in violation["message"] or "in all" in violation["message"]
