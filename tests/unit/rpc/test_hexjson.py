"""Hex quantities and data encode per the Ethereum JSON-RPC spec and parse strictly."""

from __future__ import annotations

import pytest

from node.rpc.hexjson import (
    BlockId,
    RpcError,
    encode_data,
    encode_quantity,
    parse_block_id,
    parse_count,
    parse_data,
    parse_quantity,
)


def test_quantity_encoding_has_no_leading_zeros() -> None:
    """0 is 0x0, 1024 is 0x400; negatives cannot be encoded."""
    assert encode_quantity(0) == "0x0"
    assert encode_quantity(1024) == "0x400"
    with pytest.raises(ValueError, match="unsigned"):
        encode_quantity(-1)


def test_data_encoding_keeps_every_byte() -> None:
    """Data is two hex digits per byte, empty data is 0x."""
    assert encode_data(b"") == "0x"
    assert encode_data(b"\x00\x0f") == "0x000f"


def test_quantities_round_trip() -> None:
    """Every encoded quantity parses back to itself."""
    for value in (0, 1, 255, 2**64, 2**256 - 1):
        assert parse_quantity(encode_quantity(value), 0, "n") == value


def test_counts_accept_integers_and_hex() -> None:
    """Counts (feeHistory's blockCount) accept JSON integers, decimal strings and hex."""
    assert parse_count(4, 0, "n") == 4
    assert parse_count("4", 0, "n") == 4
    assert parse_count("0x4", 0, "n") == 4
    with pytest.raises(RpcError, match="negative"):
        parse_count(-1, 0, "n")
    with pytest.raises(RpcError):
        parse_count(True, 0, "n")


def test_block_ids() -> None:
    """Tags, numbers and EIP-1898 objects all name a block."""
    assert parse_block_id("safe", 0) == BlockId(tag="safe")
    assert parse_block_id("0x10", 0) == BlockId(number=16)
    assert parse_block_id({"blockNumber": "latest"}, 0) == BlockId(tag="latest")
    digest = "0x" + "ab" * 32
    expected = BlockId(hash=bytes.fromhex("ab" * 32))
    assert parse_block_id({"blockHash": digest, "requireCanonical": True}, 0) == expected


def test_data_size_is_checked() -> None:
    """A sized field names the expected and actual byte counts."""
    with pytest.raises(RpcError, match="expected 20 bytes of hex, got 2 bytes"):
        parse_data("0x1234", 1, "address", size=20)
