"""Accepted-but-unexecuted transactions, kept on disk so that kill -9 does not lose them.

A validator answers "accepted" for a transaction it admitted to its mempool (its own lane)
or prechecked and forwarded to the lane's owner (another lane). Both answers are promises
that outlive the process: the transaction is written to the ACCEPTED_TX table (tx hash ->
raw transaction) before the submit call returns, and stays there until it can no longer
execute:

    submit / forwarded batch ─▶ stage() each accepted tx ─▶ flush(): one write batch
    block executed ─▶ on_executed(sender nonces, skipped hashes): entries it made stale go
    restart ─▶ restore(): stale ones deleted, own lane returned (for the mempool), other
               lanes queued to be forwarded again
    every REFORWARD_EVERY_S ─▶ due_for_forward(): forwarded txs not executed within RETRY_S
               go to their owner again (a batch lost in transit, or an owner killed before
               it admitted or persisted them)

Writes use ``sync=False``, which is enough against kill -9: LevelDB appends a write batch
to its log file with write(2) before ``Write`` returns, so the bytes are in the OS page
cache and survive the death of the process (kill -9, the OOM killer, a crash). Only a
kernel crash or a power loss can drop the last writes; no fsync is paid per submit.

An in-memory index (sender -> {nonce: hash}) finds the entries a block made stale without
a scan. A sender has at most one entry per nonce: a later transaction with the same nonce
(a replacement) takes the place of the earlier one.

Bounds: own-lane entries mirror the mempool (what it admitted, minus what it replaced,
evicted or dropped), so the mempool's limits bound them. Forwarded entries are bounded by
the same limits (``has_room``): the node refuses a transaction ("txpool is full") rather
than forward one it cannot keep. A forwarded entry is given up after MAX_FORWARD_ATTEMPTS
sends to a connected owner: by then the owner has admitted it (and persisted it itself) or
refused it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Final

from node.execution.tx import EthTx, recover_batch
from node.mempool.routing import lane_of
from node.storage import schema
from node.storage.kv import KeyValueStore

RETRY_S: Final = 5.0
"""A forwarded transaction not executed this long after it was sent is sent again."""
REFORWARD_EVERY_S: Final = 2.0
MAX_REFORWARD: Final = 4_000
"""At most this many transactions are forwarded again per round."""
MAX_FORWARD_ATTEMPTS: Final = 6


@dataclass(slots=True)
class _Entry:
    sender: bytes
    nonce: int
    size: int
    owner: int
    raw: bytes | None  # kept in memory only for forwarded ones (they are sent again)
    attempts: int = 0


class AcceptedTxs:
    """The ACCEPTED_TX table of validator ``me`` in a committee of ``lanes`` validators,
    with its index; see the module docstring for when entries come and go."""

    def __init__(
        self, kv: KeyValueStore, me: int, lanes: int, *, max_txs: int, max_bytes: int
    ) -> None:
        self._kv = kv
        self.me = me
        self.lanes = lanes
        self.max_txs = max_txs
        self.max_bytes = max_bytes
        self._entries: dict[bytes, _Entry] = {}
        self._by_sender: dict[bytes, dict[int, bytes]] = {}
        # forwarded hashes -> when they are due again; insertion order is due order, because
        # every entry is (re)inserted at the end with now + RETRY_S
        self._due: dict[bytes, float] = {}
        self._forwarded_bytes = 0
        self._batch: dict[bytes, bytes | None] = {}  # key -> raw, or None: delete

    # ------------------------------------------------------------------ queries

    @property
    def size(self) -> int:
        return len(self._entries)

    @property
    def forwarded(self) -> int:
        """How many entries are other lanes' transactions (forwarded, not executed)."""
        return len(self._due)

    def __contains__(self, tx_hash: bytes) -> bool:
        return tx_hash in self._entries

    def has_room(self, tx: EthTx) -> bool:
        """Whether ``tx``, for another lane, can be kept within the limits."""
        if tx.hash in self._entries:
            return True
        return len(self._due) < self.max_txs and self._forwarded_bytes + tx.size <= self.max_bytes

    # ------------------------------------------------------------------ changes

    def stage(self, tx: EthTx, owner: int, now: float) -> None:
        """Keep ``tx`` (lane ``owner``); on disk at the next ``flush``. A kept transaction
        of the same sender and nonce is replaced."""
        if tx.hash in self._entries:
            return
        old = self._by_sender.get(tx.sender, {}).get(tx.nonce)
        if old is not None:
            self._remove(old)
        forwarded = owner != self.me
        self._entries[tx.hash] = _Entry(
            tx.sender, tx.nonce, tx.size, owner, tx.raw if forwarded else None
        )
        self._by_sender.setdefault(tx.sender, {})[tx.nonce] = tx.hash
        if forwarded:
            self._due[tx.hash] = now + RETRY_S
            self._forwarded_bytes += tx.size
        self._batch[schema.accepted_tx_key(tx.hash)] = tx.raw

    def discard(self, tx_hashes: Iterable[bytes]) -> None:
        """Forget these transactions (replaced, evicted, refused); on disk at ``flush``."""
        for tx_hash in tx_hashes:
            if tx_hash in self._entries:
                self._remove(tx_hash)

    def flush(self) -> None:
        """Write what was staged or discarded since the last flush, as one batch."""
        if self._batch:
            batch, self._batch = list(self._batch.items()), {}
            self._kv.write(batch)  # sync=False is enough: see the module docstring

    def on_executed(self, sender_nonces: Mapping[bytes, int], skipped: Iterable[bytes]) -> None:
        """A block executed: drop every entry below its senders' new account nonces, and the
        transactions it skipped (as the mempool does); written at once."""
        for sender, nonce in sender_nonces.items():
            nonces = self._by_sender.get(sender)
            if nonces:
                for stale in [h for n, h in nonces.items() if n < nonce]:
                    self._remove(stale)
        self.discard(skipped)
        self.flush()

    def due_for_forward(
        self, now: float, connected: Collection[int], limit: int = MAX_REFORWARD
    ) -> dict[int, list[bytes]]:
        """Up to ``limit`` forwarded transactions due again, by owner. Those of an owner not
        connected now wait another RETRY_S (its link would only buffer them); one sent to a
        connected owner MAX_FORWARD_ATTEMPTS times already is given up."""
        due: list[bytes] = []
        for tx_hash, when in self._due.items():
            if when > now or len(due) >= limit:
                break
            due.append(tx_hash)
        out: dict[int, list[bytes]] = {}
        for tx_hash in due:
            entry = self._entries[tx_hash]
            if entry.owner in connected:
                if entry.attempts >= MAX_FORWARD_ATTEMPTS:
                    self._remove(tx_hash)
                    continue
                entry.attempts += 1
                assert entry.raw is not None  # forwarded entries keep their bytes
                out.setdefault(entry.owner, []).append(entry.raw)
            del self._due[tx_hash]
            self._due[tx_hash] = now + RETRY_S
        self.flush()
        return out

    def restore(
        self, chain_id: int, executor: Executor, nonce_of: Callable[[bytes], int], now: float
    ) -> list[EthTx]:
        """After a restart: load the table, delete what is stale by nonce (or undecodable),
        queue other lanes' transactions to be forwarded at once, and return this lane's,
        ordered by sender and nonce (for the mempool)."""
        start, stop = schema.table_range(schema.Table.ACCEPTED_TX)
        stored = list(self._kv.iterate(start, stop))
        txs = recover_batch([raw for _key, raw in stored], chain_id, executor)
        own: list[EthTx] = []
        for (key, _raw), tx in zip(stored, txs, strict=True):
            if not isinstance(tx, EthTx) or tx.hash != schema.decode_accepted_tx_key(key):
                self._batch[key] = None
                continue
            if tx.nonce < nonce_of(tx.sender):
                self.discard((tx.hash,))
                self._batch[key] = None
                continue
            owner = lane_of(tx.sender, self.lanes)
            self.stage(tx, owner, now)
            if owner == self.me:
                own.append(tx)
            elif tx.hash in self._due:
                self._due[tx.hash] = now  # due at once: insertion order stays due order
        self.flush()
        own.sort(key=lambda tx: (tx.sender, tx.nonce))
        return own

    # ------------------------------------------------------------------ internals

    def _remove(self, tx_hash: bytes) -> None:
        entry = self._entries.pop(tx_hash)
        nonces = self._by_sender[entry.sender]
        if nonces.get(entry.nonce) == tx_hash:
            del nonces[entry.nonce]
            if not nonces:
                del self._by_sender[entry.sender]
        if self._due.pop(tx_hash, None) is not None:
            self._forwarded_bytes -= entry.size
        self._batch[schema.accepted_tx_key(tx_hash)] = None
