"""The gRPC (grpc.aio) Transport between validators.

Each node runs one gRPC server and dials every peer: a peer's messages arrive on the
stream it opened to us, ours leave on the stream we opened to it (node/net/grpc_link.py).
The method ``/lanenet.v1.Peer/Stream`` (proto/lanenet/v1/net.proto) carries ``PeerFrame``s
as raw bytes, decoded here so that a bad frame is ours to count, not gRPC's: a signed hello
each way, a key-confirmation frame, then MACed batches one way and acks the other.

Inbound, in order of trust:
- a hello that does not authenticate against the committee's keys, or a stream that then
  fails to prove the session key, is closed UNAUTHENTICATED and counted (``auth_failures``);
  nobody is penalized, since a hello can be replayed by anyone who saw it;
- a frame that does not parse or fails its MAC closes the stream (``decode_errors``), again
  without a penalty: it is not provably the validator's;
- content that passed the MAC is the validator's doing: a batch that is malformed or over
  the size limit closes the stream and penalizes it; a message that does not decode is
  dropped and penalizes it; enough penalties ban it for a while, and a banned validator's
  streams are refused (PERMISSION_DENIED).
Nothing a peer sends can raise out of the handler; callbacks run in arrival order per peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import grpc
import structlog

from node.crypto.signing import Ed25519Verifier, Signer, Verifier
from node.net.config import GrpcConfig
from node.net.frames import BatchLimits, check_batch_limits, check_batch_mac
from node.net.grpc_codec import decode_batch, decode_hello, encode_ack
from node.net.grpc_link import SERVICE, PeerLink, channel_options
from node.net.handshake import Handshake, SessionKeys, compute_hello_digest
from node.net.inbound import Inbound
from node.net.outbox import Outbox
from node.net.supervisor import Supervisor
from node.net.transport import NetCounters, OnMessage, OnTxs
from node.types.committee import Committee
from node.types.errors import InvalidInput, MalformedMessage, TransientError
from node.types.messages import Message

log = structlog.get_logger("lanenet.net")


@dataclass(frozen=True, slots=True)
class _Refusal:
    code: grpc.StatusCode
    details: str


@dataclass(slots=True)
class _AckState:
    processed: int = 0
    acked: int = 0


class GrpcTransport:
    """A Transport over long-lived gRPC streams, one per ordered pair of validators."""

    def __init__(
        self,
        config: GrpcConfig,
        committee: Committee,
        index: int,
        signer: Signer,
        on_message: OnMessage,
        on_txs: OnTxs,
        verifier: Verifier | None = None,
    ) -> None:
        if not committee.is_member(index):
            raise ValueError(f"validator {index} is not in the committee")
        self.index = index
        self.counters = NetCounters()
        self.port = 0
        self._config = config
        self._committee = committee
        self._signer = signer
        self._verifier = verifier or Ed25519Verifier([v.public_key for v in committee.validators])
        limits = config.limits
        self._batch_limits = BatchLimits(
            limits.max_frame_messages,
            limits.max_frame_txs,
            limits.max_message_size,
            limits.max_tx_size,
        )
        self._outbox = Outbox(index, committee.indices(), limits, self.counters)
        self._inbound = Inbound(on_message, on_txs, limits, self.counters)
        self._inbound.closed = False
        self._links = {
            peer: PeerLink(
                peer, index, committee, signer, self._verifier, queue, config, self.counters
            )
            for peer, queue in self._outbox.queues.items()
        }
        self._streams: dict[int, asyncio.Task[object]] = {}
        self._server: grpc.aio.Server | None = None
        self._supervisor = Supervisor(f"grpc-transport-{index}")

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Listen and begin dialing peers. A stopped transport cannot start again."""
        if self._server is not None:
            return
        if self._inbound.closed:
            raise RuntimeError("a stopped GrpcTransport cannot be restarted; build a new one")
        server = grpc.aio.server(
            options=self._server_options(),
            maximum_concurrent_rpcs=4 * self._committee.size + 16,
        )
        handler = grpc.stream_stream_rpc_method_handler(self._serve_stream)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, {"Stream": handler}),)
        )
        address = f"{self._config.listen_host}:{self._config.listen_port}"
        try:
            self.port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise TransientError(f"cannot listen on {address}: {exc}") from exc
        await server.start()
        self._server = server
        self._supervisor.start(self._run_links())
        log.info("grpc_transport_started", node=self.index, port=self.port)

    async def stop(self) -> None:
        self._inbound.closed = True
        for link in self._links.values():
            link.stop()
        await self._supervisor.stop()
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace=None)

    def set_peer_address(self, peer: int, address: str) -> None:
        """Dial ``peer`` at "host:port" from the next connection attempt on."""
        self._link(peer).set_address(address)

    # ------------------------------------------------------------------ sending

    def send(self, to: int, message: Message) -> None:
        self._outbox.send(to, message)

    def broadcast(self, message: Message) -> None:
        self._outbox.broadcast(message)

    def send_raw_txs(self, to: int, txs: list[bytes]) -> None:
        self._outbox.send_raw_txs(to, txs)

    def connected_peers(self) -> frozenset[int]:
        return frozenset(peer for peer, link in self._links.items() if link.connected)

    def inbound_peers(self) -> frozenset[int]:
        """Peers with an authenticated stream to us right now."""
        return frozenset(peer for peer, task in self._streams.items() if not task.done())

    def queue_depths(self) -> dict[int, int]:
        return self._outbox.depths()

    def is_banned(self, peer: int) -> bool:
        return self._inbound.is_banned(peer)

    async def _run_links(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for link in self._links.values():
                tg.create_task(link.run())

    def _link(self, peer: int) -> PeerLink:
        link = self._links.get(peer)
        if link is None:
            raise ValueError(f"validator {peer} is not a peer of validator {self.index}")
        return link

    def _server_options(self) -> list[tuple[str, int]]:
        config = self._config
        return [
            # two nodes must never share a port silently (gRPC enables SO_REUSEPORT by default)
            ("grpc.so_reuseport", 0),
            ("grpc.max_send_message_length", config.grpc_message_limit),
            ("grpc.max_receive_message_length", config.grpc_message_limit),
            ("grpc.keepalive_time_ms", int(config.keepalive_interval * 1000)),
            ("grpc.keepalive_timeout_ms", int(config.keepalive_timeout * 1000)),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 1000),
            ("grpc.http2.max_ping_strikes", 0),
        ]

    # ------------------------------------------------------------------ receiving

    async def _serve_stream(
        self, _requests: object, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> None:
        accepted = await self._accept(context)
        if isinstance(accepted, _Refusal):
            await context.abort(accepted.code, accepted.details)
            return
        peer, keys = accepted
        task = asyncio.current_task()
        assert task is not None  # a gRPC handler always runs in a task
        previous = self._streams.get(peer)
        if previous is not None and not previous.done():
            # The peer reconnected (it proved the session key, so this is no replay): its
            # old stream is dead or superseded; never let both deliver.
            previous.cancel()
        self._streams[peer] = task
        try:
            refusal = await self._receive(peer, keys, context)
        finally:
            if self._streams.get(peer) is task:
                del self._streams[peer]
        if refusal is not None:
            await context.abort(refusal.code, refusal.details)

    async def _accept(
        self, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> tuple[int, SessionKeys] | _Refusal:
        handshake = Handshake(self._committee, self.index, self._signer, self._verifier)
        try:
            async with asyncio.timeout(self._config.hello_timeout):
                first = await context.read()
        except TimeoutError:
            return self._auth_failed(context, "no hello in time")
        if not isinstance(first, bytes):
            return self._auth_failed(context, "stream closed before the hello")
        try:
            hello = decode_hello(first)
            handshake.check_hello(hello, _now_ms(), int(self._config.max_clock_skew * 1000))
            reply = handshake.make_hello(hello.sender, _now_ms(), compute_hello_digest(first))
            keys = handshake.derive_keys(hello.ephemeral, first, reply, dialer=False)
        except InvalidInput as exc:
            return self._auth_failed(context, str(exc))
        if self._inbound.is_banned(hello.sender):
            return _Refusal(grpc.StatusCode.PERMISSION_DENIED, "banned")
        await context.write(reply)
        confirmed = await self._confirm_key(context, keys)
        if confirmed is not None:
            return self._auth_failed(context, f"validator {hello.sender}: {confirmed}")
        return hello.sender, keys

    async def _confirm_key(
        self, context: grpc.aio.ServicerContext[bytes, bytes], keys: SessionKeys
    ) -> str | None:
        """Wait for frame 1, an empty batch MACed with the session key; return what is wrong.

        A hello can be replayed by anyone who saw it; only the dialer that made it can MAC
        with the key, so until then the stream neither counts as the validator's nor
        displaces its live one.
        """
        try:
            async with asyncio.timeout(self._config.hello_timeout):
                data = await context.read()
        except TimeoutError:
            return "no key confirmation in time"
        if not isinstance(data, bytes):
            return "stream closed before the key confirmation"
        try:
            batch = decode_batch(data, self._config.grpc_message_limit)
            check_batch_mac(keys.receive, 1, batch)
            if batch.messages or batch.txs:
                raise MalformedMessage("the key confirmation must be an empty batch")
        except InvalidInput as exc:
            return str(exc)
        return None

    def _auth_failed(
        self, context: grpc.aio.ServicerContext[bytes, bytes], reason: str
    ) -> _Refusal:
        self.counters.auth_failures += 1
        log.warning("peer_auth_failed", remote=context.peer(), reason=reason)
        return _Refusal(grpc.StatusCode.UNAUTHENTICATED, reason)

    async def _receive(
        self, peer: int, keys: SessionKeys, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> _Refusal | None:
        state = _AckState(processed=1)  # frame 1 was the key confirmation
        wake = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            acks = tg.create_task(self._send_acks(context, keys, state, wake))
            try:
                return await self._read_frames(peer, keys, context, state, wake)
            finally:
                acks.cancel()

    async def _read_frames(
        self,
        peer: int,
        keys: SessionKeys,
        context: grpc.aio.ServicerContext[bytes, bytes],
        state: _AckState,
        wake: asyncio.Event,
    ) -> _Refusal | None:
        while True:
            data = await context.read()
            if not isinstance(data, bytes):
                return None
            self.counters.frames_received += 1
            self.counters.bytes_received += len(data)
            refusal = self._receive_frame(peer, keys, state.processed + 1, data)
            if refusal is not None:
                return refusal
            state.processed += 1
            wake.set()

    def _receive_frame(
        self, peer: int, keys: SessionKeys, index: int, data: bytes
    ) -> _Refusal | None:
        """Check and deliver frame ``index`` from ``peer``; a refusal closes the stream.

        Only what passed the MAC is the peer's doing: bytes that do not parse as a frame or
        fail the MAC may come from anyone on the path (or a replayed hello), so they close
        the stream without penalizing the validator it claims to be.
        """
        limit = self._config.limits.max_message_size
        try:
            batch = decode_batch(data, self._config.grpc_message_limit)
            check_batch_mac(keys.receive, index, batch)
        except InvalidInput as exc:
            self.counters.decode_errors += 1
            log.warning("peer_frame_rejected", peer=peer, reason=str(exc))
            return _Refusal(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            if len(data) > limit:
                raise MalformedMessage(f"frame of {len(data)} bytes, limit {limit}")
            check_batch_limits(batch, self._batch_limits)
        except MalformedMessage as exc:
            self.counters.decode_errors += 1
            self._inbound.penalize(peer, str(exc))
            return _Refusal(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if not self._inbound.deliver(peer, batch.messages, batch.txs):
            return _Refusal(grpc.StatusCode.PERMISSION_DENIED, "banned")
        return None

    async def _send_acks(
        self,
        context: grpc.aio.ServicerContext[bytes, bytes],
        keys: SessionKeys,
        state: _AckState,
        wake: asyncio.Event,
    ) -> None:
        # Acks trail by up to ack_interval so a busy stream costs few extra writes, but a
        # window's quarter always gets one at once so the dialer never stalls on its window.
        soon = max(1, self._config.max_unacked_frames // 4)
        while True:
            await wake.wait()
            wake.clear()
            if state.processed - state.acked < soon:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._config.ack_interval):
                        await self._until(state, soon, wake)
            if state.processed == state.acked:
                continue  # woken for frames the last ack already covered
            state.acked = state.processed
            await context.write(encode_ack(state.acked, keys.send))

    @staticmethod
    async def _until(state: _AckState, soon: int, wake: asyncio.Event) -> None:
        while state.processed - state.acked < soon:
            wake.clear()
            await wake.wait()


def _now_ms() -> int:
    return int(time.time() * 1000)


__all__ = ["GrpcConfig", "GrpcTransport", "channel_options"]
