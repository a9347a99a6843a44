"""The libp2p gossip is optional: disabled, missing or broken, it degrades to a no-op."""

from __future__ import annotations

import sys

import pytest
from structlog.testing import capture_logs

from node.net.config import GossipConfig
from node.net.gossip import Gossip
from node.net.grpc_codec import decode_tx_batch, encode_tx_batch
from node.types.errors import MalformedMessage
from tests.unit.net.helpers import run


def test_disabled_gossip_does_not_start_and_drops_what_it_is_given() -> None:
    """With gossip disabled, start returns False and publish_txs only counts the drop."""

    async def main() -> None:
        gossip = Gossip(GossipConfig(enabled=False), lambda source, txs: None)
        with capture_logs() as logs:
            assert not await gossip.start()
        assert [entry["event"] for entry in logs] == ["gossip_disabled"]
        gossip.publish_txs([b"a", b"b"])
        assert gossip.counters.dropped_not_running == 2
        assert not gossip.running
        await gossip.stop()

    run(main())


def test_gossip_without_libp2p_warns_and_keeps_the_node_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If libp2p cannot be imported, start logs a warning and returns False."""
    monkeypatch.setitem(sys.modules, "libp2p", None)

    async def main() -> None:
        gossip = Gossip(GossipConfig(), lambda source, txs: None)
        with capture_logs() as logs:
            assert not await gossip.start()
        assert logs[0]["event"] == "gossip_unavailable"
        assert logs[0]["log_level"] == "warning"
        gossip.publish_txs([b"tx"])
        assert gossip.counters.dropped_not_running == 1

    run(main())


def test_gossip_that_fails_to_start_warns_and_stops_its_thread() -> None:
    """A listen address libp2p rejects ends the gossip thread; start warns and returns False."""

    async def main() -> None:
        gossip = Gossip(GossipConfig(listen="/ip4/127.0.0.1/tcp/notaport"), lambda s, t: None)
        with capture_logs() as logs:
            assert not await gossip.start()
        assert "gossip_start_failed" in [entry["event"] for entry in logs]
        assert not gossip.running
        assert gossip._thread is not None and not gossip._thread.is_alive()
        gossip.publish_txs([b"tx"])
        assert gossip.counters.dropped_not_running == 1

    run(main())


def test_gossip_payloads_round_trip_and_reject_garbage() -> None:
    """A tx batch decodes to what was encoded; malformed or over-limit payloads are refused."""
    txs = [b"one", b"two" * 100]
    assert decode_tx_batch(encode_tx_batch(txs), 1 << 20, 10, 1000) == txs
    for bad, reason in [
        (b"\xff\xff", "not a valid protobuf"),
        (encode_tx_batch([b"x"] * 11), "items"),
        (encode_tx_batch([b"y" * 1001]), "bytes"),
        (encode_tx_batch([b""]), "empty"),
        (encode_tx_batch([b"z" * 100] * 10), "exceeds"),
    ]:
        with pytest.raises(MalformedMessage, match=reason):
            decode_tx_batch(bad, 900, 10, 1000)
