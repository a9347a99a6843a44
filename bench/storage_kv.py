"""Print put/get/batch rates and synced-batch latency for LevelDBKV and MemoryKV.

Usage: python bench/storage_kv.py [--n 100000] [--value-size 100] [--dir PATH]

The LevelDB database goes in a fresh temporary directory under --dir (default: the system
temp dir, which should be a real disk for the fsync figures to mean anything).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from node.protocol.effects import Persist
from node.storage.consensus_store import ConsensusStore
from node.storage.kv import KeyValueStore, LevelDBKV, MemoryKV
from node.types.messages import MsgKind, Vote


def rate(n: int, run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return n / (time.perf_counter() - start)


def keys(n: int) -> list[bytes]:
    # spread the keys so puts do not arrive in sorted order
    return [
        ((i * 2654435761) % (1 << 32)).to_bytes(4, "big") + i.to_bytes(8, "big") for i in range(n)
    ]


def bench_store(name: str, kv: KeyValueStore, n: int, value: bytes) -> None:
    ks = keys(n)

    def puts() -> None:
        for k in ks:
            kv.put(k, value)

    def gets() -> None:
        for k in ks:
            kv.get(k)

    def batches() -> None:
        for i in range(0, n, 1000):
            kv.write([(k, value) for k in ks[i : i + 1000]])

    def misses() -> None:
        for k in ks:
            kv.get(b"x" + k)

    def scan() -> None:
        for _ in kv.iterate(b"", b"\xff" * 13):
            pass

    print(f"{name:8} put        {rate(n, puts):>12,.0f} /s")
    print(f"{name:8} get (hit)  {rate(n, gets):>12,.0f} /s")
    print(f"{name:8} get (miss) {rate(n, misses):>12,.0f} /s")
    print(f"{name:8} batch put  {rate(n, batches):>12,.0f} /s  (1,000 per batch)")
    print(f"{name:8} scan       {rate(n, scan):>12,.0f} items/s")


def sync_latency(name: str, kv: KeyValueStore, rounds: int, batch_size: int, value: bytes) -> None:
    samples = []
    for r in range(rounds):
        batch = [(b"s%06d%04d" % (r, i), value) for i in range(batch_size)]
        start = time.perf_counter()
        kv.write(batch, sync=True)
        samples.append(time.perf_counter() - start)
    samples.sort()
    p50, p99 = statistics.median(samples), samples[int(len(samples) * 0.99) - 1]
    print(
        f"{name:8} synced batch of {batch_size:>3}: p50 {p50 * 1e6:>8.0f} µs  "
        f"p99 {p99 * 1e6:>8.0f} µs  ({1 / p50:,.0f} batches/s)"
    )


def consensus_latency(name: str, kv: KeyValueStore, rounds: int) -> None:
    """ConsensusStore.save of a typical step (one vote, one timeout-sized record): one fsync."""
    store = ConsensusStore(kv)
    samples = []
    for slot in range(1, rounds + 1):
        vote = Vote(MsgKind.PREPARE_VOTE, slot, 0, b"\x01" * 32, 1, b"\x02" * 64)
        effects = [Persist(("prepare_vote", slot), vote), Persist(("confirm_ack", slot), vote)]
        start = time.perf_counter()
        store.save(effects)
        samples.append(time.perf_counter() - start)
    p50 = statistics.median(samples)
    print(f"{name:8} ConsensusStore.save (2 votes, fsync): p50 {p50 * 1e6:.0f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--value-size", type=int, default=100)
    parser.add_argument("--sync-rounds", type=int, default=200)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    value = os.urandom(args.value_size)
    print(f"{args.n:,} keys of 12 bytes, values of {args.value_size} bytes")

    directory = tempfile.mkdtemp(prefix="lanenet-bench-", dir=args.dir)
    try:
        with LevelDBKV(Path(directory) / "db") as kv:
            bench_store("leveldb", kv, args.n, value)
            for size in (1, 10, 100):
                sync_latency("leveldb", kv, args.sync_rounds, size, value)
            consensus_latency("leveldb", kv, args.sync_rounds)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    with MemoryKV() as mem:
        bench_store("memory", mem, args.n, value)
        sync_latency("memory", mem, args.sync_rounds, 10, value)


if __name__ == "__main__":
    main()
