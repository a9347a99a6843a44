"""The sending side shared by every transport: encode once, size-check, queue per peer."""

from __future__ import annotations

from collections.abc import Iterable

import structlog

from node.net.frames import BATCH_OVERHEAD, ITEM_OVERHEAD
from node.net.queues import OutboundQueue
from node.net.transport import NetCounters, TransportLimits, is_consensus
from node.types.messages import Message
from node.wire.codec import encode_message

log = structlog.get_logger("lanenet.net")


class Outbox:
    """One bounded ``OutboundQueue`` per peer and the non-blocking ``send`` family."""

    def __init__(
        self, me: int, peers: Iterable[int], limits: TransportLimits, counters: NetCounters
    ) -> None:
        self._me = me
        self._limits = limits
        self._counters = counters
        self._max_item = limits.max_message_size - BATCH_OVERHEAD - ITEM_OVERHEAD
        self._max_tx = min(self._max_item, limits.max_tx_size)
        self.queues = {
            p: OutboundQueue(limits.queue_capacity, limits.tx_buffer_bytes, counters)
            for p in peers
            if p != me
        }

    def send(self, to: int, message: Message) -> None:
        queue = self._queue(to)
        data = self._encode(message)
        if data is not None:
            queue.put(data, is_consensus(message))

    def broadcast(self, message: Message) -> None:
        data = self._encode(message)
        if data is None:
            return
        urgent = is_consensus(message)
        for queue in self.queues.values():
            queue.put(data, urgent)

    def send_raw_txs(self, to: int, txs: list[bytes]) -> None:
        queue = self._queue(to)
        fitting = [tx for tx in txs if 0 < len(tx) <= self._max_tx]
        if len(fitting) != len(txs):
            self._counters.oversized += sum(1 for tx in txs if len(tx) > self._max_tx)
            self._counters.dropped_txs += len(txs) - len(fitting)
        queue.put_txs(fitting)

    def depths(self) -> dict[int, int]:
        return {peer: len(queue) for peer, queue in self.queues.items()}

    def _queue(self, to: int) -> OutboundQueue:
        queue = self.queues.get(to)
        if queue is None:
            raise ValueError(f"validator {to} is not a peer of validator {self._me}")
        return queue

    def _encode(self, message: Message) -> bytes | None:
        data = encode_message(message)
        if len(data) > self._max_item:
            self._counters.oversized += 1
            log.warning("message_oversized", kind=type(message).__name__, size=len(data))
            return None
        return data
