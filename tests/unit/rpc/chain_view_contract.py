"""The behaviour every ChainView must show; run against FakeChain here and the node later.

Call ``check_chain_view_contract(make)`` with a factory returning a chain in which
``funded`` holds a balance and that commits and executes what is submitted (the node's
integration test drives its own node the same way).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from node.rpc.chain_view import ChainView


def check_chain_view_contract(
    make: Callable[[], ChainView], funded: bytes, signed_raws: list[bytes]
) -> None:
    """Heights, blocks, accounts, submissions and waits agree with each other."""
    chain = make()
    genesis = chain.get_block(0)
    assert genesis is not None, "height 0 is genesis"
    assert chain.get_block_by_hash(genesis.hash) == genesis
    assert chain.executed_height() <= chain.committed_height()
    assert chain.get_block(chain.committed_height() + 1) is None

    nonce, balance = chain.get_account(funded)
    assert balance > 0
    assert chain.pending_nonce(funded) >= nonce
    assert chain.get_account(b"\x00" * 20) == (0, 0)

    start = chain.committed_height()

    async def submit_and_wait() -> int:
        results = await chain.submit_raw_txs([*signed_raws, b"\x00garbage"])
        assert len(results) == len(signed_raws) + 1, "one result per submitted transaction"
        assert all(r.accepted for r in results[:-1]), results
        assert not results[-1].accepted
        assert results[-1].reason
        return await asyncio.wait_for(chain.wait_for_execution(start), timeout=30)

    assert asyncio.run(submit_and_wait()) > start
    for height in range(start + 1, chain.committed_height() + 1):
        block = chain.get_block(height)
        assert block is not None
        parent = chain.get_block(height - 1)
        assert parent is not None
        assert block.parent_hash == parent.hash
        assert block.height == height
        full = chain.get_block(height, full_txs=True)
        assert full is not None
        assert full.txs is not None
        assert tuple(t.hash for t in full.txs) == block.tx_hashes
        for index, tx in enumerate(full.txs):
            assert tx.location is not None
            assert (tx.location.height, tx.location.index) == (height, index)
            assert tx.location.block_hash == block.hash

    status = chain.status()
    assert status.chain_id == chain.chain_id
    assert status.committed_height == chain.committed_height()
    assert status.executed_height == chain.executed_height()
