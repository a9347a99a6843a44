"""The dialing side of the gRPC transport: one long-lived outbound stream per peer.

``PeerLink.run`` loops for the transport's lifetime: connect, handshake (node/net/handshake.py,
ending with a key-confirmation frame), then write batch frames from the peer's outbound
queue while reading acks; on any stream failure wait an
exponential, jittered backoff and reconnect. Frames stay in an unacknowledged window until
the peer acks them; when a stream dies, the unacknowledged messages go back to the front of
the queue and are sent again on the next stream (so a message may arrive twice, never
silently vanish at a reconnect). A stream whose oldest unacked frame is older than
``ack_timeout`` is declared dead, which also catches a peer that hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from dataclasses import dataclass
from typing import Final

import grpc
import structlog

from node.crypto.signing import Signer, Verifier
from node.net.config import GrpcConfig
from node.net.frames import Ack, check_ack_mac
from node.net.grpc_codec import decode_frame, decode_hello, encode_batch
from node.net.handshake import Handshake, SessionKeys, compute_hello_digest
from node.net.peers import Backoff
from node.net.queues import OutboundQueue, Taken
from node.net.transport import NetCounters
from node.types.committee import Committee
from node.types.errors import InvalidInput, MalformedMessage, TransientError

log = structlog.get_logger("lanenet.net")

SERVICE: Final = "lanenet.v1.Peer"
METHOD: Final = f"/{SERVICE}/Stream"


class StreamFailure(TransientError):
    """The stream ended or stalled; the link reconnects after a backoff."""


STREAM_ERRORS: Final = (
    grpc.RpcError,
    asyncio.InvalidStateError,  # grpc.aio: a write to a call that already ended
    InvalidInput,
    TransientError,
    OSError,
)


def _forget_stale_cancellation() -> None:
    """Clear cancel requests still counted on this task after a session ended.

    On Python 3.11.2 (Debian bookworm's, in the containers) a TaskGroup that aborts on a
    child's failure can leave its parent's cancel request counted; the next asyncio.timeout
    in the task then raises CancelledError instead of TimeoutError, which ended the link
    silently: peers never redialed a restarted validator. Only called when not stopping,
    so a real shutdown (which sets the stopping flag first) is never swallowed."""
    task = asyncio.current_task()
    while task is not None and task.cancelling():
        task.uncancel()


def channel_options(config: GrpcConfig) -> list[tuple[str, int]]:
    ms = 1000
    return [
        ("grpc.max_send_message_length", config.grpc_message_limit),
        ("grpc.max_receive_message_length", config.grpc_message_limit),
        ("grpc.keepalive_time_ms", int(config.keepalive_interval * ms)),
        ("grpc.keepalive_timeout_ms", int(config.keepalive_timeout * ms)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        # the link's own backoff paces reconnects; gRPC's must not add minutes to it
        ("grpc.initial_reconnect_backoff_ms", int(config.backoff_base * ms)),
        ("grpc.min_reconnect_backoff_ms", int(config.backoff_base * ms)),
        ("grpc.max_reconnect_backoff_ms", int(config.backoff_cap * ms)),
        ("grpc.enable_retries", 0),
    ]


@dataclass(slots=True)
class _Sent:
    index: int
    taken: Taken
    size: int
    at: float


class PeerLink:
    """Keeps one authenticated outbound stream to validator ``peer`` alive."""

    def __init__(
        self,
        peer: int,
        me: int,
        committee: Committee,
        signer: Signer,
        verifier: Verifier,
        queue: OutboundQueue,
        config: GrpcConfig,
        counters: NetCounters,
    ) -> None:
        self.peer = peer
        self.connected = False
        self._stopping = False
        self._me = me
        self._committee = committee
        self._signer = signer
        self._verifier = verifier
        self._queue = queue
        self._config = config
        self._counters = counters
        self._address: str | None = config.peers.get(peer)
        self._address_changed = asyncio.Event()
        self._backoff = Backoff(
            config.backoff_base, config.backoff_cap, random.Random(config.seed * 65537 + peer)
        )
        self._unacked: deque[_Sent] = deque()
        self._sent_index = 0
        """Index of the last frame written on the current stream."""
        self._unacked_bytes = 0
        self._window = asyncio.Event()
        self._window.set()

    def set_address(self, address: str) -> None:
        """Use ``address`` from the next connection attempt on (wakes a waiting link)."""
        self._address = address
        self._address_changed.set()

    def stop(self) -> None:
        """Make ``run`` return at its next turn; the caller then cancels it."""
        self._stopping = True
        self._address_changed.set()

    async def run(self) -> None:
        while not self._stopping:
            address = await self._wait_address()
            if address is None:
                return
            try:
                await self._guarded_session(address)
            except* STREAM_ERRORS as group:
                # grpc.aio may report our own cancellation by stop() as an RpcError: the
                # stopping flag, not the error, decides whether to go on
                if not self._stopping:
                    log.info("peer_stream_lost", peer=self.peer, reason=_describe(group))
            if self._stopping:
                return
            _forget_stale_cancellation()
            self._counters.reconnects += 1
            await self._pause(self._backoff.next_delay())

    async def _guarded_session(self, address: str) -> None:
        """``_session``, where a CancelledError that nobody asked for is a stream failure.

        grpc.aio raises CancelledError from a call's read or write when the call is cancelled
        underneath (its connection torn down, e.g. by a restarted container). Let through, it
        would end this link's task silently (a TaskGroup ignores a cancelled child) and the
        peer would never be redialed."""
        try:
            await self._session(address)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._stopping or (task is not None and task.cancelling()):
                raise
            raise StreamFailure("the call was cancelled underneath the link") from None

    async def _wait_address(self) -> str | None:
        while self._address is None and not self._stopping:
            self._address_changed.clear()
            await self._address_changed.wait()
        return self._address

    async def _pause(self, delay: float) -> None:
        """Wait ``delay`` seconds, or less if the address changes or the link stops (no
        cancellation involved: see ``_forget_stale_cancellation``)."""
        self._address_changed.clear()
        waiter = asyncio.ensure_future(self._address_changed.wait())
        try:
            await asyncio.wait([waiter], timeout=delay)
        finally:
            waiter.cancel()

    async def _session(self, address: str) -> None:
        channel = grpc.aio.insecure_channel(address, options=channel_options(self._config))
        try:
            call = channel.stream_stream(METHOD)()
            keys = await self._handshake(call)
            # key confirmation: frame 1 is an empty batch, proving we hold the session key
            # before the listener lets this stream replace an older one of ours
            await call.write(encode_batch([], [], keys.send, 1))
            self._sent_index = 1
            self.connected = True
            self._counters.connects += 1
            self._backoff.reset()
            self._resend_unacked()
            log.info("peer_connected", peer=self.peer, address=address)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._write_frames(call, keys))
                tg.create_task(self._read_acks(call, keys))
                tg.create_task(self._watch_acks())
        finally:
            self.connected = False
            # bounded: a close that never finishes must not keep the link from redialing
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._config.hello_timeout):
                    await channel.close(grace=None)

    async def _handshake(self, call: grpc.aio.StreamStreamCall) -> SessionKeys:
        handshake = Handshake(self._committee, self._me, self._signer, self._verifier)
        hello = handshake.make_hello(self.peer, _now_ms())
        # The write is bounded too: to a peer whose name does not resolve (a container that
        # is down) or whose address blackholes, it can wait forever and the link would
        # never redial.
        try:
            async with asyncio.timeout(self._config.hello_timeout):
                await call.write(hello)
                reply = await call.read()
        except TimeoutError:
            raise StreamFailure("no hello reply in time") from None
        if not isinstance(reply, bytes):
            raise StreamFailure("stream closed during the handshake")
        answer = decode_hello(reply)
        handshake.check_hello(
            answer,
            _now_ms(),
            int(self._config.max_clock_skew * 1000),
            expected_sender=self.peer,
            echo=compute_hello_digest(hello),
        )
        return handshake.derive_keys(answer.ephemeral, hello, reply, dialer=True)

    def _resend_unacked(self) -> None:
        """Put what the last stream never acknowledged back in front of the queue."""
        while self._unacked:
            sent = self._unacked.pop()
            self._counters.resent += len(sent.taken.messages)
            self._queue.requeue(sent.taken)
        self._unacked_bytes = 0
        self._window.set()

    async def _write_frames(self, call: grpc.aio.StreamStreamCall, keys: SessionKeys) -> None:
        limits = self._config.limits
        budget = limits.frame_budget
        index = self._sent_index
        while True:
            await self._window.wait()
            await self._queue.wait()
            taken = self._queue.take(budget, limits.max_frame_messages, limits.max_frame_txs)
            if not taken:
                continue
            index += 1
            payloads = taken.payloads
            frame = encode_batch(payloads, taken.txs, keys.send, index)
            # counted as unacked before the write, so a write that hangs trips the watchdog
            self._unacked.append(_Sent(index, taken, len(frame), time.monotonic()))
            self._unacked_bytes += len(frame)
            self._update_window()
            self._sent_index = index
            await call.write(frame)
            self._counters.frames_sent += 1
            self._counters.bytes_sent += len(frame)
            self._counters.messages_sent += len(payloads)
            self._counters.txs_sent += len(taken.txs)

    async def _read_acks(self, call: grpc.aio.StreamStreamCall, keys: SessionKeys) -> None:
        acked = 0
        while True:
            data = await call.read()
            if not isinstance(data, bytes):
                raise StreamFailure("peer closed the stream")
            ack = decode_frame(data, 1024)
            if not isinstance(ack, Ack):
                raise MalformedMessage(f"expected an ack, got {type(ack).__name__}")
            check_ack_mac(keys.receive, ack)
            frames = ack.frames
            if frames == acked:
                continue  # a repeat tells nothing new, and costs nothing
            if not acked < frames <= self._sent_index:
                raise MalformedMessage(
                    f"ack of frame {frames}, expected {acked}..{self._sent_index}"
                )
            acked = frames
            while self._unacked and self._unacked[0].index <= acked:
                self._unacked_bytes -= self._unacked.popleft().size
            self._update_window()

    async def _watch_acks(self) -> None:
        timeout = self._config.ack_timeout
        while True:
            await asyncio.sleep(timeout / 4)
            if self._unacked and time.monotonic() - self._unacked[0].at > timeout:
                raise StreamFailure(f"frame {self._unacked[0].index} unacknowledged for {timeout}s")

    def _update_window(self) -> None:
        full = (
            len(self._unacked) >= self._config.max_unacked_frames
            or self._unacked_bytes >= self._config.max_unacked_bytes
        )
        if full:
            self._window.clear()
        else:
            self._window.set()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _describe(group: BaseExceptionGroup[BaseException]) -> str:
    first = group.exceptions[0]
    if isinstance(first, BaseExceptionGroup):
        return _describe(first)
    if isinstance(first, grpc.aio.AioRpcError):
        return f"{first.code().name}: {first.details()}"
    return f"{type(first).__name__}: {first}"
