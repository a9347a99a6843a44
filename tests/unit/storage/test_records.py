"""Chain records (block headers, QCs, receipts, accounts, tx locations) round-trip exactly."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.execution.executor import Receipt
from node.execution.state import Account
from node.storage import records
from node.storage.records import BlockHeader, CarRef
from node.types.messages import QC, Block
from tests.strategies import blocks, digests, qcs, u64s

u32s = st.integers(0, 2**32 - 1)
u256s = st.integers(0, 2**256 - 1)
addresses = st.binary(min_size=20, max_size=20)

receipts = st.builds(
    Receipt,
    tx_hash=digests,
    height=u64s,
    index=u32s,
    status=st.integers(0, 1),
    gas_used=u64s,
    cumulative_gas_used=u64s,
    effective_gas_price=u256s,
    sender=addresses,
    to=st.none() | addresses,
)
headers = st.builds(
    BlockHeader,
    u64s,
    u64s,
    digests,
    digests,
    st.lists(st.builds(CarRef, u32s, u64s, digests), max_size=6).map(tuple),
    digests,
)


@given(headers)
def test_block_header_round_trip(header: BlockHeader) -> None:
    """A block header with its car references decodes to an equal value."""
    assert records.decode_block_header(records.encode_block_header(header)) == header


@settings(max_examples=30)  # drawing whole blocks is slow; the mapping is simple
@given(blocks)
def test_header_of_a_block_refers_to_its_cars(block: Block) -> None:
    """BlockHeader.of keeps the block's fields, digest and one ref per car, in order."""
    header = BlockHeader.of(block)
    assert header.digest == block.digest
    assert [(r.lane, r.pos, r.digest) for r in header.cars] == [
        (c.lane, c.pos, c.digest) for c in block.cars
    ]


@given(qcs())
def test_qc_round_trip(qc: QC) -> None:
    """A QC with its signer list and signatures decodes to an equal value."""
    assert records.decode_qc(records.encode_qc(qc)) == qc


@given(receipts)
def test_receipt_round_trip(receipt: Receipt) -> None:
    """A receipt, with or without a recipient, decodes to an equal value."""
    assert records.decode_receipt(records.encode_receipt(receipt)) == receipt


@given(u64s, u256s)
def test_account_round_trip(nonce: int, balance: int) -> None:
    """Nonces up to 2**64-1 and balances up to 2**256-1 survive."""
    account = Account(nonce, balance)
    assert records.decode_account(records.encode_account(account)) == account


@given(u64s, u32s)
def test_tx_location_round_trip(height: int, index: int) -> None:
    """A (height, index) location decodes to the same pair."""
    assert records.decode_tx_location(records.encode_tx_location(height, index)) == (height, index)


def test_balance_beyond_256_bits_is_refused() -> None:
    """An account balance that does not fit 32 bytes raises ValueError."""
    with pytest.raises(ValueError, match="does not fit"):
        records.encode_account(Account(0, 2**256))


@pytest.mark.parametrize(
    ("decode", "data"),
    [
        (records.decode_account, b"\x00" * 39),
        (records.decode_account, b"\x00" * 41),
        (records.decode_tx_location, b"\x00" * 11),
        (records.decode_block_header, b"\x00" * 100),
        (records.decode_block_header, b"\x00" * 104 + b"\xff\xff\xff\xff"),
        (records.decode_receipt, b"\x02" + b"\x00" * 120),
        (records.decode_qc, b"\x09" + b"\x00" * 60),
    ],
)
def test_malformed_records_raise_value_error(decode: object, data: bytes) -> None:
    """Short, long or nonsensical bytes raise ValueError rather than decoding to garbage."""
    with pytest.raises(ValueError):  # noqa: PT011 - each decoder words its reason differently
        decode(data)  # type: ignore[operator]
