"""Blocks, their commit QCs, receipts, the transaction index and current accounts.

Blocks are saved in height order, each in one batch with the committed height, so the stored
chain never has a gap: after a crash the node asks peers for the range
``committed_height() + 1 ..`` (range sync) and saves it here. Execution results of a block
(receipts, tx index, accounts) are saved in one batch with the executed height, so a crash
never leaves half a block executed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

from node.execution.executor import BlockResult, Receipt
from node.execution.state import EMPTY_ACCOUNT, Account
from node.storage import schema
from node.storage.kv import KeyValueStore
from node.storage.layout import U64_MAX
from node.storage.records import (
    BlockHeader,
    decode_account,
    decode_block_header,
    decode_height,
    decode_qc,
    decode_receipt,
    decode_tx_location,
    encode_account,
    encode_block_header,
    encode_height,
    encode_qc,
    encode_receipt,
    encode_tx_location,
)
from node.storage.schema import Meta, Table
from node.types.errors import FatalError, MalformedMessage
from node.types.messages import QC, Block, Car
from node.wire.codec import decode_message, encode_message

_T = TypeVar("_T")
Writes = list[tuple[bytes, bytes | None]]


class ChainStore:
    """The chain tables of ``kv``. Reads may run in other threads while one writer saves."""

    def __init__(self, kv: KeyValueStore) -> None:
        self.kv = kv
        self._check_schema_version()

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
        writes.append((schema.meta_key(Meta.COMMITTED_HEIGHT), encode_height(block.height)))
        self.kv.write(writes, sync=sync)

    def get_block(self, height: int) -> Block | None:
        header = self._get_header(height)
        return None if header is None else self._assemble(header)

    def get_block_by_hash(self, digest: bytes) -> Block | None:
        data = self.kv.get(schema.block_hash_key(digest))
        if data is None:
            return None
        return self.get_block(_decode(decode_height, data, "block hash index"))

    def get_blocks(self, first: int, last: int) -> list[Block]:
        """Saved blocks ``first..last`` in height order (what a range sync request is served)."""
        if last < first:
            return []
        start = schema.block_key(first)
        stop = schema.block_key(last + 1) if last < U64_MAX else schema.table_range(Table.BLOCK)[1]
        return [
            self._assemble(_decode(decode_block_header, data, "block header"))
            for _key, data in self.kv.iterate(start, stop)
        ]

    def get_commit_qc(self, slot: int) -> QC | None:
        data = self.kv.get(schema.commit_qc_key(slot))
        return None if data is None else _decode(decode_qc, data, f"commit QC of slot {slot}")

    def get_car(self, lane: int, pos: int, digest: bytes) -> Car | None:
        data = self.kv.get(schema.car_key(lane, pos, digest))
        return None if data is None else _decode(_decode_car, data, f"car {lane}/{pos}")

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
        or ``StateWrites``), atomically with the executed height. Heights must follow
        ``executed_height()`` one by one and not pass ``committed_height()``.
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
        writes += _account_writes(accounts.items() if isinstance(accounts, Mapping) else accounts)
        writes.append((schema.meta_key(Meta.EXECUTED_HEIGHT), encode_height(height)))
        self.kv.write(writes, sync=sync)

    def save_block_result(self, result: BlockResult, *, sync: bool = False) -> None:
        """``save_execution`` of what ``execute_block`` returned."""
        self.save_execution(result.height, result.receipts, result.writes, sync=sync)

    def get_tx_location(self, tx_hash: bytes) -> tuple[int, int] | None:
        """``(height, index)`` of an executed transaction."""
        data = self.kv.get(schema.tx_index_key(tx_hash))
        return None if data is None else _decode(decode_tx_location, data, "tx index")

    def get_receipt(self, tx_hash: bytes) -> Receipt | None:
        location = self.get_tx_location(tx_hash)
        if location is None:
            return None
        data = self.kv.get(schema.receipt_key(*location))
        if data is None:
            raise FatalError(f"tx index points at missing receipt {location}")
        return _decode(decode_receipt, data, f"receipt {location}")

    def get_receipts(self, height: int) -> list[Receipt]:
        """Every receipt of block ``height``, in transaction order."""
        start, stop = schema.receipt_height_range(height)
        return [_decode(decode_receipt, d, "receipt") for _k, d in self.kv.iterate(start, stop)]

    def get_account(self, address: bytes) -> Account:
        """Current nonce and balance; an address never written reads as ``Account(0, 0)``."""
        data = self.kv.get(schema.account_key(address))
        return EMPTY_ACCOUNT if data is None else _decode(decode_account, data, "account")

    def apply_genesis(self, accounts: Mapping[bytes, Account]) -> bool:
        """Write the genesis allocation once, atomically with a marker; False if already done."""
        if self._get_meta(Meta.GENESIS_APPLIED):
            return False
        writes = _account_writes(sorted(accounts.items()))
        writes.append((schema.meta_key(Meta.GENESIS_APPLIED), encode_height(1)))
        self.kv.write(writes, sync=True)
        return True

    # ------------------------------------------------------------ helpers

    def _get_meta(self, name: Meta) -> int:
        data = self.kv.get(schema.meta_key(name))
        return 0 if data is None else _decode(decode_height, data, f"meta {name.name}")

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

    def _assemble(self, header: BlockHeader) -> Block:
        cars = []
        for ref in header.cars:
            car = self.get_car(ref.lane, ref.pos, ref.digest)
            if car is None:
                raise FatalError(f"block {header.height} refers to missing car {ref}")
            cars.append(car)
        block = Block(header.height, header.slot, header.parent, header.cut_digest, tuple(cars))
        if block.digest != header.digest:
            raise FatalError(f"block {header.height} does not match its stored digest")
        return block

    def _check_already_saved(self, block: Block) -> None:
        header = self._get_header(block.height)
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


def _account_writes(accounts: Iterable[tuple[bytes, Account]]) -> Writes:
    # an empty account is deleted rather than stored: it reads the same and costs nothing
    return [
        (schema.account_key(address), None if a.is_empty else encode_account(a))
        for address, a in accounts
    ]


def _decode_car(data: bytes) -> Car:
    try:
        car = decode_message(data, max_size=len(data))
    except MalformedMessage as exc:
        raise ValueError(str(exc)) from exc
    if not isinstance(car, Car):
        raise ValueError(f"holds a {type(car).__name__}, not a car")
    return car


def _decode(decode: Callable[[bytes], _T], data: bytes, what: str) -> _T:
    try:
        return decode(data)
    except ValueError as exc:
        raise FatalError(f"corrupt {what} in the database: {exc}") from exc
