"""Versioned state in ChainStore: balances and nonces at every executed height, and the
state commitment recorded with each block equal to an LtHash of that height's whole state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node.execution.state import Account
from node.storage import schema
from node.storage.archiver import Archiver
from node.storage.chain_store import ChainStore
from node.storage.history import PrunedError
from node.storage.kv import KeyValueStore, LevelDBKV, MemoryKV
from node.storage.lthash import LtHash
from node.storage.records import encode_account
from node.types.errors import FatalError
from tests.unit.storage.history_helpers import ADDRESSES, Model, grow
from tests.unit.storage.test_chain_store import make_chain


@pytest.fixture(params=["memory", "leveldb"])
def kv(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyValueStore]:
    store: KeyValueStore = MemoryKV() if request.param == "memory" else LevelDBKV(tmp_path)
    yield store
    store.close()


def state_lthash(state: dict[bytes, Account]) -> LtHash:
    """From scratch: the LtHash over (ACCOUNT key, stored account bytes) of every account."""
    return LtHash.of((schema.account_key(a), encode_account(acc)) for a, acc in state.items())


def test_every_height_reads_the_state_it_had(kv: KeyValueStore) -> None:
    """After 30 blocks of random writes, each account at each height 0..30 reads as the
    model says, including accounts emptied and refilled."""
    chain, model = ChainStore(kv), Model()
    grow(chain, model, 30)
    for height in range(31):
        for address in ADDRESSES:
            assert chain.get_account_at(address, height) == model.account(address, height)
    assert any(not s.get(ADDRESSES[5]) for s in model.states[1:])  # some emptying happened


def test_genesis_is_the_state_at_height_zero(kv: KeyValueStore) -> None:
    """The genesis allocation reads back at height 0 after later blocks changed it."""
    chain, model = ChainStore(kv), Model()
    grow(chain, model, 5)
    assert chain.get_account_at(ADDRESSES[0], 0) == Account(0, 10**18)
    assert chain.get_account_at(ADDRESSES[7], 0) == Account(0, 0)


def test_a_height_above_the_executed_one_is_refused(kv: KeyValueStore) -> None:
    """State after a block that is not executed yet is a ValueError naming the heights."""
    chain, model = ChainStore(kv), Model()
    grow(chain, model, 2)
    chain.save_block(make_chain(3)[2])
    with pytest.raises(ValueError, match="executed height is 2"):
        chain.get_account_at(ADDRESSES[0], 3)


def test_each_block_records_the_commitment_of_its_whole_state(kv: KeyValueStore) -> None:
    """The commitment stored with block h is the LtHash, computed from scratch, of every
    account after h; genesis is height 0; an unexecuted height has none."""
    chain, model = ChainStore(kv), Model()
    grow(chain, model, 12)
    for height, state in enumerate(model.states):
        assert chain.get_state_commitment(height) == state_lthash(state).digest()
    assert chain.state_lthash() == state_lthash(model.states[-1])
    assert chain.get_state_commitment(13) is None
    assert len({chain.get_state_commitment(h) for h in range(13)}) > 1


def test_the_commitment_continues_correctly_after_reopening(tmp_path: Path) -> None:
    """A store reopened from disk carries the LtHash on, so later commitments still equal
    the from-scratch hash."""
    model = Model()
    with LevelDBKV(tmp_path) as kv:
        grow(ChainStore(kv), model, 5)
    with LevelDBKV(tmp_path) as kv:
        chain = ChainStore(kv)
        assert chain.state_lthash() == state_lthash(model.states[-1])
        grow(chain, model, 5)
        assert chain.get_state_commitment(10) == state_lthash(model.states[10]).digest()
        assert chain.get_account_at(ADDRESSES[1], 3) == model.account(ADDRESSES[1], 3)


def test_a_write_of_an_unchanged_value_leaves_the_commitment_alone() -> None:
    """Rewriting an account with the value it has changes neither state nor commitment."""
    chain = ChainStore(MemoryKV())
    chain.apply_genesis({ADDRESSES[0]: Account(0, 5)})
    for block in make_chain(1):
        chain.save_block(block)
    chain.save_execution(1, [], {ADDRESSES[0]: Account(0, 5)})
    assert chain.get_state_commitment(1) == chain.get_state_commitment(0)


def test_a_state_hash_out_of_step_with_the_executed_height_is_fatal() -> None:
    """A database whose running LtHash belongs to another height than the executed one
    refuses to open instead of committing to the wrong state."""
    kv = MemoryKV()
    chain, model = ChainStore(kv), Model()
    grow(chain, model, 3)
    kv.put(schema.meta_key(schema.Meta.EXECUTED_HEIGHT), (2).to_bytes(8, "big"))
    with pytest.raises(FatalError, match="state hash is of height 3"):
        ChainStore(kv)


def test_genesis_cannot_be_applied_after_blocks_executed() -> None:
    """apply_genesis on a store that executed blocks without one is a FatalError."""
    chain = ChainStore(MemoryKV())
    chain.save_block(make_chain(1)[0])
    chain.save_execution(1, [], {ADDRESSES[0]: Account(1, 1)})
    with pytest.raises(FatalError, match="genesis"):
        chain.apply_genesis({ADDRESSES[1]: Account(0, 1)})


def test_a_pruned_height_has_a_clear_error() -> None:
    """Once heights are pruned with no archive, a state read below the hot floor raises
    PrunedError naming the earliest height still held; heights above it still read."""
    chain, model = ChainStore(MemoryKV()), Model()
    grow(chain, model, 4)
    assert Archiver(chain, hot_blocks=1, mode="prune", segment_blocks=3).step().action == "pruned"
    with pytest.raises(PrunedError, match=r"height 2 is pruned.*from height 3 on") as info:
        chain.get_account_at(ADDRESSES[0], 2)
    assert info.value.earliest == 3
    with pytest.raises(PrunedError):
        chain.get_state_commitment(1)
    for address in ADDRESSES:
        assert chain.get_account_at(address, 3) == model.account(address, 3)


def test_a_rescan_of_the_state_reproduces_the_recorded_commitment(kv: KeyValueStore) -> None:
    """compute_state_lthash, from scratch over the state table, equals the running LtHash
    and the commitment recorded for the executed height (what a snapshot is checked by)."""
    chain, model = ChainStore(kv), Model()
    grow(chain, model, 8)
    height, lthash = chain.compute_state_lthash()
    assert height == 8
    assert lthash == chain.state_lthash() == state_lthash(model.states[8])
    assert lthash.digest() == chain.get_state_commitment(8)
