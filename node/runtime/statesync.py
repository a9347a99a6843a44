"""State sync and block following for nodes that do not take part in consensus.

``ChainFollower`` checks committed blocks fetched from any peer (node/runtime/
statesync_serve.py serves them): each block must extend the previous one by parent hash,
and a run of blocks is accepted once a block at its end carries a commit — a valid commit QC
of the genesis committee for that block's slot, over a cut whose digest is the block's and
whose tips are the block's last car of each lane it moves. Older blocks of the run are
covered by the hash chain to that block. Nothing unverified is ever saved.

``state_sync`` installs the state of a recent snapshot: it asks every peer for its newest
snapshot manifest and takes the newest one at least f+1 peers offer byte for byte (so at
least one honest validator vouches for its state commitment), fetches its chunks from any
peer, checks each chunk's hash and then the LtHash of all pairs against the commitment,
verifies the snapshot's block with a ``ChainFollower``, and installs state and block in one
atomic batch (node/storage/snapshot_install.py). A crash before that batch leaves the store
empty, so a restart syncs again; after it the node block-syncs from the snapshot height.

A validator that state-syncs then saves verified blocks up to near its peers' tip
(``follow_to_tip``) and starts consensus there: with no consensus records of its own,
``with_resume_checkpoint`` gives its replica the ordering checkpoint of its last saved block
(next slot, height, block digest, and the lane tips the snapshot manifest carried forward
by each block's cars), so ordering, lane votes and its own lane continue from there and the
slots after it come by commit sync. Its own cars that were never ordered are forgotten: a
validator whose old instance may still run must never be state-synced (its new cars and
votes would equivocate with the old ones, a Byzantine fault).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, TypeVar

import grpc
import structlog

from node.crypto.hashing import ZERO_DIGEST
from node.protocol.effects import PersistKey
from node.protocol.ordering import OrderingCheckpoint
from node.protocol.validation import MessageChecker
from node.storage.chain_store import ChainStore
from node.storage.lthash import LtHash
from node.storage.snapshot import (
    Manifest,
    Pair,
    SnapshotError,
    check_commitment,
    crash_point,
    verify_chunk,
)
from node.types.errors import FatalError, MalformedMessage
from node.types.messages import Block, Commit
from node.wire.codec import decode_block, decode_message

log = structlog.get_logger("lanenet.statesync")

_T = TypeVar("_T")
MAX_PENDING: Final = 4096
"""Blocks held while waiting for one with a commit (validators keep the commits of their
last ``commit_retention`` slots, node/protocol/config.py)."""
TIP_LAG: Final = 32
"""``follow_to_tip`` stops this close to the best peer's committed height: consensus commit
sync fetches the rest (well inside the peers' ``commit_retention``)."""
FOLLOW_BATCH: Final = 256


class SyncError(Exception):
    """A peer sent something that does not verify, or no peer offers what is needed."""


class SyncPeer(Protocol):
    """What state sync asks of a peer (``ClientApiClient`` is one)."""

    target: str

    async def get_snapshot_manifest(self, height: int | None = None) -> bytes | None: ...

    async def get_snapshot_chunk(self, height: int, index: int) -> bytes | None: ...

    async def get_committed_blocks(
        self, first: int, last: int, *, wait_ms: int = 0
    ) -> tuple[list[tuple[bytes, bytes]], int]: ...


# ------------------------------------------------------------ verifying blocks


def decode_committed(block_data: bytes, commit_data: bytes) -> tuple[Block, Commit | None]:
    """A block and its commit as a peer sent them; ``SyncError`` if they do not decode."""
    try:
        block = decode_block(block_data)
        commit = decode_message(commit_data) if commit_data else None
    except MalformedMessage as exc:
        raise SyncError(f"undecodable block from peer: {exc}") from exc
    if commit is not None and not isinstance(commit, Commit):
        raise SyncError(f"peer sent a {type(commit).__name__} where a commit belongs")
    return block, commit


@dataclass
class ChainFollower:
    """Accepts blocks in height order from ``next_height`` on; see the module doc.

    ``parent`` is the digest the next block must extend; for the first block of a state
    sync, where the parent is unknown, ``expected`` is the digest that block must have.
    """

    checker: MessageChecker
    next_height: int
    parent: bytes | None = ZERO_DIGEST
    expected: bytes | None = None
    pending: list[Block] = field(default_factory=list)

    def add(self, block: Block, commit: Commit | None) -> list[Block]:
        """Blocks verified by this one (in order, possibly none yet); ``SyncError`` if the
        block does not extend the chain or its commit is not valid for it."""
        height = self.next_height + len(self.pending)
        if block.height != height:
            raise SyncError(f"peer sent block {block.height} where block {height} was due")
        previous = self.pending[-1].digest if self.pending else self.parent
        if previous is None:
            if block.digest != self.expected:
                raise SyncError(f"block {height} is not the block the snapshot names")
        elif block.parent != previous:
            raise SyncError(f"block {height} does not extend block {height - 1}")
        self.pending.append(block)
        if commit is not None:
            self._check_commit(block, commit)
            done, self.pending = self.pending, []
            self.next_height, self.parent = block.height + 1, block.digest
            return done
        if len(self.pending) > MAX_PENDING:
            raise SyncError(f"{MAX_PENDING} blocks from {self.next_height} without a commit")
        return []

    def _check_commit(self, block: Block, commit: Commit) -> None:
        qc, cut = commit.commit_qc, commit.cut
        if qc.slot != block.slot or qc.cut_digest != block.cut_digest:
            raise SyncError(f"the commit sent with block {block.height} is for another block")
        if cut.digest != qc.cut_digest or self.checker.validate_cut(cut) is not None:
            raise SyncError(f"the commit of block {block.height} carries a bad cut")
        if not self.checker.is_valid_commit_qc(qc):
            raise SyncError(f"block {block.height}: invalid commit QC")
        last_car = {car.lane: car for car in block.cars}
        for lane, car in last_car.items():
            tip = cut.tips[lane] if lane < len(cut.tips) else None
            if tip is None or (tip.pos, tip.car_digest) != (car.pos, car.digest):
                raise SyncError(f"block {block.height}'s cars are not the cut's")

    def reset(self) -> None:
        """Drop unverified blocks (after a peer sent a bad one: refetch from another)."""
        self.pending = []


async def fetch_blocks(
    peer: SyncPeer, follower: ChainFollower, last: int, *, wait_ms: int = 0
) -> tuple[list[Block], int]:
    """One request to ``peer`` for blocks from the follower's next height to ``last``;
    the blocks it verified and the peer's committed height."""
    first = follower.next_height + len(follower.pending)
    found, committed = await peer.get_committed_blocks(first, last, wait_ms=wait_ms)
    verified: list[Block] = []
    for block_data, commit_data in found:
        verified += follower.add(*decode_committed(block_data, commit_data))
    return verified, committed


# ------------------------------------------------------------ snapshots


async def choose_manifest(peers: Sequence[SyncPeer], needed: int) -> Manifest:
    """The newest snapshot manifest that ``needed`` peers offer with identical bytes."""
    offers: dict[str, list[bytes]] = {}
    heights: set[int] = set()
    for peer in peers:
        data = await _call(peer, peer.get_snapshot_manifest())
        if data:
            offers[peer.target] = [data]
            heights.add(_decode_manifest(data).height)
    for height in sorted(heights, reverse=True):
        votes: Counter[bytes] = Counter()
        for peer in peers:
            data = await _call(peer, peer.get_snapshot_manifest(height))
            if data:
                votes[data] += 1
        if votes:
            data, count = votes.most_common(1)[0]
            if count >= needed:
                return _decode_manifest(data)
    raise SyncError(
        f"no snapshot is offered by {needed} peers alike (offers: "
        f"{ {t: _decode_manifest(d[0]).height for t, d in offers.items()} })"
    )


def _decode_manifest(data: bytes) -> Manifest:
    try:
        return Manifest.decode(data)
    except SnapshotError as exc:
        raise SyncError(str(exc)) from exc


async def fetch_state(peers: Sequence[SyncPeer], manifest: Manifest) -> list[Pair]:
    """Every pair of the snapshot, each chunk from the first peer whose copy verifies, the
    whole checked against the manifest's commitment."""
    pairs: list[Pair] = []
    for index in range(len(manifest.chunks)):
        for attempt, peer in enumerate(_rotated(peers, index)):
            data = await _call(peer, peer.get_snapshot_chunk(manifest.height, index))
            try:
                if data is None:
                    raise SnapshotError("not offered")
                pairs += verify_chunk(manifest, index, data)
                break
            except SnapshotError as exc:
                log.warning("snapshot_chunk_refused", peer=peer.target, index=index, why=str(exc))
                if attempt == len(peers) - 1:
                    raise SyncError(f"no peer sent a valid chunk {index}") from exc
        crash_point("statesync-chunk")
    for before, after in zip(pairs, pairs[1:], strict=False):
        if after[0] <= before[0]:
            raise SyncError("snapshot chunks overlap or are out of order")
    try:
        check_commitment(manifest, LtHash.of(pairs))
    except SnapshotError as exc:
        raise SyncError(str(exc)) from exc
    return pairs


async def fetch_snapshot_block(
    peers: Sequence[SyncPeer], checker: MessageChecker, manifest: Manifest
) -> tuple[Block, list[Block]]:
    """The snapshot's block, verified through the chain to a later block with a commit; and
    the verified blocks after it."""
    for peer in peers:
        follower = ChainFollower(checker, manifest.height, None, manifest.block_hash)
        try:
            verified: list[Block] = []
            while not verified:
                got, committed = await fetch_blocks(peer, follower, manifest.height + MAX_PENDING)
                verified += got
                if not got and follower.next_height + len(follower.pending) > committed:
                    break
            if verified:
                return verified[0], verified[1:]
        except (SyncError, grpc.aio.AioRpcError) as exc:
            log.warning("snapshot_block_refused", peer=peer.target, why=str(exc))
    raise SyncError(f"no peer sent a verifiable block {manifest.height}")


def _rotated(peers: Sequence[SyncPeer], start: int) -> list[SyncPeer]:
    k = start % len(peers)
    return [*peers[k:], *peers[:k]]


async def _call(peer: SyncPeer, call: Awaitable[_T]) -> _T | None:
    """Await a peer call; None (logged) if the peer is unreachable or fails."""
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        log.warning("sync_peer_failed", peer=peer.target, code=str(exc.code()))
        return None


# ------------------------------------------------------------ validators


def follower_after(chain: ChainStore, checker: MessageChecker) -> ChainFollower:
    """A follower for the blocks after ``chain``'s last saved one."""
    height = chain.committed_height()
    block = chain.get_block(height) if height > 0 else None
    if height > 0 and block is None:
        raise SyncError(f"block {height} is missing from the store")
    return ChainFollower(checker, height + 1, ZERO_DIGEST if block is None else block.digest)


async def follow_to_tip(
    chain: ChainStore, peers: Sequence[SyncPeer], checker: MessageChecker
) -> int:
    """Fetch, verify and save committed blocks after ``chain``'s last one, from one peer
    after another, until within ``TIP_LAG`` of the best peer's committed height (or no peer
    has verifiable blocks to add); returns the number saved."""
    follower = follower_after(chain, checker)
    saved, idle, index = 0, 0, 0
    while idle < 2 * len(peers):
        peer = peers[index % len(peers)]
        first = follower.next_height + len(follower.pending)
        try:
            blocks, committed = await fetch_blocks(peer, follower, first + FOLLOW_BATCH - 1)
        except (SyncError, grpc.aio.AioRpcError) as exc:
            log.warning("follow_peer_failed", peer=peer.target, why=str(exc)[:200])
            follower.reset()
            index, idle = index + 1, idle + 1
            continue
        for verified in blocks:
            chain.save_block(verified)
            crash_point("statesync-follow")
        saved += len(blocks)
        if committed - chain.committed_height() <= TIP_LAG:
            break
        if not blocks:  # the blocks at its tip carry no commit yet: another peer, then again
            follower.reset()
            index, idle = index + 1, idle + 1
        else:
            idle = 0
    log.info("state_sync_followed", blocks=saved, height=chain.committed_height())
    return saved


def with_resume_checkpoint(
    records: dict[PersistKey, object], chain: ChainStore, lanes: int
) -> dict[PersistKey, object]:
    """``records`` with an ordering checkpoint at ``chain``'s last block if they have none
    and the chain has blocks (a validator started from a snapshot, or one that crashed
    before its first checkpoint): the same checkpoint ordering would have persisted."""
    height = chain.committed_height()
    if ("ordering",) in records or height == 0:
        return records
    block = chain.get_block(height)
    tips = chain.get_lane_tips(height)
    if block is None or tips is None:
        raise FatalError(f"block {height} or its lane tips are missing: resync the node")
    positions = tuple(tips.get(lane, (0, ZERO_DIGEST)) for lane in range(lanes))
    log.info("ordering_resumed_from_chain", height=height, next_slot=block.slot + 1)
    checkpoint = OrderingCheckpoint(block.slot + 1, height, block.digest, positions)
    return {**records, ("ordering",): checkpoint}
