"""The state commitment: an LtHash, a homomorphic lattice hash of a set of (key, value) pairs.

Each pair hashes (keyed BLAKE3, extended output) to 2048 bytes read as 1024 little-endian
uint16 lanes; the hash of a set is the lane-wise sum mod 2^16 of its pairs' hashes. Adding a
pair adds its lanes, removing it subtracts them, so a write of key k from v to v' is
``- H(k, v) + H(k, v')``: O(1) per write, independent of order, no tree to rehash (Sei's
FlatKV commitment, reference/sei.md §1.3). The 32-byte digest is BLAKE3 of the 2048 lane
bytes; the empty set is all zeros.

Pure: bytes in, values out. numpy does the lane arithmetic: summing a block's hashes as one
(n, 1024) uint16 array is ~15x faster than Python integers (bench/storage.py); uint16
arithmetic wraps, which is exactly mod 2^16.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import blake3
import numpy as np
import numpy.typing as npt

LANES: Final = 1024
SIZE: Final = 2 * LANES
DIGEST_SIZE: Final = 32

_KEY: Final = blake3.blake3(b"lanenet/state-lthash/v1").digest()
"""BLAKE3 key of the pair hash: no other lanenet hash of the same bytes collides with it."""
_KEYED: Final = blake3.blake3(key=_KEY)
# copying a keyed hasher costs half of keying a new one (the key schedule is done once)

Lanes = npt.NDArray[np.uint16]
Pair = tuple[bytes, bytes]


def hash_pair(key: bytes, value: bytes) -> bytes:
    """The 2048-byte lattice element of one (key, value) pair.

    The key's length comes first, so ``(b"ab", b"c")`` and ``(b"a", b"bc")`` differ.
    """
    hasher = _KEYED.copy()
    hasher.update(len(key).to_bytes(4, "big") + key + value)
    return hasher.digest(SIZE)


_CHUNK: Final = 4096
"""Pairs hashed per numpy sum: bounds memory (8 MiB) when hashing a whole state."""


def _sum(pairs: Iterable[Pair]) -> Lanes:
    """The lane-wise sum mod 2^16 of the pairs' lattice elements."""
    total: Lanes = np.zeros(LANES, dtype=np.uint16)
    chunk: list[bytes] = []
    for key, value in pairs:
        chunk.append(hash_pair(key, value))
        if len(chunk) == _CHUNK:
            total += _rows_sum(chunk)
            chunk = []
    if chunk:
        total += _rows_sum(chunk)
    return total


def _rows_sum(elements: list[bytes]) -> Lanes:
    rows = np.frombuffer(b"".join(elements), dtype="<u2").reshape(len(elements), LANES)
    total: Lanes = rows.sum(axis=0, dtype=np.uint16)
    return total


class LtHash:
    """An immutable LtHash value; ``update`` returns a new one."""

    __slots__ = ("_lanes",)

    def __init__(self, lanes: Lanes | None = None) -> None:
        if lanes is None:
            lanes = np.zeros(LANES, dtype=np.uint16)
        elif lanes.shape != (LANES,) or lanes.dtype != np.uint16:
            raise ValueError(f"LtHash needs {LANES} uint16 lanes, got {lanes.shape} {lanes.dtype}")
        lanes.setflags(write=False)
        self._lanes = lanes

    @classmethod
    def of(cls, pairs: Iterable[Pair]) -> LtHash:
        """The LtHash of a whole set of pairs (from scratch)."""
        return cls().update(added=pairs)

    @classmethod
    def from_bytes(cls, data: bytes) -> LtHash:
        """The inverse of ``to_bytes``; ``ValueError`` for anything but 2048 bytes."""
        if len(data) != SIZE:
            raise ValueError(f"LtHash: {len(data)} bytes, expected {SIZE}")
        return cls(np.frombuffer(data, dtype="<u2").astype(np.uint16))

    def update(self, added: Iterable[Pair] = (), removed: Iterable[Pair] = ()) -> LtHash:
        """This hash with ``added`` pairs added and ``removed`` pairs subtracted."""
        return LtHash(self._lanes + _sum(added) - _sum(removed))

    def combine(self, other: LtHash, *, subtract: bool = False) -> LtHash:
        """The hash of the union (or, with ``subtract``, the difference) of two disjoint sets."""
        lanes = self._lanes - other._lanes if subtract else self._lanes + other._lanes
        return LtHash(lanes)

    def to_bytes(self) -> bytes:
        """The 2048 lane bytes (little-endian uint16 lanes)."""
        return self._lanes.astype("<u2").tobytes()

    def digest(self) -> bytes:
        """The 32-byte commitment: BLAKE3 of ``to_bytes()``."""
        return blake3.blake3(self.to_bytes()).digest()

    def lanes(self) -> list[int]:
        return [int(x) for x in self._lanes]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LtHash):
            return NotImplemented
        return bool(np.array_equal(self._lanes, other._lanes))

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    def __repr__(self) -> str:
        return f"LtHash({self.digest().hex()[:16]}…)"


EMPTY: Final = LtHash()
