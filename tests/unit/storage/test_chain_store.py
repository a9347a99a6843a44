"""ChainStore: blocks saved in order with their cars and QCs; execution results saved whole."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node.crypto.hashing import ZERO_DIGEST
from node.execution.executor import BlockResult, Receipt
from node.execution.state import Account, StateReader, StateWrites
from node.storage import schema
from node.storage.chain_store import ChainStore
from node.storage.kv import Batch, KeyValueStore, LevelDBKV, MemoryKV
from node.types.errors import FatalError
from node.types.messages import QC, Block, Car, MsgKind

ALICE, BOB = b"\xaa" * 20, b"\xbb" * 20


@pytest.fixture(params=["memory", "leveldb"])
def kv(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyValueStore]:
    store: KeyValueStore = MemoryKV() if request.param == "memory" else LevelDBKV(tmp_path)
    yield store
    store.close()


def make_chain(length: int, lanes: int = 2) -> list[Block]:
    """Consecutive blocks from height 1, each with one fresh car per lane."""
    blocks: list[Block] = []
    parent = ZERO_DIGEST
    tips = [ZERO_DIGEST] * lanes
    for height in range(1, length + 1):
        cars = []
        for lane in range(lanes):
            txs = tuple(b"tx-%d-%d-%d" % (height, lane, i) for i in range(3))
            car = Car.create(lane, height, tips[lane], None, txs, b"sig" * 20)
            tips[lane] = car.digest
            cars.append(car)
        block = Block(height, height + 10, parent, bytes([height % 256]) * 32, tuple(cars))
        parent = block.digest
        blocks.append(block)
    return blocks


def commit_qc(block: Block) -> QC:
    return QC(MsgKind.CONFIRM_ACK, block.slot, 0, block.cut_digest, (0, 1, 2), (b"a", b"b", b"c"))


def receipt(height: int, index: int, sender: bytes = ALICE) -> Receipt:
    tx_hash = bytes([height % 256, index % 256]) * 16
    return Receipt(
        tx_hash=tx_hash,
        index=index,
        status=1,
        gas_used=21_000,
        cumulative_gas_used=21_000 * (index + 1),
        effective_gas_price=10**9,
        sender=sender,
        to=BOB,
        height=height,
    )


def test_a_fresh_store_is_at_height_zero(kv: KeyValueStore) -> None:
    """Nothing saved: committed and executed heights are 0 and lookups find nothing."""
    chain = ChainStore(kv)
    assert (chain.committed_height(), chain.executed_height()) == (0, 0)
    assert chain.get_block(1) is None
    assert chain.get_block_by_hash(b"\x01" * 32) is None
    assert chain.get_receipt(b"\x01" * 32) is None
    assert chain.get_blocks(1, 10) == []


def test_saved_blocks_read_back_by_height_hash_and_range(kv: KeyValueStore) -> None:
    """A saved block comes back equal by height, by digest and in a range, with its QC."""
    chain = ChainStore(kv)
    blocks = make_chain(5)
    for block in blocks:
        chain.save_block(block, commit_qc(block))
    assert chain.committed_height() == 5
    assert chain.get_block(3) == blocks[2]
    assert chain.get_block_by_hash(blocks[3].digest) == blocks[3]
    assert chain.get_blocks(2, 4) == blocks[1:4]
    assert chain.get_blocks(4, 2**64 - 1) == blocks[3:]
    assert chain.get_commit_qc(blocks[0].slot) == commit_qc(blocks[0])
    car = blocks[1].cars[1]
    assert chain.get_car(car.lane, car.pos, car.digest) == car


def test_cars_are_stored_once_and_blocks_refer_to_them(kv: KeyValueStore) -> None:
    """The BLOCK record holds car references; each car's bytes live only in the CAR table."""
    chain = ChainStore(kv)
    block = make_chain(1)[0]
    chain.save_block(block)
    header_bytes = kv.get(schema.block_key(1))
    assert header_bytes is not None
    assert all(tx not in header_bytes for car in block.cars for tx in car.txs)
    assert len(list(kv.iterate(*schema.table_range(schema.Table.CAR)))) == len(block.cars)


def test_saving_a_saved_block_again_is_a_no_op(kv: KeyValueStore) -> None:
    """Re-saving an identical block (a redelivery after restart) changes nothing."""
    chain = ChainStore(kv)
    blocks = make_chain(2)
    for block in blocks + blocks:
        chain.save_block(block)
    assert chain.committed_height() == 2


def test_a_different_block_at_a_saved_height_is_fatal(kv: KeyValueStore) -> None:
    """Two different blocks at one height mean the chain forked: FatalError."""
    chain = ChainStore(kv)
    chain.save_block(make_chain(1)[0])
    with pytest.raises(FatalError, match="forked"):
        chain.save_block(make_chain(1, lanes=3)[0])


def test_a_gap_is_fatal_and_is_filled_by_range_sync(kv: KeyValueStore) -> None:
    """A block beyond committed+1 is refused; fetching the missing range from a peer fills it."""
    peer = ChainStore(MemoryKV())
    blocks = make_chain(6)
    for block in blocks:
        peer.save_block(block, commit_qc(block))
    chain = ChainStore(kv)
    chain.save_block(blocks[0])
    with pytest.raises(FatalError, match="in order"):
        chain.save_block(blocks[4])
    for block in peer.get_blocks(chain.committed_height() + 1, blocks[4].height):
        chain.save_block(block, peer.get_commit_qc(block.slot))
    chain.save_block(blocks[5])
    assert chain.get_blocks(1, 6) == blocks
    assert chain.get_commit_qc(blocks[3].slot) == commit_qc(blocks[3])


def test_a_block_that_does_not_extend_the_chain_is_fatal(kv: KeyValueStore) -> None:
    """A next block whose parent is not the saved previous block is refused."""
    chain = ChainStore(kv)
    first, second = make_chain(2)
    chain.save_block(first)
    orphan = Block(2, second.slot, b"\x09" * 32, second.cut_digest, second.cars)
    with pytest.raises(FatalError, match="does not extend"):
        chain.save_block(orphan)


def test_execution_results_are_readable(kv: KeyValueStore) -> None:
    """Receipts by tx hash and by block, tx locations and accounts read back after saving."""
    chain = ChainStore(kv)
    chain.save_block(make_chain(1)[0])
    results = [receipt(1, 0), receipt(1, 1, sender=BOB)]
    chain.save_execution(1, results, {ALICE: Account(1, 500), BOB: Account(1, 2**200)})
    assert chain.executed_height() == 1
    assert chain.get_receipt(results[1].tx_hash) == results[1]
    assert chain.get_tx_location(results[1].tx_hash) == (1, 1)
    assert chain.get_receipts(1) == results
    assert chain.get_account(BOB) == Account(1, 2**200)
    assert chain.get_account(b"\x01" * 20) == Account(0, 0)


def test_an_emptied_account_reads_as_empty_and_is_not_stored(kv: KeyValueStore) -> None:
    """Writing Account(0, 0) deletes the record; reads still give Account(0, 0)."""
    chain = ChainStore(kv)
    for block in make_chain(2):
        chain.save_block(block)
    chain.save_execution(1, [], {ALICE: Account(0, 7)})
    chain.save_execution(2, [], {ALICE: Account(0, 0)})
    assert chain.get_account(ALICE) == Account(0, 0)
    assert kv.get(schema.account_key(ALICE)) is None


def test_execution_heights_must_follow_one_by_one_behind_commits(kv: KeyValueStore) -> None:
    """Executing a block twice, out of order or before it is committed is a FatalError."""
    chain = ChainStore(kv)
    chain.save_block(make_chain(1)[0])
    with pytest.raises(FatalError, match="committed height 1"):
        chain.save_execution(2, [], {})
    chain.save_execution(1, [], {})
    with pytest.raises(FatalError, match="executed height 1"):
        chain.save_execution(1, [], {})


def test_receipts_must_match_their_block_and_position() -> None:
    """A receipt whose height or index disagrees with its place raises ValueError."""
    chain = ChainStore(MemoryKV())
    chain.save_block(make_chain(1)[0])
    with pytest.raises(ValueError, match="index"):
        chain.save_execution(1, [receipt(1, 1)], {})
    assert chain.executed_height() == 0


class CountingKV(MemoryKV):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[Batch] = []

    def write(self, batch: Batch, sync: bool = False) -> None:
        self.batches.append(list(batch))
        super().write(batch, sync)


def test_a_block_and_its_execution_are_each_one_atomic_batch() -> None:
    """save_block and save_execution each issue exactly one write holding their height meta."""
    kv = CountingKV()
    chain = ChainStore(kv)
    kv.batches.clear()
    chain.save_block(make_chain(1)[0])
    chain.save_execution(1, [receipt(1, 0)], {ALICE: Account(1, 1)})
    assert len(kv.batches) == 2
    block_keys = {k for k, _ in kv.batches[0]}
    exec_keys = {k for k, _ in kv.batches[1]}
    assert schema.meta_key(schema.Meta.COMMITTED_HEIGHT) in block_keys
    assert schema.meta_key(schema.Meta.EXECUTED_HEIGHT) in exec_keys
    assert schema.receipt_key(1, 0) in exec_keys


def test_a_block_result_from_the_executor_is_saved_whole() -> None:
    """save_block_result stores execute_block's receipts and StateWrites for its height."""
    chain = ChainStore(MemoryKV())
    chain.save_block(make_chain(1)[0])
    writes = StateWrites.from_changes({ALICE: Account(1, 5), BOB: Account(0, 0)})
    result = BlockResult(1, (receipt(1, 0),), writes, 21_000, 21_000 * 10**9, ())
    chain.save_block_result(result)
    assert chain.executed_height() == 1
    assert chain.get_receipts(1) == [receipt(1, 0)]
    assert chain.get_account(ALICE) == Account(1, 5)


def test_chain_store_is_a_state_reader() -> None:
    """get_account has the StateReader shape, so execution can read state from the store."""
    reader: StateReader = ChainStore(MemoryKV())
    assert reader.get_account(ALICE) == Account(0, 0)


def test_a_missing_car_or_a_corrupt_record_is_fatal() -> None:
    """Reading a block whose car is gone, or a record that does not decode, stops the node."""
    kv = MemoryKV()
    chain = ChainStore(kv)
    block = make_chain(1)[0]
    chain.save_block(block)
    car = block.cars[0]
    kv.delete(schema.car_key(car.lane, car.pos, car.digest))
    with pytest.raises(FatalError, match="missing car"):
        chain.get_block(1)
    kv.put(schema.account_key(ALICE), b"\x00")
    with pytest.raises(FatalError, match="corrupt account"):
        chain.get_account(ALICE)


def test_a_database_from_another_schema_version_is_refused() -> None:
    """Opening a store whose schema version differs from this node's is a FatalError."""
    kv = MemoryKV()
    ChainStore(kv)
    kv.put(schema.meta_key(schema.Meta.SCHEMA_VERSION), (99).to_bytes(8, "big"))
    with pytest.raises(FatalError, match="schema version 99"):
        ChainStore(kv)


def test_heights_survive_reopening_leveldb(tmp_path: Path) -> None:
    """Blocks and execution results saved to LevelDB are there after reopening it."""
    blocks = make_chain(3)
    with LevelDBKV(tmp_path) as kv:
        chain = ChainStore(kv)
        for block in blocks:
            chain.save_block(block, sync=True)
        chain.save_execution(1, [receipt(1, 0)], {ALICE: Account(1, 9)}, sync=True)
    with LevelDBKV(tmp_path) as kv:
        chain = ChainStore(kv)
        assert (chain.committed_height(), chain.executed_height()) == (3, 1)
        assert chain.get_blocks(1, 3) == blocks
        assert chain.get_account(ALICE) == Account(1, 9)


def lanes_block(height: int, parent: bytes, cars: tuple[Car, ...]) -> Block:
    return Block(height, height + 10, parent, bytes([height]) * 32, cars)


def test_each_block_records_every_lanes_last_ordered_car(kv: KeyValueStore) -> None:
    """The lane tips after a block are what ordering continues from after a state sync: a
    lane absent from a block keeps its earlier tip, a lane never seen has none."""
    store = ChainStore(kv)
    assert store.get_lane_tips(0) == {}
    a1 = Car.create(0, 1, ZERO_DIGEST, None, (b"a",), b"s" * 64)
    a2 = Car.create(0, 2, a1.digest, None, (b"b",), b"s" * 64)
    c1 = Car.create(2, 1, ZERO_DIGEST, None, (b"c",), b"s" * 64)
    first = lanes_block(1, ZERO_DIGEST, (a1, a2))
    second = lanes_block(2, first.digest, (c1,))
    store.save_block(first)
    store.save_block(second)
    assert store.get_lane_tips(1) == {0: (2, a2.digest)}
    assert store.get_lane_tips(2) == {0: (2, a2.digest), 2: (1, c1.digest)}
    assert store.get_lane_tips(3) is None  # not committed


def test_a_block_after_lost_lane_tips_is_refused() -> None:
    kv = MemoryKV()
    store = ChainStore(kv)
    blocks = make_chain(2)
    store.save_block(blocks[0])
    kv.write([(schema.lane_tips_key(1), None)])
    with pytest.raises(FatalError, match="lane tips of block 1 are missing"):
        store.save_block(blocks[1])
