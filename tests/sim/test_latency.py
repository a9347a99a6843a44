"""Scenario tests with numbers: commit latency in message delays, hangover after a leader
crash, and the backlog after a 2+2 partition (shared/reference/autobahn.md §b.7, §c.10)."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Mapping
from typing import ClassVar

import pytest

from node.crypto.signing import Signer, Verifier
from node.protocol.config import ProtocolConfig
from node.protocol.effects import Deliver, Effect, PersistKey
from node.protocol.events import Event
from node.protocol.replica import Replica
from node.sim.clock import ms
from node.sim.harness import run_scenario
from node.sim.metrics import compute_metrics
from node.sim.network import LinkModel, Partition
from node.sim.scenarios import SIM_CONFIG, Crash, Scenario, leader_crash
from node.types.committee import Committee
from node.types.messages import Block

DELAY_MS = 10.0
CONSTANT = LinkModel(base_min_ms=DELAY_MS, base_max_ms=DELAY_MS, jitter_mean_ms=0.0)


def fixed_delay(name: str, config: ProtocolConfig, **fields: object) -> Scenario:
    base = Scenario(name, 4, 1, heal=ms(1500), config=config, link=CONSTANT)
    return dataclasses.replace(base, **fields).with_duration(ms(2500))  # type: ignore[arg-type]


def test_fault_free_fast_path_commits_three_message_delays_after_the_prepare() -> None:
    """With every link at one fixed delay and no faults, every slot commits on the fast path
    and the median replica commits exactly 3 message delays after the leader's Prepare."""
    result = run_scenario(fixed_delay("fixed-fast", SIM_CONFIG))
    assert not result.violations
    metrics = compute_metrics(result)
    assert metrics.commits >= 20
    assert metrics.slow == 0
    assert statistics.median(metrics.latencies_md) == pytest.approx(3.0)


def test_slow_path_commits_five_message_delays_after_the_prepare() -> None:
    """With one validator down (no fast path possible) and no fast-path wait, honest-led
    slots commit through Confirm: 5 message delays after the Prepare at the median replica."""
    config = dataclasses.replace(SIM_CONFIG, fast_path_timeout_ms=0)
    down = Crash(at=ms(1), restart=None, host=3)
    result = run_scenario(fixed_delay("fixed-slow", config, crashes=(down,)))
    assert not result.violations
    metrics = compute_metrics(result)
    assert metrics.commits >= 10
    assert metrics.fast == 0
    assert statistics.median(metrics.latencies_md) == pytest.approx(5.0)


@pytest.mark.parametrize("seed", range(6))
def test_no_hangover_after_a_one_view_leader_crash(seed: int) -> None:
    """After the leader of the next slot crashes for about one view and restarts, per-slot
    latency is back at the fault-free baseline within one view timeout of its recovery."""
    for n in (4, 7):
        result = run_scenario(leader_crash(n, seed))
        assert not result.violations, result.violations[:3]
        hangover = compute_metrics(result).hangover_ms
        assert hangover is not None
        assert hangover <= result.scenario.config.view_timeout_ms, (n, seed, hangover)


class Recorder:
    """The real replica, recording the time of each block it delivers and, per step, the
    highest certified position it knows in every lane."""

    blocks: ClassVar[dict[int, list[tuple[int, Block]]]] = {}
    certified: ClassVar[dict[int, list[tuple[int, tuple[int, ...]]]]] = {}

    def __init__(self, replica: Replica) -> None:
        self.replica = replica

    def restore(self, records: Mapping[PersistKey, object]) -> None:
        self.replica.restore(records)

    def step(self, event: Event) -> list[Effect]:
        effects = self.replica.step(event)
        me = self.replica.me
        for e in effects:
            if isinstance(e, Deliver):
                Recorder.blocks.setdefault(me, []).append((event.now, e.block))
        lanes = self.replica.lanes
        tips = tuple(lanes.certified_pos(lane) for lane in range(lanes.committee.size))
        Recorder.certified.setdefault(me, []).append((event.now, tips))
        return effects


def recorder(
    committee: Committee, me: int, signer: Signer, verifier: Verifier, config: ProtocolConfig
) -> Recorder:
    return Recorder(Replica(committee, me, signer, verifier, config))


@pytest.mark.parametrize("seed", range(3))
def test_backlog_of_a_two_two_partition_is_committed_at_once_after_it_heals(seed: int) -> None:
    """During a 2+2 partition no slot can commit but both halves keep certifying cars; once
    it heals, every car certified anywhere before the heal is ordered within one view
    timeout, by the k slots stuck in the partition plus at most one fresh slot: the cost
    does not grow with the backlog."""
    Recorder.blocks, Recorder.certified = {}, {}
    start, heal = ms(600), ms(2600)
    halves = (frozenset({0, 1}), frozenset({2, 3}))
    scenario = dataclasses.replace(
        Scenario("partition-2-2", 4, seed, heal=heal, config=SIM_CONFIG),
        partitions=(Partition(start, heal, halves, hold=True),),
        fault_windows=((start, heal),),
    ).with_duration(heal + ms(1500))
    result = run_scenario(scenario, recorder)
    assert not result.violations
    start_ms, heal_ms = start // 1000, heal // 1000
    backlog = [
        max(
            tips[lane]
            for node in range(4)
            for now, tips in Recorder.certified[node]
            if now < heal_ms
        )
        for lane in range(4)
    ]
    assert sum(backlog) > 4 * 8 + 40, "the halves kept certifying cars during the partition"
    blocks = Recorder.blocks[0]
    assert not [b for t, b in blocks if start_ms + 50 <= t < heal_ms], "committed across 2+2"
    ordered = [0, 0, 0, 0]
    done_at, slots_after_heal = None, 0
    for t, block in blocks:
        if t >= heal_ms:
            slots_after_heal += 1
        for car in block.cars:
            ordered[car.lane] = max(ordered[car.lane], car.pos)
        if all(o >= b for o, b in zip(ordered, backlog, strict=True)):
            done_at = t
            break
    assert done_at is not None, (ordered, backlog)
    assert done_at - heal_ms <= SIM_CONFIG.view_timeout_ms, done_at - heal_ms
    assert slots_after_heal <= SIM_CONFIG.parallel_slots + 1
