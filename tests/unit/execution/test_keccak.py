"""keccak256 matches Ethereum's Keccak-256 on known vectors, whichever backend is loaded."""

from __future__ import annotations

from Crypto.Hash import keccak as pycryptodome_keccak
from hypothesis import given
from hypothesis import strategies as st

from node.execution.keccak import BACKEND, KECCAK_EMPTY, keccak256


def test_known_vectors() -> None:
    """The empty string and "abc" hash to the published Keccak-256 (not SHA3-256) digests."""
    assert keccak256(b"") == KECCAK_EMPTY
    assert keccak256(b"abc").hex() == (
        "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"
    )


def test_fast_backend_is_loaded() -> None:
    """With safe-pysha3 installed, the hot path does not fall back to pycryptodome."""
    assert BACKEND == "safe-pysha3"


@given(st.binary(max_size=300))
def test_backends_agree(data: bytes) -> None:
    """The loaded backend and pycryptodome give the same digest for any input."""
    assert keccak256(data) == pycryptodome_keccak.new(digest_bits=256, data=data).digest()
