"""The serving side of state sync: a node's snapshots and committed blocks for other nodes.

``ChainSyncSource`` implements ``node.rpc.grpc_api.SyncSource`` over a ``ChainStore``, its
``SnapshotStore`` and (on a validator) the consensus table, which holds the commit (commit
QC and cut) of each recent slot: a following node checks the newest block of every batch
against its commit and the older ones by their parent hashes.
"""

from __future__ import annotations

from node.rpc.height_watch import HeightWatch
from node.storage.chain_store import ChainStore
from node.storage.codec import decode_persist_value
from node.storage.schema import persist_key
from node.storage.snapshot import SnapshotStore
from node.types.messages import Commit
from node.wire.codec import encode_block, encode_message


class ChainSyncSource:
    """Snapshots and committed blocks of one node, read from its stores."""

    def __init__(
        self, chain: ChainStore, snapshots: SnapshotStore | None, committed: HeightWatch
    ) -> None:
        self.chain = chain
        self.snapshots = snapshots
        self.committed = committed

    def get_snapshot_manifest(self, height: int | None) -> bytes | None:
        if self.snapshots is None:
            return None
        manifest = (
            self.snapshots.latest() if height is None else self.snapshots.get_manifest(height)
        )
        return None if manifest is None else manifest.encode()

    def get_snapshot_chunk(self, height: int, index: int) -> bytes | None:
        return None if self.snapshots is None else self.snapshots.read_chunk(height, index)

    def get_commit(self, slot: int) -> bytes:
        """The wire-encoded commit of ``slot`` if this node still holds it, else b""."""
        data = self.chain.kv.get(persist_key(("commit", slot)))
        if data is None:
            return b""
        try:
            commit = decode_persist_value(("commit", slot), data)
        except ValueError:
            return b""
        return encode_message(commit) if isinstance(commit, Commit) else b""

    def get_committed_blocks(
        self, first: int, last: int, max_bytes: int
    ) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        size = 0
        for block in self.chain.get_blocks(first, min(last, self.chain.committed_height())):
            data = encode_block(block)
            size += len(data)
            if out and size > max_bytes:
                break
            out.append((data, self.get_commit(block.slot)))
        return out

    def committed_height(self) -> int:
        return self.chain.committed_height()

    async def wait_committed(self, above: int) -> int:
        return await self.committed.wait_above(above)
