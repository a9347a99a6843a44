"""Shared pieces of the networking tests: a sample of every peer message, a recorder of
deliveries that tests can await, committees with real keys, and a raw gRPC peer that speaks
the frame protocol by hand (to send garbage, bad hellos and oversized frames)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import grpc

from node.crypto.hashing import hash_tagged
from node.crypto.signing import Ed25519Signer, Ed25519Verifier
from node.net.config import GrpcConfig
from node.net.frames import (
    Ack,
    check_ack_mac,
    check_batch_mac,
)
from node.net.grpc_codec import (
    decode_batch,
    decode_frame,
    decode_hello,
    encode_batch,
)
from node.net.grpc_link import METHOD, SERVICE, channel_options
from node.net.handshake import Handshake, SessionKeys, compute_hello_digest
from node.types.committee import Committee, Validator
from node.types.messages import (
    QC,
    TC,
    Car,
    Commit,
    CommitSyncRequest,
    Confirm,
    Cut,
    CutTip,
    LaneVote,
    Message,
    MsgKind,
    PoA,
    Prepare,
    Proposal,
    SyncReply,
    SyncRequest,
    Ticket,
    Timeout,
    Vote,
)
from node.wire.codec import decode_message

CHAIN_ID = 4242
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    """Run one test coroutine on a fresh event loop, with a generous guard timeout."""

    async def guarded() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(guarded())


def digest(label: str) -> bytes:
    return hash_tagged(b"test", label.encode())


SIG = b"\x11" * 64


def sample_messages() -> list[Message]:
    """One structurally valid value of every peer message type."""
    poa = PoA(1, 3, digest("car"), (0, 2), (SIG, SIG))
    car = Car.create(1, 4, digest("car"), poa, (b"tx-1", b"tx-2" * 40), SIG)
    cut = Cut((CutTip(0, 0, digest("zero"), None), CutTip(1, 3, digest("car"), poa)))
    proposal = Proposal(5, 0, cut, 2, SIG)
    qc = QC(MsgKind.PREPARE_VOTE, 5, 0, cut.digest, (0, 1, 2), (SIG, SIG, SIG))
    timeout = Timeout(5, 1, qc, cut, proposal, 3, SIG)
    return [
        car,
        LaneVote(1, 4, car.digest, 0, SIG),
        poa,
        Prepare(proposal, Ticket(prev=proposal, commit_qc=qc)),
        Vote(MsgKind.CONFIRM_ACK, 5, 0, cut.digest, 1, SIG),
        Confirm(qc, cut),
        Commit(qc, cut),
        timeout,
        TC(5, 1, (timeout, timeout)),
        SyncRequest(1, 1, 4, car.digest),
        SyncReply(1, (car,)),
        CommitSyncRequest(17),
    ]


def lane_vote(n: int) -> LaneVote:
    """A small non-consensus message numbered ``n`` (in ``pos``)."""
    return LaneVote(0, n, digest(f"vote-{n}"), 0, SIG)


def consensus_vote(n: int) -> Vote:
    """A small consensus message numbered ``n`` (in ``slot``)."""
    return Vote(MsgKind.PREPARE_VOTE, n, 0, digest(f"slot-{n}"), 0, SIG)


class Recorder:
    """Collects one node's deliveries; ``until`` awaits a condition on them."""

    def __init__(self) -> None:
        self.messages: list[tuple[int, Message]] = []
        self.txs: list[tuple[int, list[bytes]]] = []
        self._changed = asyncio.Event()

    def on_message(self, sender: int, message: Message) -> None:
        self.messages.append((sender, message))
        self._wake()

    def on_txs(self, sender: int, txs: list[bytes]) -> None:
        self.txs.append((sender, txs))
        self._wake()

    def from_sender(self, sender: int) -> list[Message]:
        return [m for s, m in self.messages if s == sender]

    def all_txs(self, sender: int) -> list[bytes]:
        return [tx for s, batch in self.txs if s == sender for tx in batch]

    async def until(self, condition: Callable[[], bool], timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                changed = self._changed
                await changed.wait()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


def make_keys(n: int) -> tuple[Committee, list[Ed25519Signer]]:
    signers = [Ed25519Signer(bytes([i + 1]) * 32) for i in range(n)]
    validators = tuple(Validator(i, f"v{i}", s.public_key) for i, s in enumerate(signers))
    return Committee(CHAIN_ID, validators), signers


class RawPeer:
    """A hand-driven dialer: does (or fakes) the handshake and writes arbitrary frames."""

    def __init__(
        self,
        address: str,
        committee: Committee,
        me: int,
        signer: Ed25519Signer,
        peer: int,
        config: GrpcConfig | None = None,
    ) -> None:
        self._config = config or GrpcConfig()
        self._channel = grpc.aio.insecure_channel(address, options=channel_options(self._config))
        self.call = self._channel.stream_stream(METHOD)()
        verifier = Ed25519Verifier([v.public_key for v in committee.validators])
        self.handshake = Handshake(committee, me, signer, verifier)
        self._peer = peer
        self._keys: SessionKeys | None = None
        self._index = 0
        self.sent_hello = b""

    async def connect(self, now_ms: int, confirm: bool = True) -> None:
        """Handshake as our validator; ``confirm`` sends the key-confirmation frame."""
        hello = self.handshake.make_hello(self._peer, now_ms)
        self.sent_hello = hello
        await self.call.write(hello)
        reply = await self.call.read()
        assert isinstance(reply, bytes)
        answer = decode_hello(reply)
        self.handshake.check_hello(answer, now_ms, 10**9, self._peer, compute_hello_digest(hello))
        self._keys = self.handshake.derive_keys(answer.ephemeral, hello, reply, dialer=True)
        if confirm:
            await self.send_batch([])

    async def send_batch(self, messages: list[bytes], txs: list[bytes] | None = None) -> None:
        assert self._keys is not None
        self._index += 1
        await self.call.write(encode_batch(messages, txs or [], self._keys.send, self._index))

    def force_keys(self, key: bytes) -> None:
        """Pretend to hold a session key (what a replayer of someone's hello must do)."""
        self._keys = SessionKeys(send=key, receive=key)

    async def send_raw(self, frame: bytes) -> None:
        """Send arbitrary bytes as the next frame."""
        self._index += 1
        await self.call.write(frame)

    async def read_ack(self) -> int:
        assert self._keys is not None
        data = await self.call.read()
        assert isinstance(data, bytes)
        ack = decode_frame(data, 1024)
        assert isinstance(ack, Ack)
        check_ack_mac(self._keys.receive, ack)
        return ack.frames

    async def closed_with(self) -> grpc.StatusCode:
        """Wait for the server to end the stream and return its status."""
        while True:
            try:
                data = await self.call.read()
            except grpc.aio.AioRpcError as exc:
                return exc.code()
            if not isinstance(data, bytes):
                code: grpc.StatusCode = await self.call.code()
                return code

    async def close(self) -> None:
        await self._channel.close(grace=None)


Behaviour = Callable[["grpc.aio.ServicerContext[bytes, bytes]"], Coroutine[Any, Any, None]]


class FakeServer:
    """A gRPC server on 127.0.0.1 whose Peer.Stream handler is a test coroutine."""

    def __init__(self, behaviour: Behaviour, config: GrpcConfig | None = None) -> None:
        self._behaviour = behaviour
        self._config = config or GrpcConfig()
        self._server: grpc.aio.Server | None = None
        self.streams = 0
        self._changed = asyncio.Event()
        self.port = 0

    async def start(self) -> int:
        server = grpc.aio.server(options=channel_options(self._config))
        handler = grpc.stream_stream_rpc_method_handler(self._serve)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, {"Stream": handler}),)
        )
        self.port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        self._server = server
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=None)

    async def until_streams(self, count: int, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while self.streams < count:
                changed = self._changed
                await changed.wait()

    async def _serve(self, _requests: object, context: Any) -> None:
        self.streams += 1
        self._changed.set()
        self._changed = asyncio.Event()
        await self._behaviour(context)


async def accept_hello(
    context: Any, handshake: Handshake, reply_as: Handshake | None = None
) -> tuple[int, SessionKeys]:
    """Play the listener's side of the handshake (through the key confirmation, frame 1);
    ``reply_as`` signs the reply instead."""
    first = await context.read()
    hello = decode_hello(first)
    handshake.check_hello(hello, int(time.time() * 1000), 10**9)
    signer = reply_as or handshake
    reply = signer.make_hello(hello.sender, int(time.time() * 1000), compute_hello_digest(first))
    keys = handshake.derive_keys(hello.ephemeral, first, reply, dialer=False)
    await context.write(reply)
    assert await read_batch(context, keys, 1) == []  # the key confirmation
    return hello.sender, keys


async def read_batch(context: Any, keys: SessionKeys, index: int) -> list[Message]:
    """Read frame ``index`` of a stream and decode the peer messages in it."""
    batch = decode_batch(await context.read(), 1 << 24)
    check_batch_mac(keys.receive, index, batch)
    return [decode_message(m) for m in batch.messages]


def verifier_of(committee: Committee) -> Ed25519Verifier:
    return Ed25519Verifier([v.public_key for v in committee.validators])
