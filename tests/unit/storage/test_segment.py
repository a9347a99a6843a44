"""The segment file format: each height is its own compressed frame (one read decompresses
one frame, and damage to one frame leaves the others readable), state versions come back
by key and height, and the hash table finds every transaction and block."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from node.storage.segment import (
    BLOCK_INDEX,
    HeightRecord,
    Segment,
    SegmentCorrupt,
    StateVersion,
    decode_versions,
    encode_versions,
    write_segment,
)


def records(first: int, last: int) -> list[HeightRecord]:
    return [
        HeightRecord(h, b"header-%d" % h, (b"car-%d" % h,), None, (b"r%d" % h,) * 3, b"c")
        for h in range(first, last + 1)
    ]


def write(path: Path, first: int = 10, last: int = 19, versions: int = 2000) -> Path:
    # 300 keys, each written at up to 7 heights
    state = [
        StateVersion(b"k%04d" % (i % 300), first + i // 300, b"v%d" % i) for i in range(versions)
    ]
    txs = [(bytes([h, i]) * 16, h, i) for h in range(first, last + 1) for i in range(3)]
    txs += [(bytes([h]) * 32, h, BLOCK_INDEX) for h in range(first, last + 1)]
    with open(path, "wb") as out:
        write_segment(out, records(first, last), state, txs, first, last)
    return path


def test_every_record_version_and_hash_reads_back(tmp_path: Path) -> None:
    """Heights, the newest version of a key at or below a height, and hashes round-trip."""
    segment = Segment(write(tmp_path / "s.seg"))
    assert (segment.first, segment.last) == (10, 19)
    assert [segment.get_height(h) for h in range(10, 20)] == records(10, 19)
    assert len(segment.index.chunks) > 1  # the state spans several frames
    assert segment.find_tx(bytes([12, 2]) * 16) == (12, 2)
    assert segment.find_tx(bytes([15]) * 32) == (15, BLOCK_INDEX)
    assert segment.find_tx(b"\x99" * 32) is None
    assert segment.compute_checksum() == segment.checksum
    i = segment.chunk_for(b"k0005", 15)
    assert i is not None
    newest = [v for v in segment.get_chunk(i) if v.key == b"k0005" and v.height <= 15]
    assert newest and newest[-1].height == 15


def test_damage_to_one_frame_leaves_the_other_heights_readable(tmp_path: Path) -> None:
    """A flipped byte inside height 13's frame makes that read fail (zstd checksum) while
    heights 12 and 14 still read: reads never decompress more than their own frame."""
    path = write(tmp_path / "s.seg")
    segment = Segment(path)
    offset, length = segment.index.frames[3]
    data = bytearray(path.read_bytes())
    data[offset + length // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    damaged = Segment(path)
    with pytest.raises(SegmentCorrupt, match="height 13"):
        damaged.get_height(13)
    assert damaged.get_height(12) == records(12, 12)[0]
    assert damaged.get_height(14) == records(14, 14)[0]


def test_a_file_that_is_not_a_segment_is_refused(tmp_path: Path) -> None:
    """Too short, or without the footer magic: SegmentCorrupt naming the file."""
    (tmp_path / "short.seg").write_bytes(b"LNSEG")
    with pytest.raises(SegmentCorrupt, match="too short"):
        Segment(tmp_path / "short.seg")
    (tmp_path / "junk.seg").write_bytes(b"\x00" * 500)
    with pytest.raises(SegmentCorrupt, match="no segment footer"):
        Segment(tmp_path / "junk.seg")


def test_records_must_be_exactly_the_segment_heights() -> None:
    """A missing or extra height is a ValueError before anything is relied on."""
    with pytest.raises(ValueError, match="got height 12"):
        write_segment(io.BytesIO(), records(12, 13), [], [], 10, 13)
    with pytest.raises(ValueError, match="heights given"):
        write_segment(io.BytesIO(), records(10, 11), [], [], 10, 13)


def test_a_truncated_state_chunk_is_a_value_error() -> None:
    """Chunks shorter or longer than their version count say are rejected."""
    data = encode_versions([StateVersion(b"k", 1, b"v"), StateVersion(b"kk", 2, b"")])
    assert decode_versions(data)[1] == StateVersion(b"kk", 2, b"")
    for bad in (data[:-1], data + b"\x00", data[:6]):
        with pytest.raises(ValueError, match="segment state chunk"):
            decode_versions(bad)
