"""Blocks, their commit QCs, receipts, the transaction index and current accounts.

Blocks are saved in height order, each in one batch with the committed height, so the stored
chain never has a gap: after a crash the node asks peers for the range
``committed_height() + 1 ..`` (range sync) and saves it here. Execution results of a block
(receipts, tx index, accounts, their history and the state commitment after the block) are
saved in one batch with the executed height, so a crash never leaves half a block executed.

Reads fall through tiers: the hot tier (this LevelDB) holds heights from ``hot_floor()``
on; below it an attached ``Archive`` answers (node/storage/archive.py) if it holds the
height, and otherwise the data is gone: blocks, receipts and locations read as None and
state reads raise ``PrunedError``. The archiver (node/storage/archiver.py) seals a range
before it prunes it, so a read that misses the hot tier because of a concurrent prune
finds the range in the archive.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

from node.execution.executor import BlockResult, Receipt
from node.execution.state import EMPTY_ACCOUNT, Account
from node.storage import history, schema
from node.storage.archive import Archive
from node.storage.codec import decode_car
from node.storage.history import PrunedError
from node.storage.kv import KeyValueStore
from node.storage.layout import U64_MAX
from node.storage.lthash import LtHash
from node.storage.records import (
    BlockHeader,
    LaneTips,
    advance_lane_tips,
    decode_account,
    decode_block_header,
    decode_commitment,
    decode_height,
    decode_lane_tips,
    decode_qc,
    decode_receipt,
    decode_tx_location,
    encode_block_header,
    encode_height,
    encode_lane_tips,
    encode_qc,
    encode_receipt,
    encode_tx_location,
)
from node.storage.schema import Meta, Table
from node.storage.segment import BLOCK_INDEX, HeightRecord
from node.storage.state_store import StateStore, account_changes
from node.types.errors import FatalError
from node.types.messages import QC, Block, Car
from node.wire.codec import encode_message

_T = TypeVar("_T")
Writes = list[tuple[bytes, bytes | None]]
CarLookup = Callable[[int, int, bytes], Car | None]


class ChainStore:
    """The chain tables of ``kv`` and, below the hot floor, of ``archive``.

    Reads may run in other threads while one thread saves blocks and one (possibly other)
    thread saves execution results; the archiver prunes from a third.
    """

    def __init__(self, kv: KeyValueStore, archive: Archive | None = None) -> None:
        self.kv = kv
        self.archive = archive
        self._check_schema_version()
        self.state = StateStore(kv)
        self._check_state_hash()

    # ------------------------------------------------------------ heights

    def committed_height(self) -> int:
        """Height of the last saved block (0: none)."""
        return self._get_meta(Meta.COMMITTED_HEIGHT)

    def executed_height(self) -> int:
        """Height of the last block whose execution results are saved (0: none)."""
        return self._get_meta(Meta.EXECUTED_HEIGHT)

    # ------------------------------------------------------------ blocks

    def save_block(self, block: Block, commit_qc: QC | None = None, *, sync: bool = False) -> None:
        """Save the next block (height ``committed_height() + 1``) with its cars and QC.

        Saving a block that is already stored is a no-op; a different block at a stored height,
        a gap, or a parent that is not the stored previous block is a ``FatalError``.
        """
        committed = self.committed_height()
        if block.height <= committed:
            self._check_already_saved(block)
            return
        if block.height != committed + 1:
            raise FatalError(
                f"block {block.height} cannot follow committed height {committed}: "
                "blocks are saved in order (fetch the gap by range sync first)"
            )
        self._check_parent(block)
        header = BlockHeader.of(block)
        writes: Writes = [
            (schema.block_key(block.height), encode_block_header(header)),
            (schema.block_hash_key(header.digest), encode_height(block.height)),
        ]
        writes += [(schema.car_key(c.lane, c.pos, c.digest), encode_message(c)) for c in block.cars]
        if commit_qc is not None:
            writes.append((schema.commit_qc_key(commit_qc.slot), encode_qc(commit_qc)))
        tips = advance_lane_tips(self._previous_lane_tips(block.height), block)
        writes.append((schema.lane_tips_key(block.height), encode_lane_tips(tips)))
        writes.append((schema.meta_key(Meta.COMMITTED_HEIGHT), encode_height(block.height)))
        self.kv.write(writes, sync=sync)

    def get_lane_tips(self, height: int) -> LaneTips | None:
        """Each lane's last ordered car (pos, digest) in the blocks up to ``height``: the
        ordering's lane positions after that block; {} for height 0; None if not held (a
        height not committed yet, or pruned from the hot tier)."""
        if height == 0:
            return {}
        data = self.kv.get(schema.lane_tips_key(height))
        return None if data is None else _decode(decode_lane_tips, data, f"lane tips {height}")

    def _previous_lane_tips(self, height: int) -> LaneTips:
        tips = self.get_lane_tips(height - 1)
        if tips is None:
            raise FatalError(
                f"the lane tips of block {height - 1} are missing: the database is "
                "inconsistent (restore it or resync the node)"
            )
        return tips

    def get_block(self, height: int) -> Block | None:
        """The block at ``height`` from either tier; None if not saved (or pruned)."""
        if height >= self.hot_floor():
            header = self._get_header(height)
            block = None if header is None else self._assemble(header, self._get_hot_car)
            if block is not None or height >= self.hot_floor():
                if header is not None and block is None:
                    raise FatalError(f"block {height} refers to a missing car")
                return block
            # pruned while we read it: the archive sealed it first
        record = self._get_archived(height)
        if record is None or record.header is None:
            return None
        header = _decode(decode_block_header, record.header, f"archived block {height}")
        cars = {(c.lane, c.pos, c.digest): c for c in (_archived_car(d) for d in record.cars)}
        block = self._assemble(header, lambda lane, pos, digest: cars.get((lane, pos, digest)))
        if block is None:
            raise FatalError(f"archived block {height} lacks one of its cars")
        return block

    def get_block_by_hash(self, digest: bytes) -> Block | None:
        data = self.kv.get(schema.block_hash_key(digest))
        if data is not None:
            return self.get_block(_decode(decode_height, data, "block hash index"))
        found = self.archive.find_tx(digest) if self.archive is not None else None
        if found is None or found[1] != BLOCK_INDEX:
            return None
        return self.get_block(found[0])

    def get_blocks(self, first: int, last: int) -> list[Block]:
        """Saved blocks ``first..last`` in height order (what a range sync request is served);
        the list stops before the first height this node does not hold."""
        first = max(first, 1)  # height 0 is genesis: it has no block
        if last < first:
            return []
        blocks: list[Block] = []
        floor = self.hot_floor()
        while first <= last and first < floor:
            block = self.get_block(first)
            if block is None:
                return blocks
            blocks.append(block)
            first += 1
        if first > last:
            return blocks
        start = schema.block_key(first)
        stop = schema.block_key(last + 1) if last < U64_MAX else schema.table_range(Table.BLOCK)[1]
        for _key, data in self.kv.iterate(start, stop):
            header = _decode(decode_block_header, data, "block header")
            block = self._assemble(header, self._get_hot_car)
            if block is None:  # pruned under the scan: read it the slow way
                block = self.get_block(header.height)
            if block is None:
                break
            blocks.append(block)
        return blocks

    def get_commit_qc(self, slot: int) -> QC | None:
        data = self.kv.get(schema.commit_qc_key(slot))
        return None if data is None else _decode(decode_qc, data, f"commit QC of slot {slot}")

    def get_car(self, lane: int, pos: int, digest: bytes) -> Car | None:
        """A car of a hot block (archived cars are read with their block)."""
        return self._get_hot_car(lane, pos, digest)

    def _get_hot_car(self, lane: int, pos: int, digest: bytes) -> Car | None:
        data = self.kv.get(schema.car_key(lane, pos, digest))
        return None if data is None else _decode(decode_car, data, f"car {lane}/{pos}")

    # ------------------------------------------------------------ execution results

    def save_execution(
        self,
        height: int,
        receipts: Sequence[Receipt],
        accounts: Mapping[bytes, Account] | Iterable[tuple[bytes, Account]],
        *,
        sync: bool = False,
    ) -> None:
        """Save block ``height``'s receipts (indexed by tx hash) and account writes (a mapping
        or ``StateWrites``) with their history and the state commitment after the block,
        atomically with the executed height. Heights must follow ``executed_height()`` one
        by one and not pass ``committed_height()``.

        Cost: ~10 µs per account write (two 2 KiB BLAKE3 outputs for the LtHash, one read
        of the old value) plus ~3 µs per receipt; safe to run on a worker thread while the
        event loop saves blocks and serves reads.
        """
        executed, committed = self.executed_height(), self.committed_height()
        if height != executed + 1 or height > committed:
            raise FatalError(
                f"execution of block {height} cannot be saved at executed height {executed} "
                f"and committed height {committed}"
            )
        writes: Writes = []
        for i, receipt in enumerate(receipts):
            if receipt.height != height or receipt.index != i:
                raise ValueError(
                    f"receipt {i} of block {height} says height {receipt.height} "
                    f"index {receipt.index}"
                )
            writes.append((schema.receipt_key(height, i), encode_receipt(receipt)))
            writes.append((schema.tx_index_key(receipt.tx_hash), encode_tx_location(height, i)))
        items = accounts.items() if isinstance(accounts, Mapping) else accounts
        state_writes, lthash = self.state.execution_writes(height, account_changes(items))
        writes += state_writes
        writes.append((schema.meta_key(Meta.EXECUTED_HEIGHT), encode_height(height)))
        self.kv.write(writes, sync=sync)
        self.state.advance(height, lthash)

    def save_block_result(self, result: BlockResult, *, sync: bool = False) -> None:
        """``save_execution`` of what ``execute_block`` returned."""
        self.save_execution(result.height, result.receipts, result.writes, sync=sync)

    def get_tx_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        """``(height, index)`` of an executed transaction."""
        data = self.kv.get(schema.tx_index_key(tx_hash))
        if data is not None:
            return _decode(decode_tx_location, data, "tx index")
        found = self.archive.find_tx(tx_hash) if self.archive is not None else None
        return None if found is None or found[1] == BLOCK_INDEX else found

    def get_receipt(self, tx_hash: bytes) -> Receipt | None:
        location = self.get_tx_location(tx_hash)
        if location is None:
            return None
        height, index = location
        data = self.kv.get(schema.receipt_key(height, index))
        if data is None:
            record = self._get_archived(height) if height < self.hot_floor() else None
            if record is None or index >= len(record.receipts):
                raise FatalError(f"tx index points at missing receipt {location}")
            data = record.receipts[index]
        return _decode(decode_receipt, data, f"receipt {location}")

    def get_receipts(self, height: int) -> list[Receipt]:
        """Every receipt of block ``height``, in transaction order ([] if not held)."""
        if height >= self.hot_floor():
            start, stop = schema.receipt_height_range(height)
            found = [d for _k, d in self.kv.iterate(start, stop)]
            if found or height >= self.hot_floor():
                return [_decode(decode_receipt, d, "receipt") for d in found]
        record = self._get_archived(height)
        receipts = () if record is None else record.receipts
        return [_decode(decode_receipt, d, "archived receipt") for d in receipts]

    def get_account(self, address: bytes) -> Account:
        """Current nonce and balance; an address never written reads as ``Account(0, 0)``."""
        data = self.kv.get(schema.account_key(address))
        return EMPTY_ACCOUNT if data is None else _decode(decode_account, data, "account")

    def get_account_at(self, address: bytes, height: int) -> Account:
        """Nonce and balance after block ``height`` (0: genesis), from either tier.

        ``PrunedError`` below the earliest height this node still holds state for;
        ``ValueError`` above the executed height.
        """
        data = self.get_state_at(schema.account_key(address), height)
        return EMPTY_ACCOUNT if data is None else _decode(decode_account, data, "account")

    def get_state_at(self, state_key: bytes, height: int) -> bytes | None:
        """The value of ``state_key`` after block ``height`` (None: absent); see
        ``get_account_at``."""
        executed = self.executed_height()
        if height > executed or height < 0:
            raise ValueError(f"state at height {height}: executed height is {executed}")
        if height == executed:
            value = self.kv.get(state_key)
            if self.executed_height() == height:  # no block saved under the read
                return value
        if height >= self.hot_floor():
            _found, value = history.get_version(self.kv, state_key, height)
            if height >= self.hot_floor():  # the version read was not pruned under us
                return value
        if self.archive is not None and self.archive.covers(height):
            return self.archive.get_state(state_key, height)
        raise PrunedError("state", height, self.earliest_state_height())

    def get_state_commitment(self, height: int) -> bytes | None:
        """The 32-byte state commitment (LtHash digest) after block ``height``; None if the
        block is not executed, ``PrunedError`` if this node no longer holds it."""
        if height > self.executed_height():
            return None
        data = self.kv.get(schema.exec_result_key(height))
        if data is None and height < self.hot_floor():
            record = self._get_archived(height)
            if record is None:
                raise PrunedError("state commitment", height, self.earliest_state_height())
            data = record.commitment
        if data is None:
            return None
        return _decode(decode_commitment, data, f"execution result {height}")

    def state_lthash(self) -> LtHash:
        """The LtHash of the current state (after ``executed_height()``)."""
        return self.state.lthash()

    def compute_state_lthash(self) -> tuple[int, LtHash]:
        """``(height, LtHash)`` recomputed from scratch over the current-state table: what a
        snapshot or an audit checks against ``get_state_commitment(height)``. Slow (a scan
        and two hashes per account); call it from a worker thread."""
        while True:
            height = self.executed_height()
            lthash = LtHash.of(self.kv.iterate(*schema.table_range(Table.ACCOUNT)))
            if self.executed_height() == height:  # no block was saved under the scan
                return height, lthash

    # ------------------------------------------------------------ tiers

    def hot_floor(self) -> int:
        """The lowest height the hot tier holds; everything below was pruned from it."""
        return self._get_meta(Meta.PRUNED_HEIGHT)

    def archived_height(self) -> int | None:
        """The last height sealed in the attached archive (None: none)."""
        return None if self.archive is None else self.archive.last_height()

    def earliest_state_height(self) -> int:
        """The lowest height whose state this node can still read."""
        floor = self.hot_floor()
        archived = self.archived_height()
        return 0 if archived is not None and archived + 1 >= floor else floor

    def _get_archived(self, height: int) -> HeightRecord | None:
        return None if self.archive is None else self.archive.get_height(height)

    def apply_genesis(self, accounts: Mapping[bytes, Account]) -> bool:
        """Write the genesis allocation once as the state at height 0 (with its history and
        commitment), atomically with a marker; False if already done."""
        if self._get_meta(Meta.GENESIS_APPLIED):
            return False
        if self.executed_height() != 0:
            raise FatalError("genesis cannot be applied to a store that executed blocks")
        writes, lthash = self.state.execution_writes(0, account_changes(sorted(accounts.items())))
        writes.append((schema.meta_key(Meta.GENESIS_APPLIED), encode_height(1)))
        self.kv.write(writes, sync=True)
        self.state.advance(0, lthash)
        return True

    # ------------------------------------------------------------ helpers

    def _get_meta(self, name: Meta) -> int:
        data = self.kv.get(schema.meta_key(name))
        return 0 if data is None else _decode(decode_height, data, f"meta {name.name}")

    def _check_state_hash(self) -> None:
        hashed, executed = self.state.hashed_height(), self.executed_height()
        expected = executed if executed or self._get_meta(Meta.GENESIS_APPLIED) else None
        if hashed != expected:
            raise FatalError(
                f"the state hash is of height {hashed} but the executed height is {executed}: "
                "the database is inconsistent (restore it or resync the node)"
            )

    def _check_schema_version(self) -> None:
        version = self._get_meta(Meta.SCHEMA_VERSION)
        if version == 0:
            key = schema.meta_key(Meta.SCHEMA_VERSION)
            self.kv.write([(key, encode_height(schema.SCHEMA_VERSION))], sync=True)
        elif version != schema.SCHEMA_VERSION:
            raise FatalError(
                f"database has storage schema version {version}, this node reads version "
                f"{schema.SCHEMA_VERSION}"
            )

    def _get_header(self, height: int) -> BlockHeader | None:
        data = self.kv.get(schema.block_key(height))
        return None if data is None else _decode(decode_block_header, data, f"block {height}")

    def _assemble(self, header: BlockHeader, get_car: CarLookup) -> Block | None:
        """The block of ``header`` with its cars, or None if one of them is missing."""
        cars = []
        for ref in header.cars:
            car = get_car(ref.lane, ref.pos, ref.digest)
            if car is None:
                return None
            cars.append(car)
        block = Block(header.height, header.slot, header.parent, header.cut_digest, tuple(cars))
        if block.digest != header.digest:
            raise FatalError(f"block {header.height} does not match its stored digest")
        return block

    def _check_already_saved(self, block: Block) -> None:
        header = self._get_header(block.height)
        if header is None and block.height < self.hot_floor():
            saved = self.get_block(block.height)
            header = None if saved is None else BlockHeader.of(saved)
            if header is None:
                return  # pruned with no archive: nothing left to compare with
        if header is None:
            raise FatalError(f"block {block.height} is missing below the committed height")
        if header.digest != block.digest:
            raise FatalError(
                f"a different block is already saved at height {block.height}: the chain forked"
            )

    def _check_parent(self, block: Block) -> None:
        previous = self._get_header(block.height - 1) if block.height > 1 else None
        if previous is not None and previous.digest != block.parent:
            raise FatalError(
                f"block {block.height} does not extend the saved block {block.height - 1}"
            )


def _archived_car(data: bytes) -> Car:
    return _decode(decode_car, data, "archived car")


def _decode(decode: Callable[[bytes], _T], data: bytes, what: str) -> _T:
    try:
        return decode(data)
    except ValueError as exc:
        raise FatalError(f"corrupt {what} in the database: {exc}") from exc
