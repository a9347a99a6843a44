"""End-to-end throughput of a local 4-validator testnet under the spammer.

Run: ``.venv/bin/python bench/testnet_tps.py [--tps 500,1000,2000] [--duration 60]``
     ``.venv/bin/python bench/testnet_tps.py --soak 600`` (10 minutes at 2,000 tx/s)

For each rate, on a fresh testnet in a temporary directory (no p2p): committed TPS, p50/p99
latency from send to committed-and-executed, CPU seconds per 1,000 transactions for each
validator (utime + stime from /proc/PID/stat over the sending window), and each validator's
resident memory sampled every second (VmRSS; peak is the kernel's VmHWM), printed as a
curve with min/max. Then the targets: >= 2,000 tx/s sustained, p50 <= 1 s, p99 <= 3 s,
RSS < 400 MB and not growing. The machine load is printed too: on a shared 2-core
machine, the figures move with whatever else runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from node.tools import testnet
from node.tools.spam.endpoints import endpoints_from_dir
from node.tools.spam.localnet import local_testnet
from node.tools.spam.report import Report, render_text
from node.tools.spam.runner import SpamConfig, run_spam

TARGET_TPS = 2000
TARGET_P50_MS = 1000
TARGET_P99_MS = 3000
TARGET_RSS_MB = 400
# "not growing": the last quarter's mean RSS at most this much above the second quarter's
GROWTH_LIMIT_MB = 10.0
GROWTH_LIMIT_FRACTION = 0.05
STEADY_FRACTION = 0.97
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CURVE_POINTS = 20


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


class Sampler:
    """Samples each pid's VmRSS every ``interval`` seconds in a thread."""

    def __init__(self, pids: list[int], interval: float = 1.0) -> None:
        self.pids = pids
        self.interval = interval
        self.samples: list[tuple[float, list[float]]] = []  # (time, MB per pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                row = [status_kb(p, "VmRSS") / 1024 for p in self.pids]
            except OSError:
                return  # a validator exited; the run reports it
            self.samples.append((time.monotonic(), row))
            self._stop.wait(self.interval)


@dataclass
class NodeFigures:
    name: str
    cpu_s: float
    cpu_s_per_1k_tx: float | None
    rss_min_mb: float
    rss_max_mb: float
    rss_peak_hwm_mb: float
    rss_growth_mb: float
    rss_curve_mb: list[float] = field(default_factory=list)


@dataclass
class RunFigures:
    tps: int
    duration_s: float
    report: Report
    nodes: list[NodeFigures]
    spammer_cpu_s: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    targets: dict[str, bool]


def growth_mb(curve: list[float]) -> float:
    """Mean of the last quarter minus mean of the second quarter (0 if too short)."""
    q = len(curve) // 4
    if q == 0:
        return 0.0
    second, last = curve[q : 2 * q], curve[-q:]
    return sum(last) / len(last) - sum(second) / len(second)


def downsample(values: list[float], points: int = CURVE_POINTS) -> list[float]:
    step = max(1, len(values) // points)
    return [round(v, 1) for v in values[::step]]


def node_figures(
    names: list[str],
    pids: list[int],
    cpu: list[float],
    committed: int,
    window: list[tuple[float, list[float]]],
) -> list[NodeFigures]:
    out = []
    for i, (name, pid) in enumerate(zip(names, pids, strict=True)):
        curve = [row[i] for _, row in window]
        out.append(
            NodeFigures(
                name=name,
                cpu_s=round(cpu[i], 2),
                cpu_s_per_1k_tx=round(cpu[i] * 1000 / committed, 3) if committed else None,
                rss_min_mb=round(min(curve, default=0.0), 1),
                rss_max_mb=round(max(curve, default=0.0), 1),
                rss_peak_hwm_mb=round(status_kb(pid, "VmHWM") / 1024, 1),
                rss_growth_mb=round(growth_mb(curve), 1),
                rss_curve_mb=downsample(curve),
            )
        )
    return out


def check_targets(report: Report, nodes: list[NodeFigures]) -> dict[str, bool]:
    steady = report.steady_tps or 0.0
    lat = report.latency_ms
    return {
        f"sustained >= {TARGET_TPS} tx/s": report.target_tps >= TARGET_TPS
        and steady >= STEADY_FRACTION * report.target_tps
        and report.pending == 0
        and report.rejected == 0,
        f"p50 <= {TARGET_P50_MS} ms": lat.p50 is not None and lat.p50 <= TARGET_P50_MS,
        f"p99 <= {TARGET_P99_MS} ms": lat.p99 is not None and lat.p99 <= TARGET_P99_MS,
        f"RSS < {TARGET_RSS_MB} MB": all(n.rss_peak_hwm_mb < TARGET_RSS_MB for n in nodes),
        "RSS not growing": all(
            n.rss_growth_mb <= max(GROWTH_LIMIT_MB, GROWTH_LIMIT_FRACTION * n.rss_max_mb)
            for n in nodes
        ),
    }


def run_rate(tps: int, duration: float, args: argparse.Namespace) -> RunFigures:
    with tempfile.TemporaryDirectory(prefix="lanenet-bench-") as tmp:
        directory = Path(tmp) / "net"
        with local_testnet(directory) as rows:
            return _measure(directory, rows, tps, duration, args)


def _measure(
    directory: Path,
    rows: list[dict[str, object]],
    tps: int,
    duration: float,
    args: argparse.Namespace,
) -> RunFigures:
    names = [str(r["name"]) for r in rows]
    pids = [int(str(r["pid"])) for r in rows]
    keys = [bytes.fromhex(a["private_key"][2:]) for a in testnet.load_accounts(directory)]
    cfg = SpamConfig(
        tps=tps, duration_s=duration, accounts=args.accounts, mode=args.mode, settle_s=args.settle
    )
    sampler = Sampler(pids)
    sampler.start()
    mark = _Mark()

    def on_sending() -> None:
        mark.cpu = [cpu_seconds(p) for p in pids]
        mark.at = time.monotonic()
        mark.own_cpu = _self_cpu()

    load_before = os.getloadavg()
    try:
        report = asyncio.run(
            run_spam(cfg, endpoints_from_dir(directory), keys, _say, on_sending=on_sending)
        )
        cpu_after = [cpu_seconds(p) for p in pids]
    finally:
        sampler.stop()
    cpu = [a - b for a, b in zip(cpu_after, mark.cpu, strict=True)]
    window = [s for s in sampler.samples if s[0] >= mark.at]
    nodes = node_figures(names, pids, cpu, report.committed, window)
    own_cpu = round(_self_cpu() - mark.own_cpu, 2)
    load_after = os.getloadavg()
    targets = check_targets(report, nodes)
    return RunFigures(tps, duration, report, nodes, own_cpu, load_before, load_after, targets)


@dataclass
class _Mark:
    """CPU counters when sending started."""

    cpu: list[float] = field(default_factory=list)
    at: float = 0.0
    own_cpu: float = 0.0


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _say(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def print_figures(f: RunFigures) -> None:
    r = f.report
    print(f"\n=== {f.tps} tx/s for {f.duration_s:g} s")
    print(render_text(r))
    print(
        f"  load average before {f.load_before[0]:.1f}, after {f.load_after[0]:.1f} "
        f"(2 cores); spammer CPU {f.spammer_cpu_s:.1f} s"
    )
    print(
        f"  {'node':6} {'CPU s':>7} {'CPU s/1k tx':>11} {'RSS min':>8} {'max':>6} "
        f"{'peak':>6} {'growth':>7}  RSS curve (MB, even steps over the run)"
    )
    for n in f.nodes:
        per_1k = "-" if n.cpu_s_per_1k_tx is None else f"{n.cpu_s_per_1k_tx:.3f}"
        curve = " ".join(f"{v:.0f}" for v in n.rss_curve_mb)
        print(
            f"  {n.name:6} {n.cpu_s:>7.1f} {per_1k:>11} {n.rss_min_mb:>8.1f} "
            f"{n.rss_max_mb:>6.1f} {n.rss_peak_hwm_mb:>6.1f} {n.rss_growth_mb:>+7.1f}  {curve}"
        )
    for name, ok in f.targets.items():
        print(f"  target {name:<24} {'met' if ok else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tps", default=str(TARGET_TPS), help="rate, or rates comma-separated")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of sending")
    parser.add_argument(
        "--soak",
        type=float,
        default=None,
        help="a long run of this many seconds (memory): overrides --duration",
    )
    parser.add_argument("--accounts", type=int, default=None)
    parser.add_argument("--mode", choices=("grpc", "jsonrpc"), default="grpc")
    parser.add_argument("--settle", type=float, default=20.0)
    parser.add_argument("--json", action="store_true", help="one JSON line per rate")
    args = parser.parse_args()
    duration = args.soak if args.soak is not None else args.duration
    for tps in (int(t) for t in args.tps.split(",")):
        figures = run_rate(tps, duration, args)
        if args.json:
            print(json.dumps(asdict(figures), separators=(",", ":")), flush=True)
        else:
            print_figures(figures)


if __name__ == "__main__":
    main()
