"""Every Prometheus metric of a lanenet node, defined in one place (DESIGN §8).

Names follow ``lanenet_<subsystem>_<name>_<unit>``. ``Metrics`` registers them on its own
``CollectorRegistry`` (never the global one), so several nodes can run in one process,
each with its own ``/metrics``. ``NoopMetrics`` is the twin for tests and tools: the same
attributes (it shares the definitions below), whose updates do nothing.

Code records through the small ``CounterLike``/``GaugeLike``/``HistogramLike``
interfaces: ``metrics.commits.labels(path="fast").inc()``,
``metrics.committed_height.set(h)``, ``metrics.commit_latency.observe(s)``.
Label values must come from small fixed sets (message kinds, reasons, lanes, queue names,
tiers): never a transaction hash or a client address.
"""

from __future__ import annotations

from typing import Final, Protocol, Self

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.process_collector import ProcessCollector

from node import __version__

LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
FAST_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SIZE_BUCKETS: Final = tuple(float(256 << (2 * i)) for i in range(8))  # 256 B .. 4 MiB
COUNT_BUCKETS: Final = tuple(float(1 << (2 * i)) for i in range(8))  # 1 .. 16384


class CounterLike(Protocol):
    def labels(self, *values: str, **by_name: str) -> Self: ...
    def inc(self, amount: float = 1) -> None: ...


class GaugeLike(Protocol):
    def labels(self, *values: str, **by_name: str) -> Self: ...
    def inc(self, amount: float = 1) -> None: ...
    def dec(self, amount: float = 1) -> None: ...
    def set(self, value: float) -> None: ...


class HistogramLike(Protocol):
    def labels(self, *values: str, **by_name: str) -> Self: ...
    def observe(self, amount: float) -> None: ...


class Metrics:
    """The node's metric families, registered on ``self.registry``."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        node_id: str = "",
        process_metrics: bool = True,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        if process_metrics:
            ProcessCollector(registry=self.registry)
        self._define()
        self.info.labels(node_id=node_id, version=__version__).set(1)

    # The three factories are the only place a metric object is created; NoopMetrics
    # overrides them, which is what keeps the two classes' attributes identical.
    def _counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> CounterLike:
        return Counter(name, doc, labels, registry=self.registry)

    def _gauge(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> GaugeLike:
        return Gauge(name, doc, labels, registry=self.registry)

    def _histogram(
        self, name: str, doc: str, buckets: tuple[float, ...], labels: tuple[str, ...] = ()
    ) -> HistogramLike:
        return Histogram(name, doc, labels, buckets=buckets, registry=self.registry)

    def _define(self) -> None:
        c, g, h = self._counter, self._gauge, self._histogram
        self.info = g(
            "lanenet_node_info",
            "Always 1; labels name the node and its version.",
            ("node_id", "version"),
        )

        # consensus
        self.committed_height = g(
            "lanenet_consensus_committed_height", "Height of the latest committed block."
        )
        self.slot = g("lanenet_consensus_slot", "Highest slot this node has committed or entered.")
        self.view = g("lanenet_consensus_view", "View of the current slot (0 until a view change).")
        self.commit_latency = h(
            "lanenet_consensus_commit_latency_seconds",
            "Time from a slot's proposal to its commit at this node.",
            LATENCY_BUCKETS,
        )
        self.commits = c(
            "lanenet_consensus_commits_total",
            "Committed slots by path: fast (n prepare votes) or slow (confirm).",
            ("path",),
        )
        self.timeouts = c(
            "lanenet_consensus_timeouts_total",
            "Timeouts this node sent (a view's leader made no progress in time).",
        )
        self.view_changes = c(
            "lanenet_consensus_view_changes_total",
            "View changes (timeout certificates formed or received).",
        )
        self.committed_txs = c(
            "lanenet_consensus_committed_txs_total", "Transactions in committed blocks."
        )

        # lanes
        self.lane_tip = g(
            "lanenet_lanes_tip_position",
            "Position of the latest car this node stored, per lane.",
            ("lane",),
        )
        self.poa_latency = h(
            "lanenet_lanes_poa_latency_seconds",
            "Time from sealing this node's car to its proof of availability.",
            LATENCY_BUCKETS,
            ("lane",),
        )
        self.cars_sealed = c(
            "lanenet_lanes_cars_sealed_total", "Cars this node sealed in its lane."
        )
        self.car_size = h(
            "lanenet_lanes_car_size_bytes",
            "Payload size of the cars this node seals.",
            SIZE_BUCKETS,
        )
        self.car_txs = h(
            "lanenet_lanes_car_txs", "Transactions per car this node seals.", COUNT_BUCKETS
        )

        # mempool
        self.mempool_txs = g("lanenet_mempool_size_txs", "Transactions waiting in the mempool.")
        self.mempool_bytes = g(
            "lanenet_mempool_size_bytes", "Bytes of transactions in the mempool."
        )
        self.mempool_admitted = c(
            "lanenet_mempool_admitted_txs_total", "Transactions admitted to the mempool."
        )
        self.mempool_rejected = c(
            "lanenet_mempool_rejected_txs_total",
            "Transactions refused by the mempool, by reason.",
            ("reason",),
        )
        self.mempool_reforwarded = c(
            "lanenet_mempool_reforwarded_txs_total",
            "Transactions forwarded to their lane owner again (not executed in time).",
        )

        # execution
        self.executed_height = g(
            "lanenet_execution_executed_height", "Height of the latest executed block."
        )
        self.execution_time = h(
            "lanenet_execution_block_duration_seconds",
            "Time to execute one block (senders recovered to writes staged).",
            FAST_BUCKETS,
        )
        self.executed_txs = c(
            "lanenet_execution_txs_total",
            "Executed transactions by status (ok or failed).",
            ("status",),
        )
        self.late_recoveries = c(
            "lanenet_execution_late_recoveries_total",
            "Transactions whose sender execution had to recover itself (not recovered on "
            "submission or when their car arrived): each costs a second signature recovery.",
        )
        self.divergence = g(
            "lanenet_execution_divergence",
            "Height at which this node's state commitment diverged from the one the network "
            "certified (0: none). A diverged node halts; this is set just before it exits.",
        )
        self.occ_reexecutions = c(
            "lanenet_execution_occ_reexecutions_total",
            "Transactions re-executed after an OCC validation failure. "
            "Placeholder: stays 0 until the OCC scheduler exists.",
        )

        # storage
        self.archived_height = g(
            "lanenet_storage_archived_height", "Highest height sealed into the archive tier."
        )
        self.db_size = g(
            "lanenet_storage_db_size_bytes",
            "On-disk size of each storage tier (hot, archive).",
            ("tier",),
        )

        # net
        self.peers = g(
            "lanenet_net_peers", "Connected peers by transport (grpc, libp2p).", ("transport",)
        )
        self.messages_in = c(
            "lanenet_net_messages_received_total",
            "Peer messages received, by message type.",
            ("type",),
        )
        self.messages_out = c(
            "lanenet_net_messages_sent_total", "Peer messages sent, by message type.", ("type",)
        )
        self.messages_rejected = c(
            "lanenet_net_messages_rejected_total",
            "Inbound messages dropped as invalid, by reason.",
            ("reason",),
        )
        self.penalties = c(
            "lanenet_net_penalties_total",
            "Penalties given to peers for invalid messages, by peer.",
            ("peer",),
        )

        # runtime
        self.queue_depth = g(
            "lanenet_runtime_queue_depth", "Items waiting in each bounded queue.", ("queue",)
        )
        self.loop_lag = h(
            "lanenet_runtime_event_loop_lag_seconds",
            "Delay of a scheduled event-loop callback (loop responsiveness).",
            FAST_BUCKETS,
        )

        # rpc
        self.rpc_requests = c(
            "lanenet_rpc_requests_total",
            "Client API calls by api (jsonrpc, grpc), method and outcome (ok, error).",
            ("api", "method", "outcome"),
        )
        self.rpc_duration = h(
            "lanenet_rpc_request_duration_seconds",
            "Time to answer one client API call.",
            FAST_BUCKETS,
            ("api", "method"),
        )
        self.rpc_submitted_txs = c(
            "lanenet_rpc_submitted_txs_total",
            "Transactions submitted through the client APIs, by outcome (accepted, rejected).",
            ("api", "outcome"),
        )


class _Noop:
    """A counter, gauge and histogram that records nothing."""

    __slots__ = ()

    def labels(self, *values: str, **by_name: str) -> Self:
        return self

    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass


NOOP: Final = _Noop()


class NoopMetrics(Metrics):
    """``Metrics`` with the same attributes, recording nothing (its registry stays empty)."""

    def __init__(self) -> None:
        super().__init__(CollectorRegistry(), process_metrics=False)

    def _counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> CounterLike:
        return NOOP

    def _gauge(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> GaugeLike:
        return NOOP

    def _histogram(
        self, name: str, doc: str, buckets: tuple[float, ...], labels: tuple[str, ...] = ()
    ) -> HistogramLike:
        return NOOP


def family_names(metrics: Metrics) -> set[str]:
    """The metric family names ``metrics`` registered (without ``_total``-style suffixes)."""
    return {m.name for m in metrics.registry.collect()}
