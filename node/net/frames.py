"""Frame values of a validator stream and the cryptographic bytes they carry.

The wire form is protobuf (``PeerFrame`` in proto/lanenet/v1/net.proto, converted by
node/net/grpc_codec.py). What is signed or MACed is defined here, independent of protobuf:

- a hello's signature covers ``Hello.signing_bytes``: a domain tag and the fixed-width
  big-endian fields, in order;
- a batch's MAC is HMAC-SHA256 (first 16 bytes) under the stream's session key over the
  frame's index on the stream (u64, counted from 1), then the message count (u32) and each
  message with its length (u32), then the same for the transactions; so a frame cannot be
  forged, replayed or reordered without the key, and is serialized only once;
- an ack's MAC covers the processed-frame count and the tag ``ack`` under the other
  direction's key.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from typing import Final

from node.types.errors import InvalidSignature, MalformedMessage

PROTOCOL_VERSION: Final = 1
MAC_SIZE: Final = 16
EPHEMERAL_SIZE: Final = 32
ECHO_SIZE: Final = 32
SIGNATURE_SIZE: Final = 64
HELLO_DOMAIN: Final = b"lanenet/net/hello/v1"

ITEM_OVERHEAD: Final = 6
"""Most protobuf bytes a batch spends on one message or transaction besides its content
(a 1-byte tag and up to 5 bytes of length)."""
BATCH_OVERHEAD: Final = 64
"""Protobuf bytes of a batch frame besides its items: frame, seal and MAC, rounded up."""

_U64: Final = struct.Struct(">Q")
_U32: Final = struct.Struct(">I")
_HELLO_SIGNED: Final = struct.Struct(f">BQIIQ{EPHEMERAL_SIZE}s{ECHO_SIZE}s")


@dataclass(frozen=True, slots=True)
class Hello:
    """First frame each way. ``echo`` is zero from the dialer and, from the listener, the
    digest of the dialer's hello frame, so a reply is bound to the stream it answers."""

    chain_id: int
    sender: int
    receiver: int
    timestamp_ms: int
    ephemeral: bytes
    echo: bytes
    signature: bytes
    version: int = PROTOCOL_VERSION

    def signing_bytes(self) -> bytes:
        return HELLO_DOMAIN + _HELLO_SIGNED.pack(
            self.version,
            self.chain_id,
            self.sender,
            self.receiver,
            self.timestamp_ms,
            self.ephemeral,
            self.echo,
        )


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch frame as received: encoded peer messages, raw transactions, the MAC."""

    messages: list[bytes]
    txs: list[bytes]
    mac: bytes


@dataclass(frozen=True, slots=True)
class Ack:
    frames: int
    mac: bytes


@dataclass(frozen=True, slots=True)
class BatchLimits:
    max_messages: int
    max_txs: int
    max_message_size: int
    max_tx_size: int


def compute_batch_mac(key: bytes, index: int, messages: list[bytes], txs: list[bytes]) -> bytes:
    mac = hmac.new(key, _U64.pack(index), hashlib.sha256)
    for items in (messages, txs):
        mac.update(_U32.pack(len(items)))
        for item in items:
            mac.update(_U32.pack(len(item)))
            mac.update(item)
    return mac.digest()[:MAC_SIZE]


def compute_ack_mac(key: bytes, frames: int) -> bytes:
    return hmac.new(key, _U64.pack(frames) + b"ack", hashlib.sha256).digest()[:MAC_SIZE]


def check_batch_mac(key: bytes, index: int, batch: Batch) -> None:
    expected = compute_batch_mac(key, index, batch.messages, batch.txs)
    if not hmac.compare_digest(expected, batch.mac):
        raise InvalidSignature(f"batch: MAC does not match (frame {index})")


def check_batch_limits(batch: Batch, limits: BatchLimits) -> None:
    """Raise ``MalformedMessage`` for a batch with too many or too large items."""
    for items, max_count, max_size, where in (
        (batch.messages, limits.max_messages, limits.max_message_size, "batch.messages"),
        (batch.txs, limits.max_txs, limits.max_tx_size, "batch.txs"),
    ):
        if len(items) > max_count:
            raise MalformedMessage(f"{where}: {len(items)} items, limit {max_count}")
        for i, item in enumerate(items):
            if len(item) > max_size:
                raise MalformedMessage(f"{where}[{i}]: {len(item)} bytes, limit {max_size}")


def check_ack_mac(key: bytes, ack: Ack) -> None:
    if not hmac.compare_digest(compute_ack_mac(key, ack.frames), ack.mac):
        raise InvalidSignature("ack: MAC does not match")


def estimate_batch_size(messages: list[bytes], txs: list[bytes]) -> int:
    """An upper bound of a batch frame's size on the wire."""
    items = sum(len(m) for m in messages) + sum(len(t) for t in txs)
    return BATCH_OVERHEAD + items + ITEM_OVERHEAD * (len(messages) + len(txs))
