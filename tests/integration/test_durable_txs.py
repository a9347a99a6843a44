"""kill -9 loses no accepted transaction: a 4-validator testnet where transactions for
validator 3's lane are accepted (by validator 3 itself, and by validator 0 which forwards
them), the accepting node is killed before anything is sealed, restarted, and every
transaction that was answered "accepted" gets a receipt.

The window is made deterministic with the test hook LANENET_DEBUG_HOLD_LANE=1: validator 3
starts with its lane feeder stopped, so what it admits stays unsealed until the kill (its
restart runs without the hook)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node.execution.keccak import keccak256
from node.execution.signing import address_of
from node.mempool.routing import lane_of
from node.tools import testnet as tn
from tests.integration.conftest import (
    VALIDATORS,
    DevAccount,
    RpcFailed,
    Testnet,
    sink_address,
    start_testnet,
)

pytestmark = pytest.mark.integration

OWNER = 3  # the lane whose transactions are at stake; its validator is killed
HOOK = "LANENET_DEBUG_HOLD_LANE"
PER_ACCOUNT = 20
RECEIPT_TIMEOUT = 90.0


@pytest.fixture
def held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Testnet, set[int]]]:
    """A testnet and the set of node indexes started with the hold hook on their next start
    (node3 at first; the test empties it before restarting)."""
    directory = tmp_path / "testnet"
    hold = {OWNER}
    real_start = tn.start_node

    def start_node(node_dir: Path, extra_args: tuple[str, ...] = ()) -> int:
        if int(node_dir.name.removeprefix("node")) not in hold:
            return real_start(node_dir, extra_args)
        with monkeypatch.context() as patch:
            patch.setenv(HOOK, "1")
            return real_start(node_dir, extra_args)

    monkeypatch.setattr(tn, "start_node", start_node)
    try:
        yield start_testnet(directory), hold
    finally:
        monkeypatch.undo()
        tn.down(directory, grace=5.0)


def owner_lane_accounts(net: Testnet, count: int) -> list[DevAccount]:
    """``count`` fresh accounts of lane OWNER, funded by a dev account of another lane
    (whose transfers execute while OWNER's lane is held)."""
    keys = (b"\x00" + keccak256(b"durable txs %d" % i)[1:] for i in range(10_000))
    fresh = [
        DevAccount(key, address_of(key))
        for key in keys
        if lane_of(address_of(key), VALIDATORS) == OWNER
    ][:count]
    funder = next(a for a in net.accounts if lane_of(a.address, VALIDATORS) != OWNER)
    (nonce,) = net.nonces(0, [funder])
    for i, account in enumerate(fresh):
        raw = funder.transfer(nonce + i, account.address, 10**18)
        net.call(0, "eth_sendRawTransaction", "0x" + raw.hex())
    net.wait_for_nonces(0, [funder], [nonce + count], timeout=60.0)
    return fresh


def submit(net: Testnet, node: int, account: DevAccount) -> list[str]:
    """PER_ACCOUNT transfers from ``account`` (nonces from 0) to ``node`` in one batch; all
    must be accepted."""
    raws = [account.transfer(n, sink_address(n), value=1) for n in range(PER_ACCOUNT)]
    replies = net.batch(node, [("eth_sendRawTransaction", ("0x" + r.hex(),)) for r in raws])
    refused = [r for r in replies if isinstance(r, RpcFailed)]
    assert not refused, f"node{node} refused transfers: {refused}"
    return list(replies)


def wait_for_receipts(net: Testnet, hashes: list[str]) -> None:
    def all_executed() -> bool:
        receipts = net.receipts(0, hashes)
        return all(r is not None and r["status"] == "0x1" for r in receipts)

    what = f"receipts (status 1) of all {len(hashes)} accepted transfers"
    net.wait_until(all_executed, what, RECEIPT_TIMEOUT, poll=0.5)


def test_owner_killed_before_sealing_loses_nothing(held: tuple[Testnet, set[int]]) -> None:
    """Transfers for lane 3 accepted by node3 (admitted, unsealed) and by node0 (forwarded to
    node3): kill -9 node3 right after the submits return; once it is restarted every one of
    them executes."""
    net, hold = held
    direct, forwarded = owner_lane_accounts(net, 2)
    hashes = submit(net, OWNER, direct) + submit(net, 0, forwarded)
    net.kill(OWNER)
    assert net.nonces(0, [direct, forwarded]) == [0, 0]  # nothing of lane 3 executed yet
    hold.clear()
    net.restart()
    wait_for_receipts(net, hashes)
    assert net.nonces(0, [direct, forwarded]) == [PER_ACCOUNT, PER_ACCOUNT]


def test_forwarding_node_killed_with_the_owner_down_loses_nothing(
    held: tuple[Testnet, set[int]],
) -> None:
    """node3 is down; node0 accepts transfers for lane 3 (only buffered for the dead link)
    and is killed -9 at once: after both restart, node0 forwards them again and all execute."""
    net, hold = held
    (account,) = owner_lane_accounts(net, 1)
    hold.clear()
    net.kill(OWNER)
    hashes = submit(net, 0, account)
    net.kill(0)
    net.restart()
    wait_for_receipts(net, hashes)
    assert net.nonces(1, [account]) == [PER_ACCOUNT]
