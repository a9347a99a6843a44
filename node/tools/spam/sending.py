"""The open-loop scheduler and the block watcher, over any ``Submitter`` and ``BlockFeed``.

Open loop: each batch leaves when it is due, whether or not earlier batches were answered,
so a slow node shows up as latency and a backlog rather than as a lower offered rate. A
batch that cannot leave on time (the signer or the spammer itself is behind) leaves as soon
as it can and the delay is recorded as send lag; its latency still counts from the time it
was due, which its transactions carry. The only brake is ``max_inflight`` unanswered RPCs,
which keeps a dead node from piling up unbounded requests.
"""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import Sequence
from typing import Protocol

import aiohttp
import grpc

from node.tools.spam.endpoints import BlockFeed, RpcFailure, Submitter
from node.tools.spam.ledger import Ledger
from node.tools.spam.signer import SignedBatch
from node.types.errors import InvalidInput

_SIGNER_POLL_S = 0.001
SUBMIT_ERRORS = (
    grpc.aio.AioRpcError,
    aiohttp.ClientError,
    RpcFailure,
    InvalidInput,
    TimeoutError,
    OSError,
    ValueError,
)


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def wall_ms(self) -> int: ...

    async def sleep_until(self, deadline: float) -> None: ...


class RealClock:
    """The event loop's clock for scheduling, the system clock for send times."""

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    def wall_ms(self) -> int:
        return int(time.time() * 1000)

    async def sleep_until(self, deadline: float) -> None:
        delay = deadline - self.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


class BatchSource(Protocol):
    async def next_batch(self) -> SignedBatch | None: ...


class QueueSource:
    """Batches from the signing thread's queue; waits (briefly polling) when it is behind."""

    def __init__(self, signed: queue.Queue[SignedBatch | None]) -> None:
        self._queue = signed

    async def next_batch(self) -> SignedBatch | None:
        while True:
            try:
                return self._queue.get_nowait()
            except queue.Empty:
                await asyncio.sleep(_SIGNER_POLL_S)


class ListSource:
    """Batches signed in advance."""

    def __init__(self, batches: Sequence[SignedBatch]) -> None:
        self._batches = list(batches)
        self._next = 0

    async def next_batch(self) -> SignedBatch | None:
        if self._next == len(self._batches):
            return None
        self._next += 1
        return self._batches[self._next - 1]


class Sender:
    """Sends batches on their schedule and records each reply in the ledger."""

    def __init__(
        self,
        submitters: Sequence[Submitter],
        ledger: Ledger,
        clock: Clock,
        max_inflight: int = 512,
    ) -> None:
        self._submitters = submitters
        self._ledger = ledger
        self._clock = clock
        self._slots = asyncio.Semaphore(max_inflight)
        self._tasks: set[asyncio.Task[None]] = set()
        self.stop = asyncio.Event()
        self.max_inflight = max_inflight
        self.cap_waits = 0  # batches that waited for a free in-flight slot

    async def run(self, source: BatchSource, start: float, group: asyncio.TaskGroup) -> None:
        """Send every batch of ``source``, batch ``k`` at ``start + offset_k``, until the
        source ends or ``stop`` is set; returns once every reply is in."""
        while not self.stop.is_set():
            batch = await source.next_batch()
            if batch is None:
                break
            await self._clock.sleep_until(start + batch.plan.offset_ms / 1000)
            if self.stop.is_set():
                break
            if self._slots.locked():
                self.cap_waits += 1
            await self._slots.acquire()
            now = self._clock.wall_ms()
            self._ledger.on_sent(batch.plan.first_tx, batch.hashes, batch.send_ms, now)
            task = group.create_task(self._submit(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if self._tasks:
            await asyncio.wait(set(self._tasks))

    async def _submit(self, batch: SignedBatch) -> None:
        first = batch.plan.first_tx
        try:
            outcomes = await self._submitters[batch.target].submit(batch.raws)
            if len(outcomes) != len(batch.raws):
                raise ValueError(f"{len(outcomes)} results for {len(batch.raws)} transactions")
            self._ledger.on_reply(first, outcomes)
        except SUBMIT_ERRORS as exc:
            self._ledger.on_failure(first, len(batch.raws), describe(exc))
        finally:
            self._slots.release()


def describe(exc: BaseException) -> str:
    """A failed RPC as a rejection reason: its kind before the colon, details after."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"rpc failed {exc.code().name}: {exc.details()}"
    return f"rpc failed {type(exc).__name__}: {exc}"


class Watcher:
    """Feeds executed blocks to the ledger; ``changed`` is set after each block."""

    def __init__(self, feed: BlockFeed, ledger: Ledger, clock: Clock) -> None:
        self._feed = feed
        self._ledger = ledger
        self._clock = clock
        self.changed = asyncio.Event()
        self.height = 0

    async def run(self, start_height: int) -> None:
        async for block in self._feed.blocks(start_height):
            self._ledger.on_block(block.tx_hashes, self._clock.wall_ms(), block.commit_ms)
            self.height = block.height
            self.changed.set()

    async def settle(self, timeout_s: float, stop: asyncio.Event | None = None) -> bool:
        """Wait until nothing accepted is pending, for at most ``timeout_s``; True if so."""
        deadline = self._clock.monotonic() + timeout_s
        while self._ledger.counts().pending > 0:
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0 or (stop is not None and stop.is_set()):
                return False
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except TimeoutError:
                return False
        return True
