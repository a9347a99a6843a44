"""A validator that accepted transactions and stopped without sealing them (its process
gone, nothing flushed on the way out) has them again when it is reopened on the same data
directory: its own lane's back in the mempool, other lanes' queued to be forwarded again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import node.runtime.node as node_module
from node.execution.keccak import keccak256
from node.execution.signing import sign_1559
from node.execution.tx import EthTx, UndecodableTx, recover_batch
from node.mempool.routing import lane_of
from node.rpc.chain_view import SubmitResult
from node.runtime.config import load_genesis, load_node_config, load_validator_key
from node.runtime.node import ValidatorNode
from node.storage import schema
from node.tools import testnet as tn

ME = 3
VALIDATORS = 4
CHAIN_ID = 7357
GWEI = 10**9


def open_node(directory: Path) -> ValidatorNode:
    config = load_node_config(directory / f"node{ME}" / "config.toml")
    return ValidatorNode(
        config, load_genesis(config.genesis_path), load_validator_key(config.key_path)
    )


def drop(node: ValidatorNode) -> None:
    """Release the node as a killed process would leave it: no flush, no shutdown steps."""
    for pool in (node.pool, node.exec_pool, node.persist_pool, node.archive_pool):
        pool.shutdown(wait=True)
    node.snapshot_pool.shutdown(wait=True)
    node.kv.close()


def transfers(directory: Path, mine: bool, count: int) -> list[bytes]:
    """``count`` signed transfers (nonces 0, 1, ...) from dev accounts of lane ME (or not)."""
    accounts = [
        bytes.fromhex(a["private_key"][2:])
        for a in tn.load_accounts(directory)
        if (lane_of(bytes.fromhex(a["address"][2:]), VALIDATORS) == ME) == mine
    ]
    return [
        sign_1559(
            key,
            chain_id=CHAIN_ID,
            nonce=nonce,
            max_fee_per_gas=10 * GWEI,
            max_priority_fee_per_gas=GWEI,
            to=b"\x01" * 20,
            value=1,
        )
        for key in accounts[:2]
        for nonce in range(count)
    ]


def test_accepted_txs_survive_a_stop_without_sealing(tmp_path: Path) -> None:
    """Submitted, answered "accepted", never put in a car: after reopening, the own-lane
    transactions are in the mempool and the others are forwarded again at once."""
    directory = tmp_path / "net"
    tn.generate(directory, chain_id=CHAIN_ID, deterministic=True, p2p=False)
    own, other = transfers(directory, True, 3), transfers(directory, False, 2)

    async def submit() -> list[SubmitResult]:
        node = open_node(directory)
        try:
            return await node.submit_raw_txs(own + other)
        finally:
            drop(node)

    results = asyncio.run(submit())
    assert all(r.accepted for r in results), results
    hashes = [r.tx_hash for r in results]

    async def reopen() -> tuple[list[bool], dict[int, list[bytes]]]:
        node = open_node(directory)
        try:
            node._readmit_in_flight()
            node._readmit_accepted()
            in_pool = [h in node.mempool for h in hashes]
            due = node.accepted.due_for_forward(10.0**9, connected=range(VALIDATORS))
            return in_pool, due
        finally:
            drop(node)

    in_pool, due = asyncio.run(reopen())
    assert in_pool == [True] * len(own) + [False] * len(other)
    assert sorted(raw for raws in due.values() for raw in raws) == sorted(other)


def test_forwarded_txs_are_persisted_and_a_known_hash_skips_recovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lane owner keeps forwarded transactions it admits (they are back after a
    reopen), and one forwarded again while its pool holds it, or after it executed, never
    reaches sender recovery."""
    directory = tmp_path / "net"
    tn.generate(directory, chain_id=CHAIN_ID, deterministic=True, p2p=False)
    known, new = transfers(directory, True, 2)[:2], transfers(directory, True, 3)[2:3]
    executed = transfers(directory, True, 4)[3]  # a hash in the tx index (as if executed)
    recovered: list[bytes] = []

    def recording(raws: list[bytes], chain_id: int) -> list[EthTx | UndecodableTx]:
        recovered.extend(raws)
        return recover_batch(raws, chain_id)

    monkeypatch.setattr(node_module, "recover_batch", recording)

    async def ingest() -> None:
        node = open_node(directory)
        try:
            await node._ingest(known)
            recovered.clear()
            node.kv.put(schema.tx_index_key(keccak256(executed)), bytes(12))
            await node._ingest([*known, executed, *new])
        finally:
            drop(node)

    asyncio.run(ingest())
    assert recovered == new

    async def reopen() -> list[bool]:
        node = open_node(directory)
        try:
            node._readmit_accepted()
            return [keccak256(raw) in node.mempool for raw in known + new]
        finally:
            drop(node)

    assert asyncio.run(reopen()) == [True, True, True]
