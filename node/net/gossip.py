"""Transaction gossip over libp2p (py-libp2p gossipsub), optional by design.

Any node (a full node with no gRPC links, or a validator) can ``publish_txs``; batches of
at least ``batch_bytes`` (or whatever ``batch_interval`` collected) go out on the topic
``/lanenet/txs/1``; every subscriber gets each batch through ``on_txs(source, txs)`` and
keeps what belongs to its own lane (the lane owner of a sender is a mempool decision, not
the network's). libp2p also identifies peers (identify runs on every connection) and finds
them from the bootstrap multiaddrs and gossipsub peer exchange.

py-libp2p runs on trio, so the host lives in a thread of its own running ``trio.run``
(node/net/gossip_trio.py). asyncio reaches it with ``trio_token.run_sync_soon``; it answers
with ``loop.call_soon_threadsafe``; callbacks run on the asyncio loop.

Nothing depends on it: when it is disabled in the config, cannot be imported, or fails to
start, ``start`` logs a warning and returns False, ``publish_txs`` only counts what it
drops, and the node forwards transactions to lane owners over gRPC instead
(``Transport.send_raw_txs``).

What it carries, measured by bench/net.py (3 processes in a line on a shared 2-core
machine, 2026-11-22): 30-100 messages/s of 200 bytes; 8-40 messages/s of 32 KiB batches,
i.e. 2k-9k transactions/s; and bursts of a few hundred messages lose 3-13% of them at the
second hop. gRPC streams carry 300k forwarded transactions/s. So gossip carries only
transactions from nodes without gRPC links (full nodes, clients), batched, best effort
(the submitter retries); cars, votes, consensus and validator-to-validator forwarding stay
on gRPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable

import structlog

from node.net.config import GossipConfig
from node.net.gossip_trio import (
    GossipCounters,
    PeersChanged,
    Received,
    Started,
    TrioGossip,
)

log = structlog.get_logger("lanenet.net.gossip")

OnGossipTxs = Callable[[str, list[bytes]], None]
"""``on_txs(source, txs)``: a batch gossiped by the libp2p peer ``source`` (base58 id)."""


class Gossip:
    """The node's libp2p gossip; every method is called from the asyncio loop."""

    def __init__(self, config: GossipConfig, on_txs: OnGossipTxs) -> None:
        self.counters = GossipCounters()
        self.peer_id: str | None = None
        self.addrs: tuple[str, ...] = ()
        """Listen multiaddrs with ``/p2p/<peer id>``: what other nodes bootstrap from."""
        self.peers: tuple[str, ...] = ()
        """Connected libp2p peers (base58 ids)."""
        self.identified = 0
        """How many of them identify has described (protocols, listen addresses)."""
        self._config = config
        self._on_txs = on_txs
        self._trio: TrioGossip | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started: asyncio.Future[Started] | None = None
        self._peers_changed = asyncio.Event()
        self._running = False

    @property
    def running(self) -> bool:
        return self._running

    async def start(self) -> bool:
        """Start the libp2p host; False (with a warning) if disabled or it cannot start."""
        if not self._config.enabled:
            log.info("gossip_disabled")
            return False
        if self._thread is not None:
            return self._running
        try:
            import libp2p  # noqa: F401 - import errors surface here, not in the thread
        except ImportError as exc:
            log.warning("gossip_unavailable", error=str(exc))
            return False
        libp2p_log = logging.getLogger("libp2p")
        if libp2p_log.level == logging.NOTSET:
            # py-libp2p logs every dial and heartbeat at INFO; keep its warnings only
            libp2p_log.setLevel(logging.WARNING)
        self._loop = asyncio.get_running_loop()
        self._started = self._loop.create_future()
        self._trio = TrioGossip(self._config, self.counters, self._emit)
        self._thread = threading.Thread(target=self._run_thread, name="lanenet-gossip", daemon=True)
        self._thread.start()
        try:
            async with asyncio.timeout(self._config.start_timeout):
                started = await self._started
        except (TimeoutError, RuntimeError) as exc:
            log.warning("gossip_start_failed", error=str(exc) or type(exc).__name__)
            await self.stop()
            return False
        self.peer_id, self.addrs = started.peer_id, started.addrs
        self._running = True
        log.info("gossip_started", peer_id=self.peer_id, addrs=list(self.addrs))
        return True

    async def stop(self) -> None:
        """Stop the host and join its thread (waiting at most ``start_timeout``)."""
        self._running = False
        gossip, thread = self._trio, self._thread
        if gossip is None or thread is None:
            return
        if gossip.token is not None:
            # trio.RunFinishedError (a RuntimeError) when the thread already ended
            with contextlib.suppress(RuntimeError):
                gossip.token.run_sync_soon(gossip.request_stop)
        await asyncio.to_thread(thread.join, self._config.start_timeout)
        if thread.is_alive():
            log.warning("gossip_thread_still_running")

    def publish_txs(self, txs: list[bytes]) -> None:
        """Queue transactions for the next gossip batch (non-blocking)."""
        gossip = self._trio
        if not self._running or gossip is None or gossip.token is None:
            self.counters.dropped_not_running += len(txs)
            return
        try:
            gossip.token.run_sync_soon(gossip.enqueue, list(txs))
        except RuntimeError:  # trio.RunFinishedError
            self._running = False
            self.counters.dropped_not_running += len(txs)

    async def wait_for_mesh(self, peers: int) -> None:
        """Return once at least ``peers`` peers are in our mesh for the topic."""
        await self.wait_until(lambda: self.counters.mesh_peers >= peers)

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Return once ``condition`` holds; it is re-checked whenever the peers change."""
        while not condition():
            self._peers_changed.clear()
            await self._peers_changed.wait()

    # ---------------------------------------------------------------- thread plumbing

    def _run_thread(self) -> None:
        gossip = self._trio
        if gossip is None:
            return
        try:
            gossip.run()
        except BaseException as exc:  # noqa: BLE001 - whatever ends the thread, the node goes on
            log.error("gossip_thread_failed", error=repr(exc))
            self._emit(exc)
        else:
            self._emit(None)

    def _emit(self, event: object) -> None:
        """Called on the gossip thread: hand ``event`` to the asyncio loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed in between
            loop.call_soon_threadsafe(self._on_event, event)

    def _on_event(self, event: object) -> None:
        if isinstance(event, Received):
            if self._running:
                self._on_txs(event.source, event.txs)
        elif isinstance(event, PeersChanged):
            self.peers, self.identified = event.peers, event.identified
            self._peers_changed.set()
        elif isinstance(event, Started):
            if self._started is not None and not self._started.done():
                self._started.set_result(event)
        else:  # the thread ended (None) or died (an exception)
            self._running = False
            if self._started is not None and not self._started.done():
                self._started.set_exception(RuntimeError(f"gossip thread ended: {event!r}"))
