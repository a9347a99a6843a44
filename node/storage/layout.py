"""Fixed-layout byte packing for stored values: big-endian integers, fixed and length-prefixed
byte strings, read back by a ``Reader`` that rejects short or trailing bytes.

Values on disk were written by this node, so a decoding failure means corruption: ``Reader``
raises ``ValueError`` and the stores turn it into ``FatalError``.
"""

from __future__ import annotations

import struct
from typing import Final

U8_MAX: Final = 2**8 - 1
U32_MAX: Final = 2**32 - 1
U64_MAX: Final = 2**64 - 1
U256_MAX: Final = 2**256 - 1

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


def pack_uint(value: int, size: int) -> bytes:
    """``value`` as ``size`` big-endian bytes; ``ValueError`` if it does not fit."""
    if not 0 <= value < 1 << (8 * size):
        raise ValueError(f"{value} does not fit in {size} unsigned bytes")
    return value.to_bytes(size, "big")


def pack_u8(value: int) -> bytes:
    return pack_uint(value, 1)


def pack_u32(value: int) -> bytes:
    return pack_uint(value, 4)


def pack_u64(value: int) -> bytes:
    return pack_uint(value, 8)


def pack_u256(value: int) -> bytes:
    return pack_uint(value, 32)


def pack_fixed(value: bytes, size: int, what: str) -> bytes:
    """``value`` unchanged, after checking it is exactly ``size`` bytes long."""
    if len(value) != size:
        raise ValueError(f"{what}: {len(value)} bytes, expected {size}")
    return value


def pack_var(value: bytes) -> bytes:
    """A u32 length, then the bytes."""
    return pack_u32(len(value)) + value


class Reader:
    """Reads fields in order from ``data``; call ``finish`` to reject trailing bytes."""

    __slots__ = ("_data", "_pos", "_what")

    def __init__(self, data: bytes, what: str) -> None:
        self._data = data
        self._pos = 0
        self._what = what

    def take(self, size: int) -> bytes:
        end = self._pos + size
        if end > len(self._data):
            raise ValueError(
                f"{self._what}: truncated, needs {end} bytes but has {len(self._data)}"
            )
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def u8(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        value: int = _U32.unpack(self.take(4))[0]
        return value

    def u64(self) -> int:
        value: int = _U64.unpack(self.take(8))[0]
        return value

    def u256(self) -> int:
        return self.uint(32)

    def var(self) -> bytes:
        return self.take(self.u32())

    def count(self, item_size: int) -> int:
        """A u32 item count, checked against the bytes left so garbage cannot allocate much."""
        n = self.u32()
        if n * item_size > len(self._data) - self._pos:
            raise ValueError(f"{self._what}: count {n} exceeds the remaining bytes")
        return n

    def finish(self) -> None:
        if self._pos != len(self._data):
            raise ValueError(f"{self._what}: {len(self._data) - self._pos} trailing bytes")
