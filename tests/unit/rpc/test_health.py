"""Readiness follows catch-up, commit progress and peer quorum; liveness the event loop."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import aiohttp

from node.metrics.http import MetricsServer
from node.metrics.registry import Metrics, NoopMetrics
from node.rpc.chain_view import ChainStatus
from node.rpc.health import HealthPolicy, check_liveness, check_readiness, health_probes
from tests.unit.rpc.helpers import funded_chain

POLICY = HealthPolicy(max_execution_lag=2, stall_after_ms=5_000)
NOW = 1_000_000


def _status(**changes: object) -> ChainStatus:
    base = ChainStatus(
        node_id="n0",
        chain_id=1,
        committed_height=10,
        executed_height=10,
        archived_height=0,
        slot=10,
        view=0,
        peers=3,
        validators=4,
        quorum=3,
        mempool_txs=0,
        last_commit_ms=NOW - 100,
        version="test",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_caught_up_and_connected_is_ready() -> None:
    """Executed near committed, recent commits and enough peers: ready, with no reasons."""
    verdict = check_readiness(_status(), NOW, POLICY)
    assert verdict.ok
    assert verdict.detail["reasons"] == []


def test_execution_lag_makes_not_ready() -> None:
    """Execution further behind commit than allowed is not ready; the reason says how far."""
    verdict = check_readiness(_status(executed_height=7), NOW, POLICY)
    assert not verdict.ok
    assert verdict.detail["reasons"] == ["execution is 3 blocks behind commit (at most 2)"]


def test_too_few_peers_makes_not_ready() -> None:
    """With fewer peers than a quorum needs besides this node, it is not ready."""
    verdict = check_readiness(_status(peers=1), NOW, POLICY)
    assert not verdict.ok
    assert "connected to 1 peers; a quorum of 3 needs 2" in verdict.detail["reasons"]  # type: ignore[operator]


def test_stalled_commits_matter_only_under_load() -> None:
    """An old last commit is fine with an empty mempool, not while transactions wait."""
    idle = _status(last_commit_ms=NOW - 60_000, mempool_txs=0)
    assert check_readiness(idle, NOW, POLICY).ok
    loaded = replace(idle, mempool_txs=12)
    verdict = check_readiness(loaded, NOW, POLICY)
    assert not verdict.ok
    assert verdict.detail["reasons"] == ["no commit for 60000 ms while 12 transactions wait"]
    never = _status(last_commit_ms=None, mempool_txs=1)
    assert not check_readiness(never, NOW, POLICY).ok


def test_liveness_measures_the_event_loop() -> None:
    """A responsive loop is alive; a zero tolerance for lag fails the probe."""
    assert asyncio.run(check_liveness(HealthPolicy(), NoopMetrics())).ok
    strict = HealthPolicy(max_loop_lag_s=-1.0)
    assert not asyncio.run(check_liveness(strict, NoopMetrics())).ok


def test_probes_are_served_beside_metrics() -> None:
    """/healthz, /readyz and /metrics answer on the metrics port; not ready is HTTP 503."""
    chain = funded_chain()
    metrics = Metrics(process_metrics=False)

    async def main() -> None:
        probes = health_probes(chain, POLICY, metrics=metrics)
        server = MetricsServer(metrics.registry, probes, host="127.0.0.1", port=0)
        await server.start()
        base = f"http://127.0.0.1:{server.port}"
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(base + "/healthz") as response:
                    assert response.status == 200
                    assert (await response.json())["ok"] is True
                async with session.get(base + "/readyz") as response:
                    assert response.status == 200
                    assert (await response.json())["node_id"] == "fake-0"
                chain.peers = 0
                async with session.get(base + "/readyz") as response:
                    assert response.status == 503
                    assert (await response.json())["ok"] is False
                async with session.get(base + "/metrics") as response:
                    assert response.status == 200
                    assert (
                        "lanenet_runtime_event_loop_lag_seconds_count 1.0" in await response.text()
                    )
        finally:
            await server.stop()

    asyncio.run(main())
