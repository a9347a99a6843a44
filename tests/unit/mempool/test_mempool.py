"""The mempool admits valid transfers, refuses bad ones with a reason, and stays bounded."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.execution.executor import execute_block
from node.execution.state import Account, genesis_state
from node.execution.tx import EthTx
from node.mempool.mempool import AddResult, Mempool, MempoolLimits, RejectReason
from node.types.errors import ConfigError
from tests.eth import BASE_FEE, CHAIN_ID, FEE_SINK, GWEI, address, fake_tx, signed_transfer

ETH = 10**18
RICH = Account(0, ETH)
A, B, C, D = (bytes([i]) * 20 for i in (0xA, 0xB, 0xC, 0xD))


def make_pool(**limits: int) -> Mempool:
    return Mempool(MempoolLimits(**limits), chain_id=CHAIN_ID, base_fee=BASE_FEE)


def add_all(pool: Mempool, txs: list[EthTx], account: Account = RICH) -> list[AddResult]:
    return [pool.add(tx, account) for tx in txs]


def snapshot(pool: Mempool) -> tuple[int, int, list[EthTx], list[int | None]]:
    return (
        pool.size,
        pool.size_bytes,
        pool.select(10**6, 10**9),
        [pool.pending_nonce(s) for s in (A, B, C, D)],
    )


def test_accepts_and_tracks_a_sender() -> None:
    """Accepted transactions are counted, findable by hash, and advance the pending nonce."""
    pool = make_pool()
    assert pool.pending_nonce(A) is None
    txs = [fake_tx(A, n, size=100 + n) for n in range(3)]
    assert all(result.accepted for result in add_all(pool, txs))
    assert (pool.size, pool.size_bytes, pool.pending_nonce(A)) == (3, 303, 3)
    assert txs[1].hash in pool
    assert pool.get(txs[1].hash) == txs[1]
    assert pool.get(b"\x00" * 32) is None


@pytest.mark.parametrize(
    ("tx", "account", "reason", "detail"),
    [
        (fake_tx(A, 0, chain_id=1), RICH, RejectReason.WRONG_CHAIN, "chain id 1"),
        (fake_tx(A, 0, size=5000), RICH, RejectReason.TOO_LARGE, "5000 bytes"),
        (fake_tx(A, 0, data=b"\x01"), RICH, RejectReason.UNSUPPORTED, "calldata"),
        (fake_tx(A, 0, gas_limit=20_000), RICH, RejectReason.INTRINSIC_GAS, "20000"),
        (fake_tx(A, 0, fee=GWEI - 1), RICH, RejectReason.FEE_BELOW_BASE_FEE, "base fee"),
        (fake_tx(A, 4), Account(5, ETH), RejectReason.NONCE_TOO_LOW, "nonce 4, next 5"),
        (fake_tx(A, 9), Account(5, ETH), RejectReason.NONCE_GAP, "nonce 9, next 5"),
        (fake_tx(A, 0, value=ETH), RICH, RejectReason.INSUFFICIENT_BALANCE, "needs"),
    ],
)
def test_rejections_say_why_and_change_nothing(
    tx: EthTx, account: Account, reason: RejectReason, detail: str
) -> None:
    """Each refused transaction gets its reason and leaves the pool as it was."""
    pool = make_pool(max_tx_bytes=4096, max_nonce_gap=3)
    pool.add(fake_tx(B, 0), RICH)
    before = snapshot(pool)
    result = pool.add(tx, account)
    assert (result.accepted, result.reason) == (False, reason)
    assert detail in result.detail
    assert snapshot(pool) == before


def test_contract_creation_is_unsupported() -> None:
    """A transaction without a recipient is refused at admission."""
    tx = fake_tx(A, 0)
    creation = EthTx(**{**{f: getattr(tx, f) for f in tx.__slots__}, "to": None})
    assert make_pool().add(creation, RICH).reason == RejectReason.UNSUPPORTED


def test_duplicate_refused() -> None:
    """The same transaction twice is refused the second time, pending or in flight."""
    pool = make_pool()
    tx = fake_tx(A, 0)
    assert pool.add(tx, RICH).accepted
    assert pool.add(tx, RICH).reason == RejectReason.DUPLICATE
    pool.mark_selected([tx])
    assert pool.add(tx, RICH).reason == RejectReason.DUPLICATE


def test_balance_covers_all_of_a_senders_transactions() -> None:
    """A sender's pooled transactions must together fit its balance."""
    cost = 1 + 21_000 * GWEI
    pool = make_pool()
    account = Account(0, 2 * cost)
    assert [r.accepted for r in add_all(pool, [fake_tx(A, n) for n in range(3)], account)] == [
        True,
        True,
        False,
    ]


def test_sender_limit() -> None:
    """At most max_per_sender pending transactions per sender; replacements still allowed."""
    pool = make_pool(max_per_sender=2)
    add_all(pool, [fake_tx(A, 0), fake_tx(A, 1)])
    assert pool.add(fake_tx(A, 2), RICH).reason == RejectReason.SENDER_FULL
    assert pool.add(fake_tx(A, 1, fee=2 * GWEI), RICH).accepted
    pool.mark_selected(pool.select(1, 10**6))
    assert pool.add(fake_tx(A, 2), RICH).accepted


def test_replacement_needs_a_ten_percent_bump() -> None:
    """A same-nonce transaction replaces the pooled one only if it pays 10% more per gas."""
    pool = make_pool()
    original = fake_tx(A, 0, fee=10 * GWEI)
    pool.add(original, RICH)
    cheap = pool.add(fake_tx(A, 0, fee=10 * GWEI + 1), RICH)
    assert cheap.reason == RejectReason.REPLACEMENT_UNDERPRICED
    better = fake_tx(A, 0, fee=11 * GWEI)
    result = pool.add(better, RICH)
    assert (result.accepted, result.replaced) == (True, original.hash)
    assert original.hash not in pool
    assert pool.select(10, 10**6) == [better]
    assert pool.size == 1


def test_in_flight_nonce_cannot_be_replaced() -> None:
    """Once selected for a car, a nonce is taken: a new transaction for it is too low."""
    pool = make_pool()
    pool.add(fake_tx(A, 0), RICH)
    pool.mark_selected(pool.select(10, 10**6))
    result = pool.add(fake_tx(A, 0, fee=5 * GWEI), RICH)
    assert result.reason == RejectReason.NONCE_TOO_LOW


def test_select_round_robin_in_nonce_order() -> None:
    """Selection interleaves senders one transaction per round, each sender in nonce order."""
    pool = make_pool()
    add_all(pool, [fake_tx(A, n) for n in (0, 1, 2)] + [fake_tx(B, n) for n in (1, 0)])
    add_all(pool, [fake_tx(C, 0)])
    chosen = [(tx.sender, tx.nonce) for tx in pool.select(10, 10**6)]
    assert chosen == [(A, 0), (B, 0), (C, 0), (A, 1), (B, 1), (A, 2)]
    assert [(tx.sender, tx.nonce) for tx in pool.select(4, 10**6)] == chosen[:4]


def test_select_respects_the_byte_budget() -> None:
    """A sender whose next transaction does not fit drops out; smaller ones still fit."""
    pool = make_pool()
    add_all(pool, [fake_tx(A, 0, size=500), fake_tx(A, 1, size=10), fake_tx(B, 0, size=100)])
    assert [(tx.sender, tx.nonce) for tx in pool.select(10, 300)] == [(B, 0)]
    assert pool.select(10, 10) == []


def test_gapped_transactions_wait_for_the_gap() -> None:
    """A transaction past a nonce gap is held but not selected until the gap is filled."""
    pool = make_pool()
    pool.add(fake_tx(A, 1), RICH)
    assert pool.select(10, 10**6) == []
    assert pool.pending_nonce(A) == 0
    pool.add(fake_tx(A, 0), RICH)
    assert [tx.nonce for tx in pool.select(10, 10**6)] == [0, 1]
    assert pool.pending_nonce(A) == 2


def test_selected_transactions_stay_until_executed() -> None:
    """Selected transactions are not selected again, still count, and go once executed."""
    pool = make_pool()
    add_all(pool, [fake_tx(A, n) for n in range(3)] + [fake_tx(B, 0)])
    chosen = pool.select(2, 10**6)
    pool.mark_selected(chosen)
    assert [(tx.sender, tx.nonce) for tx in pool.select(10, 10**6)] == [(A, 1), (A, 2)]
    assert pool.size == 4
    assert pool.pending_nonce(A) == 3
    pool.on_executed({A: 1, B: 1})
    assert pool.size == 2
    assert chosen[0].hash not in pool
    assert pool.pending_nonce(B) is None
    pool.on_executed({A: 0})  # stale report: ignored
    assert pool.size == 2


def test_mark_selected_rotates_senders() -> None:
    """Senders just served move to the back, so the next car starts with the others."""
    pool = make_pool()
    add_all(pool, [fake_tx(s, n) for s in (A, B, C) for n in range(2)])
    pool.mark_selected(pool.select(1, 10**6))
    assert [tx.sender for tx in pool.select(3, 10**6)] == [B, C, A]


def test_requeue_and_remove() -> None:
    """requeue returns in-flight transactions to selection; remove drops them outright."""
    pool = make_pool()
    txs = [fake_tx(A, n) for n in range(3)]
    add_all(pool, txs)
    pool.mark_selected(txs)
    assert pool.select(10, 10**6) == []
    pool.requeue(txs[1:])
    assert pool.select(10, 10**6) == txs[1:]
    pool.remove([txs[0].hash, txs[2].hash])
    assert pool.size == 1
    pool.requeue([txs[0]])  # no longer pooled: nothing happens
    assert pool.select(10, 10**6) == []  # nonce 1 now waits behind the removed nonce 0
    assert pool.pending_nonce(A) == 0


def test_add_with_newer_account_drops_stale_transactions() -> None:
    """An account nonce past pooled transactions shows they executed: they are dropped."""
    pool = make_pool()
    add_all(pool, [fake_tx(A, n) for n in range(3)])
    assert pool.add(fake_tx(A, 3), Account(2, ETH)).accepted
    assert [tx.nonce for tx in pool.select(10, 10**6)] == [2, 3]


def test_eviction_takes_the_cheapest_newest_tail() -> None:
    """A full pool evicts the lowest-priced sender tail, the newest among equal prices."""
    pool = make_pool(max_txs=4)
    cheap_old, cheap_new = fake_tx(B, 0, fee=GWEI), fake_tx(C, 0, fee=GWEI)
    add_all(pool, [fake_tx(A, 0, fee=GWEI), fake_tx(A, 1, fee=3 * GWEI), cheap_old, cheap_new])
    result = pool.add(fake_tx(D, 0, fee=2 * GWEI), RICH)
    assert (result.accepted, result.evicted) == (True, (cheap_new.hash,))
    # A's cheap nonce 0 is below its tail, so it is never the one evicted
    result = pool.add(fake_tx(D, 1, fee=2 * GWEI), RICH)
    assert result.evicted == (cheap_old.hash,)
    assert pool.size == 4


def test_full_pool_refuses_what_it_cannot_evict() -> None:
    """No eviction for a newcomer paying no more, nor of its own sender, nor of in-flight txs."""
    pool = make_pool(max_txs=2)
    add_all(pool, [fake_tx(A, 0, fee=9 * GWEI), fake_tx(B, 0, fee=GWEI)])
    before = snapshot(pool)
    assert pool.add(fake_tx(C, 0, fee=GWEI), RICH).reason == RejectReason.POOL_FULL
    # B's own cheap nonce 0 is not evicted for B's nonce 1; A pays more than the newcomer
    assert pool.add(fake_tx(B, 1, fee=5 * GWEI), RICH).reason == RejectReason.POOL_FULL
    assert snapshot(pool) == before
    pool.mark_selected(pool.select(10, 10**6))
    assert pool.add(fake_tx(C, 0, fee=9 * GWEI), RICH).reason == RejectReason.POOL_FULL


def test_eviction_by_bytes_takes_several_tails() -> None:
    """A large newcomer in a byte-full pool evicts as many tails as it needs, tail first."""
    pool = make_pool(max_bytes=1000, max_tx_bytes=1000)
    a_txs = [fake_tx(A, n, size=200) for n in range(3)]
    add_all(pool, [*a_txs, fake_tx(B, 0, size=300, fee=5 * GWEI)])
    big = fake_tx(C, 0, size=500, fee=2 * GWEI)
    result = pool.add(big, RICH)
    assert result.evicted == (a_txs[2].hash, a_txs[1].hash)
    assert pool.size_bytes == 1000
    assert pool.pending_nonce(A) == 1


def test_bad_limits_are_a_config_error() -> None:
    """Zero or inconsistent limits are refused when the pool is configured."""
    with pytest.raises(ConfigError):
        MempoolLimits(max_txs=0)
    with pytest.raises(ConfigError):
        MempoolLimits(max_bytes=100, max_tx_bytes=200)
    with pytest.raises(ConfigError):
        MempoolLimits(max_nonce_gap=-1)


# --------------------------------------------------------------------- random operation runs

SENDERS = [bytes([i]) * 20 for i in range(1, 6)]
adds = st.tuples(
    st.just("add"),
    st.sampled_from(SENDERS),
    st.integers(0, 4),
    st.integers(1, 4).map(lambda f: f * GWEI),
    st.sampled_from([60, 110, 400]),
)
others = (
    st.tuples(st.just("select"), st.integers(0, 6))
    | st.tuples(st.just("execute"), st.sampled_from(SENDERS), st.integers(0, 3))
    | st.tuples(st.just("requeue"))
    | st.tuples(st.just("remove"), st.integers(0, 30))
)
# mostly adds, so that the small pool fills up and eviction runs
ops = st.lists(st.one_of(adds, adds, adds, others), min_size=20, max_size=80)


def check_select(pool: Mempool, executed: dict[bytes, int], in_flight: set[bytes]) -> None:
    """Selection yields pooled, not-in-flight txs, per sender consecutive and in nonce order."""
    chosen = pool.select(10**6, 10**9)
    assert len({tx.hash for tx in chosen}) == len(chosen)
    by_sender: dict[bytes, list[int]] = {}
    for tx in chosen:
        assert tx.hash in pool and tx.hash not in in_flight
        by_sender.setdefault(tx.sender, []).append(tx.nonce)
    for sender, nonces in by_sender.items():
        assert nonces == list(range(nonces[0], nonces[0] + len(nonces)))
        assert nonces[0] >= executed.get(sender, 0)


@settings(max_examples=200, deadline=None)
@given(ops)
def test_random_operations_keep_the_pool_bounded_and_consistent(ops: list[tuple]) -> None:  # type: ignore[type-arg]
    """Under any sequence of adds, selections, executions and removals, limits always hold."""
    limits = MempoolLimits(max_txs=6, max_bytes=1000, max_per_sender=3, max_tx_bytes=400)
    pool = Mempool(limits, chain_id=CHAIN_ID, base_fee=BASE_FEE)
    executed: dict[bytes, int] = {}
    known: dict[bytes, EthTx] = {}
    in_flight: set[bytes] = set()
    for op in ops:
        if op[0] == "add":
            _, sender, nonce, fee, size = op
            tx = fake_tx(sender, executed.get(sender, 0) + nonce, fee=fee, size=size)
            before = snapshot(pool)
            result = pool.add(tx, Account(executed.get(sender, 0), ETH))
            if result.accepted:
                known[tx.hash] = tx
                assert tx.hash in pool
                assert not (set(result.evicted) & in_flight)
                for victim in (known[h] for h in result.evicted):
                    # only tails go, and never the newcomer's own sender, never at a higher price
                    assert victim.sender != sender and victim.gas_price < fee
                    assert all(
                        t.sender != victim.sender or t.nonce < victim.nonce
                        for t in known.values()
                        if t.hash in pool and t.hash not in in_flight
                    )
            else:
                assert snapshot(pool) == before
        elif op[0] == "select":
            chosen = pool.select(op[1], 10**9)
            pool.mark_selected(chosen)
            in_flight |= {tx.hash for tx in chosen}
        elif op[0] == "execute":
            _, sender, step = op
            executed[sender] = executed.get(sender, 0) + step
            pool.on_executed({sender: executed[sender]})
        elif op[0] == "requeue":
            pool.requeue(known[h] for h in in_flight if h in known)
            in_flight.clear()
        else:
            hashes = sorted(known)
            if hashes:
                pool.remove([hashes[op[1] % len(hashes)]])
        in_flight = {h for h in in_flight if h in pool}
        pooled = [tx for tx in known.values() if tx.hash in pool]
        assert pool.size == len(pooled) <= limits.max_txs
        assert pool.size_bytes == sum(tx.size for tx in pooled) <= limits.max_bytes
        assert all(tx.nonce >= executed.get(tx.sender, 0) for tx in pooled)
        check_select(pool, executed, in_flight)
        # the lazily cleaned eviction heap is rebuilt before it outgrows the pool
        assert len(pool._heap) <= 4 * pool.size + 65


def test_select_execute_cycle_empties_the_pool() -> None:
    """Selected transactions execute in full, and the executed nonces clear them from the pool."""
    state = genesis_state({address(i): ETH for i in range(3)})
    pool = make_pool()
    txs = [signed_transfer(i, n, to=address(9)) for i in range(3) for n in range(4)]
    for tx in txs:
        assert pool.add(tx, state.get_account(tx.sender)).accepted
    for height in (1, 2):
        chosen = pool.select(6, 10**6)
        pool.mark_selected(chosen)
        result = execute_block(state, height, chosen, BASE_FEE, FEE_SINK)
        assert result.skipped == ()
        state.apply_writes(result.writes)
        pool.on_executed(result.sender_nonces())
    assert (pool.size, pool.size_bytes) == (0, 0)
    assert state.get_account(address(9)).balance == len(txs)
