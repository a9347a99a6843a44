"""Stored chain records and their fixed byte layouts: block headers with car references,
commit QCs, receipts, transaction locations and accounts (the last two are execution's
values, node/execution).

Pure. Encoders raise ``ValueError`` for a field that does not fit its width; decoders raise
``ValueError`` for bytes that are not a record of that kind (on disk: corruption).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from node.execution.executor import Receipt
from node.execution.state import Account
from node.storage.layout import (
    Reader,
    pack_fixed,
    pack_u8,
    pack_u32,
    pack_u64,
    pack_u256,
    pack_var,
)
from node.storage.schema import ADDRESS_SIZE, DIGEST_SIZE
from node.types.messages import QC, Block, MsgKind

RECEIPT_FORMAT: Final = 1
"""First byte of a stored receipt, so the layout can grow without a migration."""


@dataclass(frozen=True, slots=True)
class CarRef:
    """Where a block's car lives in the CAR table."""

    lane: int
    pos: int
    digest: bytes


@dataclass(frozen=True, slots=True)
class BlockHeader:
    """A block without its cars: what the BLOCK table holds (cars are stored once, by ref).

    ``digest`` is the block's digest, kept so the parent link and the hash index can be
    checked without loading cars, and so a reassembled block can be checked against it.
    """

    height: int
    slot: int
    parent: bytes
    cut_digest: bytes
    cars: tuple[CarRef, ...]
    digest: bytes

    @staticmethod
    def of(block: Block) -> BlockHeader:
        refs = tuple(CarRef(c.lane, c.pos, c.digest) for c in block.cars)
        return BlockHeader(
            block.height, block.slot, block.parent, block.cut_digest, refs, block.digest
        )


_CAR_REF_SIZE: Final = 4 + 8 + DIGEST_SIZE


def encode_block_header(header: BlockHeader) -> bytes:
    refs = b"".join(
        pack_u32(c.lane) + pack_u64(c.pos) + pack_fixed(c.digest, DIGEST_SIZE, "car digest")
        for c in header.cars
    )
    return (
        pack_u64(header.height)
        + pack_u64(header.slot)
        + pack_fixed(header.parent, DIGEST_SIZE, "parent")
        + pack_fixed(header.cut_digest, DIGEST_SIZE, "cut digest")
        + pack_fixed(header.digest, DIGEST_SIZE, "block digest")
        + pack_u32(len(header.cars))
        + refs
    )


def decode_block_header(data: bytes) -> BlockHeader:
    r = Reader(data, "block header")
    height, slot = r.u64(), r.u64()
    parent, cut_digest, digest = r.take(DIGEST_SIZE), r.take(DIGEST_SIZE), r.take(DIGEST_SIZE)
    n = r.count(_CAR_REF_SIZE)
    cars = tuple(CarRef(r.u32(), r.u64(), r.take(DIGEST_SIZE)) for _ in range(n))
    r.finish()
    return BlockHeader(height, slot, parent, cut_digest, cars, digest)


def encode_qc(qc: QC) -> bytes:
    if len(qc.signers) != len(qc.signatures):
        raise ValueError(f"QC with {len(qc.signers)} signers and {len(qc.signatures)} signatures")
    return (
        pack_u8(qc.phase)
        + pack_u64(qc.slot)
        + pack_u64(qc.view)
        + pack_fixed(qc.cut_digest, DIGEST_SIZE, "cut digest")
        + pack_u32(len(qc.signers))
        + b"".join(pack_u32(s) for s in qc.signers)
        + b"".join(pack_var(s) for s in qc.signatures)
    )


def decode_qc(data: bytes) -> QC:
    r = Reader(data, "QC")
    phase = MsgKind(r.u8())
    slot, view, cut_digest = r.u64(), r.u64(), r.take(DIGEST_SIZE)
    n = r.count(4 + 4)
    signers = tuple(r.u32() for _ in range(n))
    signatures = tuple(r.var() for _ in range(n))
    r.finish()
    return QC(phase, slot, view, cut_digest, signers, signatures)


_RECEIPT_HEAD: Final = struct.Struct(">B32sQIBQQ")


def encode_receipt(receipt: Receipt) -> bytes:
    # struct in one call: this runs for every transaction of every block (save_execution)
    to = b"" if receipt.to is None else pack_fixed(receipt.to, ADDRESS_SIZE, "to")
    try:
        head = _RECEIPT_HEAD.pack(
            RECEIPT_FORMAT,
            pack_fixed(receipt.tx_hash, DIGEST_SIZE, "tx hash"),
            receipt.height,
            receipt.index,
            receipt.status,
            receipt.gas_used,
            receipt.cumulative_gas_used,
        )
    except struct.error as exc:
        raise ValueError(f"receipt field does not fit: {exc}") from exc
    return (
        head
        + pack_u256(receipt.effective_gas_price)
        + pack_fixed(receipt.sender, ADDRESS_SIZE, "sender")
        + bytes((len(to),))
        + to
    )


def decode_receipt(data: bytes) -> Receipt:
    r = Reader(data, "receipt")
    if (version := r.u8()) != RECEIPT_FORMAT:
        raise ValueError(f"receipt: unknown format {version}")
    tx_hash, height, index, status = r.take(DIGEST_SIZE), r.u64(), r.u32(), r.u8()
    gas_used, cumulative, price = r.u64(), r.u64(), r.u256()
    sender = r.take(ADDRESS_SIZE)
    to_size = r.u8()
    if to_size not in (0, ADDRESS_SIZE):
        raise ValueError(f"receipt: 'to' of {to_size} bytes")
    to = r.take(to_size) if to_size else None
    r.finish()
    return Receipt(
        tx_hash=tx_hash,
        index=index,
        status=status,
        gas_used=gas_used,
        cumulative_gas_used=cumulative,
        effective_gas_price=price,
        sender=sender,
        to=to,
        height=height,
    )


def encode_tx_location(height: int, index: int) -> bytes:
    return pack_u64(height) + pack_u32(index)


def decode_tx_location(data: bytes) -> tuple[int, int]:
    r = Reader(data, "tx location")
    location = r.u64(), r.u32()
    r.finish()
    return location


def encode_account(account: Account) -> bytes:
    try:  # to_bytes checks the range itself; this runs for every state write
        return account.nonce.to_bytes(8, "big") + account.balance.to_bytes(32, "big")
    except OverflowError as exc:
        raise ValueError(f"account {account} does not fit nonce u64, balance u256") from exc


def decode_account(data: bytes) -> Account:
    r = Reader(data, "account")
    account = Account(r.u64(), r.u256())
    r.finish()
    return account


def encode_height(height: int) -> bytes:
    return pack_u64(height)


def decode_height(data: bytes) -> int:
    r = Reader(data, "height")
    height = r.u64()
    r.finish()
    return height


EXEC_RESULT_FORMAT: Final = 1


def encode_commitment(digest: bytes) -> bytes:
    """An EXEC_RESULT value: the state commitment (LtHash digest) after a block."""
    return pack_u8(EXEC_RESULT_FORMAT) + pack_fixed(digest, DIGEST_SIZE, "state commitment")


def decode_commitment(data: bytes) -> bytes:
    r = Reader(data, "execution result")
    if (version := r.u8()) != EXEC_RESULT_FORMAT:
        raise ValueError(f"execution result: unknown format {version}")
    digest = r.take(DIGEST_SIZE)
    r.finish()
    return digest


def encode_state_keys(keys: Sequence[bytes]) -> bytes:
    """A STATE_CHANGES value: the state keys a block wrote, each length-prefixed."""
    return pack_u32(len(keys)) + b"".join(pack_var(k) for k in keys)


def decode_state_keys(data: bytes) -> list[bytes]:
    r = Reader(data, "state changes")
    keys = [r.var() for _ in range(r.count(4))]
    r.finish()
    return keys


def encode_state_hash(height: int, lthash: bytes) -> bytes:
    """The STATE_HASH value: the executed height and the LtHash lanes of the state after it."""
    return pack_u64(height) + lthash


def decode_state_hash(data: bytes) -> tuple[int, bytes]:
    r = Reader(data, "state hash")
    height, lanes = r.u64(), r.take(len(data) - 8)
    r.finish()
    return height, lanes


LaneTips = dict[int, tuple[int, bytes]]
"""Per lane, the position and digest of its last car in the blocks up to some height (the
ordering's lane positions after that block); a lane without a car there is absent."""


def encode_lane_tips(tips: LaneTips) -> bytes:
    """A LANE_TIPS value: count u32, then lane u32, pos u64, car digest 32 in lane order."""
    return pack_u32(len(tips)) + b"".join(
        pack_u32(lane) + pack_u64(pos) + pack_fixed(digest, DIGEST_SIZE, "car digest")
        for lane, (pos, digest) in sorted(tips.items())
    )


def decode_lane_tips(data: bytes) -> LaneTips:
    r = Reader(data, "lane tips")
    tips: LaneTips = {}
    for _ in range(r.count(4 + 8 + DIGEST_SIZE)):
        lane, pos, digest = r.u32(), r.u64(), r.take(DIGEST_SIZE)
        tips[lane] = (pos, digest)
    r.finish()
    return tips


def advance_lane_tips(tips: LaneTips, block: Block) -> LaneTips:
    """The lane tips after ``block``, given those before it (a block orders each lane's
    cars in ascending position, so its last car of a lane is that lane's new tip)."""
    after = dict(tips)
    for car in block.cars:
        after[car.lane] = (car.pos, car.digest)
    return after
