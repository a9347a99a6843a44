"""Snapshots: chunked state at a height, hashed, checked against the height's commitment."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.storage import schema
from node.storage.chain_store import ChainStore
from node.storage.kv import MemoryKV
from node.storage.lthash import LtHash
from node.storage.records import decode_account
from node.storage.snapshot import (
    MANIFEST,
    Manifest,
    SnapshotError,
    SnapshotStore,
    Snapshotter,
    check_commitment,
    decode_chunk,
    snapshot_dirname,
    verify_chunk,
)
from node.types.errors import FatalError
from tests.unit.storage.history_helpers import Model, grow


def grown(blocks: int) -> tuple[ChainStore, Model]:
    chain, model = ChainStore(MemoryKV()), Model()
    grow(chain, model, blocks)
    return chain, model


def all_pairs(store: SnapshotStore, manifest: Manifest) -> list[tuple[bytes, bytes]]:
    pairs = []
    for i in range(len(manifest.chunks)):
        data = store.read_chunk(manifest.height, i)
        assert data is not None
        pairs += verify_chunk(manifest, i, data)
    return pairs


def test_snapshot_holds_the_state_of_its_height_while_later_blocks_exist(tmp_path: Path) -> None:
    chain, model = grown(10)
    store = SnapshotStore(tmp_path)
    snapshotter = Snapshotter(chain, store, interval=4, chunk_pairs=2)
    grow(chain, model, 3, seed=2)  # executed 13: the due snapshot is of height 12
    result = snapshotter.step()
    assert (result.action, result.height) == ("created", 12)
    manifest = store.latest()
    assert manifest is not None and manifest.height == 12
    assert manifest.commitment == chain.get_state_commitment(12)
    block = chain.get_block(12)
    assert block is not None and manifest.block_hash == block.digest
    pairs = all_pairs(store, manifest)
    assert len(manifest.chunks) == (len(pairs) + 1) // 2
    state = {schema.decode_account_key(k): decode_account(v) for k, v in pairs}
    assert state == model.states[12]
    check_commitment(manifest, LtHash.of(pairs))  # re-adding the entries reproduces it
    assert snapshotter.step().action == "idle"  # 12 is done, 16 not executed yet


def test_snapshot_of_an_older_height_reads_history_not_the_current_state(tmp_path: Path) -> None:
    chain, model = grown(30)
    store = SnapshotStore(tmp_path)
    result = Snapshotter(chain, store, interval=5).create(7)
    assert result.action == "created"
    manifest = store.get_manifest(7)
    assert manifest is not None
    state = {schema.decode_account_key(k): decode_account(v) for k, v in all_pairs(store, manifest)}
    assert state == model.states[7]
    assert state != model.states[30]


def test_validators_write_identical_snapshots(tmp_path: Path) -> None:
    (a, _), (b, _) = grown(9), grown(9)
    store_a, store_b = SnapshotStore(tmp_path / "a"), SnapshotStore(tmp_path / "b")
    Snapshotter(a, store_a, interval=8, chunk_pairs=3).step()
    Snapshotter(b, store_b, interval=8, chunk_pairs=3).step()
    ma, mb = store_a.latest(), store_b.latest()
    assert ma is not None and mb is not None
    assert ma.encode() == mb.encode() and ma.digest() == mb.digest()
    assert Manifest.decode(ma.encode()) == ma


def test_only_the_newest_snapshots_are_kept(tmp_path: Path) -> None:
    chain, model = grown(4)
    store = SnapshotStore(tmp_path, keep=2)
    snapshotter = Snapshotter(chain, store, interval=2)
    for _ in range(4):
        grow(chain, model, 2, seed=chain.executed_height())
        assert snapshotter.step().action == "created"
    assert store.heights() == [10, 12]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [snapshot_dirname(10), snapshot_dirname(12)]
    assert SnapshotStore(tmp_path).heights() == [10, 12]  # reopened: the same


def test_reopening_drops_what_a_crash_left(tmp_path: Path) -> None:
    chain, _ = grown(8)
    Snapshotter(chain, SnapshotStore(tmp_path), interval=4).step()
    (tmp_path / ".tmp-000000000012").mkdir()
    (tmp_path / ".tmp-000000000012" / "chunk-000000").write_bytes(b"half")
    half = tmp_path / snapshot_dirname(4)  # renamed but its manifest is unreadable
    half.mkdir()
    (half / MANIFEST).write_bytes(b'{"format": 1, "hei')
    store = SnapshotStore(tmp_path)
    assert store.heights() == [8]
    assert sorted(p.name for p in tmp_path.iterdir()) == [snapshot_dirname(8)]


def test_a_tampered_chunk_or_a_missing_one_is_refused(tmp_path: Path) -> None:
    chain, _ = grown(8)
    store = SnapshotStore(tmp_path)
    Snapshotter(chain, store, interval=8, chunk_pairs=2).step()
    manifest = store.latest()
    assert manifest is not None and len(manifest.chunks) >= 2
    data = store.read_chunk(8, 0)
    assert data is not None
    with pytest.raises(SnapshotError, match="does not match its hash"):
        verify_chunk(manifest, 0, data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(SnapshotError, match="no chunk 99"):
        verify_chunk(manifest, 99, data)
    first_only = verify_chunk(manifest, 0, data)
    with pytest.raises(SnapshotError, match="not the commitment"):
        check_commitment(manifest, LtHash.of(first_only))
    assert store.read_chunk(8, len(manifest.chunks)) is None


def test_malformed_manifests_and_chunks_say_what_is_wrong() -> None:
    with pytest.raises(SnapshotError, match="malformed snapshot manifest"):
        Manifest.decode(b"[]")
    with pytest.raises(SnapshotError, match="format 9"):
        Manifest.decode(b'{"format": 9}')
    with pytest.raises(SnapshotError, match="truncated"):
        decode_chunk(b"\x00\x02\x00\x00\x00\x05ab")
    pair = b"\x00\x01\x00\x00\x00\x01kv"
    with pytest.raises(SnapshotError, match="strictly increasing"):
        decode_chunk(pair + pair)


def test_a_state_that_disagrees_with_its_commitment_stops_the_snapshot(tmp_path: Path) -> None:
    chain, _ = grown(8)
    key = next(k for k, _ in chain.kv.iterate(*schema.table_range(schema.Table.ACCOUNT)))
    chain.kv.put(key, b"\x00" * 40)  # corrupt the current value behind the commitment's back
    with pytest.raises(FatalError, match="recorded commitment"):
        Snapshotter(chain, SnapshotStore(tmp_path), interval=8).step()
    assert SnapshotStore(tmp_path).heights() == []
