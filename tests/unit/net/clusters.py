"""n validators' transports of one kind, with recorders, kill/restart and raw injection."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Protocol

import grpc

from node.net.config import GrpcConfig
from node.net.grpc_transport import GrpcTransport
from node.net.memory import MemoryNetwork, MemoryTransport
from node.net.transport import Transport, TransportLimits
from node.wire.codec import encode_message
from tests.unit.net.helpers import RawPeer, Recorder, lane_vote, make_keys


class Cluster(Protocol):
    transports: list[Transport]
    recorders: list[Recorder]

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def kill(self, i: int) -> None: ...
    async def restart(self, i: int) -> None: ...

    async def inject(self, sender: int, to: int, payloads: list[bytes]) -> bool:
        """Deliver raw message bytes to ``to`` as if ``sender`` sent them (``sender``'s own
        transport must be down), then ``lane_vote(999)`` from the same sender. Return True
        if ``to`` processed it all and still accepts ``sender``, False if it cut it off."""
        ...


class MemoryCluster:
    def __init__(self, n: int, limits: TransportLimits) -> None:
        self.network = MemoryNetwork(n)
        self.recorders = [Recorder() for _ in range(n)]
        self._limits = limits
        self.transports: list[Transport] = [self._make(i) for i in range(n)]

    def _make(self, i: int) -> MemoryTransport:
        r = self.recorders[i]
        return MemoryTransport(self.network, i, r.on_message, r.on_txs, self._limits)

    async def start(self) -> None:
        for t in self.transports:
            await t.start()

    async def stop(self) -> None:
        for t in self.transports:
            await t.stop()

    async def kill(self, i: int) -> None:
        await self.transports[i].stop()

    async def restart(self, i: int) -> None:
        self.transports[i] = self._make(i)
        await self.transports[i].start()

    async def inject(self, sender: int, to: int, payloads: list[bytes]) -> bool:
        for payload in [*payloads, encode_message(lane_vote(999))]:
            self.network.inject(sender, to, payload)
        node = self.network.node(to)
        assert isinstance(node, MemoryTransport)
        return not node.is_banned(sender)


class GrpcCluster:
    def __init__(self, n: int, limits: TransportLimits, config: GrpcConfig | None = None) -> None:
        self.committee, self.signers = make_keys(n)
        self.recorders = [Recorder() for _ in range(n)]
        base = config or GrpcConfig(backoff_base=0.01, backoff_cap=0.2)
        self.config = replace(base, limits=limits)
        self.ports = [0] * n
        self.transports: list[Transport] = [self._make(i) for i in range(n)]

    def grpc(self, i: int) -> GrpcTransport:
        t = self.transports[i]
        assert isinstance(t, GrpcTransport)
        return t

    def address(self, i: int) -> str:
        return f"127.0.0.1:{self.ports[i]}"

    def _make(self, i: int) -> GrpcTransport:
        r = self.recorders[i]
        config = replace(self.config, listen_port=self.ports[i])
        return GrpcTransport(config, self.committee, i, self.signers[i], r.on_message, r.on_txs)

    async def start(self) -> None:
        for i in range(len(self.transports)):
            await self.transports[i].start()
            self.ports[i] = self.grpc(i).port
        for i in range(len(self.transports)):
            for j in range(len(self.transports)):
                if i != j:
                    self.grpc(i).set_peer_address(j, self.address(j))

    async def stop(self) -> None:
        for t in self.transports:
            await t.stop()

    async def kill(self, i: int) -> None:
        await self.transports[i].stop()

    async def restart(self, i: int) -> None:
        self.transports[i] = self._make(i)
        await self.transports[i].start()
        for j in range(len(self.transports)):
            if j != i:
                self.grpc(i).set_peer_address(j, self.address(j))

    async def inject(self, sender: int, to: int, payloads: list[bytes]) -> bool:
        raw = self.raw_peer(sender, to)
        try:
            await raw.connect(int(time.time() * 1000))
            await raw.send_batch(payloads)
            await raw.send_batch([encode_message(lane_vote(999))])
            while await raw.read_ack() < 3:  # confirmation, payloads, marker
                pass
        except grpc.aio.AioRpcError:
            return False
        finally:
            await raw.close()
        return True

    def raw_peer(self, sender: int, to: int, config: GrpcConfig | None = None) -> RawPeer:
        """A hand-driven dialer as ``sender`` to ``to`` (its channel limits from ``config``)."""
        return RawPeer(
            self.address(to),
            self.committee,
            sender,
            self.signers[sender],
            to,
            config or self.config,
        )
