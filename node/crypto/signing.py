"""Signer and Verifier ports: ed25519 (PyNaCl) for real nodes, a keyed-hash twin for the simulator.

The twin is not secure against anyone holding the key table; it exists so that thousands of
simulated runs stay fast while still catching every forged or misattributed signature.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

import nacl.exceptions
import nacl.signing


class Signer(Protocol):
    def sign(self, message: bytes) -> bytes: ...


class Verifier(Protocol):
    def verify(self, signer: int, message: bytes, signature: bytes) -> bool: ...


class Ed25519Signer:
    """Signs with a 32-byte ed25519 seed."""

    def __init__(self, seed: bytes) -> None:
        self._key = nacl.signing.SigningKey(seed)

    @property
    def public_key(self) -> bytes:
        return bytes(self._key.verify_key)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message).signature


class Ed25519Verifier:
    """Verifies signatures of committee members by index."""

    def __init__(self, public_keys: Sequence[bytes]) -> None:
        self._keys = [nacl.signing.VerifyKey(k) for k in public_keys]

    def verify(self, signer: int, message: bytes, signature: bytes) -> bool:
        if not 0 <= signer < len(self._keys) or len(signature) != 64:
            return False
        try:
            self._keys[signer].verify(message, signature)
        except nacl.exceptions.BadSignatureError:
            return False
        return True


class KeyedHashSigner:
    """Simulator twin: a 32-byte BLAKE2b MAC under the validator's secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def sign(self, message: bytes) -> bytes:
        return hashlib.blake2b(message, digest_size=32, key=self._secret).digest()


class KeyedHashVerifier:
    def __init__(self, secrets: Sequence[bytes]) -> None:
        self._secrets = list(secrets)

    def verify(self, signer: int, message: bytes, signature: bytes) -> bool:
        if not 0 <= signer < len(self._secrets):
            return False
        expected = hashlib.blake2b(message, digest_size=32, key=self._secrets[signer]).digest()
        return hmac.compare_digest(expected, signature)


class CachingVerifier:
    """Remembers the last ``capacity`` good signatures, so a vote seen in a QC and alone
    is checked once."""

    def __init__(self, inner: Verifier, capacity: int = 65536) -> None:
        self._inner = inner
        self._capacity = capacity
        self._good: OrderedDict[tuple[int, bytes, bytes], None] = OrderedDict()

    def verify(self, signer: int, message: bytes, signature: bytes) -> bool:
        key = (signer, message, signature)
        if key in self._good:
            self._good.move_to_end(key)
            return True
        if not self._inner.verify(signer, message, signature):
            return False
        self._good[key] = None
        if len(self._good) > self._capacity:
            self._good.popitem(last=False)
        return True
