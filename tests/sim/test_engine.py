"""The simulator's engine: virtual clock, seeded network, timers, crashes and restarts."""

from __future__ import annotations

import random

from node.protocol.effects import Broadcast, CancelTimer, Effect, Persist, Send, SetTimer
from node.protocol.events import Event, MessageReceived, Start, Timer, TimerFired
from node.sim.clock import VirtualClock, ms
from node.sim.harness import Simulation
from node.sim.network import LinkModel, LossWindow, Network, Partition
from node.sim.scenarios import Crash, Scenario
from node.types.messages import CommitSyncRequest, Message
from tests.sim.fakes import ScriptedReplica, scripted

PING: Message = CommitSyncRequest(1)
TICK = Timer("tick")


def test_clock_orders_by_time_then_scheduling_order() -> None:
    """Events pop in time order, ties in the order they were scheduled, and time advances."""
    clock = VirtualClock()
    clock.schedule(20, 1, "late")
    clock.schedule(10, 1, "first")
    clock.schedule(10, 1, "second")
    popped = []
    while clock:
        _, payload = clock.pop()
        popped.append((clock.now, payload[0]))
    assert popped == [(10, "first"), (10, "second"), (20, "late")]


def test_clock_never_schedules_in_the_past() -> None:
    """An event scheduled before now runs at now."""
    clock = VirtualClock()
    clock.schedule(50, 1)
    clock.pop()
    clock.schedule(10, 1, "x")
    assert clock.peek_time() == 50


def _network(seed: int, **kwargs: object) -> Network:
    model = kwargs.pop("model", LinkModel())
    assert isinstance(model, LinkModel)
    return Network(4, model, random.Random(seed), **kwargs)  # type: ignore[arg-type]


def test_network_delays_are_a_function_of_the_seed() -> None:
    """Two networks with one seed give identical delivery times; another seed differs."""

    def times(seed: int) -> list[list[int]]:
        net = _network(seed)
        return [net.route(t * 1000, t % 4, (t + 1) % 4, PING) for t in range(200)]

    assert times(1) == times(1)
    assert times(1) != times(2)


def test_network_latency_stays_within_the_model() -> None:
    """Every delay is at least the link's base and the mean is near the stated mean delay."""
    net = _network(3, model=LinkModel(base_min_ms=2, base_max_ms=10, jitter_mean_ms=2))
    delays = [net.route(0, 0, 1 + i % 3, PING)[0] for i in range(3000)]
    assert min(delays) >= ms(2)
    mean = sum(delays) / len(delays)
    assert ms(2) < mean < ms(14)


def test_partition_with_hold_delays_messages_until_heal() -> None:
    """Across a holding partition a message arrives only after the partition ends."""
    part = Partition(0, ms(500), (frozenset({0, 1}), frozenset({2, 3})), hold=True)
    net = _network(1, partitions=(part,))
    assert net.route(ms(10), 0, 2, PING)[0] >= ms(500)
    assert net.route(ms(10), 0, 1, PING)[0] < ms(500)
    assert net.route(ms(600), 0, 2, PING)[0] < ms(700)


def test_partition_without_hold_drops_messages() -> None:
    """Across a dropping partition messages are lost; inside a group they pass."""
    part = Partition(0, ms(500), (frozenset({0}), frozenset({1, 2, 3})), hold=False)
    net = _network(1, partitions=(part,))
    assert net.route(ms(10), 0, 2, PING) == []
    assert net.route(ms(10), 1, 2, PING) != []
    assert net.stats.cut == 1


def test_loss_window_drops_about_its_share_and_only_inside_the_window() -> None:
    """A 30 % loss window loses roughly 30 % of messages inside it and none outside."""
    net = _network(5, loss_windows=(LossWindow(0, ms(1000), 0.3),))
    lost = sum(1 for i in range(2000) if not net.route(ms(1) + i, 0, 1, PING))
    assert 450 < lost < 750
    assert all(net.route(ms(2000), 0, 1, PING) for _ in range(200))


def test_duplication_delivers_twice() -> None:
    """With duplication on, some messages get two delivery times."""
    net = _network(2, model=LinkModel(duplicate=0.5))
    counts = [len(net.route(0, 0, 1, PING)) for _ in range(400)]
    assert 1 in counts
    assert 2 in counts


def test_filter_drops_selected_messages() -> None:
    """A delivery filter can silence one sender."""
    net = _network(2)
    net.filters.append(lambda src, dst, msg, now: src != 3)
    assert net.route(0, 3, 1, PING) == []
    assert net.route(0, 2, 1, PING) != []


# ---------------------------------------------------------------- harness mechanics


def _scenario(n: int = 2, crashes: tuple[Crash, ...] = (), duration_ms: int = 1000) -> Scenario:
    return Scenario("test", n, seed=1, heal=0, crashes=crashes, duration_override=ms(duration_ms))


def _fired(replica: ScriptedReplica) -> list[tuple[int, Timer]]:
    return [(e.now, e.timer) for e in replica.events if isinstance(e, TimerFired)]


def test_rearming_a_timer_replaces_it_and_cancel_stops_it() -> None:
    """SetTimer on an armed timer moves it; CancelTimer means it never fires."""
    other = Timer("other")

    def script(r: ScriptedReplica, event: Event) -> list[Effect]:
        if isinstance(event, Start):
            return [SetTimer(TICK, 10), SetTimer(TICK, 30), SetTimer(other, 5), CancelTimer(other)]
        return []

    sim = Simulation(_scenario(), scripted(script))
    sim.run()
    first = ScriptedReplica.instances[0]
    assert _fired(first) == [(30, TICK)]


def test_crash_drops_timers_and_inflight_messages_and_restart_restores_the_store() -> None:
    """A crashed node loses timers and in-flight messages but keeps its persisted records."""

    def script(r: ScriptedReplica, event: Event) -> list[Effect]:
        if isinstance(event, Start) and r.restored is None:
            if r.me == 1:
                return [
                    Persist(("vote", 1), "kept"),
                    Persist(("gone",), "x"),
                    Persist(("gone",), None),
                    SetTimer(TICK, 300),
                ]
            return [SetTimer(TICK, 99)]  # in flight (>= 2 ms) when node 1 crashes
        if isinstance(event, TimerFired) and r.me == 0:
            return [Send(1, PING)]
        return []

    crash = Crash(at=ms(100), restart=ms(400), host=1)
    sim = Simulation(_scenario(crashes=(crash,)), scripted(script))
    sim.run()
    _, first, restarted = ScriptedReplica.instances
    assert first.me == 1
    assert restarted.me == 1
    assert _fired(first) == []
    assert _fired(restarted) == []
    assert not any(isinstance(e, MessageReceived) for e in first.events + restarted.events)
    assert restarted.restored == {("vote", 1): "kept"}
    assert isinstance(restarted.events[0], Start)
    assert restarted.events[0].now == 400


def test_mid_step_crash_keeps_a_persisted_prefix_and_sends_nothing_after_it() -> None:
    """A crash cut inside a step applies effects up to a Persist and none after it."""

    def script(r: ScriptedReplica, event: Event) -> list[Effect]:
        if isinstance(event, Start) and r.me == 1 and r.restored is None:
            return [SetTimer(TICK, 150)]
        if isinstance(event, TimerFired) and r.me == 1:
            return [Persist(("a",), 1), Broadcast(PING), Persist(("b",), 2), Broadcast(PING)]
        return []

    crash = Crash(at=ms(100), restart=ms(500), host=1, mid_step=True)
    sim = Simulation(_scenario(crashes=(crash,)), scripted(script))
    sim.run()
    restarted = ScriptedReplica.instances[-1]
    peer = ScriptedReplica.instances[0]
    received = [e for e in peer.events if isinstance(e, MessageReceived)]
    assert restarted.restored in ({("a",): 1}, {("a",): 1, ("b",): 2})
    assert len(received) == (0 if restarted.restored == {("a",): 1} else 1)


def test_loopback_send_reaches_the_sender() -> None:
    """A replica may Send to itself; the message arrives at once."""

    def script(r: ScriptedReplica, event: Event) -> list[Effect]:
        if isinstance(event, Start):
            return [Send(r.me, PING)]
        return []

    Simulation(_scenario(n=1, duration_ms=10), scripted(script)).run()
    only = ScriptedReplica.instances[0]
    assert next(e for e in only.events if isinstance(e, MessageReceived)).now == 0


def test_replica_exception_becomes_a_violation_and_stops_the_run() -> None:
    """A replica that raises is a finding: recorded as a violation, and the run ends."""

    def script(r: ScriptedReplica, event: Event) -> list[Effect]:
        if isinstance(event, TimerFired):
            raise KeyError("boom")
        return [SetTimer(TICK, 10)] if isinstance(event, Start) else []

    result = Simulation(_scenario(), scripted(script)).run()
    assert [v.kind for v in result.violations] == ["replica-exception"]
    assert "KeyError" in result.violations[0].detail


def test_restart_with_redelivery_hands_back_what_the_node_got_before() -> None:
    """A crash with ``redeliver`` gives the restarted replica its earlier messages again."""

    def script(r: ScriptedReplica, event: Event) -> list[Effect]:
        if isinstance(event, Start) and r.me == 0 and r.restored is None:
            return [SetTimer(TICK, 10)]
        if isinstance(event, TimerFired) and r.me == 0:
            return [Send(1, PING)]
        return []

    crash = Crash(at=ms(100), restart=ms(200), host=1, redeliver=True)
    sim = Simulation(_scenario(crashes=(crash,)), scripted(script))
    sim.run()
    restarted = ScriptedReplica.instances[-1]
    again = [e for e in restarted.events if isinstance(e, MessageReceived)]
    assert [(e.sender, e.message) for e in again] == [(0, PING)]
    assert again[0].now >= 200
    assert sim.counters["redelivered"] == 1
