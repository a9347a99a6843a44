"""A real 4-process testnet on 127.0.0.1 commits blocks, and every node holds the same chain."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.integration.conftest import VALIDATORS, RpcFailed, Testnet

pytestmark = pytest.mark.integration

ROUNDS = 30  # x 10 dev accounts = 300 transfers


def test_blocks_commit_on_every_node(testnet: Testnet) -> None:
    """Transfers sent to the testnet become blocks that every node commits and executes."""
    start = testnet.heights()
    accounts = testnet.accounts
    for r in range(5):
        first = testnet.nonces(0, accounts)
        testnet.send_transfers(1)
        # each round waits for its own block(s), so five rounds make at least five blocks
        testnet.wait_for_nonces(r % VALIDATORS, accounts, [n + 1 for n in first], timeout=30)
    testnet.wait_until(
        lambda: all(h >= s + 5 for h, s in zip(testnet.heights(), start, strict=True)),
        "every node's executed height to rise by at least 5",
        timeout=30,
    )
    for i in range(VALIDATORS):
        status = testnet.try_status(i)
        assert status is not None
        assert status["committed_height"] >= status["executed_height"] >= start[i] + 5


def test_every_node_has_the_same_block_hash_at_every_height(testnet: Testnet) -> None:
    """After a few hundred transfers through all four nodes, the nodes list the same block
    hash at every height, the blocks chain by parent hash, and every transfer is in exactly
    one block with the same receipt on every node."""
    accounts = testnet.accounts
    before = testnet.nonces(0, accounts)
    hashes = testnet.send_transfers(ROUNDS)
    assert len(hashes) == ROUNDS * len(accounts)
    targets = [n + ROUNDS for n in before]
    for i in range(VALIDATORS):
        testnet.wait_for_nonces(i, accounts, targets, timeout=90)

    top = min(testnet.heights())
    assert top > 0
    chains = [testnet.block_hashes(i, 1, top) for i in range(VALIDATORS)]
    for h in range(top):
        at_height = {chains[i][h] for i in range(VALIDATORS)}
        assert len(at_height) == 1, f"nodes disagree at height {h + 1}: {at_height}"
        assert None not in at_height, f"height {h + 1} is not listed by some node"

    blocks = testnet.blocks(0, 0, top)
    for parent, child in zip(blocks, blocks[1:], strict=False):
        assert child["parentHash"] == parent["hash"], f"block {child['number']} breaks the chain"
    included = Counter(tx for block in blocks for tx in block["transactions"])
    assert all(included[h] == 1 for h in hashes), "a transfer is missing or in two blocks"

    reference = testnet.receipts(0, hashes)
    assert all(r is not None and not isinstance(r, RpcFailed) for r in reference)
    assert all(r["status"] == "0x1" for r in reference if r is not None)
    for i in range(1, VALIDATORS):
        assert testnet.receipts(i, hashes) == reference, f"node{i} has different receipts"


def test_peer_links_stay_up_under_load(testnet: Testnet) -> None:
    """While all four nodes run, a hundred transfers do not make any node drop a peer stream."""
    logs = [testnet.directory / f"node{i}" / "node.log" for i in range(VALIDATORS)]
    offsets = [path.stat().st_size for path in logs]
    before = testnet.nonces(0, testnet.accounts)
    testnet.send_transfers(10)
    for i in range(VALIDATORS):
        testnet.wait_for_nonces(i, testnet.accounts, [n + 10 for n in before], timeout=60)
    dropped = []
    for path, offset in zip(logs, offsets, strict=True):
        with path.open("rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
        dropped += [line for line in text.splitlines() if "peer_stream_lost" in line]
    assert not dropped, f"{len(dropped)} peer streams dropped, first: {dropped[0]}"
