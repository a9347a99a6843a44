"""The final report of a spam run: counts, rates and latencies, as text or one JSON line.

Throughput is ``committed / (last commit - first send)``. ``steady_tps`` is the mean
committed rate per second between the first and the last few seconds of sending, which
reads a sustained rate without the ramp-up and the tail. Latency is from a transaction's
send time (the value it carries) to the moment the spammer saw it in an executed block;
``commit_latency_ms`` (gRPC only, which gives commit times in milliseconds) stops at the
commit time the watched node recorded, so the difference is execution and delivery.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from node.tools.spam.ledger import Ledger, percentile

# seconds left out at each end of the sending window when reading the steady rate
STEADY_SKIP_HEAD_S = 3
STEADY_SKIP_TAIL_S = 1


@dataclass(frozen=True, slots=True)
class Percentiles:
    p50: int | None
    p90: int | None
    p99: int | None
    max: int | None


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What was asked for and how it was sent."""

    target_tps: int
    duration_s: float
    accounts: int
    mode: str
    route: str
    nodes: int
    batch_ms: int


@dataclass(frozen=True, slots=True)
class Report:
    sent: int
    accepted: int
    rejected: int
    committed: int
    pending: int
    duration_s: float
    target_tps: int
    achieved_tps: float
    steady_tps: float | None
    send_tps: float
    window_s: float
    latency_ms: Percentiles
    commit_latency_ms: Percentiles
    sender_lag_ms: Percentiles
    rejected_reasons: dict[str, int]
    accounts: int
    mode: str
    route: str
    nodes: int
    batch_ms: int
    commits_per_s: list[int] = field(default_factory=list)
    rejected_then_committed: int = 0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    def check_counts(self) -> bool:
        """Whether the counts add up."""
        return (
            self.sent == self.accepted + self.rejected
            and self.accepted == self.committed + self.pending
            and sum(self.rejected_reasons.values()) == self.rejected
        )


def percentiles_of(values: list[int]) -> Percentiles:
    ordered = sorted(values)
    return Percentiles(
        percentile(ordered, 50),
        percentile(ordered, 90),
        percentile(ordered, 99),
        ordered[-1] if ordered else None,
    )


def steady_tps(commits_per_s: list[int], duration_s: float) -> float | None:
    """The mean of the per-second commit counts inside the sending window, ends trimmed."""
    last = int(duration_s) - STEADY_SKIP_TAIL_S
    seconds = commits_per_s[STEADY_SKIP_HEAD_S:last]
    return sum(seconds) / len(seconds) if seconds else None


def build_report(ledger: Ledger, info: RunInfo, notes: list[str]) -> Report:
    counts = ledger.counts()
    first = ledger.first_send_ms
    window_ms = (ledger.last_commit_ms - first) if first and ledger.last_commit_ms else 0
    send_ms = (ledger.last_send_ms - first) if first and ledger.last_send_ms else 0
    seconds = max(ledger.commits_per_s, default=-1) + 1
    per_s = [ledger.commits_per_s.get(s, 0) for s in range(seconds)]
    return Report(
        sent=counts.sent,
        accepted=counts.accepted,
        rejected=counts.rejected,
        committed=counts.committed,
        pending=counts.pending,
        duration_s=info.duration_s,
        target_tps=info.target_tps,
        achieved_tps=round(counts.committed * 1000 / window_ms, 1) if window_ms > 0 else 0.0,
        steady_tps=_round(steady_tps(per_s, info.duration_s)),
        send_tps=round(counts.sent * 1000 / send_ms, 1) if send_ms > 0 else 0.0,
        window_s=round(window_ms / 1000, 3),
        latency_ms=percentiles_of(list(ledger.latencies)),
        commit_latency_ms=percentiles_of(list(ledger.commit_latencies)),
        sender_lag_ms=percentiles_of(list(ledger.lags)),
        rejected_reasons={k: v for k, v in sorted(ledger.reasons.items()) if v},
        accounts=info.accounts,
        mode=info.mode,
        route=info.route,
        nodes=info.nodes,
        batch_ms=info.batch_ms,
        commits_per_s=per_s,
        rejected_then_committed=ledger.rejected_then_committed,
        notes=notes,
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _ms(value: int | None) -> str:
    return "-" if value is None else f"{value} ms"


def render_text(report: Report) -> str:
    r = report
    lat = r.latency_ms
    com = r.commit_latency_ms
    lag = r.sender_lag_ms
    lines = [
        f"spam: {r.target_tps} tx/s for {r.duration_s:g} s over {r.nodes} nodes "
        f"({r.mode}, route {r.route}, {r.accounts} accounts, batches every {r.batch_ms} ms)",
        f"  sent       {r.sent:>10}   = accepted + rejected",
        f"  accepted   {r.accepted:>10}   = committed + pending",
        f"  rejected   {r.rejected:>10}",
        f"  committed  {r.committed:>10}",
        f"  pending    {r.pending:>10}",
        f"  throughput {r.achieved_tps:>10.1f} tx/s committed over {r.window_s:.1f} s "
        f"(first send to last commit); steady {_tps(r.steady_tps)}; sent at {r.send_tps:.1f}",
        f"  latency    p50 {_ms(lat.p50)}  p90 {_ms(lat.p90)}  p99 {_ms(lat.p99)}  "
        f"max {_ms(lat.max)}  (send to committed and executed)",
        f"  commit     p50 {_ms(com.p50)}  p90 {_ms(com.p90)}  p99 {_ms(com.p99)}  "
        f"max {_ms(com.max)}  (send to commit, by the watched node's clock)",
        f"  send lag   p50 {_ms(lag.p50)}  p99 {_ms(lag.p99)}  max {_ms(lag.max)}",
    ]
    for reason, count in r.rejected_reasons.items():
        lines.append(f"  rejected: {count} x {reason}")
    lines.extend(f"  note: {note}" for note in r.notes)
    if not r.check_counts():
        lines.append("  WARNING: the counts do not add up")
    return "\n".join(lines)


def _tps(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} tx/s"
