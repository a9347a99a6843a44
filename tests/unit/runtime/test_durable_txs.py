"""The table of accepted-but-unexecuted transactions: what a node answered "accepted" for is
on disk until a block makes it stale, comes back after a restart, and a forwarded one that
does not execute in time is forwarded again, within bounds."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from node.execution.tx import EthTx, decode_tx
from node.mempool.routing import lane_of
from node.runtime.durable_txs import MAX_FORWARD_ATTEMPTS, RETRY_S, AcceptedTxs
from node.storage import schema
from node.storage.kv import Batch, LevelDBKV, MemoryKV
from tests.eth import CHAIN_ID, address, signed_transfer

LANES = 4
ME = 3
POOL = ThreadPoolExecutor(1)


class CountingKV(MemoryKV):
    """A MemoryKV that counts write batches."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, batch: Batch, sync: bool = False) -> None:
        self.writes += 1
        super().write(batch, sync)


def senders(lane_is_mine: bool, count: int) -> list[int]:
    """Test account indexes whose lane is (or is not) ME."""
    found = [i for i in range(200) if (lane_of(address(i), LANES) == ME) == lane_is_mine]
    assert len(found) >= count
    return found[:count]


OWN = senders(True, 3)
OTHER = senders(False, 3)


def stored(kv: MemoryKV) -> set[bytes]:
    """The hashes in the ACCEPTED_TX table."""
    start, stop = schema.table_range(schema.Table.ACCEPTED_TX)
    return {schema.decode_accepted_tx_key(key) for key, _ in kv.iterate(start, stop)}


def table(kv: MemoryKV, max_txs: int = 100, max_bytes: int = 10**6) -> AcceptedTxs:
    return AcceptedTxs(kv, ME, LANES, max_txs=max_txs, max_bytes=max_bytes)


def keep(accepted: AcceptedTxs, txs: list[EthTx], now: float = 0.0) -> None:
    for tx in txs:
        accepted.stage(tx, lane_of(tx.sender, LANES), now)
    accepted.flush()


def test_one_submit_is_one_write_batch_and_restores_after_reopen(tmp_path: Path) -> None:
    """Staged transactions reach the database in one batch at flush, and a table opened on
    the same LevelDB later returns this lane's (by sender, then nonce) and queues the others
    to be forwarded at once."""
    counting = CountingKV()
    own = [signed_transfer(s, n) for s in OWN[:2] for n in (2, 0, 1)]
    other = [signed_transfer(s, 0) for s in OTHER]
    first = table(counting)
    for tx in own + other:
        first.stage(tx, lane_of(tx.sender, LANES), 0.0)
    assert counting.writes == 0
    first.flush()
    assert counting.writes == 1
    assert stored(counting) == {tx.hash for tx in own + other}

    kv = LevelDBKV(tmp_path / "db")
    keep(table(kv), own + other)
    kv.close()
    kv = LevelDBKV(tmp_path / "db")
    again = table(kv)
    restored = again.restore(CHAIN_ID, POOL, lambda _address: 0, now=100.0)
    assert restored == sorted(own, key=lambda tx: (tx.sender, tx.nonce))
    assert again.size == len(own + other)
    assert again.forwarded == len(other)
    due = again.due_for_forward(100.0, connected=range(LANES))
    assert sorted(raw for raws in due.values() for raw in raws) == sorted(t.raw for t in other)
    for owner, raws in due.items():
        assert {lane_of(decode_tx(raw, CHAIN_ID).sender, LANES) for raw in raws} == {owner}
    kv.close()


def test_executed_nonces_and_skipped_txs_remove_entries() -> None:
    """A block that moves a sender's nonce to n deletes its entries below n (own lane and
    forwarded alike), keeps those at n and above, and deletes the skipped ones by hash."""
    kv = MemoryKV()
    accepted = table(kv)
    a, b = OWN[0], OTHER[0]
    txs = {(s, n): signed_transfer(s, n) for s in (a, b) for n in range(4)}
    keep(accepted, list(txs.values()))
    skipped = txs[(a, 3)].hash
    accepted.on_executed({address(a): 2, address(b): 1, address(OWN[2]): 9}, [skipped])
    left = {txs[(a, 2)].hash, txs[(b, 1)].hash, txs[(b, 2)].hash, txs[(b, 3)].hash}
    assert stored(kv) == left
    assert {h for h in (t.hash for t in txs.values()) if h in accepted} == left
    assert accepted.forwarded == 3
    accepted.on_executed({address(a): 3, address(b): 4}, [])
    assert stored(kv) == set()
    assert (accepted.size, accepted.forwarded) == (0, 0)


def test_a_replacement_and_discarded_txs_leave_the_table() -> None:
    """A second transaction with the same sender and nonce replaces the first on disk, and a
    discarded one (evicted, refused) is deleted."""
    kv = MemoryKV()
    accepted = table(kv)
    first = signed_transfer(OWN[0], 0, gas_price=10**9)
    second = signed_transfer(OWN[0], 0, gas_price=2 * 10**9)
    other = signed_transfer(OWN[1], 0)
    keep(accepted, [first, other])
    keep(accepted, [second])
    assert stored(kv) == {second.hash, other.hash}
    accepted.discard([other.hash, b"\x00" * 32])
    accepted.flush()
    assert stored(kv) == {second.hash}
    accepted.on_executed({address(OWN[0]): 1}, [])
    assert stored(kv) == set()


def test_restore_deletes_what_is_stale_or_undecodable() -> None:
    """On restart, an entry whose nonce the executed state passed and bytes that do not
    decode are deleted; the rest is kept."""
    kv = MemoryKV()
    txs = [signed_transfer(OWN[0], n) for n in range(3)] + [signed_transfer(OTHER[0], 0)]
    keep(table(kv), txs)
    kv.put(schema.accepted_tx_key(b"\x01" * 32), b"\xc0junk")
    nonces = {address(OWN[0]): 2, address(OTHER[0]): 1}
    again = table(kv)
    restored = again.restore(CHAIN_ID, POOL, lambda a: nonces.get(a, 0), now=0.0)
    assert restored == [txs[2]]
    assert stored(kv) == {txs[2].hash}
    assert (again.size, again.forwarded) == (1, 0)


def test_forwarded_entries_are_bounded_by_the_limits() -> None:
    """Forwarded entries stop at max_txs (and max_bytes); own-lane ones, bounded by the
    mempool, do not count; a transaction already kept always has room."""
    accepted = table(MemoryKV(), max_txs=2)
    forwarded = [signed_transfer(OTHER[0], n) for n in range(3)]
    keep(accepted, [signed_transfer(OWN[0], n) for n in range(5)])
    keep(accepted, forwarded[:2])
    assert not accepted.has_room(forwarded[2])
    assert accepted.has_room(forwarded[0])
    by_bytes = table(MemoryKV(), max_bytes=forwarded[0].size + forwarded[1].size - 1)
    keep(by_bytes, forwarded[:1])
    assert not by_bytes.has_room(forwarded[1])
    accepted.on_executed({address(OTHER[0]): 1}, [])
    assert accepted.has_room(forwarded[2])


def test_forwarded_txs_are_sent_again_after_retry_s_to_connected_owners_only() -> None:
    """Nothing is due before RETRY_S; then each unexecuted forwarded tx goes to its owner
    once per RETRY_S while the owner is connected (not while it is down), up to ``limit``
    per round, and is given up after MAX_FORWARD_ATTEMPTS sends."""
    kv = MemoryKV()
    accepted = table(kv)
    txs = [signed_transfer(s, 0) for s in OTHER]
    owners = {lane_of(tx.sender, LANES) for tx in txs}
    keep(accepted, txs, now=0.0)
    assert accepted.due_for_forward(RETRY_S - 0.1, connected=owners) == {}
    down = lane_of(txs[0].sender, LANES)
    up = owners - {down}
    sent = accepted.due_for_forward(RETRY_S, connected=up)
    assert txs[0].raw not in [raw for raws in sent.values() for raw in raws]
    assert sum(map(len, sent.values())) == sum(lane_of(t.sender, LANES) != down for t in txs)
    one = accepted.due_for_forward(2 * RETRY_S, owners, limit=1)
    assert one == {down: [txs[0].raw]}  # at most ``limit``, oldest due first
    sends, now = 1, 2 * RETRY_S
    while accepted.forwarded:
        now += RETRY_S
        sends += txs[0].raw in accepted.due_for_forward(now, connected=owners).get(down, [])
    assert sends == MAX_FORWARD_ATTEMPTS
    assert stored(kv) == set()
