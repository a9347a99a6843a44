"""Full nodes beside a 4-validator testnet: one follows from genesis, and a fresh one joins
under load with --state-sync (a snapshot from the validators, then block sync) and then
serves the same block hashes and balances as the validators. Last, a validator whose data
is wiped rejoins with --state-sync and takes part in consensus again."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.execution.signing import address_of
from node.mempool.routing import lane_of
from node.tools import testnet as tn
from tests.integration.conftest import (
    PORT_KINDS,
    VALIDATORS,
    DevAccount,
    RpcFailed,
    Testnet,
    call,
    free_port_base,
    sink_address,
)
from tests.integration.test_tiers_testnet import (
    HOT_BLOCKS,
    SNAPSHOT_INTERVAL,
    ports_at,
    send_round,
    start_small_hot_testnet,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testnet]:
    directory = tmp_path_factory.mktemp("statesync")
    try:
        yield start_small_hot_testnet(directory)
    finally:
        tn.down(directory, grace=5.0)


def add_full_node(net: Testnet) -> tuple[Path, str]:
    """A new full node with free ports; its directory and JSON-RPC URL."""
    ports = ports_at(free_port_base(PORT_KINDS, random.Random()), 1)
    node_dir = tn.add_full_node(net.directory, ports=ports)
    return node_dir, f"http://127.0.0.1:{ports.jsonrpc}/"


def status(url: str) -> dict[str, int] | None:
    try:
        reply = call(url, "lanenet_status", timeout=2.0)
    except (OSError, RpcFailed, ValueError):
        return None
    return reply if isinstance(reply, dict) else None


def executed(url: str) -> int:
    s = status(url)
    return -1 if s is None else int(s["executed_height"])


def hashes(url: str, first: int, last: int) -> list[str | None]:
    out = []
    for h in range(first, last + 1):
        block = call(url, "eth_getBlockByNumber", hex(h), False)
        out.append(None if block is None else block["hash"])
    return out


class Load:
    """A light sender: one round of transfers from every dev account after another."""

    def __init__(self, net: Testnet) -> None:
        self.net = net
        self.stop = threading.Event()
        self.rounds = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                send_round(self.net)
                self.rounds += 1
        except (AssertionError, OSError, RpcFailed) as exc:  # reported by the test thread
            self.error = exc

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=90)


def test_a_full_node_follows_from_genesis_and_serves_the_same_chain(net: Testnet) -> None:
    node_dir, url = add_full_node(net)
    tn.start_node(node_dir)
    send_round(net)
    top = min(net.heights())
    net.wait_until(lambda: executed(url) >= top, "the full node to execute the chain", 60)
    assert hashes(url, 1, top) == net.block_hashes(0, 1, top)
    full = status(url)
    assert full is not None and full["node_id"] == node_dir.name
    sink = "0x" + (1).to_bytes(20, "big").hex()
    assert call(url, "eth_getBalance", sink, hex(top)) == net.call(
        0, "eth_getBalance", sink, hex(top)
    )
    # a transaction sent to the full node is forwarded to a validator and executes
    account = net.accounts[0]
    nonce = net.nonces(0, [account])[0]
    raw = account.transfer(nonce, b"\x09" * 20, 5)
    tx = call(url, "eth_sendRawTransaction", "0x" + raw.hex())
    net.wait_until(
        lambda: call(url, "eth_getTransactionReceipt", tx) is not None,
        "the forwarded transaction's receipt on the full node",
        60,
    )
    assert tn.status(net.directory)[-1]["name"] == node_dir.name  # testnet status lists it


def test_a_fresh_full_node_state_syncs_under_load_and_serves_the_same_hashes(
    net: Testnet,
) -> None:
    with Load(net) as load:
        net.wait_until(
            lambda: min(net.heights()) >= 2 * SNAPSHOT_INTERVAL + 5,
            "the validators to pass two snapshot heights",
            120,
        )
        node_dir, url = add_full_node(net)
        tn.start_node(node_dir, ("--state-sync",))
        net.wait_until(
            lambda: executed(url) >= min(net.heights()),
            "the state-synced full node to reach the validators' height",
            90,
        )
        rounds = load.rounds
        net.wait_until(lambda: load.rounds >= rounds + 2, "two more rounds of load", 60)
        assert load.error is None, load.error
    log = (node_dir / "node.log").read_text()
    assert "state_sync_installed" in log
    snapshot = int(log.split("state_sync_installed", 1)[1].split("height=", 1)[1].split()[0])
    assert snapshot >= 2 * SNAPSHOT_INTERVAL and snapshot % SNAPSHOT_INTERVAL == 0
    top = min(net.heights())
    net.wait_until(lambda: executed(url) >= top, "the full node to catch up after the load", 60)
    # a node started from a snapshot keeps no archive: it holds its last HOT_BLOCKS heights
    first = max(snapshot, top - HOT_BLOCKS + 1)
    assert hashes(url, first, top) == net.block_hashes(0, first, top)
    assert call(url, "eth_getBlockByNumber", "0x1", False) is None  # below its snapshot
    for account in net.accounts:
        assert call(url, "eth_getBalance", account.hex, hex(top)) == net.call(
            VALIDATORS - 1, "eth_getBalance", account.hex, hex(top)
        )


def send_to(net: Testnet, node: int, accounts: list[DevAccount], value: int) -> list[str]:
    """One transfer from each of ``accounts``, sent to ``node`` only; the accepted hashes."""
    nonces = net.nonces(node, accounts)
    pairs = enumerate(zip(accounts, nonces, strict=True))
    raws = [a.transfer(n, sink_address(i), value) for i, (a, n) in pairs]
    replies = net.batch(node, [("eth_sendRawTransaction", ("0x" + r.hex(),)) for r in raws])
    for reply in replies:
        assert not isinstance(reply, RpcFailed), reply
    return [str(r) for r in replies]


def wait_receipts(net: Testnet, node: int, hashes: list[str], what: str) -> None:
    net.wait_until(lambda: all(r is not None for r in net.receipts(node, hashes)), what, 90)


def lane_account(net: Testnet, lane: int) -> DevAccount:
    """A new account whose transactions belong to ``lane``, funded from a dev account of
    another lane (sent to node0)."""
    key_seed = 1
    while True:
        key = hashlib.sha256(b"state-sync lane account %d" % key_seed).digest()
        account = DevAccount(key, address_of(key))
        if lane_of(account.address, VALIDATORS) == lane:
            break
        key_seed += 1
    funder = next(a for a in net.accounts if lane_of(a.address, VALIDATORS) != lane)
    nonce = net.nonces(0, [funder])[0]
    raw = funder.transfer(nonce, account.address, 10**18)
    tx = net.call(0, "eth_sendRawTransaction", "0x" + raw.hex())
    wait_receipts(net, 0, [tx], "the lane account's funding")
    return account


def test_a_wiped_validator_state_syncs_and_votes_and_proposes_again(net: Testnet) -> None:
    """Validator 3 loses its data (kill -9, data and archive deleted) and rejoins with
    ``node run --state-sync``: it installs a snapshot, saves the blocks after it, resumes
    consensus at the tip, and then counts: with validator 2 down as well, blocks still
    commit only because validator 3 votes, and a transaction of lane 3 commits only because
    its lane carries cars again. Its blocks are the others' block for block."""
    synced, other = 3, 2
    lane3 = lane_account(net, synced)
    # one car per receipt: lane 3 ends further ahead than a lane may run past its last PoA
    # (the restored validator has no PoA of its own lane, only the ordered position)
    window = json.loads((net.directory / "genesis.json").read_text())["protocol"]["lane_window"]
    for _ in range(window + 2):
        wait_receipts(net, 0, send_to(net, 0, [lane3], 3), "a car in lane 3 before the wipe")
    elsewhere = [a for a in net.accounts if lane_of(a.address, VALIDATORS) != synced]
    node_dir = net.directory / f"node{synced}"
    net.kill(synced)
    for sub in ("data", "archive"):
        shutil.rmtree(node_dir / sub, ignore_errors=True)
    alive = [0, 1, 2]
    start = max(net.heights(alive))
    while min(net.heights(alive)) < start + 2 * SNAPSHOT_INTERVAL:  # a snapshot after the wipe
        wait_receipts(net, 0, send_to(net, 0, elsewhere, 1), "a round on three validators")
    tn.start_node(node_dir, ("--state-sync",))
    net.wait_until(
        lambda: net.height(synced) >= min(net.heights(alive)),
        "the state-synced validator to reach the others' height",
        90,
    )
    log = (node_dir / "node.log").read_text()
    assert "state_sync_installed" in log and "ordering_resumed_from_chain" in log
    snapshot = int(log.split("state_sync_installed", 1)[1].split("height=", 1)[1].split()[0])
    assert snapshot > start
    net.kill(other)
    try:
        before = max(net.heights([0, 1, synced]))
        live_lanes = [a for a in elsewhere if lane_of(a.address, VALIDATORS) != other]
        hashes = send_to(net, 0, [lane3], 7) + send_to(net, 0, live_lanes[:3], 2)
        wait_receipts(net, synced, hashes, "lane 3's and others' transfers with node2 down")
        net.wait_until(
            lambda: min(net.heights([0, 1, synced])) > before,
            "blocks to commit with validator 2 down",
            60,
        )
        top = min(net.heights([0, 1, synced]))
        first = max(snapshot, top - HOT_BLOCKS + 1)
        assert net.block_hashes(synced, first, top) == net.block_hashes(0, first, top)
        assert net.call(synced, "eth_getBalance", lane3.hex, hex(top)) == net.call(
            0, "eth_getBalance", lane3.hex, hex(top)
        )
    finally:
        net.restart()
