"""Canonical byte encoding of values that are hashed or signed.

Fixed-width big-endian integers and length-prefixed byte strings, written in field order.
This is not the wire format (that is protobuf, in node/wire); it only has to be unique.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")


def encode_u64(value: int) -> bytes:
    return _U64.pack(value)


def encode_u32(value: int) -> bytes:
    return _U32.pack(value)


def encode_bytes(value: bytes) -> bytes:
    return _U32.pack(len(value)) + value


def encode_bytes_list(values: Iterable[bytes]) -> bytes:
    items = list(values)
    return _U32.pack(len(items)) + b"".join(_U32.pack(len(v)) + v for v in items)


def encode_ints(values: Iterable[int]) -> bytes:
    items = list(values)
    return _U32.pack(len(items)) + b"".join(_U64.pack(v) for v in items)
