"""The transaction pool of one lane: admission, per-sender nonce order, eviction, selection.

A transaction goes through three states here:

    add ──▶ pending ──select + mark_selected──▶ in flight ──on_executed──▶ dropped
                ▲                                   │
                └──────────── requeue ──────────────┘     (remove drops either, by hash)

*Pending* transactions wait to be put in a car. *In-flight* ones are in a car that has not
been executed yet (execution trails consensus): they still count against the limits and
for duplicate and balance checks, but are never selected again nor evicted. When execution
reports a sender's new account nonce, every transaction of that sender below it is dropped.

Admission (``add``) rejects, changing nothing, in this order: wrong chain id; larger than
``max_tx_bytes``; anything but a plain value transfer; gas limit below 21,000; fee cap below
the base fee; a hash already in the pool; a nonce below the next one the sender can use (or
already in flight); a nonce more than ``max_nonce_gap`` past the sender's next free nonce;
a same-nonce replacement that does not pay at least 10% more per gas; more than
``max_per_sender`` pending transactions for the sender; a balance that cannot cover the
``value + gas_limit * price`` of all the sender's transactions in the pool plus this one;
and a full pool that eviction cannot make room in. (Before those checks, ``add`` drops the
sender's transactions that the given account nonce shows were already executed.)

Eviction, when the pool is full by count or bytes: only the highest-nonce pending
transaction of a sender can go (evicting one below would strand the ones above it behind a
nonce gap). Among those tails, the lowest effective gas price goes first and, between equal
prices, the newest arrival. A victim must pay strictly less per gas than the newcomer and
belong to another sender; if not enough such victims exist, the newcomer is rejected.

Selection (``select``) is a read-only query: executable transactions (each sender's next
nonces, contiguous) taken round-robin across senders, one per sender per round, so a sender
with many transactions cannot crowd out others. ``mark_selected`` moves the senders it
served to the back of the round-robin order.

Memory is bounded by ``max_txs`` and ``max_bytes`` (in-flight included); the eviction heap
is rebuilt whenever stale entries outnumber live transactions.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from node.execution.state import Account
from node.execution.tx import TRANSFER_GAS, EthTx
from node.types.errors import ConfigError

# a replacement must raise the price per gas by at least this percentage (as geth does)
REPLACEMENT_BUMP_PERCENT = 10


@dataclass(frozen=True, slots=True)
class MempoolLimits:
    """Bounds of one pool. ``max_per_sender`` counts pending (not yet selected) transactions."""

    max_txs: int = 50_000
    max_bytes: int = 32 * 1024 * 1024
    max_per_sender: int = 64
    max_tx_bytes: int = 32 * 1024
    max_nonce_gap: int = 16

    def __post_init__(self) -> None:
        if min(self.max_txs, self.max_bytes, self.max_per_sender, self.max_tx_bytes) < 1:
            raise ConfigError(f"mempool limits must be positive: {self}")
        if self.max_nonce_gap < 0:
            raise ConfigError(f"max_nonce_gap must not be negative: {self}")
        if self.max_tx_bytes > self.max_bytes:
            raise ConfigError(f"max_tx_bytes exceeds max_bytes: {self}")


class RejectReason(StrEnum):
    WRONG_CHAIN = "wrong chain id"
    TOO_LARGE = "transaction too large"
    UNSUPPORTED = "unsupported: only plain value transfers"
    INTRINSIC_GAS = "gas limit below the intrinsic gas"
    FEE_BELOW_BASE_FEE = "fee cap below the base fee"
    DUPLICATE = "duplicate"
    NONCE_TOO_LOW = "nonce too low"
    NONCE_GAP = "nonce gap too large"
    REPLACEMENT_UNDERPRICED = "replacement fee too low"
    SENDER_FULL = "too many pending transactions from this sender"
    INSUFFICIENT_BALANCE = "insufficient balance for value + gas * price"
    POOL_FULL = "mempool full"


@dataclass(frozen=True, slots=True)
class AddResult:
    """The fate of one ``add``: accepted (perhaps replacing or evicting others) or rejected."""

    accepted: bool
    reason: RejectReason | None = None
    detail: str = ""
    replaced: bytes | None = None
    evicted: tuple[bytes, ...] = ()

    @classmethod
    def reject(cls, reason: RejectReason, detail: str) -> AddResult:
        return cls(False, reason, detail)


class _Entry:
    """One pooled transaction with its arrival number and the price it pays per gas."""

    __slots__ = ("fee", "in_flight", "seq", "tx")

    def __init__(self, tx: EthTx, seq: int, fee: int) -> None:
        self.tx = tx
        self.seq = seq
        self.fee = fee
        self.in_flight = False


class _Sender:
    """What the pool holds for one sender.

    ``cursor`` is the lowest nonce at or above ``state_nonce`` that is not in flight: the
    next one to select.
    """

    __slots__ = ("cursor", "in_flight", "pending", "state_nonce", "total_cost")

    def __init__(self, state_nonce: int) -> None:
        self.state_nonce = state_nonce
        self.cursor = state_nonce
        self.pending: dict[int, _Entry] = {}
        self.in_flight: dict[int, _Entry] = {}
        self.total_cost = 0

    def tail(self) -> _Entry | None:
        return self.pending[max(self.pending)] if self.pending else None

    def pending_below(self, nonce: int) -> _Entry | None:
        below = [n for n in self.pending if n < nonce]
        return self.pending[max(below)] if below else None

    def next_free_nonce(self) -> int:
        nonce = self.cursor
        while nonce in self.pending or nonce in self.in_flight:
            nonce += 1
        return nonce

    def reset_cursor(self) -> None:
        self.cursor = self.state_nonce
        while self.cursor in self.in_flight:
            self.cursor += 1


class Mempool:
    """The pool of one lane; see the module docstring for every rule it applies."""

    def __init__(self, limits: MempoolLimits, *, chain_id: int, base_fee: int) -> None:
        self.limits = limits
        self.chain_id = chain_id
        self.base_fee = base_fee
        self._by_hash: dict[bytes, _Entry] = {}
        self._senders: dict[bytes, _Sender] = {}
        # senders whose next nonce is pending, in round-robin order (dict keeps insertion order)
        self._ready: dict[bytes, None] = {}
        # (fee, -seq, hash) of sender tails; lazily invalidated, see _peek_valid_tail
        self._heap: list[tuple[int, int, bytes]] = []
        self._bytes = 0
        self._seq = 0

    # ------------------------------------------------------------------ queries

    @property
    def size(self) -> int:
        return len(self._by_hash)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __contains__(self, tx_hash: bytes) -> bool:
        return tx_hash in self._by_hash

    def get(self, tx_hash: bytes) -> EthTx | None:
        entry = self._by_hash.get(tx_hash)
        return entry.tx if entry else None

    def pending_nonce(self, address: bytes) -> int | None:
        """The nonce after the sender's pooled transactions, or None if it has none pooled.

        The pool learns account nonces only from ``add`` and ``on_executed``, so a caller
        answering a client takes the larger of this and the executed state's nonce.
        """
        sender = self._senders.get(address)
        return sender.next_free_nonce() if sender else None

    def select(self, max_txs: int, max_bytes: int) -> list[EthTx]:
        """Executable pending transactions, round-robin across senders, each in nonce order."""
        chosen: list[EthTx] = []
        used = 0
        cursors = {address: self._senders[address].cursor for address in self._ready}
        active = list(self._ready)
        while active and len(chosen) < max_txs:
            served = []
            for address in active:
                if len(chosen) >= max_txs:
                    break
                entry = self._senders[address].pending.get(cursors[address])
                # a sender whose next transaction does not fit drops out of this selection
                if entry is None or used + entry.tx.size > max_bytes:
                    continue
                chosen.append(entry.tx)
                used += entry.tx.size
                cursors[address] += 1
                served.append(address)
            active = served
        return chosen

    # ------------------------------------------------------------------ admission

    def add(self, tx: EthTx, account: Account) -> AddResult:
        """Admit ``tx`` given its sender's executed ``account``, or say why not."""
        rejection = self._check_stateless(tx)
        if rejection is not None:
            return rejection
        if tx.hash in self._by_hash:
            return AddResult.reject(RejectReason.DUPLICATE, "already in the pool")
        sender = self._senders.get(tx.sender)
        if sender is not None and account.nonce > sender.state_nonce:
            self._advance(tx.sender, sender, account.nonce)
            sender = self._senders.get(tx.sender)
        if sender is None:
            sender = _Sender(account.nonce)
        rejection = self._check_sender(tx, account, sender)
        if rejection is not None:
            return rejection
        replaced = sender.pending.get(tx.nonce)
        fee = tx.effective_gas_price(self.base_fee)
        victims = self._make_room(tx, fee, replaced)
        if victims is None:
            return AddResult.reject(
                RejectReason.POOL_FULL,
                f"{self.size} transactions, {self._bytes} bytes; none cheaper to evict",
            )
        for victim in victims:
            self._drop(victim)
        if replaced is not None:
            self._drop(replaced)
        self._insert(tx, fee, sender)
        return AddResult(
            True,
            replaced=replaced.tx.hash if replaced else None,
            evicted=tuple(victim.tx.hash for victim in victims),
        )

    def precheck(self, tx: EthTx, account: Account) -> AddResult | None:
        """The checks a node that does not own the sender's lane can make before forwarding:
        the stateless ones, a nonce already used, and a balance that cannot pay. None: pass."""
        rejected = self._check_stateless(tx)
        if rejected is not None:
            return rejected
        if tx.nonce < account.nonce:
            return AddResult.reject(
                RejectReason.NONCE_TOO_LOW, f"nonce {tx.nonce}, next {account.nonce}"
            )
        cost = tx.max_cost(self.base_fee)
        if account.balance < cost:
            return AddResult.reject(
                RejectReason.INSUFFICIENT_BALANCE, f"balance {account.balance}, needs {cost}"
            )
        return None

    def _check_stateless(self, tx: EthTx) -> AddResult | None:
        if tx.chain_id != self.chain_id:
            return AddResult.reject(
                RejectReason.WRONG_CHAIN, f"chain id {tx.chain_id}, expected {self.chain_id}"
            )
        if tx.size > self.limits.max_tx_bytes:
            return AddResult.reject(
                RejectReason.TOO_LARGE, f"{tx.size} bytes, limit {self.limits.max_tx_bytes}"
            )
        if not tx.is_plain_transfer:
            return AddResult.reject(
                RejectReason.UNSUPPORTED, "contract creation, calldata and access lists"
            )
        if tx.gas_limit < TRANSFER_GAS:
            return AddResult.reject(
                RejectReason.INTRINSIC_GAS, f"gas limit {tx.gas_limit}, needs {TRANSFER_GAS}"
            )
        if tx.max_fee_per_gas < self.base_fee:
            return AddResult.reject(
                RejectReason.FEE_BELOW_BASE_FEE,
                f"fee cap {tx.max_fee_per_gas}, base fee {self.base_fee}",
            )
        return None

    def _check_sender(self, tx: EthTx, account: Account, sender: _Sender) -> AddResult | None:
        if tx.nonce < sender.state_nonce or tx.nonce in sender.in_flight:
            return AddResult.reject(
                RejectReason.NONCE_TOO_LOW, f"nonce {tx.nonce}, next {sender.next_free_nonce()}"
            )
        next_free = sender.next_free_nonce()
        if tx.nonce > next_free + self.limits.max_nonce_gap:
            return AddResult.reject(
                RejectReason.NONCE_GAP,
                f"nonce {tx.nonce}, next {next_free}, gap limit {self.limits.max_nonce_gap}",
            )
        replaced = sender.pending.get(tx.nonce)
        fee = tx.effective_gas_price(self.base_fee)
        if replaced is not None:
            needed = replaced.fee * (100 + REPLACEMENT_BUMP_PERCENT) // 100
            if fee <= replaced.fee or fee < needed:
                return AddResult.reject(
                    RejectReason.REPLACEMENT_UNDERPRICED, f"price {fee}, needs at least {needed}"
                )
        elif len(sender.pending) >= self.limits.max_per_sender:
            return AddResult.reject(
                RejectReason.SENDER_FULL, f"limit {self.limits.max_per_sender} pending"
            )
        freed = replaced.tx.max_cost(self.base_fee) if replaced else 0
        cost = sender.total_cost - freed + tx.max_cost(self.base_fee)
        if cost > account.balance:
            return AddResult.reject(
                RejectReason.INSUFFICIENT_BALANCE, f"balance {account.balance}, needs {cost}"
            )
        return None

    # ------------------------------------------------------------------ eviction

    def _make_room(self, tx: EthTx, fee: int, replaced: _Entry | None) -> list[_Entry] | None:
        """The entries to evict so ``tx`` fits, or None if it cannot fit; changes nothing."""
        excess_count = self.size + (0 if replaced else 1) - self.limits.max_txs
        freed_bytes = replaced.tx.size if replaced else 0
        excess_bytes = self._bytes + tx.size - freed_bytes - self.limits.max_bytes
        if excess_count <= 0 and excess_bytes <= 0:
            return []
        victims: dict[bytes, _Entry] = {}
        popped: list[tuple[int, int, bytes]] = []
        # the next tail of each sender already losing its tail (not in the shared heap)
        local: list[tuple[int, int, bytes]] = []
        while excess_count > 0 or excess_bytes > 0:
            victim = self._next_victim(tx.sender, victims, popped, local)
            if victim is None or victim.fee >= fee:
                break
            victims[victim.tx.hash] = victim
            excess_count -= 1
            excess_bytes -= victim.tx.size
            below = self._senders[victim.tx.sender].pending_below(victim.tx.nonce)
            if below is not None:
                heapq.heappush(local, (below.fee, -below.seq, below.tx.hash))
        for item in popped:
            heapq.heappush(self._heap, item)
        if excess_count > 0 or excess_bytes > 0:
            return None
        return list(victims.values())

    def _next_victim(
        self,
        newcomer: bytes,
        chosen: Mapping[bytes, _Entry],
        popped: list[tuple[int, int, bytes]],
        local: list[tuple[int, int, bytes]],
    ) -> _Entry | None:
        """Pop the cheapest evictable tail from the shared or the local heap."""
        while True:
            top = self._peek_valid_tail()
            if local and (top is None or local[0] < top):
                item = heapq.heappop(local)
            elif top is not None:
                item = heapq.heappop(self._heap)
                popped.append(item)
            else:
                return None
            entry = self._by_hash[item[2]]
            if entry.tx.sender != newcomer and item[2] not in chosen:
                return entry

    def _peek_valid_tail(self) -> tuple[int, int, bytes] | None:
        """The top of the eviction heap after discarding entries that are no longer tails."""
        while self._heap:
            item = self._heap[0]
            entry = self._by_hash.get(item[2])
            if entry is not None and not entry.in_flight and entry.seq == -item[1]:
                sender = self._senders[entry.tx.sender]
                if sender.tail() is entry:
                    return item
            heapq.heappop(self._heap)
        return None

    def _push_tail(self, sender: _Sender) -> None:
        tail = sender.tail()
        if tail is not None:
            heapq.heappush(self._heap, (tail.fee, -tail.seq, tail.tx.hash))
        if len(self._heap) > 4 * len(self._by_hash) + 64:
            self._rebuild_heap()

    def _rebuild_heap(self) -> None:
        tails = (sender.tail() for sender in self._senders.values())
        self._heap = [(t.fee, -t.seq, t.tx.hash) for t in tails if t is not None]
        heapq.heapify(self._heap)

    # ------------------------------------------------------------------ lifecycle

    def mark_selected(self, txs: Iterable[EthTx]) -> None:
        """``txs`` went into a car: keep them in flight until execution reports their nonces."""
        touched: dict[bytes, None] = {}
        for tx in txs:
            entry = self._by_hash.get(tx.hash)
            if entry is None or entry.in_flight:
                continue
            sender = self._senders[tx.sender]
            del sender.pending[tx.nonce]
            sender.in_flight[tx.nonce] = entry
            entry.in_flight = True
            while sender.cursor in sender.in_flight:
                sender.cursor += 1
            touched[tx.sender] = None
        for address in touched:
            sender = self._senders[address]
            self._ready.pop(address, None)
            self._push_tail(sender)
            self._refresh(address, sender)

    def on_executed(self, executed: Mapping[bytes, int]) -> None:
        """Execution reached these account nonces: drop every transaction below them."""
        for address, nonce in executed.items():
            sender = self._senders.get(address)
            if sender is not None and nonce > sender.state_nonce:
                self._advance(address, sender, nonce)

    def requeue(self, txs: Iterable[EthTx]) -> None:
        """Return in-flight ``txs`` to pending (their car was abandoned)."""
        touched: dict[bytes, None] = {}
        for tx in txs:
            entry = self._by_hash.get(tx.hash)
            if entry is None or not entry.in_flight:
                continue
            sender = self._senders[tx.sender]
            del sender.in_flight[tx.nonce]
            sender.pending[tx.nonce] = entry
            entry.in_flight = False
            touched[tx.sender] = None
        for address in touched:
            sender = self._senders[address]
            sender.reset_cursor()
            self._push_tail(sender)
            self._refresh(address, sender)

    def remove(self, tx_hashes: Iterable[bytes]) -> None:
        """Drop these transactions, pending or in flight (e.g. skipped at execution)."""
        for tx_hash in tx_hashes:
            entry = self._by_hash.get(tx_hash)
            if entry is not None:
                self._drop(entry)

    # ------------------------------------------------------------------ internals

    def _insert(self, tx: EthTx, fee: int, sender: _Sender) -> None:
        self._seq += 1
        entry = _Entry(tx, self._seq, fee)
        self._senders.setdefault(tx.sender, sender)
        sender.pending[tx.nonce] = entry
        sender.total_cost += tx.max_cost(self.base_fee)
        self._by_hash[tx.hash] = entry
        self._bytes += tx.size
        self._push_tail(sender)
        self._refresh(tx.sender, sender)

    def _drop(self, entry: _Entry, *, reset_cursor: bool = True) -> None:
        tx = entry.tx
        sender = self._senders[tx.sender]
        del self._by_hash[tx.hash]
        self._bytes -= tx.size
        sender.total_cost -= tx.max_cost(self.base_fee)
        if entry.in_flight:
            del sender.in_flight[tx.nonce]
            if reset_cursor:
                sender.reset_cursor()
        else:
            del sender.pending[tx.nonce]
            self._push_tail(sender)
        self._refresh(tx.sender, sender)

    def _advance(self, address: bytes, sender: _Sender, nonce: int) -> None:
        """The sender's account nonce is now ``nonce``: drop what it makes stale."""
        stale = [e for n, e in (*sender.pending.items(), *sender.in_flight.items()) if n < nonce]
        for entry in stale:
            self._drop(entry, reset_cursor=False)
        sender.state_nonce = nonce
        sender.reset_cursor()
        self._refresh(address, sender)

    def _refresh(self, address: bytes, sender: _Sender) -> None:
        """Forget an empty sender; keep the ready set in step with its cursor."""
        if not sender.pending and not sender.in_flight:
            self._senders.pop(address, None)
            self._ready.pop(address, None)
        elif sender.cursor in sender.pending:
            self._ready.setdefault(address, None)
        else:
            self._ready.pop(address, None)
