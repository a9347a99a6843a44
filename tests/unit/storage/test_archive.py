"""The archive tier: the archiver seals old heights into segment files and prunes them from
LevelDB, reads fall through to the segments unchanged, a prune-mode node drops them with a
clear error, and damaged or interrupted archives are caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.execution.state import Account
from node.storage import schema
from node.storage.archive import Archive, segment_name, verify_segment
from node.storage.archiver import Archiver
from node.storage.chain_store import ChainStore
from node.storage.history import PrunedError
from node.storage.kv import LevelDBKV, MemoryKV
from node.storage.schema import Table
from node.types.errors import FatalError
from tests.unit.storage.history_helpers import ADDRESSES, Model, grow
from tests.unit.storage.test_chain_store import make_chain

HEIGHT_TABLES = (Table.BLOCK, Table.RECEIPT, Table.EXEC_RESULT, Table.STATE_CHANGES)


def archived_chain(tmp_path: Path, blocks: int = 40, hot: int = 8, segment: int = 10) -> tuple[
    ChainStore, Model, Archiver
]:
    chain = ChainStore(LevelDBKV(tmp_path / "db"), Archive(tmp_path / "archive"))
    model = Model()
    grow(chain, model, blocks)
    archiver = Archiver(chain, hot_blocks=hot, segment_blocks=segment)
    while archiver.step().action != "idle":
        pass
    return chain, model, archiver


def lowest_key_height(chain: ChainStore, table: Table) -> int | None:
    for key, _value in chain.kv.iterate(*schema.table_range(table)):
        return int.from_bytes(key[1:9], "big")
    return None


def test_old_heights_move_to_segments_and_read_back_unchanged(tmp_path: Path) -> None:
    """After archiving 40 blocks with an 8-block hot window, every block (by height and
    hash), receipt, tx location and historical balance reads as before."""
    chain, model, _ = archived_chain(tmp_path)
    assert chain.archived_height() == 29 and chain.hot_floor() == 30
    assert [s.path.name for s in chain.archive.segments()] == [  # type: ignore[union-attr]
        segment_name(0, 9),
        segment_name(10, 19),
        segment_name(20, 29),
    ]
    blocks = make_chain(40)
    for block in blocks:
        assert chain.get_block(block.height) == block
        assert chain.get_block_by_hash(block.digest) == block
    assert chain.get_blocks(5, 35) == blocks[4:35]
    for tx_hash, receipt in model.receipts.items():
        assert chain.get_receipt(tx_hash) == receipt
        assert chain.get_tx_location(tx_hash) == (receipt.height, receipt.index)
        assert receipt in chain.get_receipts(receipt.height)
    for height in range(41):
        for address in ADDRESSES:
            assert chain.get_account_at(address, height) == model.account(address, height)
    assert chain.earliest_state_height() == 0
    assert chain.get_state_commitment(3) is not None


def test_the_hot_tier_keeps_only_recent_heights(tmp_path: Path) -> None:
    """Below the hot floor, LevelDB holds no block, receipt, result or change row, no car
    or tx index entry of a pruned block, and at most one history version per key."""
    chain, _model, _ = archived_chain(tmp_path)
    for table in HEIGHT_TABLES:
        assert lowest_key_height(chain, table) == 30
    pruned = make_chain(29)
    assert all(chain.get_car(c.lane, c.pos, c.digest) is None for b in pruned for c in b.cars)
    assert chain.kv.get(schema.block_hash_key(pruned[0].digest)) is None
    below = [
        schema.decode_state_history_key(k)
        for k, _v in chain.kv.iterate(*schema.table_range(Table.STATE_HISTORY))
    ]
    old_keys = [key for key, height in below if height < 30]
    assert len(old_keys) == len(set(old_keys))


def test_nothing_is_archived_inside_the_hot_window(tmp_path: Path) -> None:
    """The archiver idles until a whole segment can leave with the last hot_blocks executed
    heights still hot (heights 0..9 with 8 hot blocks: executed height 17)."""
    chain = ChainStore(LevelDBKV(tmp_path / "db"), Archive(tmp_path / "archive"))
    model = Model()
    grow(chain, model, 16)
    archiver = Archiver(chain, hot_blocks=8, segment_blocks=10)
    assert archiver.step().action == "idle"
    grow(chain, model, 1)
    result = archiver.step()
    assert (result.action, result.first, result.last, result.hot_floor) == ("sealed", 0, 9, 10)


def test_prune_mode_drops_old_heights_with_a_clear_error(tmp_path: Path) -> None:
    """archive = prune: no segment is written; pruned blocks and receipts read as absent and
    state reads below the floor raise PrunedError; newer heights read normally."""
    chain = ChainStore(LevelDBKV(tmp_path / "db"))
    model = Model()
    grow(chain, model, 30)
    archiver = Archiver(chain, hot_blocks=5, mode="prune", segment_blocks=10)
    actions = [archiver.step().action for _ in range(3)]
    assert actions == ["pruned", "pruned", "idle"]
    assert chain.hot_floor() == 20
    assert chain.get_block(19) is None and chain.get_block(20) == make_chain(20)[19]
    old = [r for r in model.receipts.values() if r.height < 20]
    assert old and all(chain.get_receipt(r.tx_hash) is None for r in old)
    with pytest.raises(PrunedError, match="from height 20 on"):
        chain.get_account_at(ADDRESSES[0], 19)
    for address in ADDRESSES:
        assert chain.get_account_at(address, 20) == model.account(address, 20)


def test_a_seal_interrupted_before_pruning_is_finished_by_the_next_step(tmp_path: Path) -> None:
    """A crash after the segment was renamed into place but before the hot tier was pruned:
    the next step verifies the segment and prunes, and reads stay correct throughout."""
    chain = ChainStore(LevelDBKV(tmp_path / "db"), Archive(tmp_path / "archive"))
    model = Model()
    grow(chain, model, 25)
    archiver = Archiver(chain, hot_blocks=5, segment_blocks=10)
    archiver._prune = lambda first, last: None  # type: ignore[method-assign]  # "crash"
    assert archiver.step().action == "sealed"
    assert chain.hot_floor() == 0 and chain.archived_height() == 9
    restarted = Archiver(chain, hot_blocks=5, segment_blocks=10)
    result = restarted.step()
    assert (result.action, result.first, result.last, result.hot_floor) == ("pruned", 0, 9, 10)
    assert chain.get_account_at(ADDRESSES[0], 3) == model.account(ADDRESSES[0], 3)


def test_a_leftover_temp_file_is_removed_and_the_range_sealed_again(tmp_path: Path) -> None:
    """A crash while writing leaves .tmp-*; opening the archive removes it and the next
    step seals the same range from the hot tier."""
    chain = ChainStore(LevelDBKV(tmp_path / "db"), Archive(tmp_path / "archive"))
    grow(chain, Model(), 20)
    (tmp_path / "archive" / (".tmp-" + segment_name(0, 9))).write_bytes(b"half a segme")
    chain.archive = Archive(tmp_path / "archive")
    assert not list((tmp_path / "archive").glob(".tmp-*"))
    assert Archiver(chain, hot_blocks=5, segment_blocks=10).step().action == "sealed"


def test_a_changed_byte_fails_verification(tmp_path: Path) -> None:
    """Flipping one byte inside a sealed segment is reported as a checksum mismatch."""
    archived_chain(tmp_path, blocks=25, hot=5, segment=10)
    path = tmp_path / "archive" / segment_name(10, 19)
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))
    problems = verify_segment(path)
    assert problems and "checksum mismatch" in problems[0]
    assert verify_segment(tmp_path / "archive" / segment_name(0, 9)) == []


def test_a_truncated_or_missing_segment_stops_the_node(tmp_path: Path) -> None:
    """Opening an archive with a truncated segment or a gap in heights is a FatalError that
    points the operator at `lanenet archive verify`."""
    archived_chain(tmp_path, blocks=35, hot=5, segment=10)
    directory = tmp_path / "archive"
    (directory / segment_name(10, 19)).unlink()
    with pytest.raises(FatalError, match="gap before segment 000000000020"):
        Archive(directory)
    last = directory / segment_name(20, 29)
    last.write_bytes(last.read_bytes()[:-10])
    with pytest.raises(FatalError, match="archive verify"):
        Archive(directory)


def test_keep_mode_refuses_an_archive_that_misses_pruned_heights(tmp_path: Path) -> None:
    """Switching a pruned node to archive = keep cannot recover dropped heights: the
    archiver says which heights are lost instead of sealing a gap."""
    chain = ChainStore(LevelDBKV(tmp_path / "db"), Archive(tmp_path / "archive"))
    grow(chain, Model(), 30)
    Archiver(chain, hot_blocks=5, mode="prune", segment_blocks=10).step()
    with pytest.raises(FatalError, match=r"heights 0\.\.9 are lost"):
        Archiver(chain, hot_blocks=5, segment_blocks=10).step()


def test_redelivering_an_archived_block_is_still_checked(tmp_path: Path) -> None:
    """Saving an old block again compares it with the archived one: equal is a no-op, a
    different block at that height is a fork."""
    chain, _model, _ = archived_chain(tmp_path, blocks=25, hot=5, segment=10)
    chain.save_block(make_chain(3)[2])
    with pytest.raises(FatalError, match="forked"):
        chain.save_block(make_chain(3, lanes=3)[2])


def test_archiver_arguments_are_checked() -> None:
    """A bad mode, a zero window or keep without an archive is a ValueError."""
    chain = ChainStore(MemoryKV())
    with pytest.raises(ValueError, match="keep"):
        Archiver(chain, hot_blocks=5, mode="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 1"):
        Archiver(chain, hot_blocks=0, mode="prune")
    with pytest.raises(ValueError, match="needs a ChainStore with an Archive"):
        Archiver(chain, hot_blocks=5)


def test_an_emptied_account_stays_empty_after_its_history_is_pruned(tmp_path: Path) -> None:
    """A deletion below the floor is dropped with the versions it hid: the account still
    reads as empty at every height the hot tier serves."""
    chain = ChainStore(LevelDBKV(tmp_path / "db"))
    chain.apply_genesis({ADDRESSES[0]: Account(0, 9)})
    for block in make_chain(12):
        chain.save_block(block)
        writes = {ADDRESSES[0]: Account(0, 0)} if block.height == 2 else {}
        chain.save_execution(block.height, [], writes)
    Archiver(chain, hot_blocks=2, mode="prune", segment_blocks=5).step()
    assert chain.get_account_at(ADDRESSES[0], 5) == Account(0, 0)
    assert list(chain.kv.iterate(*schema.table_range(Table.STATE_HISTORY))) == []


class CompactionLog(LevelDBKV):
    """LevelDB that records every range it is asked to compact."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.compacted: list[tuple[bytes, bytes]] = []

    def compact_range(self, start: bytes, stop: bytes) -> None:
        self.compacted.append((start, stop))
        super().compact_range(start, stop)


def test_hash_keyed_tables_are_compacted_once_per_hot_window_not_per_segment(
    tmp_path: Path,
) -> None:
    """Compacting a table keyed by hash rewrites all of it, so it happens once per hot
    window of pruned heights; the pruned span of height-keyed tables is compacted at once."""
    kv = CompactionLog(tmp_path / "db")
    chain = ChainStore(kv, Archive(tmp_path / "archive"))
    grow(chain, Model(), 60)
    archiver = Archiver(chain, hot_blocks=25, segment_blocks=5)
    while archiver.step().action != "idle":
        pass
    assert chain.hot_floor() == 35  # 7 segments pruned
    whole_tx_index = kv.compacted.count(schema.table_range(Table.TX_INDEX))
    block_spans = [r for r in kv.compacted if r[0][:1] == schema.table_range(Table.BLOCK)[0][:1]]
    assert len(block_spans) == 7
    assert whole_tx_index == 1  # after 25 of the 35 pruned heights
    assert chain.get_block(35) is not None and chain.get_block(34) is not None  # archived
    chain.kv.close()
