"""The protocol observer turns the traffic of a node into the metrics operators plot."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from node.metrics import Metrics
from node.runtime.observe import MAX_TRACKED, ProtocolObserver
from node.types.messages import Ticket
from tests.unit.protocol.helpers import Keys


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


def setup() -> tuple[Keys, Metrics, Clock, ProtocolObserver]:
    keys = Keys()
    metrics = Metrics(CollectorRegistry(), node_id="n0", process_metrics=False)
    clock = Clock()
    return keys, metrics, clock, ProtocolObserver(0, metrics, clock)


def test_own_cars_are_counted_with_their_size_and_poa_latency() -> None:
    keys, metrics, clock, observer = setup()
    car = keys.car(0, 1, txs=(b"a" * 100, b"b" * 50))
    observer.outbound(car)
    observer.outbound(car)  # re-sent while stalled: still one car
    clock.now += 0.25
    observer.outbound(keys.poa(car))
    assert sample(metrics, "lanenet_lanes_cars_sealed_total") == 1
    assert sample(metrics, "lanenet_lanes_car_size_bytes_sum") == 150
    assert sample(metrics, "lanenet_lanes_car_txs_sum") == 2
    assert sample(metrics, "lanenet_lanes_poa_latency_seconds_sum", lane="0") == 0.25
    assert sample(metrics, "lanenet_lanes_poa_latency_seconds_count", lane="0") == 1


def test_poa_latency_of_other_lanes_counts_from_the_first_sighting_once() -> None:
    keys, metrics, clock, observer = setup()
    first = keys.car(2, 1)
    observer.inbound(first)
    clock.now += 0.5
    second = keys.car(2, 2, parent=first.digest, parent_poa=keys.poa(first))
    observer.inbound(second)  # carries the first car's PoA
    observer.inbound(keys.poa(first))  # the same PoA again: not a second sample
    assert sample(metrics, "lanenet_lanes_poa_latency_seconds_count", lane="2") == 1
    assert sample(metrics, "lanenet_lanes_poa_latency_seconds_sum", lane="2") == 0.5
    assert sample(metrics, "lanenet_lanes_cars_sealed_total") == 0  # not our lane


def test_commit_latency_runs_from_the_first_proposal_of_the_slot() -> None:
    keys, metrics, clock, observer = setup()
    cut = keys.cut(keys.tip(keys.car(1, 1)))
    observer.inbound(keys.prepare(7, 0, cut))
    clock.now += 0.04
    observer.committed(7)
    observer.committed(7)  # a second report of the same slot adds nothing
    assert sample(metrics, "lanenet_consensus_commit_latency_seconds_count") == 1
    assert abs(sample(metrics, "lanenet_consensus_commit_latency_seconds_sum") - 0.04) < 1e-9


def test_view_changes_count_distinct_certificates_and_timeouts_only_our_own() -> None:
    keys, metrics, _clock, observer = setup()
    cut = keys.cut(keys.tip(keys.car(1, 1)))
    tc = keys.tc(3, 0)
    observer.inbound(keys.prepare(3, 1, cut, Ticket(tc=tc)))
    observer.outbound(keys.prepare(3, 1, cut, Ticket(tc=tc)))
    observer.inbound(keys.timeout(3, 0, voter=2))
    observer.outbound(keys.timeout(3, 0, voter=0))
    assert sample(metrics, "lanenet_consensus_view_changes_total") == 1
    assert sample(metrics, "lanenet_consensus_timeouts_total") == 1


def test_uncertified_cars_do_not_accumulate() -> None:
    keys, _metrics, _clock, observer = setup()
    for pos in range(1, MAX_TRACKED + 500):
        observer.inbound(keys.car(1, pos))
    assert len(observer.car_seen) == MAX_TRACKED
