"""Named scenarios: each one a deterministic function of (validators, seed).

* ``happy``: no faults; jittery latencies only.
* ``lossy``: 1-5 % message loss, 1-5 % duplication, heavy jitter (reordering) for the whole run.
* ``partition``: two windows, each splitting the network in halves or isolating one node,
  half of them longer than a lane window of cars; messages across the cut are held until
  heal (reliable channels), or, for every third seed, dropped (a broken stream).
* ``crash``: f honest nodes crash (some right after persisting and before sending) and
  restart from their persisted state (some then receive again what they got before).
* ``leader-crash``: twice, the leader of the next slot crashes and restarts a view later.
* ``byzantine``: f Byzantine nodes, each with one or two behaviours (equivocating leader,
  forked lane, vote withholding, invalid signatures, replay of old messages, Confirm/Commit
  sent to only some peers, Timeouts with stale or hidden locks).
* ``twins``: f validators each run as two instances sharing one key, each instance talking
  to its own half of the peers.
* ``mixed``: f Byzantine nodes of mixed kinds (twins included) plus partitions, loss
  windows and a crash-restart of an honest node.
* ``corrupt-state``: one validator's execution reports corrupted state commitments from a
  random height on; it must halt while the others keep committing and certifying.

Every scenario keeps a fault-free warm-up (the latency baseline for hangover), heals every
fault but the Byzantine ones at ``heal``, and runs at least ``liveness_bound`` past it.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from node.protocol.config import ProtocolConfig
from node.sim.byzantine import KINDS
from node.sim.clients import ClientLoad
from node.sim.clock import ms
from node.sim.network import LinkModel, LossWindow, Partition

SIM_CONFIG = ProtocolConfig(
    car_interval_ms=100,
    lane_window=4,
    view_timeout_ms=150,
    max_view_timeout_ms=450,
    fast_path_timeout_ms=20,
    parallel_slots=4,
    sync_retry_ms=100,
)


def sim_config(n: int) -> ProtocolConfig:
    """SIM_CONFIG with cars sealed less often in larger committees: lane traffic grows as n^2,
    and this keeps a run's cost roughly linear in n."""
    return dataclasses.replace(SIM_CONFIG, car_interval_ms=max(100, 40 * n))


def warmup(n: int) -> int:
    """Fault-free time at the start: long enough for a few slots to set the latency
    baseline (hangover) even when cars are sealed rarely."""
    return WARMUP + ms(sim_config(n).car_interval_ms)


DEFAULT_LINK = LinkModel()
DEFAULT_LOAD = ClientLoad(interval_ms=50.0)
WARMUP = ms(300)
SETTLE = ms(200)


@dataclass(frozen=True, slots=True)
class Crash:
    """Crash ``host`` (None: the leader of the next slot) at ``at``; restart at ``restart``.

    With ``mid_step`` the crash waits for the node's next step that persists something and
    cuts that step's effects right after the write, before any message leaves. With
    ``redeliver`` the restarted node receives again, shuffled, the last messages it got
    before the crash (peers re-sending on reconnect): it must not vote differently.
    """

    at: int
    restart: int | None
    host: int | None = None
    mid_step: bool = False
    redeliver: bool = False


@dataclass(frozen=True, slots=True)
class Scenario:
    """Everything a run needs besides the replica code; times are clock ticks."""

    name: str
    validators: int
    seed: int
    heal: int
    config: ProtocolConfig = SIM_CONFIG
    link: LinkModel = DEFAULT_LINK
    load: ClientLoad = DEFAULT_LOAD
    partitions: tuple[Partition, ...] = ()
    loss_windows: tuple[LossWindow, ...] = ()
    crashes: tuple[Crash, ...] = ()
    byzantine: tuple[tuple[int, tuple[str, ...]], ...] = ()
    fault_windows: tuple[tuple[int, int], ...] = ()
    duration_override: int = 0
    corrupt_from: int = 1
    """Hosts of kind "corrupt-state" report corrupted state commitments from this height on."""

    @property
    def byzantine_hosts(self) -> frozenset[int]:
        return frozenset(host for host, _ in self.byzantine)

    @property
    def liveness_bound(self) -> int:
        """Time to commit after heal: a running (doubled) view timer, one more view, slack."""
        return ms(2 * self.config.max_view_timeout_ms + 400)

    @property
    def duration(self) -> int:
        return self.duration_override or self.heal + self.liveness_bound + SETTLE

    def with_duration(self, duration: int) -> Scenario:
        return dataclasses.replace(self, duration_override=duration)


def max_faulty(n: int) -> int:
    return (n - 1) // 3


def _rng(name: str, n: int, seed: int) -> random.Random:
    return random.Random(f"scenario/{name}/{n}/{seed}")


def _halves(n: int, rng: random.Random) -> tuple[frozenset[int], ...]:
    nodes = list(range(n))
    rng.shuffle(nodes)
    cut = rng.randint(1, n // 2)
    if rng.random() < 0.5:
        cut = 1  # isolate one node
    return (frozenset(nodes[:cut]), frozenset(nodes[cut:]))


def happy(n: int, seed: int) -> Scenario:
    rng = _rng("happy", n, seed)
    link = LinkModel(jitter_mean_ms=rng.choice((1.0, 2.0, 4.0)))
    return Scenario("happy", n, seed, config=sim_config(n), heal=warmup(n) + ms(1000), link=link)


def lossy(n: int, seed: int) -> Scenario:
    rng = _rng("lossy", n, seed)
    link = LinkModel(
        base_min_ms=1.0,
        base_max_ms=12.0,
        jitter_mean_ms=rng.uniform(3.0, 8.0),
        duplicate=rng.uniform(0.01, 0.05),
    )
    heal = warmup(n) + ms(1500)
    loss = LossWindow(warmup(n), heal, rng.uniform(0.01, 0.05))
    return Scenario(
        "lossy",
        n,
        seed,
        config=sim_config(n),
        heal=heal,
        link=link,
        loss_windows=(loss,),
        fault_windows=((warmup(n), heal),),
    )


def _partitions(
    n: int, rng: random.Random, start: int, hold: bool, long_share: float
) -> list[Partition]:
    """Two partition windows; a ``long_share`` of them outlast a full lane window of cars
    (lane_window x car_interval), so a cut-off lane owner fills its window."""
    config = sim_config(n)
    long_ms = (config.lane_window + 4) * config.car_interval_ms
    parts = []
    at = start
    for _ in range(2):
        top = long_ms if rng.random() < long_share else 400
        length = ms(rng.randint(100, top))
        parts.append(Partition(at, at + length, _halves(n, rng), hold=hold))
        at += length + ms(rng.randint(50, 250))
    return parts


def partition(n: int, seed: int) -> Scenario:
    rng = _rng("partition", n, seed)
    parts = _partitions(n, rng, warmup(n), hold=seed % 3 != 2, long_share=0.5)
    heal = max(p.end for p in parts)
    return Scenario(
        "partition",
        n,
        seed,
        config=sim_config(n),
        heal=heal,
        partitions=tuple(parts),
        fault_windows=tuple((p.start, p.end) for p in parts),
    )


def crash(n: int, seed: int) -> Scenario:
    rng = _rng("crash", n, seed)
    victims = rng.sample(range(n), max(1, max_faulty(n)))
    crashes = []
    for host in victims:
        at = warmup(n) + ms(rng.randint(0, 600))
        down = at + ms(rng.randint(100, 800))
        mid_step, redeliver = rng.random() < 0.5, rng.random() < 0.5
        crashes.append(Crash(at, down, host, mid_step=mid_step, redeliver=redeliver))
    return Scenario(
        "crash",
        n,
        seed,
        config=sim_config(n),
        heal=_last_restart(crashes),
        crashes=tuple(crashes),
        fault_windows=_crash_windows(crashes),
    )


def leader_crash(n: int, seed: int) -> Scenario:
    rng = _rng("leader-crash", n, seed)
    crashes = []
    at = warmup(n)
    for _ in range(2):
        at += ms(rng.randint(0, 300))
        down = ms(SIM_CONFIG.view_timeout_ms + rng.randint(0, 300))
        mid_step, redeliver = rng.random() < 0.3, rng.random() < 0.5
        crashes.append(Crash(at, at + down, None, mid_step=mid_step, redeliver=redeliver))
        at += down + ms(200)
    return Scenario(
        "leader-crash",
        n,
        seed,
        config=sim_config(n),
        heal=_last_restart(crashes),
        crashes=tuple(crashes),
        fault_windows=_crash_windows(crashes),
    )


def _byzantine_kinds(
    n: int, rng: random.Random, kinds: tuple[str, ...]
) -> tuple[tuple[int, tuple[str, ...]], ...]:
    hosts = sorted(rng.sample(range(n), max_faulty(n)))
    chosen = []
    for host in hosts:
        picks = rng.sample(kinds, rng.randint(1, 2)) if len(kinds) > 1 else list(kinds)
        if "twins" in picks:
            picks = ["twins"]
        chosen.append((host, tuple(sorted(picks))))
    return tuple(chosen)


def byzantine(n: int, seed: int) -> Scenario:
    rng = _rng("byzantine", n, seed)
    byz = _byzantine_kinds(n, rng, KINDS)
    return Scenario(
        "byzantine", n, seed, config=sim_config(n), heal=warmup(n) + ms(1200), byzantine=byz
    )


def twins(n: int, seed: int) -> Scenario:
    rng = _rng("twins", n, seed)
    byz = _byzantine_kinds(n, rng, ("twins",))
    return Scenario(
        "twins", n, seed, config=sim_config(n), heal=warmup(n) + ms(1200), byzantine=byz
    )


def mixed(n: int, seed: int) -> Scenario:
    rng = _rng("mixed", n, seed)
    byz = _byzantine_kinds(n, rng, (*KINDS, "twins"))
    parts = _partitions(n, rng, warmup(n), hold=rng.random() < 0.8, long_share=0.1)
    parts = parts[: rng.randint(1, 2)]
    heal = max(p.end for p in parts)
    loss = LossWindow(warmup(n), heal, rng.uniform(0.0, 0.03))
    honest = [i for i in range(n) if i not in {h for h, _ in byz}]
    crashes: tuple[Crash, ...] = ()
    if rng.random() < 0.5:
        at = warmup(n) + ms(rng.randint(0, 300))
        restart = at + ms(rng.randint(100, 400))
        victim, mid_step, redeliver = rng.choice(honest), rng.random() < 0.5, rng.random() < 0.5
        crashes = (Crash(at, restart, victim, mid_step=mid_step, redeliver=redeliver),)
        heal = max(heal, restart)
    windows = tuple((p.start, p.end) for p in parts) + _crash_windows(crashes)
    link = LinkModel(jitter_mean_ms=rng.uniform(1.0, 5.0), duplicate=rng.uniform(0.0, 0.02))
    return Scenario(
        "mixed",
        n,
        seed,
        config=sim_config(n),
        heal=heal,
        link=link,
        partitions=tuple(parts),
        loss_windows=(loss,),
        crashes=crashes,
        byzantine=byz,
        fault_windows=windows,
    )


def corrupt_state(n: int, seed: int) -> Scenario:
    """One validator's state is corrupted from a random height on: it must halt once the
    others certify the true commitment, while they keep committing."""
    rng = _rng("corrupt-state", n, seed)
    config = dataclasses.replace(sim_config(n), exec_cert_interval=5)  # several per run
    host = rng.randrange(n)
    return Scenario(
        "corrupt-state",
        n,
        seed,
        config=config,
        heal=warmup(n) + ms(1200),
        link=LinkModel(jitter_mean_ms=rng.uniform(1.0, 4.0)),
        byzantine=((host, ("corrupt-state",)),),
        corrupt_from=rng.randint(1, 2 * config.exec_cert_interval),
    )


def _last_restart(crashes: Sequence[Crash]) -> int:
    return max(c.restart if c.restart is not None else c.at for c in crashes)


def _crash_windows(crashes: Sequence[Crash]) -> tuple[tuple[int, int], ...]:
    return tuple((c.at, c.restart if c.restart is not None else c.at) for c in crashes)


SCENARIOS: dict[str, Callable[[int, int], Scenario]] = {
    "happy": happy,
    "lossy": lossy,
    "partition": partition,
    "crash": crash,
    "leader-crash": leader_crash,
    "byzantine": byzantine,
    "twins": twins,
    "mixed": mixed,
    "corrupt-state": corrupt_state,
}


def build(name: str, validators: int, seed: int) -> Scenario:
    """The scenario ``name`` for ``validators`` nodes and ``seed``."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    if validators < 1:
        raise ValueError("need at least one validator")
    return SCENARIOS[name](validators, seed)
