"""Crash safety of the storage background work: a process killed (SIGKILL, or os._exit at a
named point through LANENET_CRASH_AT) while archiving and pruning, while writing a snapshot,
or while state-syncing leaves a store that reopens consistent — the archive verifies, reads
equal a model of every state, no half snapshot is served, an interrupted state sync leaves
an empty store — and the work resumes and completes.

The child process is this module run as a script (``python -m tests.integration.
test_crash_storage MODE ...``)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from node.execution.state import Account
from node.runtime.statesync import choose_manifest, fetch_state, with_resume_checkpoint
from node.storage.archive import Archive, verify_segment
from node.storage.archiver import Archiver
from node.storage.chain_store import ChainStore
from node.storage.kv import LevelDBKV, MemoryKV
from node.storage.snapshot import CRASH_ENV, Manifest, SnapshotStore, Snapshotter
from node.storage.snapshot_install import install_snapshot, is_empty
from node.types.messages import Block, Commit
from node.wire.codec import encode_block, encode_message
from tests.unit.storage.history_helpers import ADDRESSES, Model, grow

BLOCKS = 120
HOT, SEGMENT, INTERVAL = 10, 5, 50
CHUNK_PAIRS = 2


# ------------------------------------------------------------------ the child process


class StorePeer:
    """A state-sync peer that serves snapshots straight from a snapshot directory."""

    target = "local"

    def __init__(self, store: SnapshotStore) -> None:
        self.store = store

    async def get_snapshot_manifest(self, height: int | None = None) -> bytes | None:
        m = self.store.latest() if height is None else self.store.get_manifest(height)
        return None if m is None else m.encode()

    async def get_snapshot_chunk(self, height: int, index: int) -> bytes | None:
        return self.store.read_chunk(height, index)

    async def get_committed_blocks(
        self, first: int, last: int, *, wait_ms: int = 0
    ) -> tuple[list[tuple[bytes, bytes]], int]:
        return [], 0


def _open(path: Path) -> ChainStore:
    return ChainStore(LevelDBKV(path / "db"), Archive(path / "archive"))


def child(mode: str, path: Path, extra: str = "") -> None:
    if mode == "build":
        chain = _open(path)
        grow(chain, Model(), BLOCKS)
    elif mode == "archive":
        archiver = Archiver(_open(path), hot_blocks=HOT, segment_blocks=SEGMENT)
        while archiver.step().action != "idle":
            print("step", flush=True)
    elif mode == "snapshot":
        chain = _open(path)
        Snapshotter(chain, SnapshotStore(path / "snapshots"), interval=INTERVAL,
                    chunk_pairs=CHUNK_PAIRS).step()
    elif mode == "validatorsync":
        validator_sync(path)
    elif mode == "statesync":
        source = _open(Path(extra))
        peers = [StorePeer(SnapshotStore(Path(extra) / "snapshots"))]
        manifest = asyncio.run(choose_manifest(peers, 1))
        pairs = asyncio.run(fetch_state(peers, manifest))
        block = source.get_block(manifest.height)
        assert block is not None
        install_snapshot(LevelDBKV(path / "db"), manifest, pairs, block)
    print("done", flush=True)


SIGNED_BLOCKS = 25


class ChainPeer(StorePeer):
    """A peer serving the snapshots of ``store`` and blocks with valid commits."""

    def __init__(self, store: SnapshotStore, blocks: list[tuple[Block, Commit]]) -> None:
        super().__init__(store)
        self.blocks = blocks

    async def get_committed_blocks(
        self, first: int, last: int, *, wait_ms: int = 0
    ) -> tuple[list[tuple[bytes, bytes]], int]:
        found = [
            (encode_block(b), encode_message(c))
            for b, c in self.blocks[first - 1 : min(last, len(self.blocks))]
        ]
        return found, len(self.blocks)


def signed_source(snapshots: Path) -> tuple[ChainStore, ChainPeer]:
    """A chain of blocks with valid commits, executed (no state changes), snapshotted at 20."""
    from tests.unit.runtime.test_statesync import chain_of

    blocks = chain_of(SIGNED_BLOCKS)
    source = ChainStore(MemoryKV())
    source.apply_genesis({a: Account(0, 10**18) for a in ADDRESSES[:4]})
    for block, _ in blocks:
        source.save_block(block)
        source.save_execution(block.height, [], {})
    store = SnapshotStore(snapshots)
    Snapshotter(source, store, interval=20).step()
    return source, ChainPeer(store, blocks)


def validator_sync(path: Path) -> None:
    """What `node run --state-sync` does for a validator before consensus starts."""
    from node.runtime.statesync import fetch_snapshot_block, follow_to_tip
    from tests.unit.runtime.test_statesync import checker

    _, peer = signed_source(path / "source-snapshots")
    kv = LevelDBKV(path / "db")
    if is_empty(kv):
        manifest = asyncio.run(choose_manifest([peer], 1))
        pairs = asyncio.run(fetch_state([peer], manifest))
        block, _ = asyncio.run(fetch_snapshot_block([peer], checker(), manifest))
        install_snapshot(kv, manifest, pairs, block)
    asyncio.run(follow_to_tip(ChainStore(kv), [peer], checker()))


def run_child(*args: str, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop(CRASH_ENV, None)
    if crash_at is not None:
        env[CRASH_ENV] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "tests.integration.test_crash_storage", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )


# ------------------------------------------------------------------ the checks


@pytest.fixture(scope="module")
def model() -> Model:
    m = Model()
    grow(ChainStore(MemoryKV()), m, BLOCKS)
    return m


def built(tmp_path: Path) -> Path:
    result = run_child("build", str(tmp_path))
    assert result.returncode == 0, result.stderr
    return tmp_path


def check_reads(chain: ChainStore, model: Model) -> None:
    for height in range(0, chain.executed_height() + 1, 7):
        for address in ADDRESSES:
            assert chain.get_account_at(address, height) == model.account(address, height)
    for height in range(1, chain.executed_height() + 1, 11):
        assert chain.get_block(height) is not None


def test_kill_9_while_archiving_and_pruning_resumes_consistently(
    tmp_path: Path, model: Model
) -> None:
    path = built(tmp_path)
    rng = random.Random(5)
    for _ in range(3):  # kill it at a random moment of its work, three times
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.test_crash_storage", "archive", str(path)],
            stdout=subprocess.PIPE, text=True,
        )
        assert proc.stdout is not None
        for _ in range(rng.randint(0, 2)):
            proc.stdout.readline()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        chain = _open(path)
        assert all(verify_segment(s.path) == [] for s in chain.archive.segments())  # type: ignore[union-attr]
        check_reads(chain, model)
        chain.kv.close()
    assert run_child("archive", str(path)).returncode == 0  # finishes the work
    chain = _open(path)
    archive = chain.archive
    assert archive is not None and archive.last_height() == chain.hot_floor() - 1
    assert chain.hot_floor() >= BLOCKS - HOT - SEGMENT
    check_reads(chain, model)
    chain.kv.close()


@pytest.mark.parametrize(
    "point", ["snapshot-chunk", "snapshot-before-rename", "snapshot-after-rename"]
)
def test_a_crash_while_writing_a_snapshot_leaves_none_or_a_whole_one(
    tmp_path: Path, point: str
) -> None:
    path = built(tmp_path)
    crashed = run_child("snapshot", str(path), crash_at=point)
    assert crashed.returncode == 137, crashed.stderr
    store = SnapshotStore(path / "snapshots")  # reopening cleans up
    assert [p.name for p in (path / "snapshots").iterdir() if p.name.startswith(".")] == []
    assert store.heights() == ([100] if point == "snapshot-after-rename" else [])
    assert run_child("snapshot", str(path)).returncode == 0
    store = SnapshotStore(path / "snapshots")
    manifest = store.latest()
    assert manifest is not None and manifest.height == 100
    chain = _open(path)
    assert manifest.commitment == chain.get_state_commitment(100)
    chain.kv.close()


def test_a_crash_during_state_sync_leaves_an_empty_store_and_a_rerun_completes(
    tmp_path: Path, model: Model
) -> None:
    source = built(tmp_path / "source")
    assert run_child("snapshot", str(source)).returncode == 0
    target = tmp_path / "target"
    target.mkdir()
    crashed = run_child("statesync", str(target), str(source), crash_at="statesync-chunk")
    assert crashed.returncode == 137, crashed.stderr
    kv = LevelDBKV(target / "db")
    assert is_empty(kv)
    kv.close()
    result = run_child("statesync", str(target), str(source))
    assert result.returncode == 0, result.stderr
    chain = _open(target)
    assert (chain.committed_height(), chain.executed_height(), chain.hot_floor()) == (100,) * 3
    for address in ADDRESSES:
        assert chain.get_account(address) == model.account(address, 100)
    manifest = SnapshotStore(source / "snapshots").latest()
    assert isinstance(manifest, Manifest)
    assert chain.get_state_commitment(100) == manifest.commitment
    assert chain.state_lthash().digest() == manifest.commitment
    chain.kv.close()


def test_a_validator_killed_while_saving_blocks_after_its_snapshot_resumes_them(
    tmp_path: Path,
) -> None:
    """A validator's state sync goes on past the snapshot: it saves verified blocks up to
    near the tip. Killed after the first of them, it restarts with the snapshot and that
    block kept, saves the rest, and its ordering resumes exactly where the source's is."""
    crashed = run_child("validatorsync", str(tmp_path), crash_at="statesync-follow")
    assert crashed.returncode == 137, crashed.stderr
    kv = LevelDBKV(tmp_path / "db")
    assert (ChainStore(kv).hot_floor(), ChainStore(kv).committed_height()) == (20, 21)
    kv.close()
    result = run_child("validatorsync", str(tmp_path))
    assert result.returncode == 0, result.stderr
    source, _ = signed_source(tmp_path / "again")
    kv = LevelDBKV(tmp_path / "db")
    synced = ChainStore(kv)
    tip = SIGNED_BLOCKS
    assert synced.committed_height() == tip and synced.executed_height() == 20
    assert synced.get_lane_tips(tip) == source.get_lane_tips(tip)
    resumed = with_resume_checkpoint({}, synced, lanes=4)[("ordering",)]
    expected = with_resume_checkpoint({}, source, lanes=4)[("ordering",)]
    assert resumed == expected
    kv.close()


if __name__ == "__main__":
    child(sys.argv[1], Path(sys.argv[2]), *sys.argv[3:])
