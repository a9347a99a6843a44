"""Which lane sequences a sender's transactions.

Every sender belongs to exactly one lane, so each transaction is batched into cars once and
a sender's nonces stay in order inside one lane. A node that receives a transaction for
another lane forwards it to that lane's owner instead of admitting it.

The lane is ``int.from_bytes(blake2b(sender, digest_size=32, person=b"lanenet/lane"),
"big") % n``: a keyed-by-domain hash, so addresses (which are themselves hash outputs,
but may be chosen by the sender) spread evenly, and every node computes the same lane with
nothing but the standard library.
"""

from __future__ import annotations

import hashlib

ADDRESS_SIZE = 20
_PERSON = b"lanenet/lane"


def lane_of(sender: bytes, n: int) -> int:
    """The lane (0 to n-1) that owns transactions from the 20-byte address ``sender``."""
    if n < 1:
        raise ValueError(f"need at least one lane, got {n}")
    if len(sender) != ADDRESS_SIZE:
        raise ValueError(f"sender of {len(sender)} bytes, not {ADDRESS_SIZE}")
    digest = hashlib.blake2b(sender, digest_size=32, person=_PERSON).digest()
    return int.from_bytes(digest, "big") % n
