"""Recovered senders, kept from the moment a transaction is first seen until it executes.

Recovering a sender (secp256k1 public-key recovery) is the largest per-transaction cost of a
validator. Without this cache the lane owner recovers each transaction twice (at admission
and at execution) and every validator recovers a block's transactions only after the block
commits, on the latency path. With it: the owner reuses its admission-time recovery, the
other validators recover a car's transactions in worker threads as soon as the car arrives
(long before the cut carrying it commits), and execution finds them done.

Only a hint: a miss recovers again, so the cache never changes what executes. Entries are
keyed by the raw signed bytes (which fix the sender), taken out when used, and bounded:
the oldest go first when the capacity is reached.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from node.execution.tx import EthTx, UndecodableTx

Decoded = EthTx | UndecodableTx


class SenderCache:
    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._by_raw: dict[bytes, Decoded] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._by_raw)

    def put(self, txs: Iterable[Decoded]) -> None:
        table = self._by_raw
        for tx in txs:
            table[tx.raw] = tx
        excess = len(table) - self.capacity
        if excess > 0:
            for raw in list(_first(table, excess)):
                del table[raw]

    def take(self, raws: Sequence[bytes]) -> tuple[list[Decoded | None], list[int]]:
        """Remove and return the cached decoding of each of ``raws`` (None where missing),
        and the positions of the missing ones."""
        table = self._by_raw
        found: list[Decoded | None] = [table.pop(raw, None) for raw in raws]
        missing = [i for i, tx in enumerate(found) if tx is None]
        self.misses += len(missing)
        self.hits += len(raws) - len(missing)
        return found, missing


def _first(table: dict[bytes, Decoded], count: int) -> Iterable[bytes]:
    for i, raw in enumerate(table):
        if i >= count:
            return
        yield raw
