"""The sequential reference executor: one committed block in, receipts and state writes out.

``execute_block`` is a pure function of (state, height, transactions, base fee, fee sink):
it reads through ``StateReader``, never writes, and returns the writes for the caller to
apply. The parallel executor (later) must produce a byte-identical ``BlockResult``.

Rules, applied to each transaction in block order:

1. Skipped (no receipt, no state change, listed in ``BlockResult.skipped`` with a reason):
   an ``UndecodableTx``; a transaction whose hash already executed in this block; a nonce
   different from the sender's account nonce; a gas limit below 21,000; a fee cap below the
   base fee; a sender whose balance cannot cover ``gas_limit * effective price + value``
   (Ethereum's up-front cost, taken at the effective price because the base fee is fixed).
   Because a duplicate carries the nonce its first copy consumed, a transaction ordered
   twice (say by two lanes) executes once; the hash check only names the reason.
2. Otherwise the transaction is included: the sender's nonce goes up by one and it pays
   ``21,000 * effective price``, where the effective price is the legacy gas price, or
   ``min(max_fee, base_fee + max_priority_fee)`` for EIP-1559. Unused gas is not charged.
3. A plain value transfer (a recipient, no calldata, no access list) moves ``value`` and
   gets status 1. Anything else (contract creation, calldata, access lists) is not
   supported yet: the mempool refuses it, and if a block carries one anyway it gets status
   0, pays the 21,000 gas and moves no value, so including it still costs its sender.
4. Fees are not burnt: the whole fee of every included transaction accumulates in a
   per-block sum that is credited to ``fee_sink`` once, after the last transaction. No
   transaction writes a shared fee-collector account, so transactions stay independent of
   each other for the parallel executor (DESIGN §5), and total balance is conserved.

The base fee is an input; for now the chain uses a fixed base fee from genesis
(``DEFAULT_BASE_FEE``, 1 gwei) rather than EIP-1559's per-block adjustment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from node.execution.state import Account, StateReader, StateWrites
from node.execution.tx import TRANSFER_GAS, EthTx, UndecodableTx

DEFAULT_BASE_FEE = 10**9
STATUS_FAILED = 0
STATUS_SUCCESS = 1


@dataclass(frozen=True, slots=True)
class Receipt:
    """The outcome of one included transaction. ``index`` counts included transactions only."""

    tx_hash: bytes
    index: int
    status: int
    gas_used: int
    cumulative_gas_used: int
    effective_gas_price: int
    sender: bytes
    to: bytes | None
    height: int

    @property
    def fee(self) -> int:
        return self.gas_used * self.effective_gas_price


@dataclass(frozen=True, slots=True)
class SkippedTx:
    """A transaction of the block that was not executed; ``position`` is its place in the block."""

    tx_hash: bytes
    position: int
    reason: str


@dataclass(frozen=True, slots=True)
class BlockResult:
    """Everything executing one block produced."""

    height: int
    receipts: tuple[Receipt, ...]
    writes: StateWrites
    gas_used: int
    fees: int
    skipped: tuple[SkippedTx, ...]

    def sender_nonces(self) -> dict[bytes, int]:
        """The new account nonce of every sender included in the block (``Mempool.on_executed``)."""
        senders = {receipt.sender for receipt in self.receipts}
        return {address: account.nonce for address, account in self.writes if address in senders}


def execute_block(
    state: StateReader,
    height: int,
    block_txs: Sequence[EthTx | UndecodableTx],
    base_fee: int,
    fee_sink: bytes,
) -> BlockResult:
    """Execute ``block_txs`` in order on ``state`` under the rules in the module docstring."""
    block = _BlockExecution(state, height, base_fee)
    for position, item in enumerate(block_txs):
        if isinstance(item, UndecodableTx):
            block.skip(item.hash, position, f"undecodable: {item.reason}")
        else:
            block.apply_tx(item, position)
    if block.fees:
        sink = block.load(fee_sink)
        block.store(fee_sink, Account(sink.nonce, sink.balance + block.fees))
    return BlockResult(
        height=height,
        receipts=tuple(block.receipts),
        writes=block.changes(),
        gas_used=block.gas_used,
        fees=block.fees,
        skipped=tuple(block.skipped),
    )


class _BlockExecution:
    """The working set of one block: accounts read and written so far, receipts, fee sum."""

    __slots__ = (
        "base_fee",
        "executed",
        "fees",
        "gas_used",
        "height",
        "originals",
        "overlay",
        "receipts",
        "skipped",
        "state",
    )

    def __init__(self, state: StateReader, height: int, base_fee: int) -> None:
        self.state = state
        self.height = height
        self.base_fee = base_fee
        self.originals: dict[bytes, Account] = {}
        self.overlay: dict[bytes, Account] = {}
        self.executed: set[bytes] = set()
        self.receipts: list[Receipt] = []
        self.skipped: list[SkippedTx] = []
        self.gas_used = 0
        self.fees = 0

    def load(self, address: bytes) -> Account:
        account = self.overlay.get(address)
        if account is None:
            account = self.state.get_account(address)
            self.originals[address] = account
            self.overlay[address] = account
        return account

    def store(self, address: bytes, account: Account) -> None:
        self.overlay[address] = account

    def skip(self, tx_hash: bytes, position: int, reason: str) -> None:
        self.skipped.append(SkippedTx(tx_hash, position, reason))

    def apply_tx(self, tx: EthTx, position: int) -> None:
        sender = self.load(tx.sender)
        reason = self.validate(tx, sender)
        if reason is not None:
            self.skip(tx.hash, position, reason)
            return
        price = tx.effective_gas_price(self.base_fee)
        fee = TRANSFER_GAS * price
        self.store(tx.sender, Account(sender.nonce + 1, sender.balance - fee))
        status = STATUS_SUCCESS if tx.is_plain_transfer else STATUS_FAILED
        if status == STATUS_SUCCESS and tx.to is not None:
            self.transfer(tx.sender, tx.to, tx.value)
        self.executed.add(tx.hash)
        self.fees += fee
        self.gas_used += TRANSFER_GAS
        self.receipts.append(
            Receipt(
                tx_hash=tx.hash,
                index=len(self.receipts),
                status=status,
                gas_used=TRANSFER_GAS,
                cumulative_gas_used=self.gas_used,
                effective_gas_price=price,
                sender=tx.sender,
                to=tx.to,
                height=self.height,
            )
        )

    def validate(self, tx: EthTx, sender: Account) -> str | None:
        """Why ``tx`` cannot be included now, or None if it can."""
        if tx.hash in self.executed:
            return "duplicate: already executed in this block"
        if tx.nonce != sender.nonce:
            direction = "too low" if tx.nonce < sender.nonce else "too high"
            return f"nonce {direction}: {tx.nonce}, account nonce {sender.nonce}"
        if tx.gas_limit < TRANSFER_GAS:
            return f"gas limit {tx.gas_limit} below the intrinsic {TRANSFER_GAS}"
        if tx.max_fee_per_gas < self.base_fee:
            return f"fee cap {tx.max_fee_per_gas} below the base fee {self.base_fee}"
        cost = tx.max_cost(self.base_fee)
        if sender.balance < cost:
            return f"insufficient funds: balance {sender.balance}, needs {cost}"
        return None

    def transfer(self, source: bytes, destination: bytes, value: int) -> None:
        # load the source again after the debit: source and destination may be one account
        debited = self.load(source)
        self.store(source, Account(debited.nonce, debited.balance - value))
        credited = self.load(destination)
        self.store(destination, Account(credited.nonce, credited.balance + value))

    def changes(self) -> StateWrites:
        """Every account whose final value differs from what the state held."""
        return StateWrites.from_changes(
            {
                address: account
                for address, account in self.overlay.items()
                if self.originals[address] != account
            }
        )
