"""Parallel sender recovery equals sequential recovery, and conflict-free transfers commute."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from hypothesis import given, settings
from hypothesis import strategies as st

from node.execution.executor import execute_block
from node.execution.state import genesis_state
from node.execution.tx import recover_batch
from tests.eth import BASE_FEE, CHAIN_ID, FEE_SINK, address, signed_transfer

# 200 distinct valid transactions, so that batches span several thread-pool chunks
VALID = [signed_transfer(i % 20, i // 20, value=i + 1).raw for i in range(200)]

corruptions = st.sampled_from(
    [
        lambda raw: raw[:-1],  # truncated
        lambda raw: raw + b"\x00",  # trailing byte
        lambda raw: raw[:-2] + bytes([raw[-2] ^ 1]) + raw[-1:],  # bit flip in s
        lambda raw: b"\x01" + raw,  # unsupported type
    ]
)


@settings(max_examples=25, deadline=None)
@given(
    picks=st.lists(st.integers(0, len(VALID) - 1), min_size=0, max_size=400),
    damage=st.lists(st.tuples(st.integers(0, 399), corruptions), max_size=10),
)
def test_threaded_recovery_equals_sequential(picks: list[int], damage: list[tuple]) -> None:  # type: ignore[type-arg]
    """recover_batch over a thread pool returns exactly the sequential list, failures in place."""
    raws = [VALID[i] for i in picks]
    for index, corrupt in damage:
        if index < len(raws):
            raws[index] = corrupt(raws[index])
    with ThreadPoolExecutor(2) as pool:
        assert recover_batch(raws, CHAIN_ID, pool) == recover_batch(raws, CHAIN_ID)


# one transfer from each of 10 senders to its own recipient: no two touch the same account
DISJOINT = [signed_transfer(i, 0, to=address(100 + i), value=i + 1) for i in range(10)]


@settings(max_examples=50, deadline=None)
@given(order=st.permutations(range(len(DISJOINT))), funded=st.sets(st.integers(0, 9)))
def test_conflict_free_transfers_commute(order: list[int], funded: set[int]) -> None:
    """Transfers touching disjoint accounts give the same writes and fees in any order."""
    state = genesis_state({address(i): 10**18 for i in funded})
    reference = execute_block(state, 1, DISJOINT, BASE_FEE, FEE_SINK)
    shuffled = execute_block(state, 1, [DISJOINT[i] for i in order], BASE_FEE, FEE_SINK)
    assert shuffled.writes == reference.writes
    assert shuffled.fees == reference.fees
    assert {r.tx_hash for r in shuffled.receipts} == {r.tx_hash for r in reference.receipts}
