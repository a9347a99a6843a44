"""The bounded per-peer outbound queue every transport sends from.

Messages leave in the order they were queued. When the queue is full, the oldest
non-consensus message is dropped; a consensus message is dropped only when the queue holds
nothing else. Forwarded transactions wait in a separate buffer bounded by bytes, dropping
the oldest first. A taker pulls one frame's worth (messages first, then transactions) and
can put it back at the front if the frame never got out.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from node.net.frames import ITEM_OVERHEAD
from node.net.transport import NetCounters


@dataclass(slots=True)
class Taken:
    """What one frame carries: messages as ``(sequence, urgent, bytes)`` and raw txs."""

    messages: list[tuple[int, bool, bytes]] = field(default_factory=list)
    txs: list[bytes] = field(default_factory=list)

    @property
    def payloads(self) -> list[bytes]:
        return [data for _, _, data in self.messages]

    def __bool__(self) -> bool:
        return bool(self.messages or self.txs)


class OutboundQueue:
    """FIFO of encoded messages for one peer, bounded by count, plus a byte-bounded tx buffer."""

    def __init__(self, capacity: int, tx_capacity_bytes: int, counters: NetCounters) -> None:
        self._capacity = capacity
        self._tx_capacity = tx_capacity_bytes
        self._counters = counters
        self._seq = 0
        # Two deques so the oldest non-consensus entry is always at a head (O(1) drop);
        # sequence numbers restore the single FIFO order when taking.
        self._urgent: deque[tuple[int, bool, bytes]] = deque()
        self._bulk: deque[tuple[int, bool, bytes]] = deque()
        self._txs: deque[bytes] = deque()
        self._tx_bytes = 0
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._urgent) + len(self._bulk)

    @property
    def tx_bytes(self) -> int:
        return self._tx_bytes

    def put(self, data: bytes, urgent: bool) -> None:
        self._seq += 1
        (self._urgent if urgent else self._bulk).append((self._seq, urgent, data))
        self._trim()
        self._ready.set()

    def put_txs(self, txs: list[bytes]) -> None:
        for tx in txs:
            self._txs.append(tx)
            self._tx_bytes += len(tx)
        while self._tx_bytes > self._tx_capacity:
            self._tx_bytes -= len(self._txs.popleft())
            self._counters.dropped_txs += 1
        if self._txs:
            self._ready.set()

    def requeue(self, taken: Taken) -> None:
        """Put a frame that was not delivered back at the front, in its original order."""
        for entry in reversed(taken.messages):
            (self._urgent if entry[1] else self._bulk).appendleft(entry)
        for tx in reversed(taken.txs):
            self._txs.appendleft(tx)
            self._tx_bytes += len(tx)
        self._trim()
        if self or self._txs:
            self._ready.set()

    def take(self, max_bytes: int, max_messages: int, max_txs: int) -> Taken:
        """Pop messages in FIFO order, then transactions, while they fit in ``max_bytes``.

        The first item is always taken, so the caller must never queue one larger than a
        frame.
        """
        taken = Taken()
        budget = max_bytes
        while len(taken.messages) < max_messages and (self._urgent or self._bulk):
            source = self._next_source()
            size = len(source[0][2]) + ITEM_OVERHEAD
            if size > budget and taken:
                break
            taken.messages.append(source.popleft())
            budget -= size
        while len(taken.txs) < max_txs and self._txs:
            size = len(self._txs[0]) + ITEM_OVERHEAD
            if size > budget and taken:
                break
            tx = self._txs.popleft()
            self._tx_bytes -= len(tx)
            taken.txs.append(tx)
            budget -= size
        if not (self._urgent or self._bulk or self._txs):
            self._ready.clear()
        return taken

    async def wait(self) -> None:
        """Return once there is something to take."""
        await self._ready.wait()

    def clear(self) -> None:
        self._urgent.clear()
        self._bulk.clear()
        self._txs.clear()
        self._tx_bytes = 0
        self._ready.clear()

    def _next_source(self) -> deque[tuple[int, bool, bytes]]:
        if not self._bulk:
            return self._urgent
        if not self._urgent:
            return self._bulk
        return self._urgent if self._urgent[0][0] < self._bulk[0][0] else self._bulk

    def _trim(self) -> None:
        while len(self) > self._capacity:
            if self._bulk:
                self._bulk.popleft()
            else:
                self._urgent.popleft()
                self._counters.dropped_consensus += 1
            self._counters.dropped += 1
