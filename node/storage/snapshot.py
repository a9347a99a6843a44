"""State snapshots: the whole state at a height, in hashed chunks, checked against its LtHash.

Every ``interval`` executed heights ``Snapshotter.step()`` (run in a worker thread, like
``Archiver.step``) writes the state at the newest multiple ``H`` of the interval:

    <snapshot dir>/<H:012d>/chunk-000000 .. chunk-NNNNNN   state pairs, sorted by key
    <snapshot dir>/<H:012d>/manifest.json                 format, height, block hash,
                                                           commitment, chunk hashes,
                                                           lane tips after block H

A chunk is up to ``chunk_pairs`` (key, value) pairs, each ``u16 key length, key, u32 value
length, value``; its hash is BLAKE3 of its bytes. Chunking is deterministic (sorted keys, a
fixed pair count), so every validator's snapshot of ``H`` has the same chunks and manifest
and a syncing node may fetch chunks from any of them. The LtHash of all pairs must equal the
state commitment the node recorded after block ``H``; a snapshot that does not is never
written (``FatalError``: the node's state and its commitment disagree).

The state at ``H`` is read while blocks keep executing: the keys are the current-state keys
(one LevelDB iterator, a consistent view) plus every key written by a block after ``H`` (so
a key deleted since is not missed), and each value is read at ``H`` from the history.

Crash safety: a snapshot is written into ``.tmp-<H>``, each file fsynced, the directory
renamed into place and its parent fsynced; ``open`` removes temp directories and any
snapshot directory whose manifest is missing or unreadable. Only the newest ``keep``
snapshots are kept.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import blake3

from node.storage import history, schema
from node.storage.chain_store import ChainStore
from node.storage.history import PrunedError
from node.storage.lthash import LtHash
from node.storage.schema import Table
from node.types.errors import FatalError

FORMAT: Final = 2
"""2: the manifest carries the lane tips after its block (a validator resumes ordering
there after state sync)."""
CHUNK_PAIRS: Final = 4096
"""Pairs per chunk: ~4096 accounts x ~60 bytes = ~250 KiB, well under a gRPC message."""
DEFAULT_KEEP: Final = 2
MANIFEST: Final = "manifest.json"
TEMP_PREFIX: Final = ".tmp-"
MAX_CHUNK_BYTES: Final = 16 << 20
CRASH_ENV: Final = "LANENET_CRASH_AT"
"""Test hook: ``LANENET_CRASH_AT=<point>`` makes the process ``os._exit(137)`` at that named
point (what ``kill -9`` there would leave); see ``crash_point``."""
_PAIR_HEAD = struct.Struct(">HI")

Pair = tuple[bytes, bytes]


class SnapshotError(ValueError):
    """A snapshot (manifest or chunk) that is malformed or does not match its hashes."""


def crash_point(name: str) -> None:
    """Exit at once, like ``kill -9``, if the crash hook names this point (tests only)."""
    if os.environ.get(CRASH_ENV) == name:
        os._exit(137)


# ------------------------------------------------------------ format


@dataclass(frozen=True, slots=True)
class ChunkInfo:
    hash: bytes
    pairs: int
    size: int


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a snapshot holds: the state after block ``height`` in ``chunks``."""

    height: int
    block_hash: bytes
    commitment: bytes
    chunks: tuple[ChunkInfo, ...]
    lane_tips: tuple[tuple[int, int, bytes], ...] = ()
    """(lane, pos, car digest) of each lane's last car in the blocks up to ``height``."""
    format: int = FORMAT

    @property
    def accounts(self) -> int:
        return sum(c.pairs for c in self.chunks)

    def encode(self) -> bytes:
        """Canonical JSON (sorted keys): equal manifests have equal bytes."""
        doc = {
            "format": self.format,
            "height": self.height,
            "block_hash": self.block_hash.hex(),
            "commitment": self.commitment.hex(),
            "chunks": [
                {"hash": c.hash.hex(), "pairs": c.pairs, "size": c.size} for c in self.chunks
            ],
            "lane_tips": [[lane, pos, digest.hex()] for lane, pos, digest in self.lane_tips],
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    def digest(self) -> bytes:
        return blake3.blake3(self.encode()).digest()

    @classmethod
    def decode(cls, data: bytes) -> Manifest:
        try:
            doc = json.loads(data)
            if doc["format"] != FORMAT:
                raise SnapshotError(f"snapshot format {doc['format']}, this node reads {FORMAT}")
            chunks = tuple(
                ChunkInfo(_hex(c["hash"], 32), _count(c["pairs"]), _count(c["size"]))
                for c in doc["chunks"]
            )
            tips = tuple(
                (_count(lane), _count(pos), _hex(digest, 32))
                for lane, pos, digest in doc["lane_tips"]
            )
            if [t[0] for t in tips] != sorted({t[0] for t in tips}):
                raise SnapshotError("malformed snapshot manifest: lane tips out of order")
            manifest = cls(
                _count(doc["height"]), _hex(doc["block_hash"], 32), _hex(doc["commitment"], 32),
                chunks, tips,
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, SnapshotError):
                raise
            raise SnapshotError(f"malformed snapshot manifest: {exc!r}") from exc
        return manifest


def _hex(value: object, size: int) -> bytes:
    if not isinstance(value, str):
        raise SnapshotError(f"expected a hex string, got {value!r}")
    data = bytes.fromhex(value)
    if len(data) != size:
        raise SnapshotError(f"expected {size} bytes, got {len(data)}")
    return data


def _count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SnapshotError(f"expected a non-negative integer, got {value!r}")
    return value


def encode_chunk(pairs: Iterable[Pair]) -> bytes:
    parts = []
    for key, value in pairs:
        parts.append(_PAIR_HEAD.pack(len(key), len(value)))
        parts += [key, value]
    return b"".join(parts)


def decode_chunk(data: bytes) -> list[Pair]:
    """The pairs of a chunk; ``SnapshotError`` if truncated or not strictly key-sorted."""
    pairs: list[Pair] = []
    at = 0
    while at < len(data):
        if at + _PAIR_HEAD.size > len(data):
            raise SnapshotError("snapshot chunk truncated in a pair header")
        key_len, value_len = _PAIR_HEAD.unpack_from(data, at)
        at += _PAIR_HEAD.size
        end = at + key_len + value_len
        if end > len(data) or key_len == 0 or value_len == 0:
            raise SnapshotError("snapshot chunk truncated or holds an empty key or value")
        key, value = data[at : at + key_len], data[at + key_len : end]
        if pairs and key <= pairs[-1][0]:
            raise SnapshotError("snapshot chunk keys are not strictly increasing")
        pairs.append((key, value))
        at = end
    return pairs


def chunk_hash(data: bytes) -> bytes:
    return blake3.blake3(data).digest()


def verify_chunk(manifest: Manifest, index: int, data: bytes) -> list[Pair]:
    """The pairs of chunk ``index`` of ``manifest``, after checking its hash."""
    if not 0 <= index < len(manifest.chunks):
        raise SnapshotError(f"snapshot {manifest.height} has no chunk {index}")
    expected = manifest.chunks[index]
    if chunk_hash(data) != expected.hash:
        raise SnapshotError(f"chunk {index} of snapshot {manifest.height} does not match its hash")
    pairs = decode_chunk(data)
    if len(pairs) != expected.pairs:
        raise SnapshotError(
            f"chunk {index} holds {len(pairs)} pairs, the manifest says {expected.pairs}"
        )
    return pairs


def check_commitment(manifest: Manifest, lthash: LtHash) -> None:
    if lthash.digest() != manifest.commitment:
        raise SnapshotError(
            f"snapshot {manifest.height}: its state hashes to {lthash.digest().hex()[:16]}…, "
            f"not the commitment {manifest.commitment.hex()[:16]}… of that height"
        )


# ------------------------------------------------------------ reading the state at a height


def state_at(chain: ChainStore, height: int) -> list[Pair]:
    """Every (state key, value) after block ``height``, sorted, read while blocks execute.

    ``PrunedError`` if the node no longer holds the state of ``height``.
    """
    kv = chain.kv
    keys = {key for key, _value in kv.iterate(*schema.table_range(Table.ACCOUNT))}
    executed = chain.executed_height()  # read after the scan: covers keys deleted meanwhile
    for h in range(height + 1, executed + 1):
        keys.update(history.get_changed_keys(kv, h) or ())
    pairs = []
    for key in sorted(keys):
        value = chain.get_state_at(key, height)
        if value is not None:
            pairs.append((key, value))
    return pairs


def chunked(pairs: list[Pair], chunk_pairs: int) -> Iterator[list[Pair]]:
    for start in range(0, len(pairs), chunk_pairs):
        yield pairs[start : start + chunk_pairs]


# ------------------------------------------------------------ the snapshot directory


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def snapshot_dirname(height: int) -> str:
    return f"{height:012d}"


class SnapshotStore:
    """The snapshot directory: complete snapshots by height; safe to read from any thread."""

    def __init__(self, directory: str | os.PathLike[str], *, keep: int = DEFAULT_KEEP) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.directory = Path(directory)
        self.keep = keep
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._manifests: dict[int, Manifest] = {}
        self._clean()

    def _clean(self) -> None:
        """Drop what a crash left: temp directories and snapshots without a valid manifest."""
        for entry in sorted(self.directory.iterdir()):
            if entry.name.startswith(TEMP_PREFIX) or not entry.name.isdigit():
                _remove(entry)
                continue
            try:
                manifest = Manifest.decode((entry / MANIFEST).read_bytes())
            except (OSError, SnapshotError):
                _remove(entry)
                continue
            if snapshot_dirname(manifest.height) != entry.name:
                _remove(entry)
                continue
            self._manifests[manifest.height] = manifest

    def heights(self) -> list[int]:
        with self._lock:
            return sorted(self._manifests)

    def latest(self) -> Manifest | None:
        with self._lock:
            return self._manifests[max(self._manifests)] if self._manifests else None

    def get_manifest(self, height: int) -> Manifest | None:
        with self._lock:
            return self._manifests.get(height)

    def read_chunk(self, height: int, index: int) -> bytes | None:
        """Chunk ``index`` of the snapshot of ``height``; None if there is no such chunk."""
        manifest = self.get_manifest(height)
        if manifest is None or not 0 <= index < len(manifest.chunks):
            return None
        try:
            return (self.directory / snapshot_dirname(height) / f"chunk-{index:06d}").read_bytes()
        except FileNotFoundError:  # deleted as an old snapshot meanwhile
            return None

    def write(self, manifest_of: ManifestBuilder, chunks: Iterable[bytes]) -> Manifest:
        """Write a snapshot crash-safely (temp dir, fsync, rename, fsync) and drop old ones."""
        height = manifest_of.height
        temp = self.directory / f"{TEMP_PREFIX}{snapshot_dirname(height)}"
        _remove(temp)
        temp.mkdir()
        infos = []
        for i, data in enumerate(chunks):
            _write_synced(temp / f"chunk-{i:06d}", data)
            infos.append(ChunkInfo(chunk_hash(data), manifest_of.pair_counts[i], len(data)))
            crash_point("snapshot-chunk")
        manifest = Manifest(
            height,
            manifest_of.block_hash,
            manifest_of.commitment,
            tuple(infos),
            manifest_of.lane_tips,
        )
        _write_synced(temp / MANIFEST, manifest.encode())
        _fsync_dir(temp)
        crash_point("snapshot-before-rename")
        final = self.directory / snapshot_dirname(height)
        _remove(final)
        os.rename(temp, final)
        _fsync_dir(self.directory)
        crash_point("snapshot-after-rename")
        with self._lock:
            self._manifests[height] = manifest
            old = sorted(self._manifests)[: -self.keep]
            for h in old:
                del self._manifests[h]
        for h in old:
            _remove(self.directory / snapshot_dirname(h))
        return manifest


@dataclass(frozen=True, slots=True)
class ManifestBuilder:
    height: int
    block_hash: bytes
    commitment: bytes
    pair_counts: tuple[int, ...]
    lane_tips: tuple[tuple[int, int, bytes], ...]


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


# ------------------------------------------------------------ the background step


@dataclass(frozen=True, slots=True)
class SnapshotResult:
    action: Literal["idle", "created", "skipped"]
    height: int = 0
    accounts: int = 0


class Snapshotter:
    """Writes a snapshot of ``chain`` every ``interval`` executed heights into ``store``."""

    def __init__(
        self,
        chain: ChainStore,
        store: SnapshotStore,
        *,
        interval: int,
        chunk_pairs: int = CHUNK_PAIRS,
    ) -> None:
        if interval < 1 or chunk_pairs < 1:
            raise ValueError("snapshot interval and chunk_pairs must be at least 1")
        self.chain = chain
        self.store = store
        self.interval = interval
        self.chunk_pairs = chunk_pairs
        self._lock = threading.Lock()

    def due_height(self) -> int | None:
        """The height the next snapshot would be of, if one is due."""
        target = self.chain.executed_height() // self.interval * self.interval
        latest = self.store.latest()
        if target == 0 or (latest is not None and latest.height >= target):
            return None
        return target

    def step(self) -> SnapshotResult:
        with self._lock:
            height = self.due_height()
            if height is None:
                return SnapshotResult("idle")
            return self.create(height)

    def create(self, height: int) -> SnapshotResult:
        """Write the snapshot of ``height`` (which must be executed)."""
        chain = self.chain
        try:
            pairs = state_at(chain, height)
            commitment = chain.get_state_commitment(height)
        except PrunedError:
            return SnapshotResult("skipped", height)
        block = chain.get_block(height)
        tips = chain.get_lane_tips(height)
        if commitment is None or block is None or tips is None:
            return SnapshotResult("skipped", height)
        lthash = LtHash.of(pairs)
        if lthash.digest() != commitment:
            raise FatalError(
                f"the state read at height {height} hashes to {lthash.digest().hex()[:16]}…, "
                f"not its recorded commitment {commitment.hex()[:16]}…: the database is "
                "inconsistent (restore it or resync the node)"
            )
        groups = list(chunked(pairs, self.chunk_pairs))
        builder = ManifestBuilder(
            height,
            block.digest,
            commitment,
            tuple(len(g) for g in groups),
            tuple((lane, pos, digest) for lane, (pos, digest) in sorted(tips.items())),
        )
        self.store.write(builder, (encode_chunk(g) for g in groups))
        return SnapshotResult("created", height, len(pairs))
