"""Acks between listener and dialer: never repeated by the listener, harmless if repeated.

Regression for a race found by the testnet test (tests/integration/test_testnet.py): the
listener could write the same ack count twice, and the dialer tore the stream down on it.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest

from node.net.config import GrpcConfig
from node.net.grpc_codec import encode_ack
from node.net.grpc_link import PeerLink, _Sent
from node.net.grpc_transport import GrpcTransport, _AckState
from node.net.handshake import SessionKeys
from node.net.queues import OutboundQueue, Taken
from node.net.transport import NetCounters
from node.types.errors import MalformedMessage
from tests.unit.net.helpers import make_keys, run, verifier_of

KEYS = SessionKeys(send=b"s" * 32, receive=b"r" * 32)


class FakeContext:
    """Records what the ack writer writes."""

    def __init__(self) -> None:
        self.acks: list[bytes] = []
        self.wrote = asyncio.Event()

    async def write(self, data: bytes) -> None:
        self.acks.append(data)
        self.wrote.set()


class FakeCall:
    """Hands the dialer's ack reader a fixed list of frames, then waits forever."""

    def __init__(self, frames: list[bytes]) -> None:
        self._frames = frames
        self.drained = asyncio.Event()

    async def read(self) -> object:
        if self._frames:
            return self._frames.pop(0)
        self.drained.set()
        await asyncio.Event().wait()
        return grpc.aio.EOF


def test_the_listener_never_writes_the_same_ack_twice() -> None:
    """A wake-up for frames the last ack already covered writes nothing."""

    async def main() -> None:
        committee, signers = make_keys(2)
        config = GrpcConfig(ack_interval=0.01)
        transport = GrpcTransport(
            config, committee, 0, signers[0], lambda s, m: None, lambda s, t: None
        )
        context = FakeContext()
        state = _AckState(processed=1)
        wake = asyncio.Event()
        writer = asyncio.create_task(transport._send_acks(context, KEYS, state, wake))
        try:
            state.processed = 2
            wake.set()
            await context.wrote.wait()
            context.wrote.clear()
            wake.set()  # the race: woken again with nothing new processed
            for _ in range(3):
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.05):
                        await context.wrote.wait()
            state.processed = 3
            wake.set()
            await context.wrote.wait()
            assert context.acks == [encode_ack(2, KEYS.send), encode_ack(3, KEYS.send)]
        finally:
            writer.cancel()
            await asyncio.wait([writer])

    run(main())


def make_link() -> PeerLink:
    committee, signers = make_keys(2)
    counters = NetCounters()
    queue = OutboundQueue(16, 1 << 20, counters)
    config = GrpcConfig()
    return PeerLink(1, 0, committee, signers[0], verifier_of(committee), queue, config, counters)


def test_the_dialer_ignores_a_repeated_ack() -> None:
    """Acks 2, 2, 3 release frames 2 and 3 and keep the stream; going backwards does not."""

    async def main() -> None:
        link = make_link()
        for index in (2, 3):
            link._unacked.append(_sent(index))
        link._sent_index = 3
        call = FakeCall([encode_ack(k, KEYS.receive) for k in (2, 2, 3)])
        reader = asyncio.create_task(link._read_acks(call, KEYS))
        await call.drained.wait()
        assert not reader.done()
        assert not link._unacked
        reader.cancel()
        await asyncio.wait([reader])

        backwards = FakeCall([encode_ack(k, KEYS.receive) for k in (3, 2)])
        link._sent_index = 3
        with pytest.raises(MalformedMessage, match="ack of frame 2"):
            await link._read_acks(backwards, KEYS)

    run(main())


def _sent(index: int) -> _Sent:
    return _Sent(index, Taken(), 10, 0.0)
