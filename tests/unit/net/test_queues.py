"""The per-peer outbound queue: FIFO, bounded, drops non-consensus first, frames by size."""

from __future__ import annotations

import asyncio

from node.net.frames import ITEM_OVERHEAD
from node.net.queues import OutboundQueue
from node.net.transport import NetCounters


def make(capacity: int = 8, tx_bytes: int = 1000) -> tuple[OutboundQueue, NetCounters]:
    counters = NetCounters()
    return OutboundQueue(capacity, tx_bytes, counters), counters


def take_all(queue: OutboundQueue) -> list[bytes]:
    return queue.take(1 << 30, 1 << 30, 1 << 30).payloads


def test_messages_leave_in_the_order_they_were_queued_whatever_their_kind() -> None:
    """Urgent and bulk messages interleave in one FIFO order."""
    queue, _ = make()
    for i, urgent in enumerate([False, True, True, False, True, False]):
        queue.put(bytes([i]), urgent)
    assert take_all(queue) == [bytes([i]) for i in range(6)]
    assert len(queue) == 0


def test_overflow_drops_the_oldest_non_consensus_message() -> None:
    """A full queue drops the oldest bulk entry, keeping every consensus one."""
    queue, counters = make(capacity=4)
    queue.put(b"bulk-0", False)
    queue.put(b"vote-1", True)
    queue.put(b"bulk-2", False)
    queue.put(b"vote-3", True)
    queue.put(b"vote-4", True)
    queue.put(b"bulk-5", False)
    assert take_all(queue) == [b"vote-1", b"vote-3", b"vote-4", b"bulk-5"]
    assert (counters.dropped, counters.dropped_consensus) == (2, 0)


def test_a_queue_of_consensus_messages_drops_its_oldest_and_counts_it() -> None:
    """When nothing else is queued, the oldest consensus message goes (and is counted)."""
    queue, counters = make(capacity=2)
    for i in range(3):
        queue.put(bytes([i]), True)
    queue.put(b"bulk", False)  # the newest, yet the only non-consensus entry: it goes
    assert take_all(queue) == [b"\x01", b"\x02"]
    assert (counters.dropped, counters.dropped_consensus) == (2, 1)


def test_take_fills_one_frame_and_always_takes_the_first_item() -> None:
    """take stops at the byte budget or the item limits; messages come before txs."""
    queue, _ = make(capacity=100, tx_bytes=10_000)
    for i in range(5):
        queue.put(bytes([i]) * 10, False)
    queue.put_txs([b"t" * 20, b"u" * 20])
    frame = queue.take(3 * (10 + ITEM_OVERHEAD), 100, 100)
    assert frame.payloads == [bytes([i]) * 10 for i in range(3)] and frame.txs == []
    frame = queue.take(10, 100, 100)  # smaller than one item: still one item
    assert frame.payloads == [b"\x03" * 10]
    frame = queue.take(1000, 100, 1)
    assert frame.payloads == [b"\x04" * 10] and frame.txs == [b"t" * 20]
    assert queue.tx_bytes == 20
    frame = queue.take(1000, 100, 100)
    assert frame.txs == [b"u" * 20] and not queue.take(1000, 100, 100)


def test_requeue_puts_an_unsent_frame_back_at_the_front() -> None:
    """A frame that never got out is sent first next time, in its own order."""
    queue, _ = make(capacity=10, tx_bytes=100)
    for i in range(4):
        queue.put(bytes([i]), i % 2 == 0)
    queue.put_txs([b"a", b"b"])
    frame = queue.take(1 << 20, 2, 1)
    queue.put(b"\x09", True)
    queue.requeue(frame)
    assert take_all(queue) == [b"\x00", b"\x01", b"\x02", b"\x03", b"\x09"]


def test_forwarded_transactions_are_bounded_by_bytes_dropping_the_oldest() -> None:
    """The tx buffer keeps the newest transactions within its byte budget."""
    queue, counters = make(tx_bytes=25)
    queue.put_txs([b"a" * 10, b"b" * 10])
    queue.put_txs([b"c" * 10])
    assert queue.take(1000, 10, 10).txs == [b"b" * 10, b"c" * 10]
    assert counters.dropped_txs == 1


def test_wait_returns_once_something_is_queued() -> None:
    """A taker parked in wait() wakes when a message or a transaction arrives."""

    async def main() -> None:
        queue, _ = make()
        waiter = asyncio.create_task(queue.wait())
        await asyncio.sleep(0)
        assert not waiter.done()
        queue.put_txs([b"tx"])
        async with asyncio.timeout(5):
            await waiter
        queue.take(100, 10, 10)
        second = asyncio.create_task(queue.wait())
        await asyncio.sleep(0)
        assert not second.done()
        queue.put(b"m", False)
        async with asyncio.timeout(5):
            await second

    asyncio.run(main())
