"""Bytes for the values of the protocol's ``Persist`` effects, chosen by the key's kind.

Peer messages use the wire codec (node/wire/codec.py), so a stored vote or car is exactly
what would travel. A ``Proposal`` is not a peer message on its own: it is stored inside a
``Prepare`` with an empty ticket. ``lane_pos`` tuples and the ordering checkpoint have a small
fixed layout here.

Encoding raises ``ValueError`` for a value of the wrong type for its kind; decoding raises
``ValueError`` for bytes that do not hold a value of that kind (on disk: corruption).
"""

from __future__ import annotations

from typing import Final, TypeVar

from node.protocol.ordering import OrderingCheckpoint
from node.storage.layout import Reader, pack_fixed, pack_u32, pack_u64
from node.storage.schema import DIGEST_SIZE, PersistKey
from node.types.errors import MalformedMessage
from node.types.messages import (
    TC,
    Car,
    Commit,
    Confirm,
    Message,
    PoA,
    Prepare,
    Proposal,
    Ticket,
    Timeout,
    Vote,
)
from node.wire.codec import decode_message, encode_message

_MESSAGE_KINDS: Final[dict[str, type]] = {
    "car": Car,
    "poa": PoA,
    "prepare_vote": Vote,
    "confirm_ack": Vote,
    "timeout": Timeout,
    "high_qc": Confirm,
    "tc": TC,
    "proposal": Prepare,
    "commit": Commit,
}
"""Kinds whose value is a peer message, stored in its wire encoding."""

_T = TypeVar("_T")
_M = TypeVar("_M", bound=Message)


def encode_persist_value(key: PersistKey, value: object) -> bytes:
    kind = key[0] if key else None
    if isinstance(kind, str) and kind in _MESSAGE_KINDS:
        message: Message = _check_type(key, value, _MESSAGE_KINDS[kind])
        return encode_message(message)
    if kind == "high_prop":
        proposal = _check_type(key, value, Proposal)
        return encode_message(Prepare(proposal, Ticket()))
    if kind == "lane_pos":
        return _encode_lane_pos(key, value)
    if kind == "ordering":
        return encode_checkpoint(_check_type(key, value, OrderingCheckpoint))
    raise ValueError(f"no value encoding for persist key {key!r}")


def decode_persist_value(key: PersistKey, data: bytes) -> object:
    kind = key[0] if key else None
    if isinstance(kind, str) and kind in _MESSAGE_KINDS:
        return _decode_as(key, data, _MESSAGE_KINDS[kind])
    if kind == "high_prop":
        prepare = _decode_as(key, data, Prepare)
        if prepare.ticket != Ticket():
            raise ValueError(f"{key!r}: a stored proposal carries a ticket")
        return prepare.proposal
    if kind == "lane_pos":
        r = Reader(data, "lane_pos")
        pos, digest = r.u64(), r.take(DIGEST_SIZE)
        r.finish()
        return (pos, digest)
    if kind == "ordering":
        return decode_checkpoint(data)
    raise ValueError(f"no value decoding for persist key {key!r}")


def encode_checkpoint(checkpoint: OrderingCheckpoint) -> bytes:
    positions = b"".join(
        pack_u64(pos) + pack_fixed(digest, DIGEST_SIZE, "lane digest")
        for pos, digest in checkpoint.lane_positions
    )
    return (
        pack_u64(checkpoint.next_slot)
        + pack_u64(checkpoint.height)
        + pack_fixed(checkpoint.last_block, DIGEST_SIZE, "last block")
        + pack_u32(len(checkpoint.lane_positions))
        + positions
    )


def decode_checkpoint(data: bytes) -> OrderingCheckpoint:
    r = Reader(data, "ordering checkpoint")
    next_slot, height, last_block = r.u64(), r.u64(), r.take(DIGEST_SIZE)
    n = r.count(8 + DIGEST_SIZE)
    positions = tuple((r.u64(), r.take(DIGEST_SIZE)) for _ in range(n))
    r.finish()
    return OrderingCheckpoint(next_slot, height, last_block, positions)


def _encode_lane_pos(key: PersistKey, value: object) -> bytes:
    match value:
        case (int() as pos, bytes() as digest):
            return pack_u64(pos) + pack_fixed(digest, DIGEST_SIZE, "lane_pos digest")
    raise ValueError(f"{key!r}: expected (pos, digest), got {value!r}")


def _check_type(key: PersistKey, value: object, expected: type[_T]) -> _T:
    if not isinstance(value, expected):
        raise ValueError(f"{key!r}: expected {expected.__name__}, got {type(value).__name__}")
    return value


def _decode_as(key: PersistKey, data: bytes, expected: type[_M]) -> _M:
    try:
        message = decode_message(data, max_size=len(data))
    except MalformedMessage as exc:
        raise ValueError(f"{key!r}: {exc}") from exc
    return _check_type(key, message, expected)


def decode_car(data: bytes) -> Car:
    """A stored car (wire encoding); ValueError names what is wrong."""
    try:
        car = decode_message(data, max_size=len(data))
    except MalformedMessage as exc:
        raise ValueError(str(exc)) from exc
    if not isinstance(car, Car):
        raise ValueError(f"holds a {type(car).__name__}, not a car")
    return car
