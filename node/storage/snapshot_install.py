"""Installing a verified snapshot into an empty store: the state and block of its height.

One atomic batch writes what a node that executed up to height ``H`` would hold for ``H``:
the current-state rows, their history and change list at ``H``, the commitment after ``H``,
the running LtHash, block ``H`` (header, hash index, cars, commit QC), the lane tips after
``H`` (from the manifest, so ordering and later blocks continue from them) and the meta rows —
committed and executed height ``H``, hot floor ``H`` (nothing below is held) and the genesis
marker. A crash before the batch leaves the store empty; after it, ``ChainStore`` opens at
height ``H`` and block sync continues from ``H + 1``.
"""

from __future__ import annotations

from collections.abc import Sequence

from node.storage import schema
from node.storage.history import Writes, history_writes
from node.storage.kv import KeyValueStore
from node.storage.lthash import LtHash
from node.storage.records import (
    BlockHeader,
    advance_lane_tips,
    encode_block_header,
    encode_commitment,
    encode_height,
    encode_lane_tips,
    encode_state_hash,
)
from node.storage.schema import Meta, Table
from node.storage.snapshot import Manifest, Pair
from node.types.errors import FatalError
from node.types.messages import Block
from node.wire.codec import encode_message


def is_empty(kv: KeyValueStore) -> bool:
    """True if ``kv`` holds no chain (nothing committed, executed or applied yet)."""
    return all(
        kv.get(schema.meta_key(m)) in (None, encode_height(0))
        for m in (Meta.COMMITTED_HEIGHT, Meta.EXECUTED_HEIGHT, Meta.GENESIS_APPLIED)
    )


def install_snapshot(
    kv: KeyValueStore, manifest: Manifest, pairs: Sequence[Pair], block: Block
) -> None:
    """Write the snapshot's state and block into the empty store ``kv`` (see the module doc).

    The caller has verified ``pairs`` against ``manifest`` and ``block`` against a commit.
    """
    height = manifest.height
    if not is_empty(kv):
        raise FatalError("a snapshot can only be installed into an empty store")
    if block.height != height or block.digest != manifest.block_hash:
        raise FatalError(f"block {block.height} is not the block of snapshot {height}")
    lthash = LtHash.of(pairs)
    if lthash.digest() != manifest.commitment:
        raise FatalError(f"snapshot {height}: the state does not match its commitment")
    writes: Writes = [(key, None) for key, _ in kv.iterate(*schema.table_range(Table.ACCOUNT))]
    writes += list(pairs)
    writes += history_writes(height, list(pairs))
    writes.append((schema.exec_result_key(height), encode_commitment(manifest.commitment)))
    writes.append((schema.state_hash_key(), encode_state_hash(height, lthash.to_bytes())))
    header = BlockHeader.of(block)
    writes += [
        (schema.block_key(height), encode_block_header(header)),
        (schema.block_hash_key(header.digest), encode_height(height)),
    ]
    writes += [(schema.car_key(c.lane, c.pos, c.digest), encode_message(c)) for c in block.cars]
    tips = {lane: (pos, digest) for lane, pos, digest in manifest.lane_tips}
    if advance_lane_tips(tips, block) != tips:
        raise FatalError(f"snapshot {height}: its lane tips are not those of its block's cars")
    writes.append((schema.lane_tips_key(height), encode_lane_tips(tips)))
    for name, value in (
        (Meta.SCHEMA_VERSION, schema.SCHEMA_VERSION),
        (Meta.COMMITTED_HEIGHT, height),
        (Meta.EXECUTED_HEIGHT, height),
        (Meta.PRUNED_HEIGHT, height),
        (Meta.GENESIS_APPLIED, 1),
    ):
        writes.append((schema.meta_key(name), encode_height(value)))
    kv.write(writes, sync=True)
