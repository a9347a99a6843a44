"""Archive-backed reads equal hot-only reads: a node that sealed and pruned old heights
answers every read (blocks by height and hash, receipts, tx locations, balances at every
height, commitments) exactly like a node that kept everything in LevelDB."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from node.storage.archive import Archive
from node.storage.archiver import Archiver
from node.storage.chain_store import ChainStore
from node.storage.kv import LevelDBKV, MemoryKV
from tests.property.storage_chains import BlockSpec, apply_blocks, block_specs
from tests.unit.storage.history_helpers import ADDRESSES, Model

SHM = "/dev/shm"


@settings(max_examples=25, deadline=None)
@given(
    chunks=st.lists(st.lists(block_specs, max_size=8), min_size=1, max_size=6),
    hot_blocks=st.integers(1, 6),
    segment_blocks=st.integers(1, 7),
)
def test_archived_reads_equal_hot_reads(
    chunks: list[list[BlockSpec]], hot_blocks: int, segment_blocks: int
) -> None:
    """Blocks arrive in chunks with archiver steps in between; afterwards every read of
    the archiving node equals the same read of a node that never archived."""
    tmp = Path(tempfile.mkdtemp(prefix="archive-reads-", dir=SHM if os.path.isdir(SHM) else None))
    try:
        hot_only = ChainStore(MemoryKV())
        archived = ChainStore(LevelDBKV(tmp / "db", cache_bytes=1 << 20), Archive(tmp / "a"))
        archiver = Archiver(archived, hot_blocks=hot_blocks, segment_blocks=segment_blocks)
        hot_model, model = Model(), Model()
        for chunk in chunks:
            apply_blocks(hot_only, hot_model, chunk)
            apply_blocks(archived, model, chunk)
            archiver.step()
        while archiver.step().action != "idle":
            pass
        assert_same_reads(hot_only, archived, model)
        archived.kv.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def assert_same_reads(expected: ChainStore, actual: ChainStore, model: Model) -> None:
    top = expected.executed_height()
    assert actual.executed_height() == top
    for height in range(top + 1):
        block = expected.get_block(height)
        assert actual.get_block(height) == block
        if block is not None:
            assert actual.get_block_by_hash(block.digest) == block
        assert actual.get_receipts(height) == expected.get_receipts(height)
        assert actual.get_state_commitment(height) == expected.get_state_commitment(height)
        for address in ADDRESSES:
            assert actual.get_account_at(address, height) == model.account(address, height)
            assert actual.get_account_at(address, height) == expected.get_account_at(
                address, height
            )
    for tx_hash in model.receipts:
        assert actual.get_tx_location(tx_hash) == expected.get_tx_location(tx_hash)
        assert actual.get_receipt(tx_hash) == expected.get_receipt(tx_hash)
    assert actual.get_blocks(0, top + 5) == expected.get_blocks(0, top + 5)
    assert actual.get_receipt(b"\x42" * 32) is None
