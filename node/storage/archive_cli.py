"""``lanenet archive verify|stats DIR``: check and describe an archive directory.

Both only read: they neither create the directory nor remove leftover temp files (the node
does that when it opens the archive). ``verify`` exits 1 and names every problem it found;
``stats`` prints the segments, height range, bytes on disk and compression ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from node.storage.archive import (
    SUFFIX,
    TEMP_PREFIX,
    find_gap,
    segment_stats,
    verify_segment,
)
from node.storage.segment import Segment, SegmentCorrupt


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lanenet archive", description="Check or describe a node's archive directory."
    )
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    verify = commands.add_parser(
        "verify",
        help="check every segment's checksum, index and records, and that heights are "
        "contiguous from 0; exit 1 on any problem",
    )
    verify.add_argument("dir", type=Path, metavar="DIR")
    stats = commands.add_parser("stats", help="segments, height range, bytes, compression")
    stats.add_argument("dir", type=Path, metavar="DIR")
    stats.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _segment_paths(directory: Path) -> tuple[list[Path], list[Path]]:
    names = sorted(directory.iterdir())
    segments = [p for p in names if p.name.endswith(SUFFIX) and not p.name.startswith(".")]
    temps = [p for p in names if p.name.startswith(TEMP_PREFIX)]
    return segments, temps


def run_verify(directory: Path) -> int:
    segments, temps = _segment_paths(directory)
    problems: list[str] = []
    opened: list[Segment] = []
    for path in segments:
        found = verify_segment(path)
        problems += found
        if not found:
            opened.append(Segment(path))
        print(f"{path.name}: {'ok' if not found else f'{len(found)} problem(s)'}")
    if not problems:
        gap = find_gap(opened)
        if gap:
            problems.append(gap)
    for temp in temps:
        print(f"note: {temp.name} is an interrupted seal; the node removes it when it starts")
    if problems:
        print(f"archive {directory}: CORRUPT", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    last = opened[-1].last if opened else None
    covered = "no heights" if last is None else f"heights 0..{last}"
    print(f"archive {directory}: ok ({len(opened)} segments, {covered})")
    return 0


def run_stats(directory: Path, as_json: bool) -> int:
    paths, _temps = _segment_paths(directory)
    try:
        stats = [segment_stats(Segment(p)) for p in paths]
    except (SegmentCorrupt, ValueError) as exc:
        print(f"lanenet archive stats: {exc} (run `lanenet archive verify`)", file=sys.stderr)
        return 1
    total = sum(s.bytes for s in stats)
    raw = sum(s.raw_bytes for s in stats)
    blocks = sum(s.last - s.first + 1 - (s.first == 0) for s in stats)
    txs = sum(s.txs for s in stats) - blocks
    doc = {
        "directory": str(directory),
        "segments": len(stats),
        "first_height": stats[0].first if stats else None,
        "last_height": stats[-1].last if stats else None,
        "bytes": total,
        "raw_bytes": raw,
        "compression_ratio": round(raw / total, 2) if total else None,
        "transactions": txs,
        "state_versions": sum(s.state_versions for s in stats),
    }
    if as_json:
        print(json.dumps(doc))
        return 0
    if not stats:
        print(f"archive {directory}: empty")
        return 0
    print(f"archive {directory}")
    print(f"  segments        {len(stats)}")
    print(f"  heights         {doc['first_height']}..{doc['last_height']}")
    print(f"  bytes on disk   {total:,}")
    print(f"  raw bytes       {raw:,} (compression ratio {doc['compression_ratio']})")
    print(f"  transactions    {txs:,}")
    print(f"  state versions  {doc['state_versions']:,}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    directory: Path = args.dir
    if not directory.is_dir():
        print(f"lanenet archive: {directory} is not a directory", file=sys.stderr)
        return 2
    if args.action == "verify":
        return run_verify(directory)
    return run_stats(directory, args.json)


if __name__ == "__main__":
    sys.exit(main())
