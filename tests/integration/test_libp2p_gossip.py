"""py-libp2p gossip on 127.0.0.1: three nodes in a line deliver batches of transactions."""

from __future__ import annotations

import asyncio

from node.net.config import GossipConfig
from node.net.gossip import Gossip
from tests.unit.net.helpers import run


class Inbox:
    """What one gossip node received, awaitable."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[bytes]]] = []
        self._changed = asyncio.Event()

    def on_txs(self, source: str, txs: list[bytes]) -> None:
        self.batches.append((source, txs))
        self._changed.set()
        self._changed = asyncio.Event()

    @property
    def txs(self) -> list[bytes]:
        return [tx for _, batch in self.batches for tx in batch]

    async def until_txs(self, count: int, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.txs) < count:
                changed = self._changed
                await changed.wait()


async def start_line(inboxes: list[Inbox]) -> list[Gossip]:
    """Start one node per inbox, each bootstrapping from the previous: 0 - 1 - 2."""
    nodes: list[Gossip] = []
    for i, inbox in enumerate(inboxes):
        bootstrap = nodes[-1].addrs if nodes else ()
        node = Gossip(
            GossipConfig(bootstrap=bootstrap, identity_seed=bytes([i + 1]) * 32), inbox.on_txs
        )
        assert await node.start()
        nodes.append(node)
    async with asyncio.timeout(30):
        await nodes[0].wait_for_mesh(1)
        await nodes[1].wait_for_mesh(2)
        await nodes[2].wait_for_mesh(1)
    return nodes


def test_three_nodes_in_a_line_deliver_a_batch_to_everyone_else() -> None:
    """A batch published at one end reaches the middle node and, relayed, the far end,
    in order and attributed to the publisher; the publisher does not hear itself."""
    txs = [f"transaction {i}".encode() * 8 for i in range(2000)]

    async def main() -> None:
        inboxes = [Inbox(), Inbox(), Inbox()]
        nodes = await start_line(inboxes)
        try:
            nodes[0].publish_txs(txs[:1000])
            nodes[0].publish_txs(txs[1000:])
            await inboxes[1].until_txs(len(txs))
            await inboxes[2].until_txs(len(txs))
            for inbox in inboxes[1:]:
                assert inbox.txs == txs
                assert {source for source, _ in inbox.batches} == {nodes[0].peer_id}
            assert inboxes[0].batches == []
            # batches of at least 32 KiB (up to 1 MiB): a few messages carry all 2000 txs
            assert 1 <= nodes[0].counters.published_batches <= 8
            assert nodes[0].counters.published_txs == len(txs)
            assert nodes[2].counters.received_txs == len(txs)
        finally:
            for node in nodes:
                await node.stop()

    run(main(), timeout=120)


def test_peers_are_found_from_bootstrap_addresses_and_identified() -> None:
    """Each node connects to its bootstrap peer and identify describes every connection."""

    async def main() -> None:
        nodes = await start_line([Inbox(), Inbox(), Inbox()])
        try:
            middle = nodes[1]
            ends = tuple(sorted(n.peer_id or "" for n in (nodes[0], nodes[2])))
            async with asyncio.timeout(30):
                await middle.wait_until(lambda: middle.peers == ends and middle.identified == 2)
            assert middle.peer_id in nodes[0].peers
            assert middle.counters.connected_peers == 2
        finally:
            for node in nodes:
                await node.stop()

    run(main(), timeout=120)


def test_small_publishes_within_the_batch_interval_travel_as_one_message() -> None:
    """Many small publish calls in quick succession are sent as a single gossip message."""

    async def main() -> None:
        inboxes = [Inbox(), Inbox(), Inbox()]
        nodes = await start_line(inboxes)
        try:
            for i in range(20):
                nodes[2].publish_txs([f"tx {i}.{j}".encode() for j in range(10)])
            await inboxes[0].until_txs(200)
            assert len(inboxes[0].batches) == 1
            assert nodes[2].counters.published_batches == 1
        finally:
            for node in nodes:
                await node.stop()

    run(main(), timeout=120)
