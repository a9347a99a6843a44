"""Strict RLP: values round-trip, each has one accepted encoding, and bad bytes raise RlpError."""

from __future__ import annotations

import pytest
import rlp as pyrlp  # type: ignore[import-untyped]
from hypothesis import given
from hypothesis import strategies as st

from node.execution import rlp
from node.execution.rlp import MAX_DEPTH, RlpError, RlpItem
from node.types.errors import MalformedMessage

items: st.SearchStrategy[RlpItem] = st.recursive(
    st.binary(max_size=70) | st.binary(max_size=1),
    lambda children: st.lists(children, max_size=6),
    max_leaves=20,
)


@pytest.mark.parametrize(
    ("value", "encoding"),
    [
        (b"", "80"),
        (b"\x00", "00"),
        (b"\x7f", "7f"),
        (b"\x80", "8180"),
        (b"dog", "83646f67"),
        ([b"cat", b"dog"], "c88363617483646f67"),
        ([], "c0"),
        ([[], [[]], [[], [[]]]], "c7c0c1c0c3c0c1c0"),
        (b"a" * 56, "b838" + "61" * 56),
        (1024, "820400"),
        (0, "80"),
        (15, "0f"),
    ],
)
def test_known_encodings(value: rlp.Encodable, encoding: str) -> None:
    """Encodings from the Ethereum RLP specification's examples."""
    assert rlp.encode(value).hex() == encoding
    if not isinstance(value, int):
        assert rlp.decode(bytes.fromhex(encoding)) == value


@given(items)
def test_round_trip(item: RlpItem) -> None:
    """decode(encode(x)) == x, and our encoding equals pyrlp's."""
    encoded = rlp.encode(item)
    assert rlp.decode(encoded) == item
    assert encoded == pyrlp.encode(item)


@given(st.integers(0, 2**256 - 1))
def test_uint_round_trip(value: int) -> None:
    """Integers encode minimally and decode back."""
    encoded = rlp.encode_uint(value)
    assert rlp.decode_uint(encoded) == value
    assert encoded[:1] != b"\x00"


def non_canonical_variants(item: RlpItem) -> list[bytes]:
    """Other encodings of ``item`` that a lax decoder would accept."""
    encoded = rlp.encode(item)
    if isinstance(item, bytes):
        payload, long = item, 0xB7
    else:
        payload = b"".join(rlp.encode(child) for child in item)
        long = 0xF7
    size = rlp.encode_uint(len(payload))
    # the length with a leading zero byte, in the long form
    variants = [bytes((long + len(size) + 1,)) + b"\x00" + size + payload]
    if len(payload) < 56:
        variants.append(bytes((long + 1, len(payload))) + payload)
    if isinstance(item, bytes) and len(item) == 1 and item[0] < 0x80:
        variants.append(b"\x81" + item)
    return [v for v in variants if v != encoded]


@given(items)
def test_non_canonical_forms_rejected(item: RlpItem) -> None:
    """Every alternative encoding of a value is rejected, at top level and nested in a list."""
    for variant in non_canonical_variants(item):
        with pytest.raises(RlpError):
            rlp.decode(variant)
        nested = rlp.encode_list_header(len(variant) + 1) + variant + b"\x80"
        with pytest.raises(RlpError):
            rlp.decode(nested)


@given(st.binary(min_size=1, max_size=40))
def test_agrees_with_pyrlp_on_arbitrary_bytes(data: bytes) -> None:
    """On any input, we accept exactly what strict pyrlp accepts, with the same value."""
    try:
        expected = pyrlp.decode(data, strict=True)
    except pyrlp.exceptions.DecodingError:
        with pytest.raises(RlpError):
            rlp.decode(data)
    else:
        assert rlp.decode(data) == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\x83do", "past the end"),
        (b"\xb8", "past the end"),
        (b"\xb9\x01", "past the end"),
        (b"\xbf" + b"\xff" * 8, "past the end"),  # a 2**64 - 1 byte string in 9 bytes
        (b"\xff" + b"\xff" * 8, "past the end"),
        (b"\xc2\x83do", "past the end"),
        (b"\x80\x80", "trailing"),
        (b"\xc0\x00", "trailing"),
        (b"\x81\x00", "single byte"),
        (b"\xb8\x05hello", "shorter than 56"),
    ],
)
def test_malformed_input_rejected(data: bytes, message: str) -> None:
    """Truncated, oversized, trailing and non-canonical inputs raise a MalformedMessage."""
    with pytest.raises(MalformedMessage, match=message):
        rlp.decode(data)


def test_deep_nesting_rejected_without_recursion_error() -> None:
    """Lists nested past MAX_DEPTH are refused cleanly, however deep the input goes."""
    shallow: RlpItem = []
    for _ in range(MAX_DEPTH - 1):
        shallow = [shallow]
    assert rlp.decode(rlp.encode(shallow)) == shallow
    for depth in (MAX_DEPTH + 1, 5000):
        data = b"\xc0"
        for _ in range(depth - 1):
            data = rlp.encode_list_header(len(data)) + data
        with pytest.raises(RlpError, match="nested"):
            rlp.decode(data)


def test_decode_list_offsets_slice_the_fields() -> None:
    """decode_list's offsets delimit each element's own encoding inside the input."""
    value: list[RlpItem] = [b"dog", [b"cat"], b"", b"a" * 60]
    data = rlp.encode(value)
    decoded, offsets = rlp.decode_list(data)
    assert decoded == value
    assert [data[offsets[i] : offsets[i + 1]] for i in range(4)] == [rlp.encode(v) for v in value]
    with pytest.raises(RlpError, match="expected a list"):
        rlp.decode_list(b"\x83dog")


@pytest.mark.parametrize(
    ("value", "max_bytes", "message"),
    [(b"\x00", 32, "leading zero"), (b"\x00\x01", 32, "leading zero"), (b"\x01" * 9, 8, "longer")],
)
def test_non_canonical_integers_rejected(value: bytes, max_bytes: int, message: str) -> None:
    """Integers with leading zeros or beyond their width are refused."""
    with pytest.raises(RlpError, match=message):
        rlp.decode_uint(value, max_bytes)
    with pytest.raises(RlpError, match="list"):
        rlp.decode_uint([], max_bytes)


def test_encode_refuses_what_rlp_cannot_carry() -> None:
    """Negative integers and text are programming errors, not silently encoded."""
    with pytest.raises(ValueError, match="unsigned"):
        rlp.encode(-1)
    with pytest.raises(TypeError, match="str"):
        rlp.encode("dog")
