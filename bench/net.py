"""Throughput of the networking: gRPC streams between two transports, and libp2p gossip.

Run: ``.venv/bin/python bench/net.py [--uvloop] [--quick]``. Prints figures; asserts nothing.
Every node runs in a process of its own (spawned), as validators would; the receiver times
from its first to its last delivery, so the figures are steady-state transport throughput
(the sender encodes everything before its writer runs). Figures on a shared 2-core machine
vary by ±20-40% between runs: take the median of a few.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import structlog

from node.crypto.signing import Ed25519Signer
from node.net.config import GossipConfig, GrpcConfig
from node.net.frames import BATCH_OVERHEAD, ITEM_OVERHEAD
from node.net.gossip import Gossip
from node.net.grpc_transport import GrpcTransport
from node.net.transport import TransportLimits
from node.types.committee import Committee, Validator
from node.types.messages import Car, LaneVote, Message
from node.wire.codec import encode_message

CHAIN_ID = 4242
LIMITS = TransportLimits(queue_capacity=1 << 21, tx_buffer_bytes=1 << 30)


def quiet() -> None:
    import logging

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    logging.getLogger("libp2p").setLevel(logging.ERROR)


def run_loop(main: Coroutine[Any, Any, None], uvloop: bool) -> None:
    if uvloop:
        import uvloop as uv

        uv.run(main)
    else:
        asyncio.run(main)


def committee() -> tuple[Committee, list[Ed25519Signer]]:
    signers = [Ed25519Signer(bytes([i + 1]) * 32) for i in range(2)]
    validators = tuple(Validator(i, f"v{i}", s.public_key) for i, s in enumerate(signers))
    return Committee(CHAIN_ID, validators), signers


@dataclass(frozen=True)
class Load:
    name: str
    count: int
    """How many sends (messages, or send_raw_txs calls)."""
    make: Callable[[int], Message] | None = None
    txs_per_call: int = 0
    tx_size: int = 0


def vote(i: int) -> Message:
    return LaneVote(0, i, i.to_bytes(32, "big"), 0, b"\x11" * 64)


def car(i: int) -> Message:
    return Car.create(0, i, i.to_bytes(32, "big"), None, (b"x" * (64 << 10),), b"\x11" * 64)


# ------------------------------------------------------------------------- gRPC


def grpc_receiver(conn: Connection, load: Load, uvloop: bool) -> None:
    """Validator 1: count deliveries, report (seconds, items, bytes) from first to last."""
    quiet()

    async def main() -> None:
        keys, signers = committee()
        done = asyncio.Event()
        first = 0.0
        items = 0
        size = 0
        expected = load.count * (load.txs_per_call or 1)

        def count(n: int, nbytes: int) -> None:
            nonlocal first, items, size
            if items == 0:
                first = time.perf_counter()
            items += n
            size += nbytes
            if items >= expected:
                done.set()

        def on_message(sender: int, message: Message) -> None:
            count(1, len(encode_message(message)) if items == 0 else size // max(items, 1))

        def on_txs(sender: int, txs: list[bytes]) -> None:
            count(len(txs), sum(len(t) for t in txs))

        config = GrpcConfig(limits=LIMITS)
        transport = GrpcTransport(config, keys, 1, signers[1], on_message, on_txs)
        await transport.start()
        conn.send(transport.port)
        await done.wait()
        elapsed = time.perf_counter() - first
        conn.send((elapsed, items, size, transport.counters.frames_received))
        await transport.stop()

    run_loop(main(), uvloop)


def grpc_sender(conn: Connection, port: int, load: Load, uvloop: bool) -> None:
    quiet()

    async def main() -> None:
        keys, signers = committee()
        config = GrpcConfig(limits=LIMITS, peers={1: f"127.0.0.1:{port}"})
        transport = GrpcTransport(config, keys, 0, signers[0], lambda s, m: None, lambda s, t: None)
        await transport.start()
        if load.make is not None:
            messages = [load.make(i) for i in range(load.count)]
            for m in messages:
                transport.send(1, m)
        else:
            txs = [i.to_bytes(8, "big") * (load.tx_size // 8) for i in range(load.txs_per_call)]
            for _ in range(load.count):
                transport.send_raw_txs(1, txs)
        await asyncio.to_thread(conn.recv)  # the receiver has it all
        await transport.stop()

    run_loop(main(), uvloop)


def bench_grpc(load: Load, uvloop: bool) -> None:
    spawn = mp.get_context("spawn")
    parent, child = spawn.Pipe()
    receiver = spawn.Process(target=grpc_receiver, args=(child, load, uvloop))
    receiver.start()
    port = parent.recv()
    stop_sender, sender_end = spawn.Pipe()
    sender = spawn.Process(target=grpc_sender, args=(sender_end, port, load, uvloop))
    sender.start()
    elapsed, items, size, frames = parent.recv()
    stop_sender.send("done")
    receiver.join()
    sender.join()
    unit = "txs " if load.txs_per_call else "msgs"
    rate, mbps = items / elapsed, size / elapsed / 1e6
    print(
        f"gRPC  {load.name:<36} {rate:>10,.0f} {unit}/s  {mbps:>7.1f} MB/s"
        f"  ({items / frames:.0f} per frame)"
    )


# ------------------------------------------------------------------------- libp2p


def gossip_node(conn: Connection, bootstrap: tuple[str, ...], expected: int, mesh: int) -> None:
    """A gossip node in its own process: report its addrs, then (elapsed, batches, txs)."""
    quiet()

    async def main() -> None:
        done = asyncio.Event()
        first = 0.0
        batches = 0
        txs_seen = 0

        def on_txs(source: str, txs: list[bytes]) -> None:
            nonlocal first, batches, txs_seen
            if batches == 0:
                first = time.perf_counter()
            batches += 1
            txs_seen += len(txs)
            if batches >= expected:
                done.set()

        gossip = Gossip(GossipConfig(bootstrap=bootstrap), on_txs)
        await gossip.start()
        conn.send(gossip.addrs)
        await gossip.wait_for_mesh(mesh)
        conn.send("meshed")
        try:
            async with asyncio.timeout(120):
                await done.wait()
            conn.send((time.perf_counter() - first, batches, txs_seen))
        except TimeoutError:
            conn.send((None, gossip.counters.received_batches, gossip.counters.decode_errors))
        await gossip.stop()

    asyncio.run(main())


def bench_gossip(name: str, batches: int, txs_per_batch: int, tx_size: int) -> None:
    """A line 0 - 1 - 2; node 0 (here) publishes; nodes 1 and 2 (own processes) count."""
    spawn = mp.get_context("spawn")
    quiet()

    async def main() -> None:
        batch_bytes = txs_per_batch * (tx_size + ITEM_OVERHEAD)
        # one batch per message: a message may not grow past the batch while publishing lags
        config = GossipConfig(
            batch_bytes=batch_bytes, max_message_size=batch_bytes + BATCH_OVERHEAD
        )
        publisher = Gossip(config, lambda s, t: None)
        await publisher.start()
        pipes, procs = [], []
        bootstrap = publisher.addrs
        for mesh in (2, 1):  # the middle node relays only once both ends are in its mesh
            parent, child = spawn.Pipe()
            proc = spawn.Process(target=gossip_node, args=(child, bootstrap, batches, mesh))
            proc.start()
            bootstrap = await asyncio.to_thread(parent.recv)
            pipes.append(parent)
            procs.append(proc)
        for pipe in pipes:
            await asyncio.to_thread(pipe.recv)  # "meshed"
        await publisher.wait_for_mesh(1)
        await asyncio.sleep(1.0)  # let the far end's mesh settle
        start = time.perf_counter()
        for b in range(batches):
            txs = [
                (b * txs_per_batch + i).to_bytes(8, "big") * (tx_size // 8)
                for i in range(txs_per_batch)
            ]
            publisher.publish_txs(txs)
            await asyncio.sleep(0)
        results = [await asyncio.to_thread(pipe.recv) for pipe in pipes]
        wall = time.perf_counter() - start
        for hop, (elapsed, got, txs) in enumerate(results, start=1):
            if elapsed is None:
                print(
                    f"libp2p {name:<33} hop {hop}: only {got}/{batches} messages in 120 s"
                    f" (decode errors: {txs})"
                )
                continue
            rate = got / max(elapsed, 1e-9)
            print(
                f"libp2p {name:<33} hop {hop}: {rate:>8,.0f} msgs/s  {txs / elapsed:>9,.0f} txs/s"
                f"  {txs * tx_size / elapsed / 1e6:>6.2f} MB/s  ({got} msgs, {wall:.1f} s wall)"
            )
        print(
            f"       published {publisher.counters.published_batches} messages "
            f"({publisher.counters.published_txs} txs), errors {publisher.counters.publish_errors}"
        )
        await publisher.stop()
        for proc in procs:
            proc.join(timeout=30)

    asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uvloop", action="store_true", help="run the gRPC nodes on uvloop")
    parser.add_argument("--quick", action="store_true", help="smaller loads")
    parser.add_argument("--skip-libp2p", action="store_true")
    parser.add_argument("--skip-grpc", action="store_true")
    args = parser.parse_args()
    scale = 5 if args.quick else 1
    loop = "uvloop" if args.uvloop else "asyncio"
    print(f"event loop: {loop}; one process per node; 127.0.0.1")
    loads = (
        Load("lane votes (~150 B messages)", 200_000 // scale, vote),
        Load("cars of 64 KiB", 5_000 // scale, car),
        Load("forwarded txs (150 B, 500 per call)", 2_000 // scale, txs_per_call=500, tx_size=152),
        # no per-item decoding: what the stream itself carries (framing, MAC, protobuf)
        Load("forwarded 64 KiB blobs (16 per call)", 500 // scale, txs_per_call=16, tx_size=65536),
    )
    for load in () if args.skip_grpc else loads:
        bench_grpc(load, args.uvloop)
    if not args.skip_libp2p:
        bench_gossip("200 B messages (1 tx per message)", 1000 // scale, 1, 200)
        bench_gossip("32 KiB batches (218 x 150 B txs)", 400 // scale, 218, 152)


if __name__ == "__main__":
    main()
