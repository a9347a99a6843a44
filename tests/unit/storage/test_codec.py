"""Persisted protocol values survive encode → decode unchanged, for every persist key kind."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.protocol.ordering import OrderingCheckpoint
from node.storage.codec import decode_persist_value, encode_persist_value
from node.storage.schema import PERSIST_KINDS, PersistKey
from node.types.messages import MsgKind, Ticket, Vote
from tests.strategies import (
    cars,
    commits,
    confirms,
    digests,
    poas,
    prepares,
    proposals,
    tcs,
    timeouts,
    u64s,
    votes,
)

checkpoints = st.builds(
    OrderingCheckpoint,
    u64s,
    u64s,
    digests,
    st.lists(st.tuples(u64s, digests), max_size=8).map(tuple),
)

VALUES: dict[str, st.SearchStrategy[object]] = {
    "car": cars(),
    "lane_pos": st.tuples(u64s, digests),
    "poa": poas(),
    "prepare_vote": votes,
    "confirm_ack": votes,
    "timeout": timeouts,
    "high_prop": proposals,
    "high_qc": confirms,
    "tc": tcs,
    "proposal": prepares,
    "commit": commits,
    "ordering": checkpoints,
}


def key_of(kind: str) -> PersistKey:
    return (kind, *range(3, 3 + PERSIST_KINDS[kind][1]))


def test_every_persist_kind_has_a_value_strategy() -> None:
    """These round trips cover every key kind the schema knows."""
    assert set(VALUES) == set(PERSIST_KINDS)


@pytest.mark.parametrize("kind", list(VALUES))
# few examples: the wire codec's own property tests cover the messages in depth; nested
# certificates are slow to draw on a busy machine, which is not what this test is about
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_persist_value_round_trip(kind: str, data: st.DataObject) -> None:
    """decode(encode(v)) == v, with the same type, for each kind's values."""
    value = data.draw(VALUES[kind])
    key = key_of(kind)
    decoded = decode_persist_value(key, encode_persist_value(key, value))
    assert type(decoded) is type(value)
    assert decoded == value


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (("prepare_vote", 1), ("not", "a vote")),
        (("high_prop", 1), Ticket()),
        (("lane_pos", 1), (1, "digest")),
        (("lane_pos", 1), (1, b"short")),
        (("ordering",), None),
        (("unknown", 1), b""),
    ],
)
def test_values_of_the_wrong_type_are_refused(key: PersistKey, value: object) -> None:
    """A value that does not fit its key kind raises ValueError instead of being stored."""
    with pytest.raises(ValueError, match=r"expected|no value|bytes"):
        encode_persist_value(key, value)


def test_bytes_of_another_kind_do_not_decode() -> None:
    """A stored vote read back under a key kind that expects a car raises ValueError."""
    vote = Vote(MsgKind.PREPARE_VOTE, 1, 0, b"\x01" * 32, 0, b"\x02" * 64)
    data = encode_persist_value(("prepare_vote", 1), vote)
    with pytest.raises(ValueError, match="expected Car"):
        decode_persist_value(("car", 0, 1), data)


@pytest.mark.parametrize("kind", ["lane_pos", "ordering", "commit"])
def test_truncated_values_do_not_decode(kind: str) -> None:
    """A value cut short (a torn record) raises ValueError."""
    with pytest.raises(ValueError, match=r"truncated|not a valid|trailing|missing"):
        decode_persist_value(key_of(kind), b"\x00\x01\x02")
