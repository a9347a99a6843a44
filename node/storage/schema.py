"""The key schema: every key is a one-byte table prefix, then fixed-width big-endian fields.

Big-endian fixed widths make byte order equal numeric order, so a range scan over a table
walks heights, slots or positions in order (never decimal text: cometbft's mistake). Pure:
bytes in, bytes out; encoders raise ``ValueError`` for a field that does not fit.

    table          key fields                                   value
    BLOCK          height u64                                   block header + car refs
    BLOCK_HASH     block digest 32                              height u64
    CAR            lane u32, pos u64, car digest 32             car (wire encoding)
    COMMIT_QC      slot u64                                     commit QC
    RECEIPT        height u64, tx index u32                     receipt
    TX_INDEX       tx hash 32                                   height u64, tx index u32
    ACCOUNT        address 20                                   nonce u64, balance u256
    META           Meta id u8                                   u64
    CONSENSUS      persist kind u8, one u64 per int field       protocol value (codec.py)
    STATE_HISTORY  state key, inverted height u64               value at that height (b"": none)
    ARCHIVE        reserved (the archive's index lives in its segment files)
    SNAPSHOT       reserved: state snapshots
    STATE_CHANGES  height u64                                   the state keys it wrote
    EXEC_RESULT    height u64                                   state commitment after it
    STATE_HASH     (one key)                                    height u64, current LtHash
    LANE_TIPS      height u64                                   each lane's last ordered car
    ACCEPTED_TX    tx hash 32                                   raw tx accepted, not executed

A *state key* is the current-state key of a value (today ``account_key(address)``), so one
history table serves every state table. State keys are fixed-width per table (the table
byte fixes the width), which is what lets the inverted height follow the user key with no
separator: "the value of k at height <= h" is one seek to ``state_history_key(k, h)``, and
the first entry with k's prefix is the newest version at or below h.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import Final

from node.storage.layout import Reader, pack_fixed, pack_u8, pack_u32, pack_u64

DIGEST_SIZE: Final = 32
ADDRESS_SIZE: Final = 20

PersistKey = tuple[str | int, ...]
"""Same shape as ``node.protocol.effects.PersistKey``, restated to keep this module pure."""


class Table(IntEnum):
    """One-byte key prefixes. Never renumber: they are on disk."""

    BLOCK = 0x01
    BLOCK_HASH = 0x02
    CAR = 0x03
    COMMIT_QC = 0x04
    RECEIPT = 0x05
    TX_INDEX = 0x06
    ACCOUNT = 0x07
    META = 0x08
    CONSENSUS = 0x09
    STATE_HISTORY = 0x0A
    ARCHIVE = 0x0B
    SNAPSHOT = 0x0C
    STATE_CHANGES = 0x0D
    EXEC_RESULT = 0x0E
    STATE_HASH = 0x0F
    LANE_TIPS = 0x10
    ACCEPTED_TX = 0x11


class Meta(IntEnum):
    """Named u64 values in the META table. Never renumber: they are on disk."""

    SCHEMA_VERSION = 0x01
    COMMITTED_HEIGHT = 0x02
    EXECUTED_HEIGHT = 0x03
    ARCHIVED_HEIGHT = 0x04
    """Reserved: the archive directory itself says what is sealed."""
    PRUNED_HEIGHT = 0x05
    """The lowest height the hot tier still holds: every height below it was pruned (0: none)."""
    GENESIS_APPLIED = 0x06


SCHEMA_VERSION: Final = 3
"""2: state history, state changes, execution results and the LtHash are written.
3: each block's lane tips (LANE_TIPS), which snapshots carry for validator state sync."""

PERSIST_KINDS: Final[dict[str, tuple[int, int]]] = {
    # kind: (code, number of int fields after the kind)
    "car": (0x01, 2),
    "lane_pos": (0x02, 1),
    "poa": (0x03, 1),
    "prepare_vote": (0x10, 1),
    "confirm_ack": (0x11, 1),
    "timeout": (0x12, 1),
    "high_prop": (0x13, 1),
    "high_qc": (0x14, 1),
    "tc": (0x15, 1),
    "proposal": (0x16, 1),
    "commit": (0x17, 1),
    "ordering": (0x20, 0),
}
"""Every key kind the protocol persists (``Persist`` effects in node/protocol)."""
_PERSIST_BY_CODE: Final = {code: (kind, arity) for kind, (code, arity) in PERSIST_KINDS.items()}
# per kind: the key prefix and the packer of its u64 fields (persist_key runs on every vote)
_PERSIST_LAYOUT: Final = {
    kind: (bytes([Table.CONSENSUS, code]), struct.Struct(">" + "Q" * arity))
    for kind, (code, arity) in PERSIST_KINDS.items()
}


def table_range(table: Table) -> tuple[bytes, bytes]:
    """``(start, stop)`` covering every key of ``table`` for ``KeyValueStore.iterate``."""
    return bytes([table]), bytes([table + 1])


def _prefix(table: Table) -> bytes:
    return bytes([table])


def _strip(key: bytes, table: Table, size: int) -> Reader:
    if len(key) != 1 + size or key[0] != table:
        raise ValueError(f"not a {table.name} key: {key.hex()}")
    return Reader(key[1:], f"{table.name} key")


# ------------------------------------------------------------------ chain tables


def block_key(height: int) -> bytes:
    return _prefix(Table.BLOCK) + pack_u64(height)


def decode_block_key(key: bytes) -> int:
    return _strip(key, Table.BLOCK, 8).u64()


def block_hash_key(digest: bytes) -> bytes:
    return _prefix(Table.BLOCK_HASH) + pack_fixed(digest, DIGEST_SIZE, "block digest")


def car_key(lane: int, pos: int, digest: bytes) -> bytes:
    return (
        _prefix(Table.CAR)
        + pack_u32(lane)
        + pack_u64(pos)
        + pack_fixed(digest, DIGEST_SIZE, "car digest")
    )


def decode_car_key(key: bytes) -> tuple[int, int, bytes]:
    r = _strip(key, Table.CAR, 4 + 8 + DIGEST_SIZE)
    return r.u32(), r.u64(), r.take(DIGEST_SIZE)


def car_pos_range(lane: int, first: int, last: int) -> tuple[bytes, bytes]:
    """Keys of every car of ``lane`` with ``first <= pos <= last``, for ``iterate``."""
    start = _prefix(Table.CAR) + pack_u32(lane) + pack_u64(first)
    stop = _prefix(Table.CAR) + pack_u32(lane) + pack_u64(last) + b"\xff" * (DIGEST_SIZE + 1)
    return start, stop


def commit_qc_key(slot: int) -> bytes:
    return _prefix(Table.COMMIT_QC) + pack_u64(slot)


def decode_commit_qc_key(key: bytes) -> int:
    return _strip(key, Table.COMMIT_QC, 8).u64()


def receipt_key(height: int, index: int) -> bytes:
    return _prefix(Table.RECEIPT) + pack_u64(height) + pack_u32(index)


def decode_receipt_key(key: bytes) -> tuple[int, int]:
    r = _strip(key, Table.RECEIPT, 12)
    return r.u64(), r.u32()


def receipt_height_range(height: int) -> tuple[bytes, bytes]:
    """Keys of every receipt of block ``height``, in transaction order."""
    prefix = _prefix(Table.RECEIPT) + pack_u64(height)
    return prefix, prefix + b"\xff" * 5


def tx_index_key(tx_hash: bytes) -> bytes:
    return _prefix(Table.TX_INDEX) + pack_fixed(tx_hash, DIGEST_SIZE, "tx hash")


def account_key(address: bytes) -> bytes:
    return _prefix(Table.ACCOUNT) + pack_fixed(address, ADDRESS_SIZE, "address")


def decode_account_key(key: bytes) -> bytes:
    return _strip(key, Table.ACCOUNT, ADDRESS_SIZE).take(ADDRESS_SIZE)


def meta_key(name: Meta) -> bytes:
    return _prefix(Table.META) + pack_u8(name)


# ------------------------------------------------------------------ state history

_MAX_HEIGHT: Final = 2**64 - 1
_HISTORY_PREFIX: Final = bytes([Table.STATE_HISTORY])


def state_history_key(state_key: bytes, height: int) -> bytes:
    """The version of ``state_key`` written at ``height``; newer heights sort first."""
    return _HISTORY_PREFIX + state_key + pack_u64(_MAX_HEIGHT - height)


def state_history_range(state_key: bytes, at_or_below: int) -> tuple[bytes, bytes]:
    """Keys of every version of ``state_key`` at or below ``at_or_below``, newest first."""
    prefix = _prefix(Table.STATE_HISTORY) + state_key
    return prefix + pack_u64(_MAX_HEIGHT - at_or_below), prefix + b"\xff" * 9


def decode_state_history_key(key: bytes) -> tuple[bytes, int]:
    """``(state key, height)`` of a STATE_HISTORY key."""
    if len(key) < 10 or key[0] != Table.STATE_HISTORY:
        raise ValueError(f"not a STATE_HISTORY key: {key.hex()}")
    return key[1:-8], _MAX_HEIGHT - int.from_bytes(key[-8:], "big")


def state_changes_key(height: int) -> bytes:
    return _prefix(Table.STATE_CHANGES) + pack_u64(height)


def exec_result_key(height: int) -> bytes:
    return _prefix(Table.EXEC_RESULT) + pack_u64(height)


def lane_tips_key(height: int) -> bytes:
    return _prefix(Table.LANE_TIPS) + pack_u64(height)


def accepted_tx_key(tx_hash: bytes) -> bytes:
    """A transaction this node answered "accepted" for and has not executed yet
    (node/runtime/durable_txs.py)."""
    return _prefix(Table.ACCEPTED_TX) + pack_fixed(tx_hash, DIGEST_SIZE, "tx hash")


def decode_accepted_tx_key(key: bytes) -> bytes:
    return _strip(key, Table.ACCEPTED_TX, DIGEST_SIZE).take(DIGEST_SIZE)


def state_hash_key() -> bytes:
    return _prefix(Table.STATE_HASH)


def height_range(table: Table, first: int, last: int) -> tuple[bytes, bytes]:
    """Keys of ``table`` (keyed by a leading u64 height) for heights ``first..last``."""
    stop = _prefix(table) + pack_u64(last + 1) if last < _MAX_HEIGHT else bytes([table + 1])
    return _prefix(table) + pack_u64(first), stop


# ------------------------------------------------------------------ consensus persistence


def persist_key(key: PersistKey) -> bytes:
    """The storage key of a protocol ``Persist`` key such as ``("car", lane, pos)``."""
    kind = key[0] if key else None
    layout = _PERSIST_LAYOUT.get(kind) if isinstance(kind, str) else None
    if layout is None:
        raise ValueError(f"unknown persist key {key!r}")
    prefix, fields = layout
    values = key[1:]
    if len(values) != fields.size // 8 or any(type(v) is not int for v in values):
        raise ValueError(f"persist key {key!r}: expected {fields.size // 8} int fields")
    try:
        return prefix + fields.pack(*values)
    except struct.error as exc:
        raise ValueError(f"persist key {key!r}: a field does not fit in u64") from exc


def decode_persist_key(key: bytes) -> PersistKey:
    if len(key) < 2 or key[0] != Table.CONSENSUS or key[1] not in _PERSIST_BY_CODE:
        raise ValueError(f"not a persist key: {key.hex()}")
    kind, arity = _PERSIST_BY_CODE[key[1]]
    r = Reader(key[2:], f"persist key {kind}")
    fields = tuple(r.u64() for _ in range(arity))
    r.finish()
    return (kind, *fields)
