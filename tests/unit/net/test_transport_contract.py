"""The Transport contract, checked against the in-memory twin and real gRPC on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from node.net.transport import TransportLimits
from node.types.messages import Car
from tests.unit.net.clusters import Cluster, GrpcCluster, MemoryCluster
from tests.unit.net.helpers import (
    SIG,
    consensus_vote,
    digest,
    lane_vote,
    run,
    sample_messages,
)

Body = Callable[[Cluster], Coroutine[Any, Any, None]]
KINDS = ["memory", "grpc"]


def make_cluster(kind: str, n: int, limits: TransportLimits) -> Cluster:
    if kind == "memory":
        return MemoryCluster(n, limits)
    return GrpcCluster(n, limits)


def check(kind: str, body: Body, n: int = 3, limits: TransportLimits | None = None) -> None:
    async def main() -> None:
        cluster = make_cluster(kind, n, limits or TransportLimits())
        await cluster.start()
        try:
            await body(cluster)
        finally:
            await cluster.stop()

    run(main())


@pytest.mark.parametrize("kind", KINDS)
def test_every_message_type_arrives_in_order_from_its_sender(kind: str) -> None:
    """Each peer message type sent from 0 to 1 arrives once, equal, in order, attributed to 0."""
    samples = sample_messages()

    async def body(c: Cluster) -> None:
        for m in samples:
            c.transports[0].send(1, m)
        await c.recorders[1].until(lambda: len(c.recorders[1].messages) >= len(samples))
        assert c.recorders[1].messages == [(0, m) for m in samples]
        assert c.transports[0].counters.messages_sent == len(samples)
        assert c.transports[1].counters.messages_received == len(samples)
        assert c.recorders[2].messages == []

    check(kind, body)


@pytest.mark.parametrize("kind", KINDS)
def test_broadcast_reaches_every_other_validator_once(kind: str) -> None:
    """A broadcast from 2 arrives at 0, 1 and 3 exactly once and never at 2 itself."""

    async def body(c: Cluster) -> None:
        c.transports[2].broadcast(consensus_vote(7))
        c.transports[2].send(0, lane_vote(8))
        await c.recorders[0].until(lambda: len(c.recorders[0].messages) == 2)
        for i in (1, 3):
            await c.recorders[i].until(lambda i=i: len(c.recorders[i].messages) == 1)  # type: ignore[misc]
        assert c.recorders[0].messages == [(2, consensus_vote(7)), (2, lane_vote(8))]
        assert c.recorders[1].messages == [(2, consensus_vote(7))]
        assert c.recorders[3].messages == [(2, consensus_vote(7))]
        assert c.recorders[2].messages == []

    check(kind, body, n=4)


@pytest.mark.parametrize("kind", KINDS)
def test_forwarded_transactions_arrive_in_order(kind: str) -> None:
    """Raw transactions forwarded in several calls arrive at the owner in order, from the sender."""
    batches = [[f"tx-{i}-{j}".encode() * 10 for j in range(50)] for i in range(20)]
    expected = [tx for batch in batches for tx in batch]

    async def body(c: Cluster) -> None:
        for batch in batches:
            c.transports[1].send_raw_txs(2, batch)
        await c.recorders[2].until(lambda: len(c.recorders[2].all_txs(1)) >= len(expected))
        assert c.recorders[2].all_txs(1) == expected
        assert c.transports[1].counters.txs_sent == len(expected)
        assert c.transports[2].counters.txs_received == len(expected)

    check(kind, body)


@pytest.mark.parametrize("kind", KINDS)
def test_messages_sent_while_a_peer_is_down_arrive_when_it_returns(kind: str) -> None:
    """A killed peer comes back; what was queued for it meanwhile, and what follows, arrives."""

    async def body(c: Cluster) -> None:
        c.transports[0].send(1, lane_vote(1))
        await c.recorders[1].until(lambda: len(c.recorders[1].messages) == 1)
        await c.kill(1)
        for n in range(2, 6):
            c.transports[0].send(1, lane_vote(n))
        await c.restart(1)
        c.transports[0].send(1, lane_vote(6))
        await c.recorders[1].until(lambda: lane_vote(6) in c.recorders[1].from_sender(0))
        got = c.recorders[1].from_sender(0)
        # at-least-once across a reconnect: later copies of a message may repeat, none is lost
        assert [m for n, m in enumerate(got) if m not in got[:n]] == [
            lane_vote(n) for n in range(1, 7)
        ]
        c.transports[1].send(0, lane_vote(7))
        await c.recorders[0].until(lambda: lane_vote(7) in c.recorders[0].from_sender(1))

    check(kind, body, n=2)


@pytest.mark.parametrize("kind", KINDS)
def test_a_full_queue_drops_the_oldest_non_consensus_messages_first(kind: str) -> None:
    """With the peer down and the queue full, lane votes are dropped before consensus votes."""
    limits = TransportLimits(queue_capacity=8)

    async def body(c: Cluster) -> None:
        await c.kill(1)
        for n in range(4):
            c.transports[0].send(1, consensus_vote(n))
        for n in range(10):
            c.transports[0].send(1, lane_vote(n))
        assert c.transports[0].queue_depths() == {1: 8}
        assert c.transports[0].counters.dropped == 6
        assert c.transports[0].counters.dropped_consensus == 0
        await c.restart(1)
        await c.recorders[1].until(lambda: lane_vote(9) in c.recorders[1].from_sender(0))
        assert c.recorders[1].from_sender(0) == [
            *(consensus_vote(n) for n in range(4)),
            *(lane_vote(n) for n in range(6, 10)),
        ]

    check(kind, body, n=2, limits=limits)


@pytest.mark.parametrize("kind", KINDS)
def test_consensus_messages_are_dropped_only_when_nothing_else_is_queued(kind: str) -> None:
    """A queue full of consensus votes drops the oldest of them, and counts it as consensus."""
    limits = TransportLimits(queue_capacity=4)

    async def body(c: Cluster) -> None:
        await c.kill(1)
        c.transports[0].send(1, lane_vote(0))
        for n in range(6):
            c.transports[0].send(1, consensus_vote(n))
        assert c.transports[0].counters.dropped == 3
        assert c.transports[0].counters.dropped_consensus == 2
        await c.restart(1)
        await c.recorders[1].until(lambda: len(c.recorders[1].messages) == 4)
        assert c.recorders[1].from_sender(0) == [consensus_vote(n) for n in range(2, 6)]

    check(kind, body, n=2, limits=limits)


@pytest.mark.parametrize("kind", KINDS)
def test_a_malformed_message_is_counted_penalized_and_dropped(kind: str) -> None:
    """Garbage from an authenticated peer is dropped and penalized; its next message arrives."""

    async def body(c: Cluster) -> None:
        await c.kill(2)
        assert await c.inject(2, 0, [b"\xff\x00garbage", b""])
        counters = c.transports[0].counters
        assert counters.decode_errors == 2
        assert counters.penalties == 2
        assert c.recorders[0].from_sender(2) == [lane_vote(999)]
        c.transports[1].send(0, lane_vote(1))
        await c.recorders[0].until(lambda: lane_vote(1) in c.recorders[0].from_sender(1))

    check(kind, body)


@pytest.mark.parametrize("kind", KINDS)
def test_enough_penalties_ban_a_peer_while_others_are_served(kind: str) -> None:
    """A peer that keeps sending garbage is banned: its later input is refused, others flow."""
    limits = TransportLimits(penalty_threshold=3)

    async def body(c: Cluster) -> None:
        await c.kill(2)
        assert not await c.inject(2, 0, [b"\xff"] * 5)
        assert c.transports[0].counters.bans == 1
        assert lane_vote(999) not in c.recorders[0].from_sender(2)
        c.transports[1].send(0, lane_vote(1))
        await c.recorders[0].until(lambda: lane_vote(1) in c.recorders[0].from_sender(1))

    check(kind, body, limits=limits)


@pytest.mark.parametrize("kind", KINDS)
def test_a_message_too_large_for_a_frame_is_dropped_at_send(kind: str) -> None:
    """An oversized message is counted and never sent; the stream keeps working."""
    limits = TransportLimits(max_message_size=64 << 10)
    big = Car.create(0, 1, digest("p"), None, (b"x" * (80 << 10),), SIG)

    async def body(c: Cluster) -> None:
        c.transports[0].send(1, big)
        c.transports[0].send_raw_txs(1, [b"y" * (70 << 10), b"ok"])
        c.transports[0].send(1, lane_vote(1))
        await c.recorders[1].until(lambda: len(c.recorders[1].messages) == 1)
        await c.recorders[1].until(lambda: c.recorders[1].all_txs(0) == [b"ok"])
        assert c.recorders[1].messages == [(0, lane_vote(1))]
        assert c.transports[0].counters.oversized == 2

    check(kind, body, n=2, limits=limits)


@pytest.mark.parametrize("kind", KINDS)
def test_sending_to_a_non_peer_is_a_programming_error(kind: str) -> None:
    """send and send_raw_txs to oneself or an unknown index raise ValueError."""

    async def body(c: Cluster) -> None:
        for to in (0, 5, -1):
            with pytest.raises(ValueError, match="not a peer"):
                c.transports[0].send(to, lane_vote(1))
            with pytest.raises(ValueError, match="not a peer"):
                c.transports[0].send_raw_txs(to, [b"tx"])

    check(kind, body, n=2)


@pytest.mark.parametrize("kind", KINDS)
def test_stop_is_idempotent_and_nothing_is_delivered_after_it(kind: str) -> None:
    """After stop, a node receives nothing; stopping twice is harmless; others keep working."""

    async def body(c: Cluster) -> None:
        c.transports[0].send(1, lane_vote(1))
        await c.recorders[1].until(lambda: len(c.recorders[1].messages) == 1)
        await c.transports[1].stop()
        await c.transports[1].stop()
        c.transports[0].send(1, lane_vote(2))
        c.transports[0].send(2, lane_vote(3))
        await c.recorders[2].until(lambda: len(c.recorders[2].messages) == 1)
        assert c.recorders[1].messages == [(0, lane_vote(1))]

    check(kind, body)


@pytest.mark.parametrize("kind", KINDS)
def test_connected_peers_reports_live_links(kind: str) -> None:
    """connected_peers lists a peer once a message reached it and drops it after it stops."""

    async def body(c: Cluster) -> None:
        c.transports[0].send(1, lane_vote(1))
        await c.recorders[1].until(lambda: len(c.recorders[1].messages) == 1)
        assert 1 in c.transports[0].connected_peers()
        assert c.transports[0].queue_depths() == {1: 0}

    check(kind, body, n=2)
