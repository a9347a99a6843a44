"""The archive tier: a directory of sealed segment files, contiguous from height 0.

Segments are named ``<first>-<last>.seg`` (12 zero-padded digits each) and never change once
renamed into place. Sealing is crash-safe: write ``.tmp-<name>``, fsync it, rename it, fsync
the directory, reopen and verify it; a crash leaves either no segment (the temp file is
removed on the next open) or a whole one. Reads take the current tuple of segments, so a
segment sealed by the archiver thread appears atomically to readers on other threads.
"""

from __future__ import annotations

import os
import re
import threading
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from node.storage.codec import decode_car
from node.storage.layout import pack_u64
from node.storage.records import (
    decode_block_header,
    decode_commitment,
    decode_qc,
    decode_receipt,
)
from node.storage.segment import (
    BLOCK_INDEX,
    HEADER_SIZE,
    MAGIC,
    HeightRecord,
    Segment,
    SegmentCorrupt,
    StateVersion,
    encode_height_record,
    encode_versions,
    write_segment,
)
from node.types.errors import FatalError
from node.types.messages import Block

SUFFIX: Final = ".seg"
TEMP_PREFIX: Final = ".tmp-"
_NAME = re.compile(r"(\d{12})-(\d{12})\.seg")
CACHED_CHUNKS: Final = 64
MAX_PROBLEMS: Final = 20
"""Problems reported per segment by ``verify_segment`` (the first ones are what matter)."""
_T = TypeVar("_T")


def segment_name(first: int, last: int) -> str:
    return f"{first:012d}-{last:012d}{SUFFIX}"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Archive:
    """Sealed segments under ``directory`` (created if missing).

    Opening removes leftover temp files and reads every segment's footer and index; a
    segment that does not open, or a gap or overlap in the heights, is a ``FatalError``
    (run ``lanenet archive verify DIR`` for the full report).
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._chunks: OrderedDict[tuple[Path, int], list[StateVersion]] = OrderedDict()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            for leftover in self.directory.glob(TEMP_PREFIX + "*"):
                leftover.unlink()
            paths = sorted(self.directory.glob("*" + SUFFIX))
        except OSError as exc:
            raise FatalError(f"archive directory {self.directory}: {exc}") from exc
        segments = []
        for path in paths:
            try:
                segments.append(_open_named(path))
            except (SegmentCorrupt, OSError) as exc:
                raise FatalError(
                    f"archive segment {path} is unreadable ({exc}); "
                    f"run `lanenet archive verify {self.directory}`"
                ) from exc
        gap = find_gap(segments)
        if gap:
            raise FatalError(f"archive {self.directory}: {gap}")
        self._publish(tuple(segments))

    def _publish(self, segments: tuple[Segment, ...]) -> None:
        # one attribute holds both, so a reader on another thread never sees them disagree
        self._view = (segments, [s.first for s in segments])

    # ---------------------------------------------------------------- what is sealed

    def segments(self) -> tuple[Segment, ...]:
        return self._view[0]

    def last_height(self) -> int | None:
        """The last sealed height, or None for an empty archive."""
        segments = self._view[0]
        return segments[-1].last if segments else None

    def next_height(self) -> int:
        """The first height of the next segment to seal."""
        last = self.last_height()
        return 0 if last is None else last + 1

    def covers(self, height: int) -> bool:
        last = self.last_height()
        return last is not None and 0 <= height <= last

    def size_bytes(self) -> int:
        return sum(s.size for s in self._view[0])

    def _segment_at(self, height: int) -> Segment | None:
        segments, firsts = self._view
        i = bisect_right(firsts, height) - 1
        if i < 0 or height > segments[i].last:
            return None
        return segments[i]

    # ---------------------------------------------------------------- reads

    def get_height(self, height: int) -> HeightRecord | None:
        """The sealed record of ``height``, or None if no segment holds it."""
        segment = self._segment_at(height)
        return None if segment is None else _checked(segment.get_height, height)

    def find_tx(self, tx_hash: bytes) -> tuple[int, int] | None:
        """``(height, index)`` of a sealed transaction (newest segments are searched first)."""
        for segment in reversed(self._view[0]):
            found = _checked(segment.find_tx, tx_hash)
            if found is not None:
                return found
        return None

    def get_state(self, key: bytes, height: int) -> bytes | None:
        """The value of state ``key`` after block ``height`` (None: absent), from sealed
        versions only. ``height`` must be covered (``covers``)."""
        segments, firsts = self._view
        if not self.covers(height):
            raise ValueError(f"height {height} is not in the archive")
        start = bisect_right(firsts, height) - 1
        for segment in reversed(segments[: start + 1]):
            i = segment.chunk_for(key, height)
            if i is None:
                continue
            for version in reversed(self._chunk(segment, i)):
                if (version.key, version.height) <= (key, height):
                    if version.key == key:
                        return version.value or None
                    break
        return None

    def _chunk(self, segment: Segment, i: int) -> list[StateVersion]:
        cache_key = (segment.path, i)
        with self._lock:
            chunk = self._chunks.get(cache_key)
            if chunk is not None:
                self._chunks.move_to_end(cache_key)
                return chunk
        chunk = _checked(segment.get_chunk, i)
        with self._lock:
            self._chunks[cache_key] = chunk
            while len(self._chunks) > CACHED_CHUNKS:
                self._chunks.popitem(last=False)
        return chunk

    # ---------------------------------------------------------------- sealing

    def seal(
        self,
        first: int,
        last: int,
        records: Iterable[HeightRecord],
        versions: Iterable[StateVersion],
        txs: Iterable[tuple[bytes, int, int]],
    ) -> Segment:
        """Write, fsync, rename, verify and publish the segment ``first..last``, which must
        follow the last sealed height. Returns it; any failure is a ``FatalError``."""
        if first != self.next_height() or last < first:
            raise FatalError(
                f"cannot seal {first}..{last}: the archive continues at {self.next_height()}"
            )
        name = segment_name(first, last)
        final, temp = self.directory / name, self.directory / (TEMP_PREFIX + name)
        try:
            with open(temp, "wb") as out:
                write_segment(out, records, versions, txs, first, last)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, final)
            _fsync_dir(self.directory)
        except OSError as exc:
            raise FatalError(f"archive {self.directory}: sealing {name} failed: {exc}") from exc
        problems = verify_segment(final)
        if problems:
            final.unlink(missing_ok=True)
            raise FatalError(f"archive segment {final} failed verification: {problems[0]}")
        segment = _open_named(final)
        with self._lock:
            self._publish((*self._view[0], segment))
        return segment



def _open_named(path: Path) -> Segment:
    match = _NAME.fullmatch(path.name)
    if match is None:
        raise SegmentCorrupt(f"{path.name} is not named <first>-<last>{SUFFIX}")
    segment = Segment(path)
    if (segment.first, segment.last) != (int(match[1]), int(match[2])):
        raise SegmentCorrupt(
            f"{path.name} holds heights {segment.first}..{segment.last}, not what its name says"
        )
    return segment


def _checked(read: Callable[..., _T], *args: Any) -> _T:
    """``read(*args)``, a corrupt or vanished segment turned into a ``FatalError``."""
    try:
        return read(*args)
    except (SegmentCorrupt, OSError) as exc:
        raise FatalError(f"archive read failed: {exc}; run `lanenet archive verify`") from exc


def find_gap(segments: Iterable[Segment]) -> str | None:
    """What breaks contiguity from height 0 (a gap or an overlap), or None."""
    expected = 0
    for s in segments:
        if s.first != expected:
            what = "a gap" if s.first > expected else "an overlap"
            return f"{what} before segment {s.path.name}: expected it to start at {expected}"
        expected = s.last + 1
    return None


# ---------------------------------------------------------------- verification


@dataclass(frozen=True, slots=True)
class SegmentStats:
    name: str
    first: int
    last: int
    bytes: int
    raw_bytes: int
    txs: int
    state_versions: int


def verify_segment(path: Path) -> list[str]:
    """Every problem found in the segment at ``path`` (empty: it is sound): its name, the
    checksum, the header, each frame decoding to consistent records, sorted state versions
    inside its heights, and a transaction table that matches its receipts exactly."""
    try:
        segment = _open_named(path)
    except (SegmentCorrupt, OSError) as exc:
        return [str(exc)]
    problems: list[str] = []
    try:
        _verify_body(segment, problems)
    except (SegmentCorrupt, OSError) as exc:
        problems.append(str(exc))
    return [f"{path.name}: {p}" for p in problems[:MAX_PROBLEMS]]


def _verify_body(segment: Segment, problems: list[str]) -> None:
    if segment.compute_checksum() != segment.checksum:
        problems.append("checksum mismatch: the file changed after it was sealed")
    header = segment.read_bytes(0, HEADER_SIZE)
    if header[: len(MAGIC)] != MAGIC:
        problems.append("bad magic: not a lanenet segment")
    elif header[len(MAGIC) :] != pack_u64(segment.first) + pack_u64(segment.last):
        problems.append("header heights differ from the index")
    ix = segment.index
    end = HEADER_SIZE
    for offset, length in (*ix.frames, *((c.offset, c.length) for c in ix.chunks)):
        if offset != end:
            problems.append(f"frame at {offset} does not follow the previous one (at {end})")
        end = offset + length
    if ix.tx_offset != end:
        problems.append("the transaction table does not follow the last frame")
    raw = 0
    txs: set[tuple[bytes, int, int]] = set()
    for height in range(segment.first, segment.last + 1):
        record = segment.get_height(height)
        raw += len(encode_height_record(record))
        problems += check_record(record, txs)
    versions = 0
    previous: tuple[bytes, int] | None = None
    for i, ref in enumerate(ix.chunks):
        chunk = segment.get_chunk(i)
        raw += len(encode_versions(chunk))
        versions += len(chunk)
        if not chunk or (chunk[0].key, chunk[0].height) != (ref.first_key, ref.first_height):
            problems.append(f"state chunk {i} does not start where the index says")
        for v in chunk:
            if previous is not None and (v.key, v.height) <= previous:
                problems.append(f"state versions out of order at {v.key.hex()}@{v.height}")
            if not segment.first <= v.height <= segment.last:
                problems.append(f"state version at height {v.height} is outside the segment")
            previous = (v.key, v.height)
    if raw != ix.raw_bytes:
        problems.append(f"index says {ix.raw_bytes} raw bytes, the frames hold {raw}")
    table = segment.read_tx_table()
    if table != sorted(set(table)):
        problems.append("transaction table is not sorted or has duplicates")
    if set(table) != txs:
        problems.append(
            f"transaction table ({len(table)} entries) does not match the receipts ({len(txs)})"
        )
    else:
        missing = [h for h, _height, _i in table if segment.find_tx_via_fanout(h) is None]
        if missing:
            problems.append(f"{len(missing)} transactions are not found through the fanout")


def check_record(record: HeightRecord, txs: set[tuple[bytes, int, int]]) -> list[str]:
    """Problems with one height's record; adds the hash table entries it implies (its block
    and its receipts' transactions) to ``txs``."""
    at = f"height {record.height}"
    if record.header is None:
        if record.height != 0 or record.cars or record.receipts or record.commit_qc:
            return [f"{at}: block data without a block header"]
        return []
    try:
        header = decode_block_header(record.header)
        cars = [decode_car(c) for c in record.cars]
        refs = [(c.lane, c.pos, c.digest) for c in cars]
        if header.height != record.height:
            return [f"{at}: holds the header of block {header.height}"]
        if refs != [(r.lane, r.pos, r.digest) for r in header.cars]:
            return [f"{at}: cars differ from the block header's references"]
        block = Block(header.height, header.slot, header.parent, header.cut_digest, tuple(cars))
        if block.digest != header.digest:
            return [f"{at}: the block does not hash to its stored digest"]
        if record.commit_qc is not None and decode_qc(record.commit_qc).slot != header.slot:
            return [f"{at}: commit QC of another slot"]
        txs.add((header.digest, record.height, BLOCK_INDEX))
        for i, data in enumerate(record.receipts):
            receipt = decode_receipt(data)
            if (receipt.height, receipt.index) != (record.height, i):
                return [f"{at}: receipt {i} says {receipt.height}/{receipt.index}"]
            txs.add((receipt.tx_hash, record.height, i))
        if record.commitment is not None:
            decode_commitment(record.commitment)
    except ValueError as exc:
        return [f"{at}: {exc}"]
    return []


def segment_stats(segment: Segment) -> SegmentStats:
    versions = sum(len(segment.get_chunk(i)) for i in range(len(segment.index.chunks)))
    return SegmentStats(
        name=segment.path.name,
        first=segment.first,
        last=segment.last,
        bytes=segment.size,
        raw_bytes=segment.index.raw_bytes,
        txs=segment.index.tx_count,
        state_versions=versions,
    )
