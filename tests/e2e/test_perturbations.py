"""Perturbations of the compose testnet: a validator killed with SIGKILL, or paused, while
the other three carry load; the three keep committing every accepted transaction, the
perturbed one comes back, catches up within a bound, and every node holds the same chain.

The actions go through `lanenet perturb --target compose` when the node package has it,
else straight through docker compose.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.chain import assert_same_chain, wait_caught_up
from tests.e2e.stack import ROOT, VALIDATORS, Stack, wait_until

pytestmark = pytest.mark.e2e

CATCH_UP_S = 90.0  # the liveness bound: back, healthy and caught up
PAUSE_S = 15
OUTAGE_S = 30.0  # the other three must commit within this while one node is down
SETTLE_S = 90  # the spammer's wait for pending transactions, past the outage
LOAD = ("--tps", "100", "--duration", "10")


def has_perturb_tool() -> bool:
    return importlib.util.find_spec("node.tools.perturb") is not None


def perturb_command(stack: Stack, *args: str) -> list[str]:
    project = os.environ.get("COMPOSE_PROJECT_NAME", ROOT.name)
    return [sys.executable, "-m", "node.cli", "perturb", "--target", "compose",
            "--project", project, *args]  # fmt: skip


@contextlib.contextmanager
def node_down(stack: Stack, action: str, name: str) -> Iterator[None]:
    """``name`` killed (then started again) or paused (then resumed) for the ``with`` body."""
    if not has_perturb_tool():
        stack.compose(*(("kill", "-s", "SIGKILL") if action == "kill" else ("pause",)), name)
        try:
            yield
        finally:
            stack.compose("start" if action == "kill" else "unpause", name)
        return
    if action == "kill":  # without --for the node stays down; `restart` starts it again
        subprocess.run(perturb_command(stack, "--action", "kill", "--node", name),
                       check=True, timeout=120, env=stack.env(), cwd=ROOT)  # fmt: skip
        try:
            yield
        finally:
            subprocess.run(perturb_command(stack, "--action", "restart", "--node", name),
                           check=True, timeout=120, env=stack.env(), cwd=ROOT)  # fmt: skip
        return
    # pause --for blocks until it resumes the node: run it beside the body
    cmd = perturb_command(stack, "--action", "pause", "--node", name, "--for", str(PAUSE_S))
    proc = subprocess.Popen(cmd, env=stack.env(), cwd=ROOT)
    try:
        wait_until(lambda: stack.health(name) == "paused", f"{name} to pause", timeout=30)
        yield
    finally:
        assert proc.wait(timeout=PAUSE_S + 60) == 0, f"{' '.join(cmd)} failed"


def load_without(stack: Stack, down: int) -> subprocess.Popen[str]:
    """The spammer container, sending only to the nodes other than ``down``, once it sends.
    Its settle time outlasts the outage: the down node's lane commits after it is back."""
    up = [i for i in range(VALIDATORS) if i != down]
    rpc = ",".join(f"http://node{i}:8545" for i in up)
    grpc = ",".join(f"node{i}:9090" for i in up)
    return stack.spam_started(*LOAD, "--settle", str(SETTLE_S), "--rpc", rpc, "--grpc", grpc)


def assert_load_committed(report: dict[str, Any]) -> None:
    assert report["sent"] > 0
    assert report["accepted"] == report["sent"], report["rejected_reasons"]
    assert report["committed"] == report["accepted"], f"pending: {report['pending']}"


@pytest.mark.parametrize(
    ("action", "down"),
    [
        ("pause", 2),
        ("kill", 3),
    ],
)
def test_three_nodes_commit_while_one_is_down_and_it_catches_up(
    stack: Stack, action: str, down: int
) -> None:
    """With one of four validators killed (or frozen) under a 10 s load sent to the other
    three, those three keep committing; once it is started again (or resumed) every accepted
    transaction commits (its lane's too), and it becomes healthy, executes up to the others'
    height within the bound and agrees on every block hash."""
    name = f"node{down}"
    others = [i for i in range(VALIDATORS) if i != down]
    spammer = load_without(stack, down)
    try:
        before = stack.heights(others)
        with node_down(stack, action, name):
            if action == "kill":
                wait_until(lambda: stack.health(name) == "exited", f"{name} to exit", timeout=30)
            wait_until(
                lambda: min(stack.heights(others).values()) > max(before.values()),
                f"the other three nodes to commit while {name} is down",
                timeout=OUTAGE_S,
            )
        report = stack.report_of(spammer)
    finally:
        if spammer.poll() is None:
            spammer.kill()
    assert_load_committed(report)
    target = max(stack.heights(others).values())
    wait_until(lambda: stack.health(name) == "healthy", f"{name} to be healthy", CATCH_UP_S)
    wait_caught_up(stack, target, timeout=CATCH_UP_S)
    assert_same_chain(stack)
