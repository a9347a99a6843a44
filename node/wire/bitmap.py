"""Signer sets as bitmaps: bit i (byte i // 8, least significant bit first) is validator i.

The bitmap is canonical: it never ends in a zero byte, so one signer set has one encoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from node.types.errors import MalformedMessage

MAX_VALIDATORS: Final = 1024
"""Bound on validator indices (lanes, voters, leaders, signers): a bitmap of 128 bytes."""


def encode_signers(signers: Sequence[int]) -> bytes:
    """Signer indices (strictly ascending) as a bitmap: bit i of byte i // 8, LSB first."""
    if not signers:
        return b""
    bitmap = bytearray(signers[-1] // 8 + 1)
    previous = -1
    for signer in signers:
        if signer <= previous or signer >= MAX_VALIDATORS:
            raise ValueError(f"signers must ascend strictly below {MAX_VALIDATORS}: {signers}")
        bitmap[signer >> 3] |= 1 << (signer & 7)
        previous = signer
    return bytes(bitmap)


def decode_signers(bitmap: bytes, where: str) -> tuple[int, ...]:
    """The ascending signer indices of a canonical, non-empty bitmap (see encode_signers)."""
    if not bitmap:
        raise MalformedMessage(f"{where}: no signers")
    if len(bitmap) > MAX_VALIDATORS // 8:
        raise MalformedMessage(f"{where}: signer bitmap of {len(bitmap)} bytes is too long")
    if bitmap[-1] == 0:
        raise MalformedMessage(f"{where}: signer bitmap has a trailing zero byte")
    return tuple(
        index * 8 + bit
        for index, byte in enumerate(bitmap)
        if byte
        for bit in range(8)
        if byte >> bit & 1
    )
