"""Strict RLP (Ethereum's recursive length prefix): decode and encode by slicing bytes.

Every value has exactly one accepted encoding. The decoder rejects, with ``RlpError``:
a single byte below 0x80 wrapped in a string header, a long-form header for a payload under
56 bytes, a length with leading zero bytes, a length running past its enclosing item,
trailing bytes after the top-level item, and nesting deeper than ``MAX_DEPTH``.
Integers (``decode_uint``) must be minimal big-endian: no leading zero bytes, zero is empty.

This is the hot path of transaction decoding, so it slices ``bytes`` directly instead of
going through pyrlp (which the tests use as an independent oracle).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

from node.types.errors import MalformedMessage

RlpItem = Union[bytes, list["RlpItem"]]
Encodable = Union[bytes, int, Sequence["Encodable"]]

# A transaction nests four deep (tx → access list → entry → storage keys); 16 leaves room
# while keeping the recursive decoder far from Python's recursion limit.
MAX_DEPTH = 16


class RlpError(MalformedMessage):
    """Bytes that are not the one canonical RLP encoding of a value."""


def decode(data: bytes) -> RlpItem:
    """Decode exactly one RLP item that spans all of ``data``."""
    if not data:
        raise RlpError("empty input")
    item, end = _decode_item(data, 0, len(data), 0)
    if end != len(data):
        raise RlpError(f"{len(data) - end} trailing bytes after the item")
    return item


def decode_list(data: bytes) -> tuple[list[RlpItem], list[int]]:
    """Decode ``data`` as one RLP list; also return where each element starts in ``data``.

    The offsets list has one more entry than the items: the end of the last element. So
    ``data[offsets[i]:offsets[j]]`` is the encoding of elements ``i`` to ``j - 1``, which lets
    a caller re-wrap a prefix of the fields without re-encoding them.
    """
    if not data:
        raise RlpError("empty input")
    is_list, start, stop = _header(data, 0, len(data))
    if not is_list:
        raise RlpError("expected a list, found a string")
    if stop != len(data):
        raise RlpError(f"{len(data) - stop} trailing bytes after the list")
    items: list[RlpItem] = []
    offsets = [start]
    pos = start
    while pos < stop:
        item, pos = _decode_item(data, pos, stop, 1)
        items.append(item)
        offsets.append(pos)
    return items, offsets


def _decode_item(data: bytes, pos: int, end: int, depth: int) -> tuple[RlpItem, int]:
    first = data[pos]
    # fast path for the common short strings; _header below does the same checks
    if first < 0x80:
        return data[pos : pos + 1], pos + 1
    if first < 0xB8:
        stop = pos + first - 0x7F
        if stop > end:
            raise RlpError("string runs past the end of its enclosing item")
        if first == 0x81 and data[pos + 1] < 0x80:
            raise RlpError("single byte below 0x80 must be encoded as itself")
        return data[pos + 1 : stop], stop
    is_list, start, stop = _header(data, pos, end)
    if not is_list:
        return data[start:stop], stop
    if depth >= MAX_DEPTH:
        raise RlpError(f"lists nested deeper than {MAX_DEPTH}")
    items: list[RlpItem] = []
    while start < stop:
        item, start = _decode_item(data, start, stop, depth + 1)
        items.append(item)
    return items, stop


def _header(data: bytes, pos: int, end: int) -> tuple[bool, int, int]:
    """Parse the header at ``pos``: (is_list, payload start, payload end), within ``end``."""
    first = data[pos]
    if first < 0x80:
        return False, pos, pos + 1
    if first < 0xB8:
        start = pos + 1
        stop = start + first - 0x80
        if stop > end:
            raise RlpError("string runs past the end of its enclosing item")
        if stop == start + 1 and data[start] < 0x80:
            raise RlpError("single byte below 0x80 must be encoded as itself")
        return False, start, stop
    if first < 0xC0:
        start, stop = _long_length(data, pos, end, first - 0xB7)
        return False, start, stop
    if first < 0xF8:
        start = pos + 1
        stop = start + first - 0xC0
        if stop > end:
            raise RlpError("list runs past the end of its enclosing item")
        return True, start, stop
    start, stop = _long_length(data, pos, end, first - 0xF7)
    return True, start, stop


def _long_length(data: bytes, pos: int, end: int, size_of_length: int) -> tuple[int, int]:
    start = pos + 1 + size_of_length
    if start > end:
        raise RlpError("length field runs past the end of its enclosing item")
    if data[pos + 1] == 0:
        raise RlpError("length with a leading zero byte")
    length = int.from_bytes(data[pos + 1 : start], "big")
    if length < 56:
        raise RlpError("long-form header for a payload shorter than 56 bytes")
    stop = start + length
    if stop > end:
        raise RlpError("payload runs past the end of its enclosing item")
    return start, stop


def decode_uint(value: RlpItem, max_bytes: int = 32) -> int:
    """Decode a canonical unsigned integer of at most ``max_bytes`` bytes."""
    if not isinstance(value, bytes):
        raise RlpError("expected an integer, found a list")
    if len(value) > max_bytes:
        raise RlpError(f"integer longer than {max_bytes} bytes")
    if value[:1] == b"\x00":
        raise RlpError("integer with a leading zero byte")
    return int.from_bytes(value, "big")


def encode_uint(value: int) -> bytes:
    """The minimal big-endian bytes of a non-negative integer (zero is empty)."""
    if value < 0:
        raise ValueError(f"RLP integers are unsigned, got {value}")
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def encode(item: Encodable) -> bytes:
    """Encode bytes, non-negative ints and (nested) sequences of them."""
    if isinstance(item, bytes | bytearray | memoryview):
        return encode_bytes(bytes(item))
    if isinstance(item, int):
        return encode_bytes(encode_uint(item))
    if isinstance(item, str):
        raise TypeError("RLP encodes bytes, not str: encode the text first")
    payload = b"".join(encode(element) for element in item)
    return encode_list_header(len(payload)) + payload


def encode_bytes(value: bytes) -> bytes:
    """Encode one byte string."""
    if len(value) == 1 and value[0] < 0x80:
        return value
    return _length_prefix(len(value), 0x80) + value


def encode_list_header(payload_length: int) -> bytes:
    """The header of a list whose encoded elements take ``payload_length`` bytes."""
    return _length_prefix(payload_length, 0xC0)


def _length_prefix(length: int, offset: int) -> bytes:
    if length < 56:
        return bytes((offset + length,))
    size = encode_uint(length)
    return bytes((offset + 55 + len(size),)) + size
