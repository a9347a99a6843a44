"""Seeded clients: every ``interval`` each validator's lane receives a small batch of txs.

Transaction bytes are unique within a run (lane, counter), so a transaction ordered twice is
detectable, and padded to ``tx_size`` bytes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from node.sim.clock import ms


@dataclass(frozen=True, slots=True)
class ClientLoad:
    """Batches of 1..``max_batch`` txs per lane, every ``interval_ms`` +/- up to half of it."""

    interval_ms: float = 25.0
    max_batch: int = 3
    tx_size: int = 48


class Clients:
    """Makes the next batch for each lane; the harness hands it to the lane's replica."""

    def __init__(self, size: int, load: ClientLoad, rng: random.Random) -> None:
        self.size = size
        self.load = load
        self.rng = rng
        self.counters = [0] * size

    def next_gap(self) -> int:
        """Clock ticks until the next round of submissions."""
        half = self.load.interval_ms / 2
        return ms(self.load.interval_ms + self.rng.uniform(-half, half))

    def make_batch(self, lane: int) -> tuple[bytes, ...]:
        count = self.rng.randint(1, self.load.max_batch)
        txs = []
        for _ in range(count):
            self.counters[lane] += 1
            body = b"tx|%d|%d|" % (lane, self.counters[lane])
            txs.append(body.ljust(self.load.tx_size, b"."))
        return tuple(txs)
