"""The libp2p side of the gossip: a host, gossipsub and the tx topic, inside ``trio.run``.

It runs in a thread of its own (node/net/gossip.py starts it). Everything here executes on
that thread's trio loop; the asyncio side reaches in only through ``trio_token.run_sync_soon``
and is reached only through the ``emit`` callback it passes in (which must hop back to
asyncio with ``loop.call_soon_threadsafe``).

py-libp2p 0.8.1 drops traffic with its defaults (reference/dependencies.md §4): a spam
limit of 10 messages per second per topic per peer, per-peer outbound queues of 32 RPCs,
and subscription channels of 32 messages. The first is a GossipSub argument; the two
queues can only be enlarged by patching module attributes, which ``tune_libp2p`` does once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import structlog
import trio

from node.net.config import GossipConfig
from node.net.frames import BATCH_OVERHEAD, ITEM_OVERHEAD
from node.net.grpc_codec import decode_tx_batch, encode_tx_batch
from node.types.errors import MalformedMessage
from node.wire.codec import MAX_TX_SIZE

if TYPE_CHECKING:
    from libp2p.abc import IHost
    from libp2p.pubsub.gossipsub import GossipSub
    from libp2p.pubsub.pubsub import Pubsub

log = structlog.get_logger("lanenet.net.gossip")

SUBSCRIPTION_CHANNEL_SIZE: Final = 4096
RPC_QUEUE_SIZE: Final = 4096
MESH_POLL_INTERVAL: Final = 0.05
MAX_BATCH_TXS: Final = 1 << 16


@dataclass(slots=True)
class GossipCounters:
    """Written by the gossip thread (except ``dropped_not_running``), read by anyone."""

    published_batches: int = 0
    published_txs: int = 0
    publish_errors: int = 0
    received_batches: int = 0
    received_txs: int = 0
    dropped_txs: int = 0
    """Transactions dropped because the publish buffer was full."""
    dropped_not_running: int = 0
    """Transactions offered while the gossip was disabled, failed or stopped."""
    decode_errors: int = 0
    connected_peers: int = 0
    topic_peers: int = 0
    mesh_peers: int = 0


@dataclass(frozen=True, slots=True)
class Started:
    peer_id: str
    addrs: tuple[str, ...]


Emit = Callable[[object], None]
"""Hands an event (``Started``, ``Received``, ``PeersChanged``) to the asyncio side."""


@dataclass(frozen=True, slots=True)
class Received:
    source: str
    txs: list[bytes]


@dataclass(frozen=True, slots=True)
class PeersChanged:
    """The connected peers (base58 ids) and how many identify has described so far."""

    peers: tuple[str, ...]
    identified: int
    mesh: int


def tune_libp2p() -> None:
    """Enlarge py-libp2p's pubsub queues (module-level constants it reads at use)."""
    from libp2p.pubsub import pubsub as pubsub_module
    from libp2p.pubsub.rpc_queue import DefaultMaxMessageSize, RpcQueue

    # pubsub.py reads both names from its module namespace each time it builds a queue
    pubsub_module.SUBSCRIPTION_CHANNEL_SIZE = SUBSCRIPTION_CHANNEL_SIZE
    if getattr(pubsub_module.RpcQueue, "lanenet_tuned", False):  # type: ignore[attr-defined]
        return

    class LargeRpcQueue(RpcQueue):
        lanenet_tuned = True

        def __init__(
            self, max_size: int = RPC_QUEUE_SIZE, max_message_size: int = DefaultMaxMessageSize
        ) -> None:
            super().__init__(max_size, max_message_size)

    pubsub_module.RpcQueue = LargeRpcQueue  # type: ignore[attr-defined]


class TrioGossip:
    """Owns the libp2p host for one node; ``run`` is the gossip thread's whole life."""

    def __init__(self, config: GossipConfig, counters: GossipCounters, emit: Emit) -> None:
        self._config = config
        self._counters = counters
        self._emit = emit
        self._pending: deque[bytes] = deque()
        self._pending_bytes = 0
        self._has_pending = trio.Event()
        self._stop = trio.Event()
        self.token: trio.lowlevel.TrioToken | None = None

    # ---------------------------------------------------------- called on the trio thread

    def enqueue(self, txs: list[bytes]) -> None:
        """Add transactions to the next batch (via ``token.run_sync_soon``)."""
        for tx in txs:
            self._pending.append(tx)
            self._pending_bytes += len(tx) + ITEM_OVERHEAD
        while self._pending_bytes > self._config.max_pending_bytes:
            self._pending_bytes -= len(self._pending.popleft()) + ITEM_OVERHEAD
            self._counters.dropped_txs += 1
        if self._pending:
            self._has_pending.set()

    def request_stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        trio.run(self._main)

    async def _main(self) -> None:
        from contextlib import AsyncExitStack

        import multiaddr  # type: ignore[import-untyped]  # ships no type information

        tune_libp2p()
        self.token = trio.lowlevel.current_trio_token()
        host, pubsub, gossipsub = self._build()
        async with AsyncExitStack() as stack:
            from libp2p.tools.anyio_service.context import background_trio_service

            await stack.enter_async_context(
                host.run(listen_addrs=[multiaddr.Multiaddr(self._config.listen)])
            )
            await stack.enter_async_context(background_trio_service(pubsub))
            await stack.enter_async_context(background_trio_service(gossipsub))
            await pubsub.wait_until_ready()
            subscription = await pubsub.subscribe(self._config.topic)
            peer_id = host.get_id().to_base58()
            addrs = tuple(str(a) for a in host.get_addrs())
            self._emit(Started(peer_id, addrs))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._receive, subscription, peer_id)
                nursery.start_soon(self._publish, pubsub)
                nursery.start_soon(self._dial_bootstrap, host)
                nursery.start_soon(self._watch_peers, host, gossipsub)
                await self._stop.wait()
                nursery.cancel_scope.cancel()

    def _build(self) -> tuple[IHost, Pubsub, GossipSub]:
        from libp2p import new_host
        from libp2p.crypto.ed25519 import create_new_key_pair
        from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, GossipSub
        from libp2p.pubsub.pubsub import Pubsub
        from libp2p.stream_muxer.mplex.mplex import MPLEX_PROTOCOL_ID, Mplex

        # mplex measured 1.75x faster than yamux here (dependencies.md §4)
        host = new_host(
            key_pair=create_new_key_pair(self._config.identity_seed),
            muxer_opt={MPLEX_PROTOCOL_ID: Mplex},
        )
        gossipsub = GossipSub(
            protocols=[PROTOCOL_ID_V11],
            degree=6,
            degree_low=4,
            degree_high=12,
            heartbeat_initial_delay=0.1,
            heartbeat_interval=self._config.heartbeat_interval,
            do_px=True,
            spam_protection_enabled=False,
            eclipse_protection_enabled=False,
        )
        inbound_limit = max(2 * self._config.max_message_size, 1 << 20)
        pubsub = Pubsub(host, gossipsub, max_inbound_rpc_size=inbound_limit)
        return host, pubsub, gossipsub

    async def _publish(self, pubsub: Pubsub) -> None:
        config = self._config
        while True:
            while not self._pending:
                await self._wait_for_more()
            # a batch leaves when it is big enough, or batch_interval after it started
            with trio.move_on_after(config.batch_interval):
                while self._pending_bytes < config.batch_bytes:
                    await self._wait_for_more()
            batch = self._take_batch()
            try:
                await pubsub.publish(config.topic, encode_tx_batch(batch))
            except (trio.BrokenResourceError, trio.ClosedResourceError, ValueError) as exc:
                self._counters.publish_errors += 1
                log.warning("gossip_publish_failed", error=str(exc), txs=len(batch))
                continue
            self._counters.published_batches += 1
            self._counters.published_txs += len(batch)

    async def _wait_for_more(self) -> None:
        self._has_pending = trio.Event()
        await self._has_pending.wait()

    def _take_batch(self) -> list[bytes]:
        budget = self._config.max_message_size - BATCH_OVERHEAD
        batch: list[bytes] = []
        while self._pending and len(batch) < MAX_BATCH_TXS:
            size = len(self._pending[0]) + ITEM_OVERHEAD
            if size > budget and batch:
                break
            batch.append(self._pending.popleft())
            self._pending_bytes -= size
            budget -= size
        return batch

    async def _receive(self, subscription: Any, own_id: str) -> None:
        from libp2p.peer.id import ID

        while True:
            message = await subscription.get()
            source = ID(message.from_id).to_base58()
            if source == own_id:
                continue
            try:
                txs = decode_tx_batch(
                    message.data, 2 * self._config.max_message_size, MAX_BATCH_TXS, MAX_TX_SIZE
                )
            except MalformedMessage as exc:
                self._counters.decode_errors += 1
                log.warning("gossip_bad_batch", source=source, reason=str(exc))
                continue
            self._counters.received_batches += 1
            self._counters.received_txs += len(txs)
            self._emit(Received(source, txs))

    async def _dial_bootstrap(self, host: IHost) -> None:
        import multiaddr
        from libp2p.peer.peerinfo import info_from_p2p_addr

        infos = [info_from_p2p_addr(multiaddr.Multiaddr(a)) for a in self._config.bootstrap]
        while infos:
            connected = set(host.get_connected_peers())
            for info in infos:
                if info.peer_id in connected:
                    continue
                try:
                    await host.connect(info)
                except Exception as exc:  # noqa: BLE001 - libp2p raises many unrelated types on a failed dial
                    log.info("gossip_dial_failed", peer=str(info.peer_id), error=str(exc))
            await trio.sleep(self._config.redial_interval)

    async def _watch_peers(self, host: IHost, gossipsub: GossipSub) -> None:
        last: PeersChanged | None = None
        topic = self._config.topic
        peerstore = host.get_peerstore()
        while True:
            connected = host.get_connected_peers()
            # identify (run by the host on every new connection) fills in their protocols
            identified = sum(1 for p in connected if _known_protocols(peerstore, p))
            mesh = len(gossipsub.mesh.get(topic, ()))
            self._counters.connected_peers = len(connected)
            self._counters.mesh_peers = mesh
            pubsub = gossipsub.pubsub
            self._counters.topic_peers = len(pubsub.peer_topics.get(topic, ())) if pubsub else 0
            state = PeersChanged(tuple(sorted(p.to_base58() for p in connected)), identified, mesh)
            if state != last:
                last = state
                self._emit(state)
            await trio.sleep(MESH_POLL_INTERVAL)


def _known_protocols(peerstore: Any, peer: Any) -> bool:
    try:
        return bool(peerstore.get_protocols(peer))
    except KeyError:  # PeerStoreError: nothing recorded for this peer yet
        return False
