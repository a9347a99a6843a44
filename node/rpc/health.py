"""Liveness and readiness of a node, as probes for the metrics HTTP port.

``/healthz`` (liveness) answers whenever the process is up and its event loop is
responsive: the probe yields to the loop once and fails if that took longer than
``max_loop_lag_s`` (a loop that is starved, not just busy). A blocked loop cannot answer at
all, which the prober sees as a timeout.

``/readyz`` (readiness) is ``check_readiness`` over ``ChainView.status()``: the node is
caught up (execution at most ``max_execution_lag`` blocks behind commit, and commits
advancing whenever transactions are waiting) and connected to enough peers to form a
quorum with itself. Both return JSON with the facts behind the verdict.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from node.metrics.http import Probe, ProbeResult
from node.metrics.registry import Metrics, NoopMetrics
from node.rpc.chain_view import ChainStatus, ChainView


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """Thresholds of the probes."""

    max_execution_lag: int = 10
    """Blocks execution may trail commit and still count as caught up."""
    stall_after_ms: int = 15_000
    """With transactions waiting, a commit older than this means the node is stuck."""
    max_loop_lag_s: float = 2.0
    """Liveness fails when one trip through the event loop takes longer than this."""


def check_readiness(status: ChainStatus, now_ms: int, policy: HealthPolicy) -> ProbeResult:
    """Ready when caught up and connected to a quorum; ``detail['reasons']`` says why not."""
    reasons: list[str] = []
    lag = status.committed_height - status.executed_height
    if lag > policy.max_execution_lag:
        reasons.append(
            f"execution is {lag} blocks behind commit (at most {policy.max_execution_lag})"
        )
    if status.peers + 1 < status.quorum:
        reasons.append(
            f"connected to {status.peers} peers; a quorum of {status.quorum} needs "
            f"{status.quorum - 1}"
        )
    if status.mempool_txs > 0:
        since = None if status.last_commit_ms is None else now_ms - status.last_commit_ms
        if since is None or since > policy.stall_after_ms:
            waited = "no commit yet" if since is None else f"no commit for {since} ms"
            reasons.append(f"{waited} while {status.mempool_txs} transactions wait")
    return ProbeResult(
        ok=not reasons,
        detail={
            "node_id": status.node_id,
            "committed_height": status.committed_height,
            "executed_height": status.executed_height,
            "peers": status.peers,
            "quorum": status.quorum,
            "mempool_txs": status.mempool_txs,
            "reasons": reasons,
        },
    )


async def check_liveness(policy: HealthPolicy, metrics: Metrics) -> ProbeResult:
    """Alive when one yield to the event loop comes back within ``max_loop_lag_s``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    await asyncio.sleep(0)
    lag = loop.time() - start
    metrics.loop_lag.observe(lag)
    return ProbeResult(ok=lag <= policy.max_loop_lag_s, detail={"loop_lag_seconds": round(lag, 6)})


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def health_probes(
    chain: ChainView,
    policy: HealthPolicy | None = None,
    *,
    metrics: Metrics | None = None,
    clock_ms: Callable[[], int] = _wall_clock_ms,
) -> dict[str, Probe]:
    """``{"/healthz": ..., "/readyz": ...}`` for ``node.metrics.http.MetricsServer``."""
    policy = policy or HealthPolicy()
    used_metrics = metrics or NoopMetrics()

    async def healthz() -> ProbeResult:
        return await check_liveness(policy, used_metrics)

    async def readyz() -> ProbeResult:
        return check_readiness(chain.status(), clock_ms(), policy)

    return {"/healthz": healthz, "/readyz": readyz}
