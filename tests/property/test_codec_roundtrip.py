"""Every wire value survives encode → decode unchanged, and its encoding is canonical."""

from __future__ import annotations

import typing

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.types.messages import Block, Message
from node.wire.bitmap import MAX_VALIDATORS, decode_signers, encode_signers
from node.wire.codec import decode_block, decode_message, encode_block, encode_message
from tests.strategies import MESSAGE_STRATEGIES, blocks, messages


def test_every_message_type_has_a_strategy() -> None:
    """The strategies (and so these round trips) cover every member of the Message union."""
    assert set(MESSAGE_STRATEGIES) == set(typing.get_args(Message))


@pytest.mark.parametrize("kind", list(MESSAGE_STRATEGIES), ids=lambda k: k.__name__)
def test_message_round_trip(kind: type) -> None:
    """decode_message(encode_message(m)) == m for every message type."""

    @given(MESSAGE_STRATEGIES[kind])
    def check(message: Message) -> None:
        decoded = decode_message(encode_message(message))
        assert type(decoded) is kind
        assert decoded == message

    check()


@given(messages)
def test_message_encoding_is_canonical(message: Message) -> None:
    """Re-encoding a decoded message gives back the same bytes."""
    data = encode_message(message)
    assert encode_message(decode_message(data)) == data


@given(blocks)
def test_block_round_trip(block: Block) -> None:
    """decode_block(encode_block(b)) == b, digest included."""
    decoded = decode_block(encode_block(block))
    assert decoded == block
    assert decoded.digest == block.digest


@given(st.sets(st.integers(0, MAX_VALIDATORS - 1), min_size=1))
def test_signer_bitmap_round_trip(signers: set[int]) -> None:
    """A set of signers survives the bitmap, ascending, in the fewest bytes."""
    ordered = tuple(sorted(signers))
    bitmap = encode_signers(ordered)
    assert decode_signers(bitmap, "test") == ordered
    assert len(bitmap) == ordered[-1] // 8 + 1
