"""Figures of one run, and their aggregate over many runs.

* ``commits``: distinct slots committed by at least one honest node.
* ``fast`` / ``slow``: honest ``Committed`` effects by path; the fast-path ratio is
  fast / (fast + slow).
* commit latency in message delays (md): for each honest node and each slot it committed,
  (time the node committed - time the first Prepare of that slot was emitted, by any leader,
  in any view) / the network's mean one-way delay. Its median is ``p50_commit_md``; the
  fault-free fast path is about 3 md (Prepare, votes, Commit).
* hangover (milliseconds), after each fault heals at time H (faults closer than the baseline
  latency are merged): let P(s) be the first Prepare time of slot s, L(s) the median over
  honest nodes of (commit time - P(s)) (infinite if no honest node committed s), and B the
  median L(s) over slots proposed during the fault-free warm-up. A slot is *good* if
  L(s) <= max(2 B, B + 4 md) (room for jitter). Only slots whose first leader is honest
  count. The window after H ends at its horizon: the next fault's start minus that limit
  (a slot proposed later may be slowed by the next fault), or, after the last fault, run
  end - max(2 B, 50 ms) (the last slots of a run have no time to commit). Then
  hangover = max(T1, T2) - H, where T1 is when the last slot proposed before H committed
  (the blip's backlog is drained; H if it already was) and T2 is P(first slot after the
  last bad one) among slots with H <= P(s) < horizon (H if none is bad); it is
  horizon - H if the backlog or the last slot never commits, or no slot follows the last
  bad one. So 0 means everything after the heal ran at baseline latency; the time slots
  are naturally apart is not counted. A window with horizon <= H was not observed and is
  skipped; the run's figure is the largest one.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from node.sim.harness import RunResult

GOOD_FACTOR = 2.0
GOOD_SLACK_MD = 4.0
TAIL_BASELINES = 2
TAIL_MIN = 50_000  # clock ticks: slots proposed this close to the end may not commit in time


@dataclass(slots=True)
class RunMetrics:
    commits: int
    fast: int
    slow: int
    latencies_md: list[float]
    hangover_ms: float | None


def compute_metrics(result: RunResult) -> RunMetrics:
    monitor = result.monitor
    honest = result.honest
    slots: set[int] = set()
    fast = slow = 0
    latencies: list[float] = []
    md = result.mean_delay or 1.0
    for node in honest:
        for slot, record in monitor.commits.get(node, {}).items():
            slots.add(slot)
            if record.fast:
                fast += 1
            else:
                slow += 1
            start = monitor.first_prepare.get(slot)
            if start is not None:
                latencies.append((record.time - start) / md)
    return RunMetrics(len(slots), fast, slow, latencies, compute_hangover(result))


def slot_latencies(result: RunResult) -> dict[int, float]:
    """L(s) in clock ticks for every prepared slot (infinite if no honest node committed)."""
    monitor = result.monitor
    times: dict[int, list[int]] = {slot: [] for slot in monitor.first_prepare}
    for node in result.honest:
        for slot, record in monitor.commits.get(node, {}).items():
            if slot in times:
                times[slot].append(record.time)
    return {
        slot: statistics.median(t - monitor.first_prepare[slot] for t in ts) if ts else float("inf")
        for slot, ts in times.items()
    }


def merged_windows(windows: Iterable[tuple[int, int]], gap: float) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1] + gap:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def compute_hangover(result: RunResult) -> float | None:
    """The largest hangover over the run's healed faults, in milliseconds (see module doc)."""
    scenario = result.scenario
    if not scenario.fault_windows:
        return None
    first_prepare = result.monitor.first_prepare
    latency = slot_latencies(result)
    honest = set(result.honest)
    led = sorted(s for s in latency if result.monitor.first_leader.get(s) in honest)
    first_fault = min(start for start, _ in scenario.fault_windows)
    base = [latency[s] for s in led if first_prepare[s] < first_fault]
    finite = [x for x in base if x != float("inf")]
    if not finite:
        return None
    baseline = statistics.median(finite)
    limit = max(GOOD_FACTOR * baseline, baseline + GOOD_SLACK_MD * result.mean_delay)
    windows = merged_windows(scenario.fault_windows, baseline)
    tail = max(TAIL_BASELINES * baseline, TAIL_MIN)
    worst: float | None = None
    for i, (_, heal) in enumerate(windows):
        last = i + 1 == len(windows)
        horizon = int(result.end - tail) if last else windows[i + 1][0] - int(limit)
        if horizon <= heal:
            continue
        backlog = [first_prepare[s] + latency[s] for s in led if first_prepare[s] < heal]
        drained = max([heal, *backlog])
        after = [s for s in led if heal <= first_prepare[s] < horizon]
        resumed = _resumed_at(heal, horizon, after, first_prepare, latency, limit)
        hangover = min(max(drained, resumed), horizon) - heal
        worst = hangover if worst is None else max(worst, hangover)
    return None if worst is None else worst / 1000.0


def _resumed_at(
    heal: int,
    horizon: int,
    slots: Sequence[int],
    first_prepare: dict[int, int],
    latency: dict[int, float],
    limit: float,
) -> float:
    """When good slots resumed for good: H if no slot after H is bad, else the Prepare of
    the slot after the last bad one (the horizon if there is none)."""
    bad = [i for i, s in enumerate(slots) if latency[s] > limit]
    if not bad:
        return float(heal)
    if bad[-1] + 1 >= len(slots):
        return float(horizon)
    return float(first_prepare[slots[bad[-1] + 1]])


@dataclass(slots=True)
class Aggregate:
    """Sums over runs, for the runner's final JSON line."""

    runs: int = 0
    violations: int = 0
    commits: int = 0
    fast: int = 0
    slow: int = 0
    latencies_md: list[float] = field(default_factory=list)
    max_hangover_ms: float | None = None

    def add(self, metrics: RunMetrics, violations: int) -> None:
        self.runs += 1
        self.violations += violations
        self.commits += metrics.commits
        self.fast += metrics.fast
        self.slow += metrics.slow
        self.latencies_md.extend(metrics.latencies_md)
        if metrics.hangover_ms is not None:
            current = self.max_hangover_ms
            self.max_hangover_ms = max(current or 0.0, metrics.hangover_ms)

    def summary(self) -> dict[str, object]:
        total = self.fast + self.slow
        p50 = statistics.median(self.latencies_md) if self.latencies_md else None
        return {
            "runs": self.runs,
            "violations": self.violations,
            "commits": self.commits,
            "fast_path_ratio": round(self.fast / total, 4) if total else None,
            "p50_commit_md": round(p50, 3) if p50 is not None else None,
            "max_hangover_ms": (
                round(self.max_hangover_ms, 1) if self.max_hangover_ms is not None else None
            ),
        }
