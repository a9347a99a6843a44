"""State sync and block following: what a node that does not take part in consensus accepts
from peers, and what it refuses."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from node.crypto.hashing import ZERO_DIGEST
from node.protocol.ordering import OrderingCheckpoint
from node.protocol.validation import MessageChecker
from node.runtime.statesync import (
    ChainFollower,
    SyncError,
    choose_manifest,
    decode_committed,
    fetch_state,
    with_resume_checkpoint,
)
from node.storage.chain_store import ChainStore
from node.storage.kv import MemoryKV
from node.storage.snapshot import Manifest, SnapshotStore, Snapshotter
from node.storage.snapshot_install import install_snapshot
from node.types.errors import FatalError
from node.types.messages import Block, Commit, MsgKind
from node.wire.codec import encode_block, encode_message
from tests.integration.test_crash_storage import StorePeer
from tests.unit.protocol.helpers import Keys
from tests.unit.storage.history_helpers import ADDRESSES, Model, grow

KEYS = Keys()


def checker() -> MessageChecker:
    return MessageChecker(KEYS.committee, KEYS.verifier)


def chain_of(length: int) -> list[tuple[Block, Commit]]:
    """Blocks 1..length, one car of lane 0 each, with a valid slow commit for every slot."""
    out = []
    parent = ZERO_DIGEST
    for slot, car in enumerate(KEYS.lane(0, length), start=1):
        cut = KEYS.cut(KEYS.tip(car))
        block = Block(slot, slot, parent, cut.digest, (car,))
        commit = Commit(KEYS.qc(MsgKind.CONFIRM_ACK, slot, 0, cut), cut)
        out.append((block, commit))
        parent = block.digest
    return out


def test_blocks_wait_for_a_commit_then_all_are_accepted() -> None:
    follower = ChainFollower(checker(), 1)
    chain = chain_of(4)
    assert follower.add(chain[0][0], None) == []
    assert follower.add(chain[1][0], None) == []
    accepted = follower.add(*chain[2])
    assert [b.height for b in accepted] == [1, 2, 3]
    assert follower.next_height == 4 and follower.parent == chain[2][0].digest
    assert follower.add(*chain[3]) == [chain[3][0]]


def test_wire_encoded_blocks_and_commits_round_trip() -> None:
    block, commit = chain_of(1)[0]
    assert decode_committed(encode_block(block), encode_message(commit)) == (block, commit)
    assert decode_committed(encode_block(block), b"") == (block, None)
    with pytest.raises(SyncError, match="undecodable"):
        decode_committed(b"\xff garbage", b"")


def test_a_block_that_does_not_extend_the_chain_is_refused() -> None:
    chain = chain_of(3)
    follower = ChainFollower(checker(), 1)
    follower.add(*chain[0])
    with pytest.raises(SyncError, match="where block 2 was due"):
        follower.add(*chain[2])
    stranger = chain_of(2)[1][0]
    forged = Block(2, 2, b"\x01" * 32, stranger.cut_digest, stranger.cars)
    with pytest.raises(SyncError, match="does not extend"):
        follower.add(forged, None)


def test_commits_that_do_not_certify_the_block_are_refused() -> None:
    chain = chain_of(2)
    block, commit = chain[0]
    too_few = Commit(
        KEYS.qc(MsgKind.CONFIRM_ACK, 1, 0, commit.cut, signers=[0, 1]), commit.cut
    )
    with pytest.raises(SyncError, match="invalid commit QC"):
        ChainFollower(checker(), 1).add(block, too_few)
    with pytest.raises(SyncError, match="for another block"):
        ChainFollower(checker(), 1).add(block, chain[1][1])
    other_car = KEYS.lane(0, 1, tag=b"other")[0]
    swapped = Block(1, 1, ZERO_DIGEST, block.cut_digest, (other_car,))
    with pytest.raises(SyncError, match="not the cut's"):
        ChainFollower(checker(), 1).add(swapped, commit)


def test_the_first_block_of_a_state_sync_must_be_the_snapshots() -> None:
    chain = chain_of(3)
    follower = ChainFollower(checker(), 2, None, chain[1][0].digest)
    assert [b.height for b in follower.add(*chain[1])] == [2]
    wrong = ChainFollower(checker(), 2, None, b"\x07" * 32)
    with pytest.raises(SyncError, match="not the block the snapshot names"):
        wrong.add(*chain[1])


def snapshotted(tmp_path: Path, name: str, blocks: int = 12) -> tuple[ChainStore, SnapshotStore]:
    chain, model = ChainStore(MemoryKV()), Model()
    grow(chain, model, blocks, seed=1 if name != "odd" else 2)
    store = SnapshotStore(tmp_path / name)
    Snapshotter(chain, store, interval=10, chunk_pairs=2).step()
    return chain, store


def test_a_snapshot_is_taken_only_when_enough_peers_offer_it_alike(tmp_path: Path) -> None:
    (_, a), (_, b), (_, odd) = (snapshotted(tmp_path, n) for n in ("a", "b", "odd"))
    peers = [StorePeer(a), StorePeer(odd)]
    with pytest.raises(SyncError, match="offered by 2 peers alike"):
        asyncio.run(choose_manifest(peers, 2))
    chosen = asyncio.run(choose_manifest([StorePeer(a), StorePeer(odd), StorePeer(b)], 2))
    assert chosen == a.latest()


class TamperingPeer(StorePeer):
    target = "tamperer"

    async def get_snapshot_chunk(self, height: int, index: int) -> bytes | None:
        data = self.store.read_chunk(height, index)
        return None if data is None else data[:-1] + bytes([data[-1] ^ 1])


def test_state_is_fetched_from_honest_peers_verified_and_installed(tmp_path: Path) -> None:
    source, store = snapshotted(tmp_path, "a")
    manifest = store.latest()
    assert manifest is not None and manifest.height == 10
    with pytest.raises(SyncError, match="no peer sent a valid chunk 0"):
        asyncio.run(fetch_state([TamperingPeer(store)], manifest))
    pairs = asyncio.run(fetch_state([TamperingPeer(store), StorePeer(store)], manifest))
    kv = MemoryKV()
    block = source.get_block(10)
    assert block is not None
    install_snapshot(kv, manifest, pairs, block)
    synced = ChainStore(kv)
    assert (synced.committed_height(), synced.executed_height()) == (10, 10)
    for address in ADDRESSES:
        assert synced.get_account(address) == source.get_account_at(address, 10)
    assert synced.get_state_commitment(10) == manifest.commitment
    assert synced.get_block(10) == block
    # the synced store continues where the source did: block 11 saves and executes on it
    next_block = source.get_block(11)
    assert next_block is not None
    synced.save_block(next_block)
    assert synced.committed_height() == 11


def test_a_snapshot_carries_its_lane_tips_and_a_validator_resumes_ordering_there(
    tmp_path: Path,
) -> None:
    """The manifest names each lane's last ordered car at its height; the installed store
    has them, so a validator with no consensus records of its own resumes ordering at the
    snapshot block: next slot after it, its digest, those lane positions."""
    source, store = snapshotted(tmp_path, "a")
    manifest = store.latest()
    block = source.get_block(10)
    assert manifest is not None and block is not None
    tips = source.get_lane_tips(10)
    assert tips and manifest.lane_tips == tuple((k, p, d) for k, (p, d) in sorted(tips.items()))
    assert Manifest.decode(manifest.encode()) == manifest
    kv = MemoryKV()
    install_snapshot(kv, manifest, asyncio.run(fetch_state([StorePeer(store)], manifest)), block)
    synced = ChainStore(kv)
    assert synced.get_lane_tips(10) == tips
    records = with_resume_checkpoint({}, synced, lanes=3)
    checkpoint = records[("ordering",)]
    assert isinstance(checkpoint, OrderingCheckpoint)
    assert (checkpoint.next_slot, checkpoint.height) == (block.slot + 1, 10)
    assert checkpoint.last_block == block.digest
    assert checkpoint.lane_positions == (tips[0], tips[1], (0, ZERO_DIGEST))
    # records that have a checkpoint, or an empty chain, are left alone
    assert with_resume_checkpoint(records, synced, lanes=3) is records
    assert with_resume_checkpoint({}, ChainStore(MemoryKV()), lanes=3) == {}


def test_a_manifest_whose_lane_tips_disagree_with_its_block_is_not_installed(
    tmp_path: Path,
) -> None:
    source, store = snapshotted(tmp_path, "a")
    manifest = store.latest()
    block = source.get_block(10)
    assert manifest is not None and block is not None
    pairs = asyncio.run(fetch_state([StorePeer(store)], manifest))
    lane, pos, digest = manifest.lane_tips[0]
    wrong = dataclasses.replace(manifest, lane_tips=((lane, pos + 1, digest),))
    with pytest.raises(FatalError, match="lane tips are not those of its block"):
        install_snapshot(MemoryKV(), wrong, pairs, block)
