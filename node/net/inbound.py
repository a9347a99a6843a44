"""The inbound edge shared by every transport: decode, count, penalize, deliver.

A transport hands over what an authenticated peer sent (encoded messages and raw
transactions); this decodes each message defensively and calls the node's callbacks in
order. A message that does not decode is dropped, counted and penalizes its sender. The
caller closes the peer's stream when ``deliver`` reports the peer banned.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from node.net.peers import PeerScore
from node.net.transport import NetCounters, OnMessage, OnTxs, TransportLimits
from node.types.errors import MalformedMessage
from node.wire.codec import decode_message

log = structlog.get_logger("lanenet.net")


class Inbound:
    """Decodes what peers send and hands it to the node; penalizes what does not decode."""

    def __init__(
        self,
        on_message: OnMessage,
        on_txs: OnTxs,
        limits: TransportLimits,
        counters: NetCounters,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_message = on_message
        self._on_txs = on_txs
        self._limits = limits
        self._counters = counters
        self._clock = clock
        self.score = PeerScore(limits, counters)
        self.closed = False
        """Set by the transport's stop(): after it, nothing is delivered."""

    def is_banned(self, peer: int) -> bool:
        return self.score.is_banned(peer, self._clock())

    def penalize(self, peer: int, reason: str) -> bool:
        """Penalize ``peer``; return True if it is now banned."""
        banned = self.score.penalize(peer, self._clock())
        log.warning("peer_penalized", peer=peer, reason=reason, banned=banned)
        return banned

    def deliver(self, sender: int, messages: list[bytes], txs: list[bytes]) -> bool:
        """Decode and deliver one frame's content from ``sender``, in order.

        Returns False when ``sender`` is banned (before or because of this frame); the rest
        of the frame is then dropped and the caller should disconnect the peer.
        """
        if self.closed:
            return True
        if self.is_banned(sender):
            return False
        for data in messages:
            try:
                message = decode_message(data, self._limits.max_message_size)
            except MalformedMessage as exc:
                self._counters.decode_errors += 1
                if self.penalize(sender, str(exc)):
                    return False
                continue
            self._counters.messages_received += 1
            self._on_message(sender, message)
            if self.closed:
                return True
        if txs:
            if any(not tx for tx in txs):
                self._counters.decode_errors += 1
                return not self.penalize(sender, "empty transaction")
            self._counters.txs_received += len(txs)
            self._on_txs(sender, txs)
        return True
