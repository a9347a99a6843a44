"""The sequential executor moves value, charges 21,000 gas into the fee sink, skips invalid txs."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.execution.executor import STATUS_FAILED, STATUS_SUCCESS, BlockResult, execute_block
from node.execution.state import Account, MemoryState, genesis_state
from node.execution.tx import TRANSFER_GAS, EthTx, UndecodableTx
from tests.eth import BASE_FEE, FEE_SINK, GWEI, address, signed_transfer

ETH = 10**18
FEE = TRANSFER_GAS * GWEI


def run(state: MemoryState, txs: Sequence[EthTx | UndecodableTx], height: int = 1) -> BlockResult:
    return execute_block(state, height, txs, BASE_FEE, FEE_SINK)


def applied(state: MemoryState, result: BlockResult) -> MemoryState:
    after = state.copy()
    after.apply_writes(result.writes)
    return after


def test_transfer_moves_value_and_fee() -> None:
    """A transfer moves its value, bumps the nonce, and its fee lands in the sink once."""
    state = genesis_state({address(0): ETH})
    result = run(state, [signed_transfer(0, 0, value=7), signed_transfer(0, 1, value=3)])
    after = applied(state, result)
    assert after.get_account(address(0)) == Account(2, ETH - 10 - 2 * FEE)
    assert after.get_account(address(1)) == Account(0, 10)
    assert after.get_account(FEE_SINK) == Account(0, 2 * FEE)
    assert result.fees == 2 * FEE
    assert result.gas_used == 2 * TRANSFER_GAS
    assert result.skipped == ()
    first, second = result.receipts
    assert (first.index, first.status, first.gas_used, first.cumulative_gas_used) == (
        0,
        STATUS_SUCCESS,
        TRANSFER_GAS,
        TRANSFER_GAS,
    )
    assert (second.index, second.cumulative_gas_used, second.height) == (1, 2 * TRANSFER_GAS, 1)
    assert (first.sender, first.to, first.effective_gas_price) == (address(0), address(1), GWEI)
    assert first.fee == FEE
    assert result.sender_nonces() == {address(0): 2}


def test_eip1559_pays_base_fee_plus_priority_capped() -> None:
    """An EIP-1559 transaction pays min(max fee, base fee + priority) per gas."""
    state = genesis_state({address(0): ETH})
    tx = signed_transfer(0, 0, gas_price=5 * GWEI, priority=GWEI, gas_limit=50_000)
    (receipt,) = run(state, [tx]).receipts
    assert receipt.effective_gas_price == 2 * GWEI
    assert receipt.gas_used == TRANSFER_GAS
    capped = signed_transfer(0, 0, gas_price=GWEI + 5, priority=GWEI)
    assert run(state, [capped]).receipts[0].effective_gas_price == GWEI + 5


@pytest.mark.parametrize(
    ("tx", "reason"),
    [
        (signed_transfer(0, 1), "nonce too high: 1, account nonce 0"),
        (signed_transfer(0, 0, gas_limit=20_999), "gas limit 20999 below"),
        (signed_transfer(0, 0, gas_price=GWEI - 1), "below the base fee"),
        (signed_transfer(0, 0, value=ETH), "insufficient funds"),
        (signed_transfer(0, 0, gas_price=ETH), "insufficient funds"),
        (UndecodableTx(b"\xc0", "too short"), "undecodable: too short"),
    ],
)
def test_invalid_transactions_are_skipped(tx: EthTx | UndecodableTx, reason: str) -> None:
    """A transaction that cannot be included leaves no receipt and no state change."""
    state = genesis_state({address(0): ETH // 2})
    result = run(state, [tx])
    assert result.receipts == ()
    assert len(result.writes) == 0
    (skipped,) = result.skipped
    assert skipped.tx_hash == tx.hash
    assert skipped.position == 0
    assert reason in skipped.reason


def test_duplicate_in_block_executes_once() -> None:
    """A transaction ordered twice in a block executes the first time and is skipped after."""
    state = genesis_state({address(0): ETH})
    tx = signed_transfer(0, 0, value=5)
    result = run(state, [tx, signed_transfer(0, 1), tx])
    assert [r.tx_hash for r in result.receipts] == [tx.hash, signed_transfer(0, 1).hash]
    (skipped,) = result.skipped
    assert (skipped.position, skipped.reason) == (2, "duplicate: already executed in this block")
    assert applied(state, result).get_account(address(1)).balance == 6


def test_data_or_creation_fails_but_pays_gas() -> None:
    """Calldata or contract creation gets status 0: nonce bumped, gas paid, no value moved."""
    state = genesis_state({address(0): ETH})
    call = signed_transfer(0, 0, value=9, data=b"\x01", gas_limit=100_000)
    create = signed_transfer(0, 1, value=9, to=b"", gas_limit=100_000)
    assert create.to is None
    result = run(state, [call, create])
    assert [r.status for r in result.receipts] == [STATUS_FAILED, STATUS_FAILED]
    assert [r.gas_used for r in result.receipts] == [TRANSFER_GAS, TRANSFER_GAS]
    after = applied(state, result)
    assert after.get_account(address(0)) == Account(2, ETH - 2 * FEE)
    assert after.get_account(address(1)) == Account(0, 0)


def test_self_transfer_only_pays_the_fee() -> None:
    """Sending value to oneself leaves the balance less the fee."""
    state = genesis_state({address(0): ETH})
    result = run(state, [signed_transfer(0, 0, to=address(0), value=ETH // 2)])
    assert applied(state, result).get_account(address(0)) == Account(1, ETH - FEE)


def test_fees_credited_after_the_last_transaction() -> None:
    """The fee sink receives the block's fees only at the end, so it cannot spend them mid-block."""
    sink_key = 9
    state = genesis_state({address(0): ETH})
    result = execute_block(
        state,
        1,
        [signed_transfer(0, 0), signed_transfer(sink_key, 0, value=0)],
        BASE_FEE,
        address(sink_key),
    )
    assert "insufficient funds" in result.skipped[0].reason
    assert applied(state, result).get_account(address(sink_key)) == Account(0, FEE)


def test_empty_block_writes_nothing() -> None:
    """A block without transactions changes no state and credits no fees."""
    result = run(genesis_state({address(0): ETH}), [])
    assert (result.receipts, len(result.writes), result.fees, result.gas_used) == ((), 0, 0, 0)


# a few senders and recipients, small balances so that some transfers fail for funds
SENDERS = range(4)
pool = [
    signed_transfer(sender, nonce, to=address(recipient), value=value, gas_price=price)
    for sender in SENDERS
    for nonce in range(4)
    for recipient, value, price in [(sender + 1, 10**6, GWEI), (5, 3 * 10**15, 2 * GWEI)]
]
blocks = st.lists(st.sampled_from(pool), max_size=24)
balances = st.lists(st.integers(0, 10**16), min_size=len(SENDERS), max_size=len(SENDERS))


def genesis(amounts: list[int]) -> MemoryState:
    return genesis_state({address(i): amount for i, amount in enumerate(amounts)})


@settings(max_examples=200, deadline=None)
@given(amounts=balances, txs=blocks)
def test_balances_plus_fees_are_conserved(amounts: list[int], txs: list[EthTx]) -> None:
    """No wei is created or destroyed: total balance (fee sink included) is unchanged."""
    state = genesis(amounts)
    result = run(state, list(txs))
    after = applied(state, result)
    assert after.total_balance() == state.total_balance()
    assert after.get_account(FEE_SINK).balance == result.fees == sum(r.fee for r in result.receipts)
    assert len(result.receipts) + len(result.skipped) == len(txs)


@settings(max_examples=100, deadline=None)
@given(amounts=balances, txs=blocks)
def test_replay_is_deterministic(amounts: list[int], txs: list[EthTx]) -> None:
    """Executing the same block on the same state twice gives identical results."""
    state = genesis(amounts)
    assert run(state, list(txs)) == run(state.copy(), list(txs))


@settings(max_examples=100, deadline=None)
@given(amounts=balances, txs=blocks, data=st.data())
def test_duplicated_transaction_executes_once(
    amounts: list[int], txs: list[EthTx], data: st.DataObject
) -> None:
    """A copy of a transaction later in the block never executes a second time.

    If the original was included, the copy is skipped as a duplicate and the block's outcome is
    unchanged; if the original was skipped, the copy may execute in its place, once.
    """
    if not txs:
        return
    state = genesis(amounts)
    source = data.draw(st.integers(0, len(txs) - 1))
    target = data.draw(st.integers(source + 1, len(txs)))
    doubled = [*txs[:target], txs[source], *txs[target:]]
    plain, with_copy = run(state, list(txs)), run(state, doubled)
    hashes = [r.tx_hash for r in with_copy.receipts]
    assert len(hashes) == len(set(hashes))
    if source not in {skipped.position for skipped in plain.skipped}:
        assert with_copy.writes == plain.writes
        assert with_copy.receipts == plain.receipts
        assert any(
            s.position == target and s.reason.startswith("duplicate") for s in with_copy.skipped
        )


@settings(max_examples=100, deadline=None)
@given(amounts=balances, txs=blocks)
def test_nonces_advance_by_included_count(amounts: list[int], txs: list[EthTx]) -> None:
    """Each sender's nonce rises by exactly the number of its receipts."""
    state = genesis(amounts)
    result = run(state, list(txs))
    after = applied(state, result)
    for sender in SENDERS:
        included = sum(1 for r in result.receipts if r.sender == address(sender))
        assert after.get_account(address(sender)).nonce == included
