"""Versioned reads equal a plain model: through blocks, pruning steps (keep or prune mode)
and reopening the database, every balance at every height the node still holds reads as
the model's state at that height, and every height below raises PrunedError."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from node.storage.archive import Archive
from node.storage.archiver import Archiver
from node.storage.chain_store import ChainStore
from node.storage.history import PrunedError
from node.storage.kv import LevelDBKV
from tests.property.storage_chains import BlockSpec, apply_blocks, block_specs
from tests.unit.storage.history_helpers import ADDRESSES, Model

SHM = "/dev/shm"


class VersionedState(RuleBasedStateMachine):
    """A ChainStore on LevelDB driven by blocks, archiver steps and reopenings."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(
            tempfile.mkdtemp(prefix="versioned-", dir=SHM if os.path.isdir(SHM) else None)
        )
        self.model = Model()
        self.mode = "keep"
        self.hot_blocks = 1
        self.chain = self._open()

    def _open(self) -> ChainStore:
        archive = Archive(self.dir / "archive") if self.mode == "keep" else None
        return ChainStore(LevelDBKV(self.dir / "db", cache_bytes=1 << 20), archive)

    @initialize(mode=st.sampled_from(["keep", "prune"]), hot_blocks=st.integers(1, 4))
    def configure(self, mode: str, hot_blocks: int) -> None:
        self.mode, self.hot_blocks = mode, hot_blocks
        self.chain.kv.close()
        self.chain = self._open()

    @rule(specs=st.lists(block_specs, min_size=1, max_size=5))
    def execute_blocks(self, specs: list[BlockSpec]) -> None:
        apply_blocks(self.chain, self.model, specs)

    @rule(segment_blocks=st.integers(1, 5))
    def archive_step(self, segment_blocks: int) -> None:
        archiver = Archiver(
            self.chain,
            hot_blocks=self.hot_blocks,
            mode=self.mode,  # type: ignore[arg-type]
            segment_blocks=segment_blocks,
            compact=False,
        )
        archiver.step()

    @rule()
    def reopen(self) -> None:
        self.chain.kv.close()
        self.chain = self._open()

    @invariant()
    def reads_match_the_model(self) -> None:
        if not self.model.states:
            return
        earliest = self.chain.earliest_state_height()
        for height in range(len(self.model.states)):
            for address in ADDRESSES[:5]:
                if height < earliest:
                    with pytest.raises(PrunedError):
                        self.chain.get_account_at(address, height)
                else:
                    expected = self.model.account(address, height)
                    assert self.chain.get_account_at(address, height) == expected
        if self.mode == "keep":
            assert earliest == 0
        for address in ADDRESSES:
            assert self.chain.get_account(address) == self.model.account(address, -1)

    def teardown(self) -> None:
        self.chain.kv.close()
        shutil.rmtree(self.dir, ignore_errors=True)


VersionedState.TestCase.settings = settings(
    max_examples=30, stateful_step_count=25, deadline=None
)
test_versioned_reads_match_the_model = VersionedState.TestCase
