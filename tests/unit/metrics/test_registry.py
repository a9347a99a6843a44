"""Every metric family of DESIGN §8 is defined once, served on /metrics, and has a no-op twin."""

from __future__ import annotations

import asyncio
import re

import aiohttp

from node.metrics import Metrics, NoopMetrics, family_names
from node.metrics.http import MetricsServer

DESIGN_FAMILIES = {
    "lanenet_consensus_committed_height",
    "lanenet_execution_executed_height",
    "lanenet_storage_archived_height",
    "lanenet_consensus_slot",
    "lanenet_consensus_view",
    "lanenet_consensus_commit_latency_seconds",
    "lanenet_consensus_commits",
    "lanenet_consensus_timeouts",
    "lanenet_consensus_view_changes",
    "lanenet_lanes_tip_position",
    "lanenet_lanes_poa_latency_seconds",
    "lanenet_lanes_car_size_bytes",
    "lanenet_lanes_cars_sealed",
    "lanenet_mempool_size_txs",
    "lanenet_mempool_size_bytes",
    "lanenet_consensus_committed_txs",
    "lanenet_execution_block_duration_seconds",
    "lanenet_execution_occ_reexecutions",
    "lanenet_storage_db_size_bytes",
    "lanenet_net_peers",
    "lanenet_runtime_queue_depth",
    "lanenet_net_messages_received",
    "lanenet_net_messages_sent",
    "lanenet_net_messages_rejected",
    "lanenet_net_penalties",
}


def _public_attributes(obj: object) -> set[str]:
    return {name for name in vars(obj) if not name.startswith("_")}


def test_all_design_families_are_registered() -> None:
    """The registry holds each family DESIGN §8 asks for, all named lanenet_<subsystem>_..."""
    names = family_names(Metrics(process_metrics=False))
    assert names >= DESIGN_FAMILIES
    for name in names:
        assert re.fullmatch(r"lanenet_[a-z]+_[a-z_]+", name), name


def test_noop_twin_has_the_same_attributes() -> None:
    """NoopMetrics exposes exactly Metrics' attributes, and every operation is accepted."""
    real, noop = Metrics(process_metrics=False), NoopMetrics()
    assert _public_attributes(real) == _public_attributes(noop)
    noop.commits.labels(path="fast").inc()
    noop.committed_height.set(5)
    noop.mempool_txs.dec()
    noop.commit_latency.observe(0.1)
    noop.lane_tip.labels("3").set(1)
    assert family_names(noop) == set()


def test_several_nodes_in_one_process_keep_separate_registries() -> None:
    """Two Metrics instances never collide and never see each other's values."""
    a, b = Metrics(node_id="a"), Metrics(node_id="b")
    a.committed_height.set(7)
    assert a.registry.get_sample_value("lanenet_consensus_committed_height") == 7
    assert b.registry.get_sample_value("lanenet_consensus_committed_height") == 0
    assert a.registry.get_sample_value("lanenet_node_info", {"node_id": "a", "version": "0.1.0"})


def test_occ_placeholder_says_so() -> None:
    """The OCC re-execution counter's help text says it stays 0 until OCC exists."""
    metrics = Metrics(process_metrics=False)
    [family] = [
        m for m in metrics.registry.collect() if m.name == "lanenet_execution_occ_reexecutions"
    ]
    assert "Placeholder" in family.documentation


def test_metrics_endpoint_serves_every_family() -> None:
    """GET /metrics returns the text format with a HELP line for every family."""
    metrics = Metrics(node_id="n1")
    metrics.commits.labels(path="slow").inc()
    metrics.queue_depth.labels(queue="inbound").set(4)

    async def main() -> str:
        server = MetricsServer(metrics.registry, host="127.0.0.1", port=0)
        await server.start()
        try:
            url = f"http://127.0.0.1:{server.port}/metrics"
            async with aiohttp.ClientSession() as session, session.get(url) as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/plain")
                return await response.text()
        finally:
            await server.stop()

    text = asyncio.run(main())
    for name in family_names(metrics):
        assert f"# HELP {name}" in text, name
    assert 'lanenet_consensus_commits_total{path="slow"} 1.0' in text
    assert 'lanenet_runtime_queue_depth{queue="inbound"} 4.0' in text
    assert "process_cpu_seconds_total" in text
