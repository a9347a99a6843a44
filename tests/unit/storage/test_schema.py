"""Storage keys: one-byte table prefix, fixed-width big-endian fields that sort numerically."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.storage import schema
from node.storage.schema import PERSIST_KINDS, Meta, Table

U32 = st.integers(0, 2**32 - 1)
U64 = st.integers(0, 2**64 - 1)
DIGEST = st.binary(min_size=32, max_size=32)


@given(st.lists(U64, min_size=2, max_size=20, unique=True))
def test_block_keys_sort_in_height_order(heights: list[int]) -> None:
    """Sorting block keys as bytes sorts them by height (no decimal text)."""
    keys = sorted(schema.block_key(h) for h in heights)
    assert [schema.decode_block_key(k) for k in keys] == sorted(heights)


def test_height_keys_are_not_decimal_text() -> None:
    """Height 10 sorts after height 9, which decimal text would get wrong."""
    assert schema.block_key(9) < schema.block_key(10) < schema.block_key(256)
    assert schema.commit_qc_key(9) < schema.commit_qc_key(10)
    assert schema.receipt_key(9, 0) < schema.receipt_key(10, 0)


@given(st.lists(st.tuples(U32, U64, DIGEST), min_size=2, max_size=20, unique=True))
def test_car_keys_sort_by_lane_then_pos(refs: list[tuple[int, int, bytes]]) -> None:
    """Car keys order by (lane, pos, digest) and decode back to their fields."""
    keys = sorted(schema.car_key(*r) for r in refs)
    assert [schema.decode_car_key(k) for k in keys] == sorted(refs)


@given(st.lists(st.tuples(U64, U32), min_size=2, max_size=20, unique=True))
def test_receipt_keys_sort_by_height_then_index(places: list[tuple[int, int]]) -> None:
    """Receipt keys order by (height, index) and decode back to their fields."""
    keys = sorted(schema.receipt_key(*p) for p in places)
    assert [schema.decode_receipt_key(k) for k in keys] == sorted(places)


@given(U64, U32)
def test_receipt_height_range_holds_exactly_that_height(height: int, index: int) -> None:
    """A receipt key lies in the range of its own height and in no neighbour's."""
    key = schema.receipt_key(height, index)
    start, stop = schema.receipt_height_range(height)
    assert start <= key < stop
    if height > 0:
        assert key >= schema.receipt_height_range(height - 1)[1]
    if height < 2**64 - 1:
        assert key < schema.receipt_height_range(height + 1)[0]


@given(U32, U64, U64, DIGEST)
def test_car_pos_range_holds_positions_first_to_last(
    lane: int, a: int, b: int, digest: bytes
) -> None:
    """car_pos_range(lane, first, last) holds every digest at first..last, nothing beyond."""
    first, last = min(a, b), max(a, b)
    start, stop = schema.car_pos_range(lane, first, last)
    assert start <= schema.car_key(lane, first, digest) < stop
    assert start <= schema.car_key(lane, last, digest) < stop
    if last < 2**64 - 1:
        assert schema.car_key(lane, last + 1, b"\x00" * 32) >= stop
    if first > 0:
        assert schema.car_key(lane, first - 1, b"\xff" * 32) < start


def test_every_key_starts_with_its_table_prefix() -> None:
    """Each encoder writes its table's byte first, and table_range covers it."""
    d = b"\x07" * 32
    cases = {
        Table.BLOCK: schema.block_key(5),
        Table.BLOCK_HASH: schema.block_hash_key(d),
        Table.CAR: schema.car_key(1, 2, d),
        Table.COMMIT_QC: schema.commit_qc_key(3),
        Table.RECEIPT: schema.receipt_key(4, 5),
        Table.TX_INDEX: schema.tx_index_key(d),
        Table.ACCOUNT: schema.account_key(b"\x01" * 20),
        Table.META: schema.meta_key(Meta.COMMITTED_HEIGHT),
        Table.CONSENSUS: schema.persist_key(("commit", 9)),
    }
    for table, key in cases.items():
        start, stop = schema.table_range(table)
        assert key[0] == table
        assert start <= key < stop


def test_table_prefixes_are_unique_single_bytes() -> None:
    """No two tables share a prefix, and none is 0xff (its range would have no stop)."""
    values = [int(t) for t in Table]
    assert len(set(values)) == len(values)
    assert all(0 < v < 0xFF for v in values)


@pytest.mark.parametrize("kind", list(PERSIST_KINDS))
def test_persist_keys_round_trip(kind: str) -> None:
    """Every persist key kind the protocol uses encodes and decodes to an equal tuple."""
    _code, arity = PERSIST_KINDS[kind]
    key: schema.PersistKey = (kind, *[2**64 - 1 - i * 7 for i in range(arity)])
    raw = schema.persist_key(key)
    assert schema.decode_persist_key(raw) == key
    assert raw[0] == Table.CONSENSUS


@given(st.lists(U64, min_size=2, max_size=10, unique=True))
def test_persist_keys_of_one_kind_sort_by_slot(slots: list[int]) -> None:
    """Slot-keyed consensus records sort in slot order."""
    keys = sorted(schema.persist_key(("prepare_vote", s)) for s in slots)
    assert [schema.decode_persist_key(k)[1] for k in keys] == sorted(slots)


@pytest.mark.parametrize(
    "key",
    [
        (),
        ("nope", 1),
        ("car", 1),
        ("car", 1, 2, 3),
        ("commit", "1"),
        ("commit", True),
        ("commit", -1),
        ("commit", 2**64),
        (1,),
    ],
)
def test_bad_persist_keys_are_refused(key: tuple[str | int, ...]) -> None:
    """An unknown kind, a wrong number or type of fields, or a field beyond u64 raises
    ValueError."""
    with pytest.raises(ValueError, match="persist key"):
        schema.persist_key(key)


@pytest.mark.parametrize(
    "make",
    [
        lambda: schema.block_key(-1),
        lambda: schema.block_key(2**64),
        lambda: schema.car_key(2**32, 0, b"\x00" * 32),
        lambda: schema.car_key(0, 0, b"\x00" * 31),
        lambda: schema.account_key(b"\x00" * 32),
        lambda: schema.tx_index_key(b""),
    ],
)
def test_fields_that_do_not_fit_are_refused(make: object) -> None:
    """A negative or too-large number, or a hash of the wrong size, raises ValueError."""
    with pytest.raises(ValueError, match=r"fit|bytes"):
        make()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("decode", "raw"),
    [
        (schema.decode_block_key, b""),
        (schema.decode_block_key, b"\x01" + b"\x00" * 7),
        (schema.decode_block_key, b"\x02" + b"\x00" * 8),
        (schema.decode_car_key, b"\x03" + b"\x00" * 43),
        (schema.decode_persist_key, b"\x09\x99"),
        (schema.decode_persist_key, b"\x09\x17\x00"),
        (schema.decode_persist_key, b"\x08\x17" + b"\x00" * 8),
    ],
)
def test_malformed_keys_do_not_decode(decode: Callable[[bytes], object], raw: bytes) -> None:
    """Keys of the wrong table or length raise ValueError instead of decoding to garbage."""
    with pytest.raises(ValueError, match="key"):
        decode(raw)
