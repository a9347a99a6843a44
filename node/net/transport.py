"""The Transport port: how a validator sends peer messages and forwarded transactions.

Two implementations keep one contract (tests/unit/net/test_transport_contract.py):
``GrpcTransport`` (node/net/grpc_transport.py) between processes, and ``MemoryTransport``
(node/net/memory.py) inside one event loop for tests.

Sending never blocks: ``send`` encodes the message and puts it in a bounded per-peer
outbound queue; when the queue is full the oldest non-consensus message is dropped (cars,
lane votes and sync traffic can be fetched again by range sync; consensus messages cannot).
Receiving goes through two callbacks, called on the event loop in arrival order per peer,
each attributed to the authenticated sender. A peer that sends something that does not
decode is counted and penalized; enough penalties in a window disconnect it for a while.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Final, Protocol

from node.net.frames import BATCH_OVERHEAD
from node.types.messages import TC, Commit, Confirm, Message, Prepare, Timeout, Vote
from node.wire.codec import MAX_TX_SIZE

OnMessage = Callable[[int, Message], None]
"""``on_message(sender, message)``: a decoded peer message from validator ``sender``."""

OnTxs = Callable[[int, list[bytes]], None]
"""``on_txs(sender, txs)``: raw transactions validator ``sender`` forwarded to this node."""

CONSENSUS_TYPES: Final = (Prepare, Vote, Confirm, Commit, Timeout, TC)
"""Messages an overflowing queue drops last: nothing re-fetches them if they are lost."""


def is_consensus(message: Message) -> bool:
    return isinstance(message, CONSENSUS_TYPES)


@dataclass(frozen=True, slots=True)
class TransportLimits:
    """Bounds shared by every transport. Sizes in bytes, durations in seconds."""

    max_message_size: int = 8 << 20
    """Largest frame on the wire; a message that cannot fit alone is dropped at send."""
    frame_bytes: int = 1 << 20
    """Frames are filled up to this size (a larger message travels alone): big enough that
    per-frame costs vanish, small enough that consensus traffic never waits behind
    megabytes of cars."""
    queue_capacity: int = 4096
    """Peer messages waiting per peer before the oldest non-consensus one is dropped."""
    tx_buffer_bytes: int = 16 << 20
    """Raw transactions waiting per peer before the oldest are dropped."""
    max_frame_messages: int = 1024
    max_frame_txs: int = 65536
    max_tx_size: int = MAX_TX_SIZE
    penalty_threshold: int = 10
    """Penalties within ``penalty_window`` that disconnect a peer."""
    penalty_window: float = 10.0
    ban_duration: float = 30.0
    """First disconnect period; it doubles for each further ban, up to ``max_ban_duration``."""
    max_ban_duration: float = 600.0

    @property
    def frame_budget(self) -> int:
        """Bytes of items a sender puts in one frame (the first item always goes)."""
        return min(self.frame_bytes, self.max_message_size) - BATCH_OVERHEAD


@dataclass(slots=True)
class NetCounters:
    """Plain counters the metrics module reads; every transport and the gossip keep one."""

    messages_sent: int = 0
    messages_received: int = 0
    frames_sent: int = 0
    frames_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    txs_sent: int = 0
    txs_received: int = 0
    dropped: int = 0
    """Outbound messages dropped because a peer's queue was full (any kind)."""
    dropped_consensus: int = 0
    """Of ``dropped``, consensus messages (only when a queue held nothing else)."""
    dropped_txs: int = 0
    oversized: int = 0
    """Outbound messages or transactions too large for one frame, never sent."""
    decode_errors: int = 0
    """Inbound messages, transactions or frames that did not decode."""
    penalties: int = 0
    bans: int = 0
    auth_failures: int = 0
    """Inbound streams closed because their hello did not authenticate."""
    connects: int = 0
    reconnects: int = 0
    """Outbound streams lost and retried after a backoff."""
    resent: int = 0
    """Messages sent again on a new stream because the old one never acknowledged them."""

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Transport(Protocol):
    """Point-to-point delivery of peer messages and forwarded transactions between validators."""

    counters: NetCounters

    async def start(self) -> None:
        """Begin serving and connecting to peers; returns once the node can accept streams."""
        ...

    async def stop(self) -> None:
        """Close every stream and task; no callback runs after it returns. Idempotent."""
        ...

    def send(self, to: int, message: Message) -> None:
        """Queue ``message`` for validator ``to`` (never blocks; drops and counts on overflow)."""
        ...

    def broadcast(self, message: Message) -> None:
        """``send`` to every other validator, encoding once."""
        ...

    def send_raw_txs(self, to: int, txs: list[bytes]) -> None:
        """Forward transactions to their lane owner ``to``, batched with other traffic."""
        ...

    def connected_peers(self) -> frozenset[int]:
        """Peers with an authenticated outbound stream right now."""
        ...

    def queue_depths(self) -> dict[int, int]:
        """Messages waiting per peer (for the queue-depth metric)."""
        ...
