"""Archive segment files: one immutable, zstd-compressed file per contiguous height range.

A segment holds, for heights ``first..last``, everything the hot tier held for them: block
headers, cars, commit QCs, receipts, execution results (one frame per height), the state
versions written at those heights (frames of versions sorted by key, then height), and a
transaction table (tx hash -> height, index). Values are the hot tier's own encodings, so
reads decode them with the same functions.

    header   magic "LNSEG\\x00\\x01\\n", first u64, last u64
    frames   zstd frames (with zstd's content checksum): one per height, then state chunks
    tx table fanout (u32 per top-``bits`` prefix, cumulative), then sorted records
             (hash 32, height u64, index u32) of every transaction and block
             (index ``BLOCK_INDEX``); uncompressed, so a lookup reads a few records
    index    one zstd frame: per height (offset u64, length u32); per state chunk (first key,
             first height, offset, length); tx table (offset, count, bits); raw bytes
    footer   index offset u64, index length u32, BLAKE3 of every byte before the footer,
             magic "LNSEGEND"

A read of one block, receipt, transaction or state version decompresses one frame. The
checksum covers the whole file; ``verify_segment`` checks it and every structural rule.
"""

from __future__ import annotations

import os
import struct
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

import blake3
import zstandard

from node.storage.layout import Reader, pack_u8, pack_u32, pack_u64, pack_var

MAGIC: Final = b"LNSEG\x00\x01\n"
FOOTER_MAGIC: Final = b"LNSEGEND"
HEADER_SIZE: Final = len(MAGIC) + 16
FOOTER_SIZE: Final = 8 + 4 + 32 + len(FOOTER_MAGIC)
TX_RECORD_SIZE: Final = 32 + 8 + 4
STATE_CHUNK_BYTES: Final = 16 << 10
"""Raw size of a state chunk: a cold state read decompresses and parses one."""
BLOCK_INDEX: Final = 2**32 - 1
"""The index the hash table gives a block digest: the table maps block hashes as well as
transaction hashes to their height (a transaction's index is its place in the block)."""
COMPRESSION_LEVEL: Final = 3
_MAX_INDEX_BYTES: Final = 1 << 30


class SegmentCorrupt(ValueError):
    """A segment file that breaks the format: wrong checksum, bad index, undecodable frame."""


@dataclass(frozen=True, slots=True)
class HeightRecord:
    """What one height contributes to a segment (``header`` is None only at height 0)."""

    height: int
    header: bytes | None
    cars: tuple[bytes, ...] = ()
    commit_qc: bytes | None = None
    receipts: tuple[bytes, ...] = ()
    commitment: bytes | None = None


@dataclass(frozen=True, slots=True)
class StateVersion:
    """The value ``key`` took at ``height`` (b"": deleted)."""

    key: bytes
    height: int
    value: bytes


@dataclass(frozen=True, slots=True)
class ChunkRef:
    first_key: bytes
    first_height: int
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class SegmentIndex:
    first: int
    last: int
    frames: tuple[tuple[int, int], ...]
    chunks: tuple[ChunkRef, ...]
    tx_offset: int
    tx_count: int
    tx_bits: int
    raw_bytes: int


# ---------------------------------------------------------------- encodings


def _opt(value: bytes | None) -> bytes:
    return b"\x00" if value is None else b"\x01" + pack_var(value)


def _read_opt(r: Reader) -> bytes | None:
    flag = r.u8()
    if flag not in (0, 1):
        raise ValueError(f"bad optional flag {flag}")
    return r.var() if flag else None


def _vars(items: tuple[bytes, ...]) -> bytes:
    return pack_u32(len(items)) + b"".join(pack_var(x) for x in items)


def _read_vars(r: Reader) -> tuple[bytes, ...]:
    return tuple(r.var() for _ in range(r.count(4)))


def encode_height_record(record: HeightRecord) -> bytes:
    return (
        pack_u64(record.height)
        + _opt(record.header)
        + _vars(record.cars)
        + _opt(record.commit_qc)
        + _vars(record.receipts)
        + _opt(record.commitment)
    )


def decode_height_record(data: bytes) -> HeightRecord:
    r = Reader(data, "segment height frame")
    height = r.u64()
    header, cars, qc = _read_opt(r), _read_vars(r), _read_opt(r)
    receipts, commitment = _read_vars(r), _read_opt(r)
    r.finish()
    return HeightRecord(height, header, cars, qc, receipts, commitment)


def encode_versions(versions: Iterable[StateVersion]) -> bytes:
    items = list(versions)
    body = b"".join(pack_var(v.key) + pack_u64(v.height) + pack_var(v.value) for v in items)
    return pack_u32(len(items)) + body


_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


def decode_versions(data: bytes) -> list[StateVersion]:
    # a cold state read parses a whole chunk: unpack_from in place, not Reader per field
    end = len(data)
    try:
        (n,) = _U32.unpack_from(data, 0)
        pos, versions = 4, []
        for _ in range(n):
            (size,) = _U32.unpack_from(data, pos)
            key = data[pos + 4 : pos + 4 + size]
            pos += 4 + size
            (height,) = _U64.unpack_from(data, pos)
            (size,) = _U32.unpack_from(data, pos + 8)
            value = data[pos + 12 : pos + 12 + size]
            pos += 12 + size
            if pos > end:
                break
            versions.append(StateVersion(key, height, value))
    except struct.error as exc:
        raise ValueError(f"segment state chunk: truncated ({exc})") from exc
    if pos != end or len(versions) != n:
        raise ValueError(f"segment state chunk: {n} versions do not fill {end} bytes")
    return versions


def _encode_index(index: SegmentIndex) -> bytes:
    parts = [pack_u64(index.first), pack_u64(index.last), pack_u32(len(index.frames))]
    parts += [pack_u64(off) + pack_u32(n) for off, n in index.frames]
    parts.append(pack_u32(len(index.chunks)))
    parts += [
        pack_var(c.first_key) + pack_u64(c.first_height) + pack_u64(c.offset) + pack_u32(c.length)
        for c in index.chunks
    ]
    parts += [
        pack_u64(index.tx_offset),
        pack_u32(index.tx_count),
        pack_u8(index.tx_bits),
        pack_u64(index.raw_bytes),
    ]
    return b"".join(parts)


def _decode_index(data: bytes) -> SegmentIndex:
    r = Reader(data, "segment index")
    first, last = r.u64(), r.u64()
    frames = tuple((r.u64(), r.u32()) for _ in range(r.count(12)))
    chunks = tuple(ChunkRef(r.var(), r.u64(), r.u64(), r.u32()) for _ in range(r.count(24)))
    tx_offset, tx_count, tx_bits, raw_bytes = r.u64(), r.u32(), r.u8(), r.u64()
    r.finish()
    if last < first or len(frames) != last - first + 1 or tx_bits > 16:
        raise ValueError(f"segment index of {first}..{last} has {len(frames)} height frames")
    return SegmentIndex(first, last, frames, chunks, tx_offset, tx_count, tx_bits, raw_bytes)


def _fanout_bits(count: int) -> int:
    """Prefix bits so a bucket holds ~8 records (0 for a tiny table, at most 16)."""
    return min(16, max(0, (count // 8).bit_length()))


# ---------------------------------------------------------------- writing


class _HashingWriter:
    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.hasher = blake3.blake3()
        self.offset = 0

    def write(self, data: bytes) -> int:
        self.out.write(data)
        self.hasher.update(data)
        start = self.offset
        self.offset += len(data)
        return start


def write_segment(
    out: BinaryIO,
    records: Iterable[HeightRecord],
    versions: Iterable[StateVersion],
    txs: Iterable[tuple[bytes, int, int]],
    first: int,
    last: int,
) -> int:
    """Write a segment of heights ``first..last`` to ``out``; returns the bytes written.

    ``records`` must be exactly heights ``first..last`` in order; ``versions`` and ``txs``
    (tx hash, height, index) may come in any order.
    """
    w = _HashingWriter(out)
    w.write(MAGIC + pack_u64(first) + pack_u64(last))
    compressor = zstandard.ZstdCompressor(level=COMPRESSION_LEVEL, write_checksum=True)
    frames: list[tuple[int, int]] = []
    raw = 0
    for expected, record in enumerate(records, start=first):
        if record.height != expected or expected > last:
            raise ValueError(f"segment {first}..{last}: got height {record.height}")
        data = encode_height_record(record)
        raw += len(data)
        frame = compressor.compress(data)
        frames.append((w.write(frame), len(frame)))
    if len(frames) != last - first + 1:
        raise ValueError(f"segment {first}..{last}: {len(frames)} heights given")
    chunks: list[ChunkRef] = []
    for chunk in _chunk_versions(sorted(versions, key=lambda v: (v.key, v.height))):
        data = encode_versions(chunk)
        raw += len(data)
        frame = compressor.compress(data)
        chunks.append(ChunkRef(chunk[0].key, chunk[0].height, w.write(frame), len(frame)))
    table = sorted(txs)
    bits = _fanout_bits(len(table))
    tx_offset = w.write(_fanout(table, bits))
    w.write(b"".join(h + pack_u64(height) + pack_u32(i) for h, height, i in table))
    index = SegmentIndex(
        first, last, tuple(frames), tuple(chunks), tx_offset, len(table), bits, raw
    )
    index_frame = compressor.compress(_encode_index(index))
    index_offset = w.write(index_frame)
    checksum = w.hasher.digest()
    out.write(pack_u64(index_offset) + pack_u32(len(index_frame)) + checksum + FOOTER_MAGIC)
    return w.offset + FOOTER_SIZE


def _chunk_versions(versions: list[StateVersion]) -> Iterator[list[StateVersion]]:
    chunk: list[StateVersion] = []
    size = 0
    for v in versions:
        chunk.append(v)
        size += len(v.key) + len(v.value) + 16
        if size >= STATE_CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _fanout(table: list[tuple[bytes, int, int]], bits: int) -> bytes:
    counts = [0] * (1 << bits)
    for tx_hash, _h, _i in table:
        counts[_bucket(tx_hash, bits)] += 1
    total, out = 0, []
    for n in counts:
        total += n
        out.append(pack_u32(total))
    return b"".join(out)


def _bucket(tx_hash: bytes, bits: int) -> int:
    return int.from_bytes(tx_hash[:2], "big") >> (16 - bits)


# ---------------------------------------------------------------- reading


class Segment:
    """A sealed segment file, opened by reading its footer and index (not its checksum)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.size = self.path.stat().st_size
        if self.size < HEADER_SIZE + FOOTER_SIZE:
            raise SegmentCorrupt(f"{self.path}: {self.size} bytes is too short for a segment")
        footer = self.read_bytes(self.size - FOOTER_SIZE, FOOTER_SIZE)
        if footer[-len(FOOTER_MAGIC) :] != FOOTER_MAGIC:
            raise SegmentCorrupt(f"{self.path}: no segment footer (truncated or not a segment)")
        r = Reader(footer, "segment footer")
        index_offset, index_length, self.checksum = r.u64(), r.u32(), r.take(32)
        if index_offset + index_length > self.size - FOOTER_SIZE:
            raise SegmentCorrupt(f"{self.path}: index lies outside the file")
        try:
            self.index = _decode_index(self._frame(index_offset, index_length, "index"))
        except ValueError as exc:
            raise SegmentCorrupt(f"{self.path}: bad index: {exc}") from exc
        self.first, self.last = self.index.first, self.index.last
        self.index_offset = index_offset
        self._chunk_keys = [(c.first_key, c.first_height) for c in self.index.chunks]
        self._prefixes: array[int] | None = None

    def read_bytes(self, offset: int, length: int) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(offset)
            data = f.read(length)
        if len(data) != length:
            raise SegmentCorrupt(f"{self.path}: truncated at offset {offset}")
        return data

    def _frame(self, offset: int, length: int, what: str) -> bytes:
        try:
            data: bytes = zstandard.ZstdDecompressor().decompress(
                self.read_bytes(offset, length), max_output_size=_MAX_INDEX_BYTES
            )
        except zstandard.ZstdError as exc:
            raise SegmentCorrupt(f"{self.path}: {what} frame does not decompress: {exc}") from exc
        return data

    def get_height(self, height: int) -> HeightRecord:
        """The record of ``height`` (``first <= height <= last``)."""
        offset, length = self.index.frames[height - self.first]
        try:
            record = decode_height_record(self._frame(offset, length, f"height {height}"))
        except ValueError as exc:
            raise SegmentCorrupt(f"{self.path}: height {height}: {exc}") from exc
        if record.height != height:
            raise SegmentCorrupt(f"{self.path}: frame of height {height} says {record.height}")
        return record

    def get_chunk(self, i: int) -> list[StateVersion]:
        ref = self.index.chunks[i]
        try:
            return decode_versions(self._frame(ref.offset, ref.length, f"state chunk {i}"))
        except ValueError as exc:
            raise SegmentCorrupt(f"{self.path}: state chunk {i}: {exc}") from exc

    def chunk_for(self, key: bytes, height: int) -> int | None:
        """The state chunk that holds the newest version of ``key`` at or below ``height``,
        if the segment has one: the last chunk starting at or before ``(key, height)``."""
        i = bisect_right(self._chunk_keys, (key, height)) - 1
        return None if i < 0 else i

    def find_tx(self, tx_hash: bytes) -> tuple[int, int] | None:
        """``(height, index)`` of ``tx_hash`` if this segment holds it.

        The first 4 bytes of every hash stay in memory once loaded (4 bytes per entry), so
        a miss, the common case when a lookup walks all segments, reads no file.
        """
        prefixes = self._prefixes if self._prefixes is not None else self._load_prefixes()
        wanted = int.from_bytes(tx_hash[:4], "big")
        i = bisect_left(prefixes, wanted)
        table = self.index.tx_offset + 4 * (1 << self.index.tx_bits)
        while i < len(prefixes) and prefixes[i] == wanted:
            record = self.read_bytes(table + i * TX_RECORD_SIZE, TX_RECORD_SIZE)
            if record[:32] == tx_hash:
                r = Reader(record[32:], "tx record")
                return r.u64(), r.u32()
            i += 1
        return None

    def find_tx_via_fanout(self, tx_hash: bytes) -> tuple[int, int] | None:
        """``find_tx`` through the on-disk fanout, with nothing in memory (what verify uses)."""
        ix = self.index
        if ix.tx_count == 0:
            return None
        bucket = _bucket(tx_hash, ix.tx_bits)
        fan = self.read_bytes(ix.tx_offset + 4 * max(bucket - 1, 0), 8 if bucket else 4)
        lo = int.from_bytes(fan[:4], "big") if bucket else 0
        hi = int.from_bytes(fan[-4:], "big")
        if hi <= lo:
            return None
        table = ix.tx_offset + 4 * (1 << ix.tx_bits)
        data = self.read_bytes(table + lo * TX_RECORD_SIZE, (hi - lo) * TX_RECORD_SIZE)
        for pos in range(0, len(data), TX_RECORD_SIZE):
            if data[pos : pos + 32] == tx_hash:
                r = Reader(data[pos + 32 : pos + TX_RECORD_SIZE], "tx record")
                return r.u64(), r.u32()
        return None

    def _load_prefixes(self) -> array[int]:
        ix = self.index
        table = ix.tx_offset + 4 * (1 << ix.tx_bits)
        records = self.read_bytes(table, ix.tx_count * TX_RECORD_SIZE)
        prefixes = array("I", (
            int.from_bytes(records[pos : pos + 4], "big")
            for pos in range(0, len(records), TX_RECORD_SIZE)
        ))
        self._prefixes = prefixes
        return prefixes

    def read_tx_table(self) -> list[tuple[bytes, int, int]]:
        ix = self.index
        fanout = self.read_bytes(ix.tx_offset, 4 * (1 << ix.tx_bits))
        records = self.read_bytes(ix.tx_offset + len(fanout), ix.tx_count * TX_RECORD_SIZE)
        table = []
        for pos in range(0, len(records), TX_RECORD_SIZE):
            r = Reader(records[pos : pos + TX_RECORD_SIZE], "tx record")
            table.append((r.take(32), r.u64(), r.u32()))
        if int.from_bytes(fanout[-4:], "big") != ix.tx_count:
            raise SegmentCorrupt(f"{self.path}: tx fanout does not end at the record count")
        return table

    def compute_checksum(self) -> bytes:
        hasher = blake3.blake3()
        remaining = self.size - FOOTER_SIZE
        with open(self.path, "rb") as f:
            while remaining > 0:
                block = f.read(min(remaining, 1 << 20))
                if not block:
                    raise SegmentCorrupt(f"{self.path}: truncated")
                hasher.update(block)
                remaining -= len(block)
        return hasher.digest()
