"""A testnet with a small hot tier (hot_blocks 20, segment_blocks 10): the archive grows,
the hot tier stays bounded, and the first block and the first balance change still answer."""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.storage.archive import Archive, verify_segment
from node.storage.chain_store import ChainStore
from node.storage.kv import LevelDBKV
from node.storage.schema import Table, table_range
from node.storage.snapshot import SnapshotStore
from node.tools import testnet as tn
from tests.integration.conftest import (
    CHAIN_ID,
    PORT_KINDS,
    VALIDATORS,
    DevAccount,
    Testnet,
    free_port_base,
    sink_address,
)

pytestmark = pytest.mark.integration

HOT_BLOCKS = 20
SEGMENT_BLOCKS = 10
SNAPSHOT_INTERVAL = 20
SMALL_HOT = tn.Storage(
    hot_blocks=HOT_BLOCKS, segment_blocks=SEGMENT_BLOCKS, snapshot_interval=SNAPSHOT_INTERVAL
)


def ports_at(base: int, count: int) -> tn.Ports:
    return tn.Ports(
        grpc=base,
        client=base + count,
        jsonrpc=base + 2 * count,
        metrics=base + 3 * count,
        p2p=base + 4 * count,
    )


def start_small_hot_testnet(directory: Path) -> Testnet:
    """A 4-validator testnet whose nodes keep 20 hot heights and snapshot every 20."""
    ports = ports_at(free_port_base(PORT_KINDS * VALIDATORS, random.Random()), VALIDATORS)
    tn.generate(
        directory, VALIDATORS, CHAIN_ID, ports=ports, p2p=False, storage=SMALL_HOT
    )
    accounts = [
        DevAccount(bytes.fromhex(a["private_key"][2:]), bytes.fromhex(a["address"][2:]))
        for a in tn.load_accounts(directory)
    ]
    urls = [f"http://127.0.0.1:{ports.jsonrpc + i}/" for i in range(VALIDATORS)]
    net = Testnet(directory, urls, accounts)
    tn.up(directory)
    net.wait_ready()
    return net


@pytest.fixture(scope="module")
def small_hot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testnet]:
    directory = tmp_path_factory.mktemp("tiers")
    try:
        yield start_small_hot_testnet(directory)
    finally:
        tn.down(directory, grace=5.0)


def send_round(net: Testnet) -> None:
    """One transfer from every dev account, executed on node0 before this returns."""
    before = net.nonces(0, net.accounts)
    net.send_transfers(1)
    net.wait_for_nonces(0, net.accounts, [n + 1 for n in before], timeout=60)


def archived_heights(net: Testnet) -> list[int]:
    return [int((net.try_status(i) or {}).get("archived_height") or 0) for i in range(VALIDATORS)]


def test_history_moves_to_the_archive_and_old_queries_still_answer(small_hot: Testnet) -> None:
    net = small_hot
    first_hashes = net.send_transfers(1)
    net.wait_for_nonces(0, net.accounts, [1] * len(net.accounts), timeout=60)
    first = net.call(0, "eth_getTransactionReceipt", first_hashes[0])
    change_height = int(first["blockNumber"], 16)
    rounds = 1
    while min(net.heights()) < change_height + 4 * HOT_BLOCKS:
        send_round(net)
        rounds += 1
        assert rounds < 400, "the chain does not grow"
    net.wait_until(
        lambda: min(archived_heights(net)) >= change_height + HOT_BLOCKS,
        "every node to archive past the first balance change",
        timeout=60,
    )
    genesis_block = net.call(0, "eth_getBlockByNumber", "0x1", False)
    sink = "0x" + sink_address(0).hex()
    for i in range(VALIDATORS):
        assert net.call(i, "eth_getBlockByNumber", "0x1", False)["hash"] == genesis_block["hash"]
        before = net.call(i, "eth_getBalance", sink, hex(change_height - 1))
        after = net.call(i, "eth_getBalance", sink, hex(change_height))
        assert (int(before, 16), int(after, 16)) == (0, 1), f"node{i}"
        receipt = net.call(i, "eth_getTransactionReceipt", first_hashes[0])
        assert receipt["blockNumber"] == first["blockNumber"]


def test_hot_tier_stays_bounded_and_the_archive_verifies(small_hot: Testnet) -> None:
    """Run last: it stops node3 to read its database."""
    net = small_hot
    send_round(net)

    def caught_up() -> bool:
        status = net.try_status(3) or {}
        executed = int(status.get("executed_height", 0))
        return int(status.get("archived_height") or 0) >= executed - HOT_BLOCKS - SEGMENT_BLOCKS

    net.wait_until(caught_up, "node3's archiver to catch up with its executed height", 60)
    node_dir = net.directory / "node3"
    pid = net.pid(3)
    os.kill(pid, signal.SIGTERM)
    net.wait_until(lambda: not tn._alive(pid), "node3 to stop", 15)
    archive = Archive(node_dir / "archive")
    assert all(verify_segment(s.path) == [] for s in archive.segments())
    kv = LevelDBKV(node_dir / "data" / "db")
    try:
        chain = ChainStore(kv, archive)
        executed, floor = chain.executed_height(), chain.hot_floor()
        # the archiver seals whole segments once they are hot_blocks behind
        assert floor >= executed - HOT_BLOCKS - SEGMENT_BLOCKS, (executed, floor)
        hot_blocks = sum(1 for _ in kv.iterate(*table_range(Table.BLOCK)))
        assert hot_blocks <= HOT_BLOCKS + SEGMENT_BLOCKS
        assert archive.last_height() == floor - 1
        assert chain.get_block(1) is not None  # from the archive
        snapshots = SnapshotStore(node_dir / "data" / "snapshots")
        latest = snapshots.latest()
        assert latest is not None and latest.height % SNAPSHOT_INTERVAL == 0
        assert len(snapshots.heights()) == 2  # the newest two are kept
        assert latest.commitment == chain.get_state_commitment(latest.height)
    finally:
        kv.close()
