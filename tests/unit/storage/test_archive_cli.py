"""`lanenet archive verify|stats DIR`: a sound archive verifies with exit 0, damage or a gap
exits 1 naming the problem, and stats describe what the segments hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.cli import main
from node.storage.archive import segment_name
from tests.unit.storage.test_archive import archived_chain


def test_a_sound_archive_verifies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every segment is listed as ok and the summary gives the height range."""
    archived_chain(tmp_path, blocks=30, hot=5, segment=10)
    assert main(["archive", "verify", str(tmp_path / "archive")]) == 0
    out = capsys.readouterr().out
    assert f"{segment_name(0, 9)}: ok" in out
    assert "ok (2 segments, heights 0..19)" in out


def test_corruption_and_gaps_fail_verification(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A flipped byte is a checksum mismatch, a missing middle segment a gap: exit 1."""
    archived_chain(tmp_path, blocks=40, hot=5, segment=10)
    directory = tmp_path / "archive"
    victim = directory / segment_name(0, 9)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    assert main(["archive", "verify", str(directory)]) == 1
    err = capsys.readouterr().err
    assert "CORRUPT" in err and "checksum mismatch" in err
    victim.unlink()
    assert main(["archive", "verify", str(directory)]) == 1
    assert "a gap before segment 000000000010" in capsys.readouterr().err


def test_stats_describe_the_segments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """stats --json counts segments, heights, bytes on disk and the archived transactions."""
    _chain, model, _ = archived_chain(tmp_path, blocks=30, hot=5, segment=10)
    directory = tmp_path / "archive"
    assert main(["archive", "stats", "--json", str(directory)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["segments"], doc["first_height"], doc["last_height"]) == (2, 0, 19)
    assert doc["bytes"] == sum(p.stat().st_size for p in directory.glob("*.seg"))
    assert doc["transactions"] == sum(1 for r in model.receipts.values() if r.height <= 19)
    assert doc["compression_ratio"] > 0
    assert main(["archive", "stats", str(directory)]) == 0
    assert "heights         0..19" in capsys.readouterr().out


def test_a_missing_directory_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A path that is not a directory exits 2 with a message, creating nothing."""
    assert main(["archive", "verify", str(tmp_path / "nope")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()
