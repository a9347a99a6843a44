"""Real gRPC on 127.0.0.1: every message type between four validators, authentication,
garbage and oversized input, bans, reconnects and dead-stream detection."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import grpc
import pytest

from node.crypto.signing import Ed25519Signer
from node.net.config import GrpcConfig
from node.net.handshake import Handshake
from node.net.transport import TransportLimits
from node.types.committee import Committee, Validator
from node.types.messages import Car
from node.wire.codec import encode_message
from tests.unit.net.clusters import GrpcCluster
from tests.unit.net.helpers import (
    SIG,
    FakeServer,
    accept_hello,
    digest,
    lane_vote,
    make_keys,
    read_batch,
    run,
    sample_messages,
    verifier_of,
)


def now_ms() -> int:
    return int(time.time() * 1000)


def test_four_validators_exchange_every_message_type_and_transactions() -> None:
    """Each of 4 validators broadcasts every message type and forwards txs to every other;
    each receives all of it, in order per sender, attributed to the right sender."""
    samples = sample_messages()

    async def main() -> None:
        c = GrpcCluster(4, TransportLimits())
        await c.start()
        try:
            for i, t in enumerate(c.transports):
                for m in samples:
                    t.broadcast(m)
                for j in range(4):
                    if j != i:
                        t.send_raw_txs(j, [f"tx {i}->{j} #{k}".encode() for k in range(100)])
            for j, r in enumerate(c.recorders):
                await r.until(lambda r=r: len(r.messages) == 3 * len(samples))  # type: ignore[misc]
                for i in range(4):
                    if i == j:
                        continue
                    assert r.from_sender(i) == samples
                    await r.until(lambda r=r, i=i: len(r.all_txs(i)) == 100)  # type: ignore[misc]
                    assert r.all_txs(i) == [f"tx {i}->{j} #{k}".encode() for k in range(100)]
            for t in c.transports:
                assert t.connected_peers() == frozenset(range(4)) - {c.transports.index(t)}
                assert t.counters.decode_errors == 0
                assert t.counters.penalties == 0
        finally:
            await c.stop()

    run(main())


def test_garbage_instead_of_a_hello_is_refused_and_counted() -> None:
    """Bytes that are not a hello close the stream UNAUTHENTICATED; the node serves others."""

    async def main() -> None:
        c = GrpcCluster(3, TransportLimits())
        await c.start()
        try:
            channel = grpc.aio.insecure_channel(c.address(0))
            call = channel.stream_stream("/lanenet.v1.Peer/Stream")()
            await call.write(b"\x00\xffnot a hello at all")
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call.read()
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            await channel.close()
            assert c.transports[0].counters.auth_failures == 1
            assert c.transports[0].counters.penalties == 0
            c.transports[1].send(0, lane_vote(1))
            await c.recorders[0].until(lambda: c.recorders[0].from_sender(1) == [lane_vote(1)])
        finally:
            await c.stop()

    run(main())


def _bad_hello(case: str, committee: Committee, signers: list[Ed25519Signer]) -> bytes:
    """A hello to validator 0 that must be refused, built by validator 1 (or an impostor)."""
    verifier = verifier_of(committee)
    if case == "signed by another key":
        return Handshake(committee, 1, signers[2], verifier).make_hello(0, now_ms())
    if case == "other chain":
        other = Committee(committee.chain_id + 1, committee.validators)
        return Handshake(other, 1, signers[1], verifier).make_hello(0, now_ms())
    if case == "addressed to someone else":
        return Handshake(committee, 1, signers[1], verifier).make_hello(2, now_ms())
    if case == "stale":
        return Handshake(committee, 1, signers[1], verifier).make_hello(0, now_ms() - 3_600_000)
    if case == "unknown sender":
        stranger = Ed25519Signer(b"\x99" * 32)
        bigger = Committee(
            committee.chain_id,
            (*committee.validators, Validator(3, "stranger", stranger.public_key)),
        )
        return Handshake(bigger, 3, stranger, verifier).make_hello(0, now_ms())
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "signed by another key",
        "other chain",
        "addressed to someone else",
        "stale",
        "unknown sender",
    ],
)
def test_a_bad_hello_is_refused_and_counted_without_penalty(case: str) -> None:
    """A hello that does not authenticate closes the stream UNAUTHENTICATED, penalizes no one
    (it proves nothing about who sent it), and the node keeps serving the real validator 1."""

    async def main() -> None:
        c = GrpcCluster(3, TransportLimits())
        await c.start()
        try:
            channel = grpc.aio.insecure_channel(c.address(0))
            call = channel.stream_stream("/lanenet.v1.Peer/Stream")()
            await call.write(_bad_hello(case, c.committee, c.signers))
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call.read()
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            await channel.close()
            assert c.transports[0].counters.auth_failures == 1
            assert c.transports[0].counters.penalties == 0
            c.transports[1].send(0, lane_vote(1))
            await c.recorders[0].until(lambda: c.recorders[0].from_sender(1) == [lane_vote(1)])
        finally:
            await c.stop()

    run(main())


def test_a_replayed_hello_gets_no_frame_through_and_blames_no_one() -> None:
    """Replaying validator 2's hello gets a reply, but without the session key the key
    confirmation fails its MAC: the stream is refused and validator 2 is not penalized."""

    async def main() -> None:
        c = GrpcCluster(3, TransportLimits())
        await c.start()
        await c.kill(2)
        try:
            genuine = c.raw_peer(2, 0)
            await genuine.connect(now_ms())
            hello = genuine.sent_hello
            await genuine.close()
            replay = c.raw_peer(2, 0)
            await replay.call.write(hello)
            assert isinstance(await replay.call.read(), bytes)  # the listener answers
            replay.force_keys(b"\x00" * 32)
            await replay.send_batch([encode_message(lane_vote(1))])
            assert await replay.closed_with() == grpc.StatusCode.UNAUTHENTICATED
            await replay.close()
            assert c.recorders[0].from_sender(2) == []
            counters = c.transports[0].counters
            assert (counters.auth_failures, counters.penalties) == (1, 0)
        finally:
            await c.stop()

    run(main())


def test_a_replayed_hello_does_not_displace_the_live_stream() -> None:
    """A replay of validator 1's hello, never confirmed, leaves validator 1's own stream
    untouched: it is not reconnected and its messages keep arriving."""

    async def main() -> None:
        c = GrpcCluster(2, TransportLimits())
        await c.start()
        try:
            c.transports[1].send(0, lane_vote(1))
            await c.recorders[0].until(lambda: len(c.recorders[0].messages) == 1)
            sniffed = Handshake(c.committee, 1, c.signers[1], verifier_of(c.committee))
            replay = c.raw_peer(1, 0)
            await replay.call.write(sniffed.make_hello(0, now_ms()))
            assert isinstance(await replay.call.read(), bytes)
            c.transports[1].send(0, lane_vote(2))
            await c.recorders[0].until(lambda: len(c.recorders[0].messages) == 2)
            await replay.close()
            assert c.transports[1].counters.connects == 1
            assert c.transports[1].counters.reconnects == 0
            assert c.grpc(0).inbound_peers() == {1}
        finally:
            await c.stop()

    run(main())


def test_garbage_frames_after_the_handshake_close_the_stream() -> None:
    """After a good handshake, bytes that are no frame close the stream without a penalty
    (they prove nothing about the sender); a correctly MACed batch that breaks the limits
    closes it and penalizes the validator. The node keeps serving the others."""
    limits = TransportLimits(max_tx_size=100)

    async def main() -> None:
        c = GrpcCluster(3, limits)
        await c.start()
        await c.kill(2)
        try:
            raw = c.raw_peer(2, 0)
            await raw.connect(now_ms())
            await raw.send_raw(b"\xff\xff\xff garbage, not a PeerFrame")
            assert await raw.closed_with() == grpc.StatusCode.INVALID_ARGUMENT
            await raw.close()
            counters = c.transports[0].counters
            assert (counters.decode_errors, counters.penalties) == (1, 0)
            raw = c.raw_peer(2, 0)
            await raw.connect(now_ms())
            await raw.send_batch([], [b"t" * 101])
            assert await raw.closed_with() == grpc.StatusCode.INVALID_ARGUMENT
            await raw.close()
            assert (counters.decode_errors, counters.penalties) == (2, 1)
            assert c.recorders[0].all_txs(2) == []
            c.transports[1].send(0, lane_vote(1))
            await c.recorders[0].until(lambda: c.recorders[0].from_sender(1) == [lane_vote(1)])
        finally:
            await c.stop()

    run(main())


def test_a_peer_that_keeps_sending_garbage_is_banned_and_refused() -> None:
    """Penalties past the threshold ban the peer: its stream is closed PERMISSION_DENIED and
    a new stream from it is refused, while other validators are still served."""
    limits = TransportLimits(penalty_threshold=3, ban_duration=600.0)

    async def main() -> None:
        c = GrpcCluster(3, limits)
        await c.start()
        await c.kill(2)
        try:
            raw = c.raw_peer(2, 0)
            await raw.connect(now_ms())
            for _ in range(3):
                await raw.send_batch([b"\xff not a peer message"])
            assert await raw.closed_with() == grpc.StatusCode.PERMISSION_DENIED
            await raw.close()
            assert c.transports[0].counters.bans == 1
            again = c.raw_peer(2, 0)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await again.connect(now_ms())
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
            await again.close()
            c.transports[1].send(0, lane_vote(1))
            await c.recorders[0].until(lambda: c.recorders[0].from_sender(1) == [lane_vote(1)])
        finally:
            await c.stop()

    run(main())


def test_oversized_frames_are_rejected_and_the_node_keeps_serving() -> None:
    """A frame over our limit (but under gRPC's) is penalized; one over gRPC's limit is cut
    off by gRPC (RESOURCE_EXHAUSTED); an oversized message is never sent by a transport."""
    limits = TransportLimits(max_message_size=64 << 10)

    async def main() -> None:
        c = GrpcCluster(3, limits)
        await c.start()
        await c.kill(2)
        try:
            raw = c.raw_peer(2, 0)
            await raw.connect(now_ms())
            await raw.send_batch([b"x" * (100 << 10)])
            assert await raw.closed_with() == grpc.StatusCode.INVALID_ARGUMENT
            await raw.close()
            assert c.transports[0].counters.penalties == 1
            huge = c.raw_peer(2, 0, GrpcConfig())  # a sender with gRPC's default 16 MiB cap
            await huge.connect(now_ms())
            await huge.send_batch([b"x" * (200 << 10)])
            assert await huge.closed_with() == grpc.StatusCode.RESOURCE_EXHAUSTED
            await huge.close()
            big_car = Car.create(1, 1, digest("p"), None, (b"y" * (80 << 10),), SIG)
            c.transports[1].send(0, big_car)
            c.transports[1].send(0, lane_vote(1))
            await c.recorders[0].until(lambda: c.recorders[0].from_sender(1) == [lane_vote(1)])
            assert c.transports[1].counters.oversized == 1
        finally:
            await c.stop()

    run(main())


def test_a_refusing_peer_is_redialed_with_exponential_backoff() -> None:
    """Each failed attempt waits longer: attempt k comes at least half of
    min(cap, base * 2^k) after the previous one, and never much later than the cap."""
    base, cap = 0.02, 0.16
    opened: list[float] = []

    async def refuse(context: grpc.aio.ServicerContext[bytes, bytes]) -> None:
        opened.append(time.monotonic())
        await context.abort(grpc.StatusCode.UNAVAILABLE, "not today")

    async def main() -> None:
        fake = FakeServer(refuse)
        port = await fake.start()
        config = GrpcConfig(peers={1: f"127.0.0.1:{port}"}, backoff_base=base, backoff_cap=cap)
        c = GrpcCluster(2, TransportLimits(), config)
        await c.transports[0].start()
        try:
            await fake.until_streams(7)
        finally:
            await c.transports[0].stop()
            await fake.stop()
        gaps = [b - a for a, b in zip(opened, opened[1:], strict=False)]
        for k, gap in enumerate(gaps):
            assert gap >= min(cap, base * 2**k) / 2, (k, gaps)
            assert gap < cap + 2.0, (k, gaps)
        assert c.transports[0].counters.reconnects >= 6

    run(main())


def test_a_peer_address_that_accepts_but_never_speaks_is_redialed() -> None:
    """A peer address whose TCP accepts but that never answers (a restarted container's
    stale address, a half-dead host) costs one hello timeout per attempt: the link gives up
    and dials again instead of waiting forever."""
    accepted: list[float] = []

    async def main() -> None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(time.monotonic())
            await reader.read()  # until the dialer gives up and closes
            writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        config = GrpcConfig(
            peers={1: f"127.0.0.1:{port}"}, hello_timeout=0.3, backoff_base=0.02, backoff_cap=0.1
        )
        c = GrpcCluster(2, TransportLimits(), config)
        await c.transports[0].start()
        try:
            async with asyncio.timeout(30):  # each attempt ends at its hello timeout
                while c.transports[0].counters.reconnects < 3:
                    await asyncio.sleep(0.05)
        finally:
            await c.transports[0].stop()
            server.close()
        assert accepted, "the dialer reached the silent listener"
        assert c.transports[0].counters.connects == 0

    run(main())


def test_a_killed_peer_is_redialed_and_traffic_resumes() -> None:
    """After its peer dies and comes back on the same port, a link reconnects, resets its
    backoff, sends what was queued meanwhile, and traffic flows both ways."""

    async def main() -> None:
        c = GrpcCluster(2, TransportLimits())
        await c.start()
        try:
            c.transports[0].send(1, lane_vote(1))
            await c.recorders[1].until(lambda: len(c.recorders[1].messages) == 1)
            await c.kill(1)
            c.transports[0].send(1, lane_vote(2))
            await c.restart(1)
            c.transports[0].send(1, lane_vote(3))
            await c.recorders[1].until(lambda: lane_vote(3) in c.recorders[1].from_sender(0))
            assert lane_vote(2) in c.recorders[1].from_sender(0)
            c.transports[1].send(0, lane_vote(4))
            await c.recorders[0].until(lambda: c.recorders[0].from_sender(1) == [lane_vote(4)])
            counters = c.transports[0].counters
            assert counters.reconnects >= 1
            assert counters.connects >= 2
            assert c.grpc(0).connected_peers() == {1}
        finally:
            await c.stop()

    run(main())


def test_a_peer_that_stops_acknowledging_is_declared_dead_and_messages_are_resent() -> None:
    """A listener that takes frames but never acks trips the dialer's ack watchdog: the
    dialer reconnects and sends the unacknowledged message again on the new stream."""
    committee, signers = make_keys(2)
    verifier = verifier_of(committee)
    received: list[list[object]] = []

    async def listener(context: grpc.aio.ServicerContext[bytes, bytes]) -> None:
        handshake = Handshake(committee, 1, signers[1], verifier)
        _, keys = await accept_hello(context, handshake)
        received.append(list(await read_batch(context, keys, 2)))
        await context.read()  # hang: never ack, until the dialer gives up

    async def main() -> None:
        fake = FakeServer(listener)
        port = await fake.start()
        config = GrpcConfig(
            peers={1: f"127.0.0.1:{port}"}, ack_timeout=0.5, backoff_base=0.01, backoff_cap=0.05
        )
        c = GrpcCluster(2, TransportLimits(), config)
        dialer = c.transports[0]
        await dialer.start()
        try:
            dialer.send(1, lane_vote(1))
            await fake.until_streams(2)
            await fake.until_streams(3)  # the second stream got the message again, no ack
            assert received[:2] == [[lane_vote(1)], [lane_vote(1)]]
            assert dialer.counters.resent >= 1
        finally:
            await dialer.stop()
            await fake.stop()

    run(main())


def test_the_dialer_refuses_a_listener_with_the_wrong_identity() -> None:
    """A listener that answers with a hello signed by the wrong key never gets a frame; the
    dialer keeps retrying and never reports the peer connected."""
    committee, signers = make_keys(3)
    verifier = verifier_of(committee)
    frames_seen: list[bytes] = []

    async def impostor(context: grpc.aio.ServicerContext[bytes, bytes]) -> None:
        handshake = Handshake(committee, 1, signers[1], verifier)
        wrong = Handshake(committee, 1, signers[2], verifier)
        await accept_hello(context, handshake, reply_as=wrong)
        data = await context.read()
        if isinstance(data, bytes):
            frames_seen.append(data)

    async def main() -> None:
        fake = FakeServer(impostor)
        port = await fake.start()
        config = GrpcConfig(peers={1: f"127.0.0.1:{port}"}, backoff_base=0.01, backoff_cap=0.05)
        c = GrpcCluster(3, TransportLimits(), config)
        dialer = c.transports[0]
        await dialer.start()
        try:
            dialer.send(1, lane_vote(1))
            await fake.until_streams(3)
            assert frames_seen == []
            assert 1 not in dialer.connected_peers()
            assert dialer.queue_depths()[1] == 1
        finally:
            await dialer.stop()
            await fake.stop()

    run(main())


def test_the_listener_port_comes_from_the_config() -> None:
    """A transport listens on the configured port, and a second one on the same port fails
    to start with a TransientError rather than serving nothing."""
    from node.net.grpc_transport import GrpcTransport
    from node.types.errors import TransientError

    async def main() -> None:
        c = GrpcCluster(2, TransportLimits())
        await c.start()
        try:
            port = c.grpc(0).port
            committee, signers = c.committee, c.signers
            config = replace(c.config, listen_port=port)
            clash = GrpcTransport(
                config, committee, 0, signers[0], lambda s, m: None, lambda s, t: None
            )
            with pytest.raises(TransientError):
                await clash.start()
        finally:
            await c.stop()

    run(main())
