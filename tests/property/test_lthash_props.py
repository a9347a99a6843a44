"""The LtHash is a function of the set of pairs only: any sequence of writes ending in a
state hashes like that state from scratch, and agrees with a plain reference for small
states."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from node.storage.lthash import EMPTY, LtHash
from tests.unit.storage.test_lthash import reference_lthash

keys = st.binary(min_size=1, max_size=4).map(lambda b: bytes(x % 5 for x in b))
values = st.binary(min_size=1, max_size=40)
# a write: set ``key`` to ``value`` or (None) delete it
writes = st.lists(st.tuples(keys, st.none() | values), max_size=40)


@settings(max_examples=80, deadline=None)
@given(writes=writes, batch=st.integers(1, 8))
def test_any_write_sequence_hashes_like_its_final_state(
    writes: list[tuple[bytes, bytes | None]], batch: int
) -> None:
    """Applying writes in batches (subtract old pairs, add new) equals hashing the final
    state from scratch, whatever the batching."""
    state: dict[bytes, bytes] = {}
    lthash = EMPTY
    for start in range(0, len(writes), batch):
        added, removed = [], []
        for key, value in dict(writes[start : start + batch]).items():
            if key in state:
                removed.append((key, state.pop(key)))
            if value is not None:
                added.append((key, value))
                state[key] = value
        lthash = lthash.update(added, removed)
    assert lthash == LtHash.of(state.items())
    assert lthash == LtHash.of(reversed(list(state.items())))


@settings(max_examples=30, deadline=None)
@given(state=st.dictionaries(keys, values, max_size=6))
def test_the_fast_hash_agrees_with_the_reference(state: dict[bytes, bytes]) -> None:
    """numpy lanes and the plain per-lane loop give the same digest."""
    assert LtHash.of(state.items()).digest() == reference_lthash(list(state.items()))
