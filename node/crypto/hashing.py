"""Domain-separated 32-byte hashes (BLAKE2b personalised with a tag)."""

from __future__ import annotations

import hashlib

DIGEST_SIZE = 32
ZERO_DIGEST = b"\x00" * DIGEST_SIZE


def hash_tagged(tag: bytes, data: bytes) -> bytes:
    """Hash ``data`` in the domain ``tag`` (at most 16 bytes) so no two kinds of value collide."""
    return hashlib.blake2b(data, digest_size=DIGEST_SIZE, person=tag).digest()
