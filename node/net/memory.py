"""In-memory twin of the gRPC transport: same contract, one event loop, no sockets.

Messages still go through the codec (encoded at send, decoded at delivery) and the same
bounded queues, penalties and counters, so a test on the twin exercises everything but the
sockets and the handshake. ``MemoryNetwork`` is the wire: it knows which transports are
running, can cut and heal links, and can inject raw bytes as if a peer had sent them.
"""

from __future__ import annotations

import asyncio

from node.net.frames import estimate_batch_size
from node.net.inbound import Inbound
from node.net.outbox import Outbox
from node.net.supervisor import Supervisor
from node.net.transport import NetCounters, OnMessage, OnTxs, TransportLimits
from node.types.messages import Message


class MemoryNetwork:
    """Connects ``size`` validators' MemoryTransports; a link is up when both ends run and
    it is not cut."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._nodes: dict[int, MemoryTransport] = {}
        self._cut: set[frozenset[int]] = set()
        self._changed = asyncio.Event()

    def cut(self, a: int, b: int) -> None:
        self._cut.add(frozenset((a, b)))
        self._notify()

    def heal(self, a: int, b: int) -> None:
        self._cut.discard(frozenset((a, b)))
        self._notify()

    def is_linked(self, a: int, b: int) -> bool:
        return a in self._nodes and b in self._nodes and frozenset((a, b)) not in self._cut

    def inject(self, sender: int, to: int, payload: bytes) -> None:
        """Deliver raw message bytes to ``to`` as if ``sender`` had sent them."""
        node = self._nodes.get(to)
        if node is not None:
            node.receive(sender, [payload], [])

    async def wait_linked(self, a: int, b: int) -> None:
        while not self.is_linked(a, b):
            changed = self._changed
            await changed.wait()

    def register(self, node: MemoryTransport) -> None:
        if not 0 <= node.index < self.size:
            raise ValueError(f"validator {node.index} is outside a network of {self.size}")
        self._nodes[node.index] = node
        self._notify()

    def unregister(self, node: MemoryTransport) -> None:
        if self._nodes.get(node.index) is node:
            del self._nodes[node.index]
            self._notify()

    def node(self, index: int) -> MemoryTransport | None:
        return self._nodes.get(index)

    def _notify(self) -> None:
        # wake every waiter, then arm a fresh event for the next change
        self._changed.set()
        self._changed = asyncio.Event()


class MemoryTransport:
    """A Transport whose peers are the other validators of a MemoryNetwork."""

    def __init__(
        self,
        network: MemoryNetwork,
        index: int,
        on_message: OnMessage,
        on_txs: OnTxs,
        limits: TransportLimits | None = None,
    ) -> None:
        self.index = index
        self.counters = NetCounters()
        self._network = network
        self._limits = limits or TransportLimits()
        self._outbox = Outbox(index, range(network.size), self._limits, self.counters)
        self._inbound = Inbound(on_message, on_txs, self._limits, self.counters)
        self._supervisor = Supervisor(f"memory-transport-{index}")

    async def start(self) -> None:
        """Join the network. A stopped transport cannot start again (build a new one)."""
        if self._supervisor.running:
            return
        if self._inbound.closed:
            raise RuntimeError("a stopped MemoryTransport cannot be restarted; build a new one")
        self._network.register(self)
        self._supervisor.start(self._run())

    async def stop(self) -> None:
        self._inbound.closed = True
        self._network.unregister(self)
        await self._supervisor.stop()

    def send(self, to: int, message: Message) -> None:
        self._outbox.send(to, message)

    def broadcast(self, message: Message) -> None:
        self._outbox.broadcast(message)

    def send_raw_txs(self, to: int, txs: list[bytes]) -> None:
        self._outbox.send_raw_txs(to, txs)

    def connected_peers(self) -> frozenset[int]:
        return frozenset(p for p in self._outbox.queues if self._network.is_linked(self.index, p))

    def queue_depths(self) -> dict[int, int]:
        return self._outbox.depths()

    def is_banned(self, peer: int) -> bool:
        return self._inbound.is_banned(peer)

    def receive(self, sender: int, messages: list[bytes], txs: list[bytes]) -> None:
        """The network's delivery of one frame from ``sender``."""
        self.counters.frames_received += 1
        self.counters.bytes_received += estimate_batch_size(messages, txs)
        self._inbound.deliver(sender, messages, txs)

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for peer in self._outbox.queues:
                tg.create_task(self._link(peer))

    async def _link(self, peer: int) -> None:
        queue = self._outbox.queues[peer]
        limits = self._limits
        while True:
            await queue.wait()
            await self._network.wait_linked(self.index, peer)
            taken = queue.take(limits.frame_budget, limits.max_frame_messages, limits.max_frame_txs)
            target = self._network.node(peer)
            if target is None or not taken:
                queue.requeue(taken)
                continue
            payloads = taken.payloads
            self.counters.frames_sent += 1
            self.counters.messages_sent += len(payloads)
            self.counters.txs_sent += len(taken.txs)
            self.counters.bytes_sent += estimate_batch_size(payloads, taken.txs)
            target.receive(self.index, payloads, taken.txs)
            # one frame per turn, so a busy link cannot starve the rest of the loop
            await asyncio.sleep(0)
