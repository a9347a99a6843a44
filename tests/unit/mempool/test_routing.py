"""lane_of routes every sender to one lane, the same on every node, spread evenly."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.execution.keccak import keccak256
from node.mempool.routing import lane_of


@given(st.binary(min_size=20, max_size=20), st.integers(1, 200))
def test_lane_is_in_range_and_stable(sender: bytes, n: int) -> None:
    """The lane lies in [0, n) and does not change between calls."""
    lane = lane_of(sender, n)
    assert 0 <= lane < n
    assert lane_of(sender, n) == lane


def test_known_values() -> None:
    """The routing function is pinned: changing it would split a testnet's nodes."""
    assert [lane_of(bytes([i]) * 20, 4) for i in range(8)] == [3, 3, 0, 2, 2, 3, 3, 2]
    assert lane_of(bytes(range(20)), 7) == 4
    assert lane_of(b"\x00" * 20, 1) == 0


def test_senders_spread_evenly() -> None:
    """4,000 addresses over 4 lanes land within 10% of an even share each."""
    senders = [keccak256(i.to_bytes(4, "big"))[12:] for i in range(4000)]
    counts = Counter(lane_of(sender, 4) for sender in senders)
    assert set(counts) == {0, 1, 2, 3}
    assert all(900 <= count <= 1100 for count in counts.values())


@pytest.mark.parametrize(
    ("sender", "n", "message"),
    [(b"\x01" * 20, 0, "at least one lane"), (b"\x01" * 19, 4, "19 bytes")],
)
def test_bad_arguments_rejected(sender: bytes, n: int, message: str) -> None:
    """No lanes or a malformed address is a clear error."""
    with pytest.raises(ValueError, match=message):
        lane_of(sender, n)
