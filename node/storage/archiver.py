"""The archiver: moves heights older than the hot window out of LevelDB, one segment a step.

``Archiver.step()`` does at most one unit of work and says what it did:

- ``archive = "keep"``: seal the next ``segment_blocks`` heights into a segment file once
  they are all more than ``hot_blocks`` below the executed height (write temp, fsync,
  rename, fsync the directory, verify), then prune them from the hot tier;
- ``archive = "prune"``: prune the next ``segment_blocks`` heights without sealing them.

Pruning deletes a range's blocks, cars, commit QCs, receipts, tx index entries, execution
results and state history (keeping each key's newest version at or below the new floor),
in batches that each move ``Meta.PRUNED_HEIGHT`` with them, then compacts the pruned key
ranges: height-keyed tables at once, the tables whose keys are hashes (their pruned keys
are scattered, so the whole table is rewritten) once per ``hot_blocks`` pruned heights.
Every step is idempotent: after a crash anywhere, the next step finds the archive
ahead of the floor (sealed, not pruned) and prunes, or finds nothing sealed and seals again
(a leftover temp file is removed when the archive opens).

The archiver reads and deletes only heights below the floor it is about to set, and the
node writes only heights above the hot window, so ``step`` may run on a worker thread
while the node saves blocks and execution results.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from node.storage import history, schema
from node.storage.archive import Archive, verify_segment
from node.storage.chain_store import ChainStore
from node.storage.history import Writes
from node.storage.kv import KeyValueStore
from node.storage.records import (
    decode_block_header,
    decode_receipt,
    encode_height,
)
from node.storage.schema import Meta, Table
from node.storage.segment import BLOCK_INDEX, HeightRecord, StateVersion
from node.types.errors import FatalError

ArchiveMode = Literal["keep", "prune"]
ARCHIVE_MODES: Final = ("keep", "prune")
DEFAULT_SEGMENT_BLOCKS: Final = 100
PRUNE_BATCH_WRITES: Final = 50_000
"""Deletes per pruning batch: bounds the memory a batch holds (each batch moves the floor)."""


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one ``step`` did: ``idle``, ``sealed`` (and pruned) or ``pruned``, for which
    heights, and the floor of the hot tier afterwards."""

    action: Literal["idle", "sealed", "pruned"]
    first: int = 0
    last: int = -1
    hot_floor: int = 0
    archived_height: int | None = None


class Archiver:
    """Moves old heights of ``chain`` to ``chain.archive`` (keep) or drops them (prune)."""

    def __init__(
        self,
        chain: ChainStore,
        *,
        hot_blocks: int,
        mode: ArchiveMode = "keep",
        segment_blocks: int = DEFAULT_SEGMENT_BLOCKS,
        compact: bool = True,
    ) -> None:
        if mode not in ARCHIVE_MODES:
            raise ValueError(f"archive mode must be 'keep' or 'prune', got {mode!r}")
        if hot_blocks < 1 or segment_blocks < 1:
            raise ValueError("hot_blocks and segment_blocks must be at least 1")
        if mode == "keep" and chain.archive is None:
            raise ValueError("archive mode 'keep' needs a ChainStore with an Archive")
        self.chain = chain
        self.kv = chain.kv
        self.hot_blocks = hot_blocks
        self.mode = mode
        self.segment_blocks = segment_blocks
        self.compact = compact
        self._pruned_uncompacted = 0  # heights pruned since the scattered tables' compaction
        self._lock = threading.Lock()

    def step(self) -> StepResult:
        """Seal and/or prune at most one segment's worth of heights; see the module doc."""
        with self._lock:
            return self._step()

    def _step(self) -> StepResult:
        chain, archive = self.chain, self.chain.archive
        floor = chain.hot_floor()
        limit = chain.executed_height() - self.hot_blocks  # the newest height that may go
        if self.mode == "prune" or archive is None:
            last = floor + self.segment_blocks - 1
            if last > limit:
                return self._result("idle")
            self._prune(floor, last)
            return self._result("pruned", floor, last)
        first = archive.next_height()
        if first > floor:  # sealed before a crash or restart, not pruned yet
            self._check_sealed(archive, floor)
            self._prune(floor, first - 1)
            return self._result("pruned", floor, first - 1)
        if first < floor:
            raise FatalError(
                f"the hot tier was pruned up to height {floor - 1} but the archive at "
                f"{archive.directory} ends before height {first}: heights {first}..{floor - 1} "
                "are lost (archive = 'keep' needs the node to have archived from the start)"
            )
        last = first + self.segment_blocks - 1
        if last > limit:
            return self._result("idle")
        collector = _Collector(self.kv, first, last)
        archive.seal(first, last, collector.records(), collector.versions, collector.txs)
        self._prune(first, last)
        return self._result("sealed", first, last)

    def _result(
        self, action: Literal["idle", "sealed", "pruned"], first: int = 0, last: int = -1
    ) -> StepResult:
        return StepResult(action, first, last, self.chain.hot_floor(), self.chain.archived_height())

    def _check_sealed(self, archive: Archive, floor: int) -> None:
        for segment in archive.segments():
            if segment.last >= floor:
                problems = verify_segment(segment.path)
                if problems:
                    raise FatalError(f"sealed segment failed verification: {problems[0]}")

    # ------------------------------------------------------------ pruning

    def _prune(self, first: int, last: int) -> None:
        batch: Writes = []
        keys: list[bytes] = []
        start = first
        for height in range(first, last + 1):
            batch += self._height_deletes(height, keys)
            if len(batch) + len(keys) >= PRUNE_BATCH_WRITES or height == last:
                batch += history.prune_writes(self.kv, keys, height + 1)
                batch.append((schema.meta_key(Meta.PRUNED_HEIGHT), encode_height(height + 1)))
                self.kv.write(batch)
                if self.compact:
                    self._compact(start, height)
                batch, keys, start = [], [], height + 1

    def _height_deletes(self, height: int, keys: list[bytes]) -> Writes:
        """Deletions of everything ``height`` put in the hot tier except state history
        (pruned per key afterwards); appends the state keys it wrote to ``keys``."""
        kv = self.kv
        deletes: list[bytes] = [
            schema.exec_result_key(height),
            schema.state_changes_key(height),
            schema.lane_tips_key(height),
        ]
        keys += history.get_changed_keys(kv, height) or []
        header_bytes = kv.get(schema.block_key(height))
        if header_bytes is not None:
            header = decode_block_header(header_bytes)
            deletes += [
                schema.block_key(height),
                schema.block_hash_key(header.digest),
                schema.commit_qc_key(header.slot),
            ]
            deletes += [schema.car_key(c.lane, c.pos, c.digest) for c in header.cars]
        for key, data in kv.iterate(*schema.receipt_height_range(height)):
            deletes += [key, schema.tx_index_key(decode_receipt(data).tx_hash)]
        return [(key, None) for key in deletes]

    def _compact(self, first: int, last: int) -> None:
        # height-keyed tables: exactly the pruned span
        height_tables = (
            Table.BLOCK, Table.RECEIPT, Table.EXEC_RESULT, Table.STATE_CHANGES, Table.LANE_TIPS
        )
        for table in height_tables:
            self.kv.compact_range(*schema.height_range(table, first, last))
        # Tables keyed by hash, by state key or by lane have their pruned keys scattered, so
        # compacting them rewrites the whole table: about the hot window's size. Doing that
        # after every segment (each 100 heights) took a core's tenth per validator under load
        # and stalled its writes; once per hot window of pruned heights bounds the space held
        # by deleted keys to about one more hot window.
        self._pruned_uncompacted += last - first + 1
        if self._pruned_uncompacted < self.hot_blocks:
            return
        self._pruned_uncompacted = 0
        for table in (Table.BLOCK_HASH, Table.CAR, Table.COMMIT_QC, Table.TX_INDEX):
            self.kv.compact_range(*schema.table_range(table))
        self.kv.compact_range(*schema.table_range(Table.STATE_HISTORY))


class _Collector:
    """Reads heights ``first..last`` from the hot tier as segment records; ``versions`` and
    ``txs`` fill up while ``records()`` is consumed (``write_segment`` reads them after)."""

    def __init__(self, kv: KeyValueStore, first: int, last: int) -> None:
        self.kv = kv
        self.first, self.last = first, last
        self.versions: list[StateVersion] = []
        self.txs: list[tuple[bytes, int, int]] = []

    def records(self) -> Iterator[HeightRecord]:
        for height in range(self.first, self.last + 1):
            yield self._record(height)

    def _record(self, height: int) -> HeightRecord:
        kv = self.kv
        changes = history.get_changed_keys(kv, height)
        if changes is not None or height > 0:
            self.versions += [
                StateVersion(key, height, value) for key, value in history.get_versions(kv, height)
            ]
        commitment = kv.get(schema.exec_result_key(height))
        header_bytes = kv.get(schema.block_key(height))
        if header_bytes is None:
            if height > 0:
                raise FatalError(f"block {height} is missing from the hot tier while archiving")
            return HeightRecord(0, None, commitment=commitment)
        header = decode_block_header(header_bytes)
        cars = []
        for ref in header.cars:
            car = kv.get(schema.car_key(ref.lane, ref.pos, ref.digest))
            if car is None:
                raise FatalError(f"block {height} refers to a missing car while archiving")
            cars.append(car)
        receipts = [data for _key, data in kv.iterate(*schema.receipt_height_range(height))]
        self.txs += [(decode_receipt(d).tx_hash, height, i) for i, d in enumerate(receipts)]
        self.txs.append((header.digest, height, BLOCK_INDEX))
        return HeightRecord(
            height,
            header_bytes,
            tuple(cars),
            kv.get(schema.commit_qc_key(header.slot)),
            tuple(receipts),
            commitment,
        )


def directory_size(path: str | os.PathLike[str]) -> int:
    """Bytes in the files under ``path`` (a LevelDB directory or the archive)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).stat().st_size
            except FileNotFoundError:  # LevelDB removed a compacted table meanwhile
                continue
    return total
