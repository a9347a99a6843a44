"""The node's answer to the client APIs: ``ChainView`` over its stores, mempool and consensus.

Only executed blocks are listed (their receipts and state exist); transactions of committed
but not yet executed blocks read as pending. State at an older height is read from the
store's history (hot tier, then archive); below the earliest height the node still holds,
or above the executed one, reads answer ``HistoryUnavailable`` with a clear message.

The view reads a ``ViewedNode``: a validator (node/runtime/node.py) or a non-validating full
node (node/runtime/full_node.py), so both serve the same JSON-RPC and gRPC answers.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Collection, Mapping
from typing import Protocol

from node import __version__
from node.execution.executor import Receipt
from node.execution.keccak import keccak256
from node.execution.tx import EthTx, decode_tx
from node.mempool.mempool import Mempool
from node.rpc.chain_view import (
    BlockInfo,
    ChainStatus,
    HistoryUnavailable,
    ReceiptInfo,
    SubmitResult,
    TxInfo,
    TxLocation,
)
from node.rpc.height_watch import HeightWatch
from node.rpc.tx_info import tx_info_from_eth_tx
from node.runtime.config import Genesis, NodeConfig
from node.storage.chain_store import ChainStore
from node.storage.history import PrunedError
from node.types.committee import Committee
from node.types.errors import InvalidInput
from node.types.messages import Block

BLOCK_GAS_LIMIT = 1_000_000_000
CACHED_BLOCKS = 256


class PeerSet(Protocol):
    def connected_peers(self) -> Collection[int]: ...


class ViewedNode(Protocol):
    """What ``NodeChainView`` reads of a node (read-only attributes)."""

    @property
    def config(self) -> NodeConfig: ...
    @property
    def genesis(self) -> Genesis: ...
    @property
    def committee(self) -> Committee: ...
    @property
    def chain(self) -> ChainStore: ...
    @property
    def mempool(self) -> Mempool: ...
    @property
    def block_times(self) -> Mapping[int, int]: ...
    @property
    def executed(self) -> HeightWatch: ...
    @property
    def transport(self) -> PeerSet: ...
    @property
    def slot(self) -> int: ...
    @property
    def view(self) -> int: ...
    @property
    def last_commit_ms(self) -> int | None: ...
    @property
    def certified_height(self) -> int: ...

    async def submit_raw_txs(self, raws: list[bytes]) -> list[SubmitResult]: ...


class NodeChainView:
    def __init__(self, node: ViewedNode) -> None:
        self.node = node
        self._txs: OrderedDict[int, dict[bytes, EthTx]] = OrderedDict()
        genesis_doc = node.genesis.to_json().encode()
        self._genesis_hash = hashlib.blake2b(genesis_doc, digest_size=32).digest()

    @property
    def chain_id(self) -> int:
        return self.node.genesis.chain_id

    def committed_height(self) -> int:
        return self.node.chain.committed_height()

    def executed_height(self) -> int:
        return self.node.chain.executed_height()

    # ------------------------------------------------------------ blocks

    def _block_txs(self, block: Block) -> dict[bytes, EthTx]:
        cached = self._txs.get(block.height)
        if cached is not None:
            self._txs.move_to_end(block.height)
            return cached
        txs: dict[bytes, EthTx] = {}
        for car in block.cars:
            for raw in car.txs:
                try:
                    tx = decode_tx(raw, self.chain_id)
                except InvalidInput:
                    continue
                txs.setdefault(tx.hash, tx)
        self._txs[block.height] = txs
        while len(self._txs) > CACHED_BLOCKS:
            self._txs.popitem(last=False)
        return txs

    def _block_hash(self, height: int) -> bytes:
        if height == 0:
            return self._genesis_hash
        block = self.node.chain.get_block(height)
        return block.digest if block is not None else bytes(32)

    def _info(self, block: Block | None, height: int, full_txs: bool) -> BlockInfo | None:
        base_fee = self.node.genesis.base_fee
        genesis_ms = self.node.genesis.genesis_time * 1000
        if height == 0:
            return BlockInfo(
                0,
                self._genesis_hash,
                bytes(32),
                0,
                genesis_ms,
                (),
                BLOCK_GAS_LIMIT,
                base_fee,
                0,
                0,
                None,
                () if full_txs else None,
            )
        if block is None or height > self.executed_height():
            return None
        receipts = self.node.chain.get_receipts(height)
        hashes = tuple(r.tx_hash for r in receipts)
        txs = None
        if full_txs:
            decoded = self._block_txs(block)
            txs = tuple(
                tx_info_from_eth_tx(decoded[r.tx_hash], TxLocation(height, block.digest, r.index))
                for r in receipts
                if r.tx_hash in decoded
            )
        timestamp = self.node.block_times.get(height, genesis_ms + height)
        return BlockInfo(
            height=height,
            hash=block.digest,
            parent_hash=self._block_hash(height - 1),
            slot=block.slot,
            timestamp_ms=timestamp,
            tx_hashes=hashes,
            gas_limit=BLOCK_GAS_LIMIT,
            base_fee=base_fee,
            size=sum(len(tx) for car in block.cars for tx in car.txs),
            gas_used=sum(r.gas_used for r in receipts),
            state_root=None,
            txs=txs,
        )

    def get_block(self, height: int, *, full_txs: bool = False) -> BlockInfo | None:
        block = self.node.chain.get_block(height) if height > 0 else None
        return self._info(block, height, full_txs)

    def get_block_by_hash(self, block_hash: bytes, *, full_txs: bool = False) -> BlockInfo | None:
        if block_hash == self._genesis_hash:
            return self._info(None, 0, full_txs)
        block = self.node.chain.get_block_by_hash(block_hash)
        return None if block is None else self._info(block, block.height, full_txs)

    # ------------------------------------------------------------ state

    def get_account(self, address: bytes, height: int | None = None) -> tuple[int, int]:
        chain = self.node.chain
        if height is None:
            account = chain.get_account(address)
            return account.nonce, account.balance
        executed = self.executed_height()
        if height > executed:
            raise HistoryUnavailable(f"block {height} is not executed yet (executed: {executed})")
        try:
            account = chain.get_account_at(address, height)
        except PrunedError as exc:
            raise HistoryUnavailable(str(exc)) from exc
        return account.nonce, account.balance

    def pending_nonce(self, address: bytes) -> int:
        pending = self.node.mempool.pending_nonce(address)
        if pending is not None:
            return pending
        return self.node.chain.get_account(address).nonce

    # ------------------------------------------------------------ transactions

    def _located(self, tx_hash: bytes) -> tuple[EthTx, TxLocation, Receipt] | None:
        receipt = self.node.chain.get_receipt(tx_hash)
        if receipt is None:
            return None
        block = self.node.chain.get_block(receipt.height)
        if block is None:
            return None
        tx = self._block_txs(block).get(tx_hash)
        if tx is None:
            return None
        return tx, TxLocation(receipt.height, block.digest, receipt.index), receipt

    def get_tx(self, tx_hash: bytes) -> TxInfo | None:
        found = self._located(tx_hash)
        if found is not None:
            return tx_info_from_eth_tx(found[0], found[1])
        pending = self.node.mempool.get(tx_hash)
        return None if pending is None else tx_info_from_eth_tx(pending)

    def get_receipt(self, tx_hash: bytes) -> ReceiptInfo | None:
        found = self._located(tx_hash)
        if found is None:
            return None
        tx, location, r = found
        return ReceiptInfo(
            tx_hash=tx_hash,
            location=location,
            tx_type=tx.tx_type,
            sender=r.sender,
            to=r.to,
            status=r.status,
            gas_used=r.gas_used,
            cumulative_gas_used=r.cumulative_gas_used,
            effective_gas_price=r.effective_gas_price,
        )

    def base_fee(self) -> int:
        return self.node.genesis.base_fee

    def suggested_priority_fee(self) -> int:
        return 1_000_000_000

    async def submit_raw_txs(self, raws: list[bytes]) -> list[SubmitResult]:
        return await self.node.submit_raw_txs(raws)

    async def wait_for_execution(self, above: int) -> int:
        return await self.node.executed.wait_above(above)

    def status(self) -> ChainStatus:
        node = self.node
        return ChainStatus(
            node_id=node.config.name,
            chain_id=self.chain_id,
            committed_height=self.committed_height(),
            executed_height=self.executed_height(),
            archived_height=node.chain.archived_height() or 0,
            slot=node.slot,
            view=node.view,
            peers=len(node.transport.connected_peers()),
            validators=node.committee.size,
            quorum=node.committee.quorum,
            mempool_txs=node.mempool.size,
            last_commit_ms=node.last_commit_ms,
            version=__version__,
            certified_height=node.certified_height,
        )


def tx_hash_of(raw: bytes) -> bytes:
    return keccak256(raw)
