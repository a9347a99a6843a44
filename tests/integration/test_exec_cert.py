"""A real 4-process testnet where one validator's state is corrupted (test hook
LANENET_DEBUG_CORRUPT_COMMITMENT_AT): the execution certificates of the other three expose
it, it exits with code 3 and a clear message, and the other three keep committing."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.mempool.routing import lane_of
from node.tools import testnet as tn
from tests.integration.conftest import VALIDATORS, DevAccount, Testnet, start_testnet

pytestmark = pytest.mark.integration

CORRUPT = 3
CORRUPT_FROM = 1  # every reported commitment of node3 is wrong: the first checkpoint exposes it
INTERVAL = tn.TESTNET_PROTOCOL.exec_cert_interval
HOOK = "LANENET_DEBUG_CORRUPT_COMMITMENT_AT"


@pytest.fixture
def corrupt_testnet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Testnet]:
    """A testnet whose node3 was started with the corruption hook (the others without)."""
    directory = tmp_path / "testnet"
    real_start = tn.start_node

    def start_node(node_dir: Path, extra_args: tuple[str, ...] = ()) -> int:
        if node_dir.name != f"node{CORRUPT}":
            return real_start(node_dir, extra_args)
        with monkeypatch.context() as patch:
            patch.setenv(HOOK, str(CORRUPT_FROM))
            return real_start(node_dir, extra_args)

    monkeypatch.setattr(tn, "start_node", start_node)
    try:
        yield start_testnet(directory)
    finally:
        monkeypatch.undo()
        tn.down(directory, grace=5.0)


def exit_code(pid: int) -> int | None:
    """The exit code of our child ``pid`` once it has exited (reaping it), else None."""
    try:
        waited, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status) if waited == pid else None


def send_round(net: Testnet, accounts: list[DevAccount], nonces: list[int]) -> None:
    """One transfer per account, each sent to a node other than the corrupt one."""
    for i, account in enumerate(accounts):
        raw = account.transfer(nonces[i], (i + 1).to_bytes(20, "big"), value=1)
        net.call(i % CORRUPT, "eth_sendRawTransaction", "0x" + raw.hex())
        nonces[i] += 1


def test_validator_with_corrupted_state_halts_and_the_rest_keep_committing(
    corrupt_testnet: Testnet,
) -> None:
    """node3 reports wrong state commitments: it exits with code 3 naming both commitments,
    before serving anything past the first checkpoint; nodes 0-2 commit past two more."""
    net = corrupt_testnet
    pid = net.pid(CORRUPT)
    # the corrupt node's lane stops with it: use accounts whose transactions other lanes carry
    accounts = [a for a in net.accounts if lane_of(a.address, VALIDATORS) != CORRUPT]
    assert accounts
    nonces = net.nonces(0, accounts)
    code: int | None = None
    deadline = time.monotonic() + 120
    while code is None:
        assert time.monotonic() < deadline, f"node3 never halted:\n{net.log_tail(CORRUPT)}"
        send_round(net, accounts, nonces)
        net.wait_for_nonces(0, accounts, nonces, timeout=30)
        code = exit_code(pid)
    log = (net.directory / f"node{CORRUPT}" / "node.log").read_text(errors="replace")
    assert code == 3, log[-3000:]
    assert "lanenet: fatal error: execution diverged at height" in log
    assert "execution_diverged" in log and "certified_commitment" in log
    halted_at = max(net.heights([0, 1, 2]))
    assert halted_at >= INTERVAL

    target = (halted_at // INTERVAL + 2) * INTERVAL
    deadline = time.monotonic() + 120
    while min(net.heights([0, 1, 2])) < target:
        assert time.monotonic() < deadline, f"nodes 0-2 stalled at {net.heights([0, 1, 2])}"
        send_round(net, accounts, nonces)
        net.wait_for_nonces(0, accounts, nonces, timeout=30)
    for i in range(3):
        assert "execution_diverged" not in net.log_tail(i, lines=10_000), f"node{i} halted"
    assert net.try_status(CORRUPT) is None, "the halted node still serves JSON-RPC"
    # the three keep certifying their execution: lanenet_status shows the certified height
    status = net.try_status(0)
    assert status is not None
    assert target - 2 * INTERVAL <= status["certified_height"] <= status["executed_height"]
    assert status["certified_height"] % INTERVAL == 0

    # started again, the halted node refuses: it would serve the diverged state until the
    # next checkpoint caught it
    node_dir = net.directory / f"node{CORRUPT}"
    marker = json.loads((node_dir / "data" / "HALTED").read_text())
    assert marker["height"] % INTERVAL == 0 and marker["own_commitment"]
    restarted = tn.start_node(node_dir)
    deadline = time.monotonic() + 60
    while (code := exit_code(restarted)) is None:
        assert time.monotonic() < deadline, "the halted node started again"
        time.sleep(0.1)  # polling a child process's exit against a deadline
    assert code == 3
    log = (node_dir / "node.log").read_text(errors="replace")
    assert "halted because its execution diverged" in log
