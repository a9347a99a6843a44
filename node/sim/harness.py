"""The simulation harness: replicas, the effect driver, crashes and restarts, Byzantine hosts.

One ``Simulation`` runs one scenario to its end and returns a ``RunResult``. Each validator
index is a *host* running one *instance* (a machine with its own persisted store and ledger);
Byzantine twins are a host with two instances, each talking to its own half of the peers.
A crash drops the instance's replica, its timers and every message in flight to it; a restart
builds a fresh replica, hands it the persisted records, then starts it.
"""

from __future__ import annotations

import hashlib
import random
import traceback
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from node.crypto.signing import KeyedHashSigner, KeyedHashVerifier, Signer
from node.protocol.effects import (
    Broadcast,
    CancelTimer,
    Committed,
    Deliver,
    Effect,
    Halt,
    Ignore,
    Persist,
    Reject,
    Send,
    SetTimer,
)
from node.protocol.events import (
    Event,
    Executed,
    MessageReceived,
    Start,
    Timer,
    TimerFired,
    TxsSubmitted,
)
from node.sim.byzantine import make_behaviour, split_peers
from node.sim.clients import Clients
from node.sim.clock import US_PER_MS, VirtualClock
from node.sim.hosts import (
    GENESIS_COMMITMENT,
    Host,
    Instance,
    ReplicaFactory,
    make_keys,
    next_commitment,
    real_replica,
)
from node.sim.invariants import CommitRecord, Monitor, PoaBook, Violation
from node.sim.network import Network
from node.sim.scenarios import Crash, Scenario
from node.types.messages import Block, Message

MAX_EVENTS = 3_000_000
MID_STEP_PATIENCE = 200 * US_PER_MS
PROBE_EVERY = 25 * US_PER_MS
SETTLE_AFTER_RECOVERY = 400 * US_PER_MS  # leaves time to observe hangover
INBOX_SIZE = 256
REDELIVERY_SPACING = 20  # clock ticks between re-delivered messages
EXECUTION_DELAY = US_PER_MS  # from a block's delivery to its execution result

_DELIVER, _TIMER, _ACTION = 1, 2, 3


@dataclass(slots=True)
class RunResult:
    """What one run produced: violations, the evidence for metrics, and fingerprints."""

    scenario: Scenario
    violations: list[Violation]
    monitor: Monitor
    ledgers: dict[int, list[Block]]
    honest: tuple[int, ...]
    mean_delay: float
    end: int
    events: int
    counters: Counter[str]
    submitted: dict[bytes, tuple[int, int]]
    crashed: frozenset[int]
    recovered_at: int | None
    """When liveness and inclusion after heal were first seen to hold (early stop), if so."""
    halted: frozenset[int] = frozenset()
    """Hosts whose replica halted on a diverged state commitment."""

    def ledger_fingerprint(self) -> str:
        """One digest over every honest ledger: equal for two runs of one seed."""
        h = hashlib.blake2b(digest_size=16)
        for node in sorted(self.ledgers):
            h.update(b"node%d" % node)
            for block in self.ledgers[node]:
                h.update(block.digest)
        return h.hexdigest()


class _Context:
    """What Byzantine behaviours of one host may touch (see ``byzantine.ByzContext``)."""

    def __init__(self, sim: Simulation, host: Host, signer: Signer, rng: random.Random):
        self.sim = sim
        self.index = host.index
        self.committee = sim.committee
        self.signer = signer
        self.rng = rng

    @property
    def now(self) -> int:
        return self.sim.clock.now

    def inject(self, to: int, message: Message) -> None:
        self.sim.inject(self.index, to, message)

    def every(self, period: int, action: Callable[[], None]) -> None:
        def tick() -> None:
            action()
            self.sim.clock.schedule_in(period, _ACTION, tick)

        self.sim.clock.schedule_in(period, _ACTION, tick)


class Simulation:
    """One seeded run of ``scenario`` with replicas made by ``factory``."""

    def __init__(self, scenario: Scenario, factory: ReplicaFactory = real_replica) -> None:
        self.scenario = scenario
        self.factory = factory
        n, seed = scenario.validators, scenario.seed
        self.committee, self.secrets = make_keys(n, seed)
        self.verifier = KeyedHashVerifier(self.secrets)
        self.clock = VirtualClock()
        self.network = Network(
            n,
            scenario.link,
            random.Random(f"network/{seed}"),
            scenario.partitions,
            scenario.loss_windows,
        )
        self.clients = Clients(n, scenario.load, random.Random(f"clients/{seed}"))
        self.rng = random.Random(f"harness/{seed}")
        self.monitor = Monitor(PoaBook(self.committee, self.verifier))
        self.violations: list[Violation] = []
        self.counters: Counter[str] = Counter()
        self.submitted: dict[bytes, tuple[int, int]] = {}
        self.crashed_hosts: set[int] = set()
        self.halted = False
        self.events = 0
        self.stop_at = scenario.duration
        self.recovered_at: int | None = None
        self.ordered_txs: set[bytes] = set()
        self._ordered_height = 0
        self._awaited: set[bytes] | None = None
        self._timer_tokens = 0
        self.hosts = [self._make_host(i) for i in range(n)]
        self.contexts = {
            h.index: _Context(
                self,
                h,
                KeyedHashSigner(self.secrets[h.index]),
                random.Random(f"byzantine/{seed}/{h.index}"),
            )
            for h in self.hosts
            if h.behaviours
        }
        self._others = [tuple(j for j in range(n) if j != i) for i in range(n)]

    def _make_host(self, index: int) -> Host:
        kinds = dict(self.scenario.byzantine).get(index, ())
        size = self.scenario.validators
        rng = random.Random(f"byzantine-setup/{self.scenario.seed}/{index}")
        if "twins" in kinds:
            half = split_peers(index, size, rng)
            rest = frozenset(range(size)) - half - {index}
            instances = [Instance(index, 0, half), Instance(index, 1, rest)]
        else:
            instances = [Instance(index, 0, None)]
            if any(c.redeliver for c in self.scenario.crashes):
                instances[0].inbox = deque(maxlen=INBOX_SIZE)
        if "corrupt-state" in kinds:
            for inst in instances:
                inst.corrupt_from = self.scenario.corrupt_from
        harness_kinds = ("twins", "corrupt-state")
        behaviours = [make_behaviour(k, index, size, rng) for k in kinds if k not in harness_kinds]
        return Host(index, not kinds, instances, behaviours)

    # ------------------------------------------------------------ running

    def run(self) -> RunResult:
        for host in self.hosts:
            for inst in host.instances:
                self._boot(inst, restore=False)
            ctx = self.contexts.get(host.index)
            for behaviour in host.behaviours:
                if ctx is not None:
                    behaviour.on_start(ctx)
        self.clock.schedule(self.clients.next_gap(), _ACTION, self._submit)
        for crash in self.scenario.crashes:
            self._schedule_crash(crash)
        if not self.scenario.duration_override:
            self.clock.schedule(self.scenario.heal, _ACTION, self._probe_recovery)
        self._loop()
        return self._result()

    def _loop(self) -> None:
        clock = self.clock
        while clock and not self.halted:
            at = clock.peek_time()
            if at is None or at > self.stop_at:
                break
            kind, payload = clock.pop()
            self.events += 1
            if self.events > MAX_EVENTS:
                self._violate(
                    "runaway", f"more than {MAX_EVENTS} events by {clock.now // US_PER_MS} ms"
                )
                break
            if kind == _DELIVER:
                self._on_deliver(*payload)
            elif kind == _TIMER:
                self._on_timer(*payload)
            else:
                payload[0]()
        self.clock.now = max(self.clock.now, self.stop_at)

    def _result(self) -> RunResult:
        honest = tuple(h.index for h in self.hosts if h.honest)
        ledgers = {i: self.hosts[i].instances[0].ledger for i in honest}
        return RunResult(
            self.scenario,
            self.violations + self.monitor.votes.violations,
            self.monitor,
            ledgers,
            honest,
            self.network.mean_delay,
            self.clock.now,
            self.events,
            self.counters,
            self.submitted,
            frozenset(self.crashed_hosts),
            self.recovered_at,
            frozenset(h.index for h in self.hosts if any(i.halted for i in h.instances)),
        )

    def _violate(self, kind: str, detail: str) -> None:
        self.violations.append(Violation(kind, detail))

    def _probe_recovery(self) -> None:
        """End the run early once the post-heal checks can only pass: every honest node that
        is up committed since heal, and every transaction given before heal to an honest,
        never-crashed lane is ordered. The scenario's duration stays the hard limit."""
        heal = self.scenario.heal
        if self._awaited is None:
            self._awaited = {
                tx
                for tx, (lane, at) in self.submitted.items()
                if at <= heal and lane not in self.crashed_hosts
            }
        self._awaited -= self.ordered_txs
        self.ordered_txs.clear()
        committed = all(
            self.monitor.last_commit.get(h.index, -1) >= heal
            for h in self.hosts
            if h.honest and h.instances[0].replica is not None
        )
        if committed and not self._awaited:
            self.recovered_at = self.clock.now
            self.stop_at = min(self.stop_at, self.clock.now + SETTLE_AFTER_RECOVERY)
        else:
            self.clock.schedule_in(PROBE_EVERY, _ACTION, self._probe_recovery)

    # ------------------------------------------------------------ replicas

    def _boot(self, inst: Instance, restore: bool) -> None:
        signer = KeyedHashSigner(self.secrets[inst.host])
        replica = self.factory(
            self.committee, inst.host, signer, self.verifier, self.scenario.config
        )
        inst.replica = replica
        if restore:
            try:
                replica.restore(dict(inst.store))
            except Exception as exc:  # noqa: BLE001 - any replica exception is a finding
                self._on_exception(inst, exc)
                return
        self._step(inst, Start(self.clock.now_ms))
        if restore:
            # the runtime reports its latest executed checkpoint again (votes are not persisted)
            interval = self.scenario.config.exec_cert_interval
            height = len(inst.commitments) // interval * interval
            if height > 0:
                commitment = inst.reported_commitment(height)
                self._step(inst, Executed(self.clock.now_ms, height, commitment))

    def _on_exception(self, inst: Instance, exc: Exception) -> None:
        """A replica that raises has a bug (it must answer bad input with Ignore/Reject):
        record it with where it happened, and end the run."""
        where = traceback.extract_tb(exc.__traceback__)[-1]
        self._violate(
            "replica-exception",
            f"node {inst.host}: {type(exc).__name__}: {exc} at {where.filename}:{where.lineno}",
        )
        self.halted = True

    def _step(self, inst: Instance, event: Event) -> None:
        replica = inst.replica
        if replica is None:
            return
        try:
            effects = replica.step(event)
        except Exception as exc:  # noqa: BLE001 - any replica exception is a finding
            self._on_exception(inst, exc)
            return
        if inst.crash_pending is not None:
            cut = self._mid_step_cut(inst, effects)
            if cut is not None:
                for effect in effects[:cut]:
                    self._apply(inst, effect)
                self._crash(inst)
                return
        for effect in effects:
            self._apply(inst, effect)

    def _mid_step_cut(self, inst: Instance, effects: list[Effect]) -> int | None:
        """Where to cut a step when a mid-step crash is due: just after a random Persist."""
        writes = [i for i, e in enumerate(effects) if isinstance(e, Persist)]
        if writes:
            return self.rng.choice(writes) + 1
        deadline = inst.crash_pending
        if deadline is not None and self.clock.now >= deadline:
            return 0
        return None

    def _apply(self, inst: Instance, effect: Effect) -> None:
        match effect:
            case Send(to=to, message=message):
                self._send(inst, (to,), message)
            case Broadcast(message=message):
                self._send(inst, self._others[inst.host], message)
            case SetTimer(timer=timer, delay_ms=delay):
                self._timer_tokens += 1
                inst.timers[timer] = self._timer_tokens
                self.clock.schedule_in(
                    delay * US_PER_MS, _TIMER, inst, inst.incarnation, timer, self._timer_tokens
                )
            case CancelTimer(timer=timer):
                inst.timers.pop(timer, None)
            case Persist(key=key, value=value):
                if value is None:
                    inst.store.pop(key, None)
                else:
                    inst.store[key] = value
            case Deliver(block=block):
                self._on_block(inst, block)
            case Committed():
                self._on_committed(inst, effect)
            case Ignore(reason=reason):
                self.counters["ignore"] += 1
                self.counters["ignore:" + reason] += 1
            case Reject():
                self._on_reject(inst, effect)
            case Halt(reason=reason):
                self._on_halt(inst, reason)

    def _on_halt(self, inst: Instance, reason: str) -> None:
        """The replica found its own state diverged: the machine stops for good."""
        self.counters["halts"] += 1
        host = self.hosts[inst.host]
        self.monitor.execution.on_halt(host.index, host.honest, reason)
        inst.halted = True
        self._crash(inst)

    def _on_reject(self, inst: Instance, effect: Reject) -> None:
        self.counters["reject"] += 1
        self.counters["reject:" + effect.reason] += 1
        if self.hosts[effect.peer].honest and self.hosts[inst.host].honest:
            self.counters["reject-honest:" + effect.reason.split(":")[0][:60]] += 1

    def _on_block(self, inst: Instance, block: Block) -> None:
        ledger = inst.ledger
        honest = self.hosts[inst.host].honest
        if block.height <= len(ledger):
            if honest and ledger[block.height - 1].digest != block.digest:
                self._violate(
                    "redelivery",
                    f"node {inst.host} re-delivered a different block at height {block.height}",
                )
            return
        if block.height != len(ledger) + 1:
            if honest and not inst.gapped:
                inst.gapped = True
                self._violate(
                    "height-gap",
                    f"node {inst.host} delivered height {block.height} after {len(ledger)}",
                )
            return
        ledger.append(block)
        previous = inst.commitments[-1] if inst.commitments else GENESIS_COMMITMENT
        inst.commitments.append(next_commitment(previous, block))
        if honest:
            self.monitor.execution.on_commitment(block.height, inst.commitments[-1])
        self._schedule_execution(inst, block.height)
        if honest and block.height > self._ordered_height:
            self._ordered_height = block.height
            for car in block.cars:
                self.ordered_txs.update(car.txs)

    def _schedule_execution(self, inst: Instance, height: int) -> None:
        """Report the block's execution result to the replica a moment later, as a runtime
        does after executing and saving it (unless the machine crashed meanwhile)."""
        incarnation = inst.incarnation

        def report() -> None:
            if inst.incarnation == incarnation and inst.replica is not None:
                commitment = inst.reported_commitment(height)
                self._step(inst, Executed(self.clock.now_ms, height, commitment))

        self.clock.schedule_in(EXECUTION_DELAY, _ACTION, report)

    def _on_committed(self, inst: Instance, effect: Committed) -> None:
        if not self.hosts[inst.host].honest:
            return
        self.counters["committed"] += 1
        record = CommitRecord(
            effect.slot, effect.view, effect.cut.digest, effect.fast, self.clock.now
        )
        self.monitor.on_commit(inst.host, record)

    # ------------------------------------------------------------ network

    def _send(self, inst: Instance, targets: Sequence[int], message: Message) -> None:
        host = self.hosts[inst.host]
        pairs = [(to, message) for to in targets if to == inst.host or inst.hears(to)]
        ctx = self.contexts.get(host.index)
        if ctx is not None:
            for behaviour in host.behaviours:
                pairs = [out for to, m in pairs for out in behaviour.on_send(ctx, to, m)]
        observed: set[int] = set()
        for to, msg in pairs:
            if id(msg) not in observed:
                observed.add(id(msg))
                self.monitor.on_send(host.index, host.honest, msg, self.clock.now)
            if to == inst.host:
                self.clock.schedule(
                    self.clock.now, _DELIVER, inst, inst.incarnation, inst.host, msg
                )
            else:
                self._transmit(inst.host, to, msg)

    def inject(self, src: int, to: int, message: Message) -> None:
        """A Byzantine host sends ``message`` outside its replica (replays, forgeries)."""
        self.monitor.on_send(src, False, message, self.clock.now)
        self._transmit(src, to, message)

    def _transmit(self, src: int, to: int, message: Message) -> None:
        times = self.network.route(self.clock.now, src, to, message)
        if not times:
            return
        for target in self.hosts[to].instances:
            if target.hears(src):
                for at in times:
                    self.clock.schedule(at, _DELIVER, target, target.incarnation, src, message)

    def _on_deliver(self, inst: Instance, incarnation: int, src: int, message: Message) -> None:
        if inst.replica is None or inst.incarnation != incarnation:
            self.counters["dropped-at-crashed"] += 1
            return
        host = self.hosts[inst.host]
        ctx = self.contexts.get(host.index)
        if ctx is not None:
            for behaviour in host.behaviours:
                behaviour.on_receive(ctx, src, message)
        if inst.inbox is not None:
            inst.inbox.append((src, message))
        self._step(inst, MessageReceived(self.clock.now_ms, src, message))

    def _on_timer(self, inst: Instance, incarnation: int, timer: Timer, token: int) -> None:
        if inst.incarnation != incarnation or inst.timers.get(timer) != token:
            return
        del inst.timers[timer]
        self._step(inst, TimerFired(self.clock.now_ms, timer))

    # ------------------------------------------------------------ clients and faults

    def _submit(self) -> None:
        for host in self.hosts:
            live = [inst for inst in host.instances if inst.replica is not None]
            if not live:
                continue
            for inst in live:
                # twins get different clients (and so fork their lane), like two machines
                # behind one key would
                txs = self.clients.make_batch(host.index)
                if host.honest:
                    for tx in txs:
                        self.submitted[tx] = (host.index, self.clock.now)
                self._step(inst, TxsSubmitted(self.clock.now_ms, txs))
        self.clock.schedule_in(self.clients.next_gap(), _ACTION, self._submit)

    def _schedule_crash(self, crash: Crash) -> None:
        state: dict[str, Instance] = {}

        def go_down() -> None:
            host = crash.host
            if host is None:
                host = self._next_honest_leader()
            inst = self.hosts[host].instances[0]
            if inst.replica is None:
                return
            self.crashed_hosts.add(host)
            state["inst"] = inst
            if crash.mid_step:
                inst.crash_pending = self.clock.now + MID_STEP_PATIENCE
            else:
                self._crash(inst)

        def come_back() -> None:
            inst = state.get("inst")
            if inst is None:
                return
            if inst.replica is not None:  # a mid-step crash still waiting: crash now
                self._crash(inst)
            self._boot(inst, restore=True)
            if crash.redeliver:
                self._redeliver(inst)

        self.clock.schedule(crash.at, _ACTION, go_down)
        if crash.restart is not None:
            self.clock.schedule(crash.restart, _ACTION, come_back)

    def _redeliver(self, inst: Instance) -> None:
        """Hand a restarted node, shuffled and spread over a few ms, what it got before."""
        if not inst.inbox:
            return
        old = list(inst.inbox)
        self.rng.shuffle(old)
        for i, (src, message) in enumerate(old):
            at = self.clock.now + REDELIVERY_SPACING * (i + 1)
            self.clock.schedule(at, _DELIVER, inst, inst.incarnation, src, message)
        self.counters["redelivered"] += len(old)

    def _next_honest_leader(self) -> int:
        slot = self.monitor.max_slot_prepared + 1
        for offset in range(self.scenario.validators):
            leader = self.committee.leader(slot + offset, 0)
            if self.hosts[leader].honest:
                return leader
        return 0

    def _crash(self, inst: Instance) -> None:
        inst.replica = None
        inst.timers.clear()
        inst.incarnation += 1
        inst.crash_pending = None
        inst.crashes += 1
        self.counters["crashes"] += 1


def run_scenario(scenario: Scenario, factory: ReplicaFactory = real_replica) -> RunResult:
    """Run one scenario to its end and check every invariant."""
    from node.sim.checks import check_run

    sim = Simulation(scenario, factory)
    result = sim.run()
    result.violations.extend(check_run(result, sim))
    return result
