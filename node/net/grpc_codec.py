"""Transport frames and gossip payloads ⇄ protobuf bytes (proto/lanenet/v1/net.proto).

The only module of node/net that imports generated code. Encoding trusts its input;
decoding trusts nothing: sizes are checked before parsing, every field is checked
(lengths, known variants) and any problem raises ``MalformedMessage``. Whether a batch's
MAC matches and its items fit the limits is checked by the caller (node/net/frames.py),
after the parse. Peer messages inside a batch stay encoded here: node.wire.codec decodes
them one by one, so one bad message costs only itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from google.protobuf.message import DecodeError

from node.net.frames import (
    ECHO_SIZE,
    EPHEMERAL_SIZE,
    MAC_SIZE,
    PROTOCOL_VERSION,
    SIGNATURE_SIZE,
    Ack,
    Batch,
    Hello,
    compute_ack_mac,
    compute_batch_mac,
)
from node.types.errors import MalformedMessage
from node.wire.gen.lanenet.v1 import net_pb2 as pb

Frame = Hello | Batch | Ack

_M = TypeVar("_M", pb.PeerFrame, pb.GossipTxBatch)


# ============================================================================ encoding


def encode_hello(hello: Hello) -> bytes:
    return pb.PeerFrame(
        hello=pb.PeerHello(
            version=hello.version,
            chain_id=hello.chain_id,
            sender=hello.sender,
            receiver=hello.receiver,
            timestamp_ms=hello.timestamp_ms,
            ephemeral=hello.ephemeral,
            echo=hello.echo,
            signature=hello.signature,
        )
    ).SerializeToString()


def encode_batch(messages: list[bytes], txs: list[bytes], key: bytes, index: int) -> bytes:
    """Frame ``index`` of a stream: encoded peer messages and raw transactions, MACed."""
    return encode_batch_with_mac(messages, txs, compute_batch_mac(key, index, messages, txs))


def encode_batch_with_mac(messages: list[bytes], txs: list[bytes], mac: bytes) -> bytes:
    batch = pb.PeerBatch(messages=messages, txs=txs, mac=mac)
    return pb.PeerFrame(batch=batch).SerializeToString()


def encode_ack(frames: int, key: bytes) -> bytes:
    ack = pb.PeerAck(frames=frames, mac=compute_ack_mac(key, frames))
    return pb.PeerFrame(ack=ack).SerializeToString()


def encode_tx_batch(txs: list[bytes]) -> bytes:
    return pb.GossipTxBatch(txs=txs).SerializeToString()


# ============================================================================ decoding


def decode_frame(data: bytes, max_size: int) -> Frame:
    """Parse a ``PeerFrame`` of at most ``max_size`` bytes into its value."""
    frame = _parse(pb.PeerFrame, data, max_size, "frame")
    kind = frame.WhichOneof("body")
    if kind == "hello":
        return _decode_hello(frame.hello)
    if kind == "batch":
        if len(frame.batch.mac) != MAC_SIZE:
            raise MalformedMessage(f"batch: MAC of {len(frame.batch.mac)} bytes")
        return Batch(list(frame.batch.messages), list(frame.batch.txs), frame.batch.mac)
    if kind == "ack":
        if len(frame.ack.mac) != MAC_SIZE:
            raise MalformedMessage(f"ack: MAC of {len(frame.ack.mac)} bytes")
        return Ack(frame.ack.frames, frame.ack.mac)
    raise MalformedMessage("frame: no body set")


def decode_hello(data: bytes) -> Hello:
    frame = decode_frame(data, 1024)
    if not isinstance(frame, Hello):
        raise MalformedMessage(f"expected a hello, got {type(frame).__name__}")
    return frame


def decode_batch(data: bytes, max_size: int) -> Batch:
    frame = decode_frame(data, max_size)
    if not isinstance(frame, Batch):
        raise MalformedMessage(f"expected a batch, got {type(frame).__name__}")
    return frame


def decode_tx_batch(data: bytes, max_size: int, max_txs: int, max_tx_size: int) -> list[bytes]:
    batch = _parse(pb.GossipTxBatch, data, max_size, "gossip batch")
    txs = list(batch.txs)
    if len(txs) > max_txs:
        raise MalformedMessage(f"gossip batch: {len(txs)} items, limit {max_txs}")
    _check_sizes(txs, max_tx_size, "gossip batch.txs")
    if any(not tx for tx in txs):
        raise MalformedMessage("gossip batch: empty transaction")
    return txs


def _parse(message_type: type[_M], data: bytes, max_size: int, where: str) -> _M:
    if len(data) > max_size:
        raise MalformedMessage(f"{where}: {len(data)} bytes exceeds the limit of {max_size}")
    try:
        return message_type.FromString(data)
    except DecodeError as exc:
        raise MalformedMessage(f"{where}: not a valid protobuf: {exc}") from exc


def _check_sizes(items: Iterable[bytes], max_size: int, where: str) -> None:
    for i, item in enumerate(items):
        if len(item) > max_size:
            raise MalformedMessage(f"{where}[{i}]: {len(item)} bytes, limit {max_size}")


def _decode_hello(m: pb.PeerHello) -> Hello:
    if m.version != PROTOCOL_VERSION:
        raise MalformedMessage(f"hello: protocol version {m.version}, expected {PROTOCOL_VERSION}")
    for name, value, size in (
        ("ephemeral", m.ephemeral, EPHEMERAL_SIZE),
        ("echo", m.echo, ECHO_SIZE),
        ("signature", m.signature, SIGNATURE_SIZE),
    ):
        if len(value) != size:
            raise MalformedMessage(f"hello: {name} of {len(value)} bytes, expected {size}")
    return Hello(
        m.chain_id,
        m.sender,
        m.receiver,
        m.timestamp_ms,
        m.ephemeral,
        m.echo,
        m.signature,
        m.version,
    )
