"""``FakeChain``: an in-memory ``ChainView`` that really admits and executes transfers.

The twin of the node for tests of the client APIs (STYLE 6). Transactions are decoded
with execution's own decoder (``node.execution.tx.decode_tx``) and blocks run through the
sequential reference executor (``execute_block``), so balances, nonces, fees and receipts
are what the node computes; only consensus is missing (one block per ``commit()``).
Admission applies the usual pool checks with geth's wording (nonce, balance, fee cap,
intrinsic gas, duplicates).

By default every accepted submission is committed and executed at once
(``auto_commit``); with ``auto_commit=False`` a test drives ``commit()`` and
``execute()`` itself and can hold execution behind consensus.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from node.execution.executor import execute_block
from node.execution.state import MemoryState, genesis_state
from node.execution.tx import TRANSFER_GAS, EthTx, InvalidTransaction, decode_tx
from node.rpc.chain_view import (
    ZERO_HASH,
    BlockInfo,
    ChainStatus,
    ChainView,
    HistoryUnavailable,
    ReceiptInfo,
    SubmitResult,
    TxInfo,
    TxLocation,
)
from node.rpc.height_watch import HeightWatch
from node.rpc.tx_info import tx_info_from_eth_tx

GWEI = 10**9
FEE_SINK = b"\xfe" * 20


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def _digest(*parts: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=32, person=b"fakechain")
    for part in parts:
        h.update(len(part).to_bytes(4, "big") + part)
    return h.digest()


@dataclass(slots=True)
class _Block:
    info: BlockInfo
    txs: tuple[EthTx, ...]


class FakeChain:
    """An in-memory chain that keeps the account state of every executed height."""

    def __init__(
        self,
        *,
        chain_id: int = 4242,
        balances: dict[bytes, int] | None = None,
        base_fee: int = GWEI,
        priority_fee: int = GWEI,
        gas_limit: int = 30_000_000,
        auto_commit: bool = True,
        node_id: str = "fake-0",
        clock_ms: Callable[[], int] = _wall_clock_ms,
    ) -> None:
        self._chain_id = chain_id
        self._base_fee = base_fee
        self._priority_fee = priority_fee
        self._gas_limit = gas_limit
        self._auto_commit = auto_commit
        self._node_id = node_id
        self._clock_ms = clock_ms
        self._state = genesis_state(balances or {})
        self._history: dict[int, MemoryState] = {0: self._state.copy()}
        self._oldest_state = 0
        genesis = BlockInfo(
            height=0,
            hash=_digest(b"genesis", chain_id.to_bytes(8, "big")),
            parent_hash=ZERO_HASH,
            slot=0,
            timestamp_ms=clock_ms(),
            tx_hashes=(),
            gas_limit=gas_limit,
            base_fee=base_fee,
            size=0,
            gas_used=0,
            state_root=self._state_root(),
        )
        self._blocks: list[_Block] = [_Block(genesis, ())]
        self._by_hash: dict[bytes, int] = {genesis.hash: 0}
        self._executed = 0
        self._pending: dict[bytes, EthTx] = {}
        self._locations: dict[bytes, TxLocation] = {}
        self._committed: dict[bytes, EthTx] = {}
        self._receipts: dict[bytes, ReceiptInfo] = {}
        self._watch = HeightWatch(0)
        self.peers = 3
        self.validators = 4
        self.slot = 0
        self.view = 0
        self.submitted_batches: list[list[bytes]] = []

    # ------------------------------------------------------------------ ChainView: reads

    @property
    def chain_id(self) -> int:
        return self._chain_id

    def committed_height(self) -> int:
        return len(self._blocks) - 1

    def executed_height(self) -> int:
        return self._executed

    def get_block(self, height: int, *, full_txs: bool = False) -> BlockInfo | None:
        if not 0 <= height < len(self._blocks):
            return None
        block = self._blocks[height]
        if not full_txs:
            return block.info
        txs = tuple(tx_info_from_eth_tx(t, self._locations[t.hash]) for t in block.txs)
        return replace(block.info, txs=txs)

    def get_block_by_hash(self, block_hash: bytes, *, full_txs: bool = False) -> BlockInfo | None:
        height = self._by_hash.get(block_hash)
        return None if height is None else self.get_block(height, full_txs=full_txs)

    def get_account(self, address: bytes, height: int | None = None) -> tuple[int, int]:
        height = self._executed if height is None else height
        if height > self._executed:
            raise HistoryUnavailable(
                f"block {height} is not executed yet (executed height {self._executed})"
            )
        if height < self._oldest_state:
            raise HistoryUnavailable(
                f"state at block {height} is pruned (oldest kept: {self._oldest_state})"
            )
        account = self._history[height].get_account(address)
        return account.nonce, account.balance

    def pending_nonce(self, address: bytes) -> int:
        nonce = self._state.get_account(address).nonce
        taken = {t.nonce for t in self._pending.values() if t.sender == address}
        while nonce in taken:
            nonce += 1
        return nonce

    def get_tx(self, tx_hash: bytes) -> TxInfo | None:
        if tx_hash in self._committed:
            return tx_info_from_eth_tx(self._committed[tx_hash], self._locations[tx_hash])
        pending = self._pending.get(tx_hash)
        return None if pending is None else tx_info_from_eth_tx(pending)

    def get_receipt(self, tx_hash: bytes) -> ReceiptInfo | None:
        return self._receipts.get(tx_hash)

    def base_fee(self) -> int:
        return self._base_fee

    def suggested_priority_fee(self) -> int:
        return self._priority_fee

    def status(self) -> ChainStatus:
        last = self._blocks[-1].info.timestamp_ms if len(self._blocks) > 1 else None
        return ChainStatus(
            node_id=self._node_id,
            chain_id=self._chain_id,
            committed_height=self.committed_height(),
            executed_height=self._executed,
            archived_height=0,
            slot=self.slot,
            view=self.view,
            peers=self.peers,
            validators=self.validators,
            quorum=2 * ((self.validators - 1) // 3) + 1,
            mempool_txs=len(self._pending),
            last_commit_ms=last,
            version="fake",
        )

    # ------------------------------------------------------------ ChainView: submit, wait

    async def submit_raw_txs(self, raws: list[bytes]) -> list[SubmitResult]:
        self.submitted_batches.append(list(raws))
        results = [self._admit(raw) for raw in raws]
        if self._auto_commit and any(r.accepted for r in results):
            self.commit()
            self.execute()
        return results

    async def wait_for_execution(self, above: int) -> int:
        return await self._watch.wait_above(above)

    # --------------------------------------------------------------- driving the chain

    def commit(self, tx_hashes: Iterable[bytes] | None = None) -> BlockInfo:
        """Commit a block of pending transactions (default: all, in arrival order)."""
        chosen = [self._pending.pop(h) for h in (tx_hashes or list(self._pending))]
        parent = self._blocks[-1].info
        height = parent.height + 1
        hashes = tuple(t.hash for t in chosen)
        self.slot += 1
        info = BlockInfo(
            height=height,
            hash=_digest(b"block", height.to_bytes(8, "big"), parent.hash, *hashes),
            parent_hash=parent.hash,
            slot=self.slot,
            timestamp_ms=max(self._clock_ms(), parent.timestamp_ms),
            tx_hashes=hashes,
            gas_limit=self._gas_limit,
            base_fee=self._base_fee,
            size=sum(t.size for t in chosen),
        )
        for index, tx in enumerate(chosen):
            self._committed[tx.hash] = tx
            self._locations[tx.hash] = TxLocation(height, info.hash, index)
        self._blocks.append(_Block(info, tuple(chosen)))
        self._by_hash[info.hash] = height
        return info

    def execute(self, through: int | None = None) -> None:
        """Execute committed blocks up to ``through`` (default: all committed)."""
        through = self.committed_height() if through is None else through
        while self._executed < through:
            self._execute_block(self._blocks[self._executed + 1])

    def prune_state_below(self, height: int) -> None:
        self._oldest_state = height

    # -------------------------------------------------------------------------- internals

    def _admit(self, raw: bytes) -> SubmitResult:
        try:
            tx = decode_tx(raw, self._chain_id)
        except InvalidTransaction as exc:
            return SubmitResult.rejected(exc.reason)
        reason = self._check(tx)
        if reason:
            return SubmitResult.rejected(reason, tx.hash)
        self._pending[tx.hash] = tx
        return SubmitResult.ok(tx.hash)

    def _check(self, tx: EthTx) -> str:
        if tx.hash in self._pending or tx.hash in self._committed:
            return "already known"
        if tx.gas_limit < TRANSFER_GAS:
            return "intrinsic gas too low"
        if tx.gas_limit > self._gas_limit:
            return "exceeds block gas limit"
        if tx.max_fee_per_gas < self._base_fee:
            return "max fee per gas less than block base fee"
        expected = self.pending_nonce(tx.sender)
        if tx.nonce < expected:
            return "nonce too low"
        if tx.nonce > expected:
            return "nonce too high"
        if self._spendable(tx.sender) < tx.gas_limit * tx.max_fee_per_gas + tx.value:
            return "insufficient funds for gas * price + value"
        return ""

    def _spendable(self, sender: bytes) -> int:
        """The sender's balance less the most its pending transactions may spend."""
        pending = [t for t in self._pending.values() if t.sender == sender]
        balance = self._state.get_account(sender).balance
        return balance - sum(t.gas_limit * t.max_fee_per_gas + t.value for t in pending)

    def _execute_block(self, block: _Block) -> None:
        height = block.info.height
        result = execute_block(self._state, height, block.txs, self._base_fee, FEE_SINK)
        self._state.apply_writes(result.writes)
        for receipt in result.receipts:
            tx = self._committed[receipt.tx_hash]
            self._receipts[receipt.tx_hash] = ReceiptInfo(
                tx_hash=receipt.tx_hash,
                location=self._locations[receipt.tx_hash],
                tx_type=tx.tx_type,
                sender=receipt.sender,
                to=receipt.to,
                status=receipt.status,
                gas_used=receipt.gas_used,
                cumulative_gas_used=receipt.cumulative_gas_used,
                effective_gas_price=receipt.effective_gas_price,
            )
        block.info = replace(block.info, gas_used=result.gas_used, state_root=self._state_root())
        self._history[height] = self._state.copy()
        self._executed = height
        self._watch.advance(height)

    def _state_root(self) -> bytes:
        accounts = sorted(self._state.accounts().items())
        return _digest(
            b"state",
            *(a + x.nonce.to_bytes(8, "big") + x.balance.to_bytes(32, "big") for a, x in accounts),
        )


def _conforms(chain: FakeChain) -> ChainView:
    """Type-checked proof that FakeChain implements the ChainView port."""
    return chain
