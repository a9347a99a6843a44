"""Write grafana/dashboards/*.json from the panel lists below (the JSON files are committed).

    python3 grafana/build_dashboards.py          # rewrite the dashboards
    python3 grafana/build_dashboards.py --check  # exit 1 if a committed file differs

Every query uses only metric families of node/metrics/registry.py (plus Prometheus' own
``up`` and prometheus_client's ``process_*``), the datasource uid ``lanenet-prom`` of
grafana/provisioning, and the ``node`` label that deploy/prometheus/prometheus.yml puts on
every target. The e2e test runs each expression against a live Prometheus.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

DATASOURCE = {"type": "prometheus", "uid": "lanenet-prom"}
OUT = Path(__file__).resolve().parent / "dashboards"
SEL = 'node=~"$node"'
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Panel:
    title: str
    targets: tuple[tuple[str, str], ...]  # (expr, legend)
    unit: str = "short"
    kind: str = "timeseries"
    description: str = ""
    width: int = 12


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...] = field(default_factory=tuple)


def quantiles(metric: str, by: str = "") -> tuple[tuple[str, str], ...]:
    group = f"le, {by}" if by else "le"
    prefix = "{{" + by + "}} " if by else ""
    return tuple(
        (
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{{{SEL}}}[{RATE}])))",
            f"{prefix}p{round(q * 100)}",
        )
        for q in (0.5, 0.99)
    )


OVERVIEW = Dashboard(
    "lanenet-overview",
    "lanenet / overview",
    "Chain progress, throughput, finality and the consensus path of every validator.",
    (
        Panel(
            "Committed height",
            ((f"max by (node) (lanenet_consensus_committed_height{{{SEL}}})", "{{node}}"),),
        ),
        Panel(
            "Executed height",
            ((f"max by (node) (lanenet_execution_executed_height{{{SEL}}})", "{{node}}"),),
        ),
        Panel(
            "Committed TPS",
            (
                (f"max(rate(lanenet_consensus_committed_txs_total{{{SEL}}}[{RATE}]))", "chain"),
                (
                    f"sum by (node) (rate(lanenet_execution_txs_total{{{SEL}}}[{RATE}]))",
                    "executed {{node}}",
                ),
            ),
            unit="ops",
            description="Transactions per second in committed blocks (the fastest node), and "
            "executed per node.",
        ),
        Panel(
            "Finality latency",
            quantiles("lanenet_consensus_commit_latency_seconds"),
            unit="s",
            description="Proposal to commit, p50 and p99 over the selected nodes.",
        ),
        Panel(
            "Commits by path",
            (
                (
                    f"sum by (path) (rate(lanenet_consensus_commits_total{{{SEL}}}[{RATE}]))",
                    "{{path}}",
                ),
            ),
            unit="ops",
            description="fast: n prepare votes; slow: a confirm round.",
        ),
        Panel(
            "View changes and timeouts",
            (
                (
                    f"sum by (node) (increase(lanenet_consensus_view_changes_total{{{SEL}}}"
                    f"[{RATE}]))",
                    "view changes {{node}}",
                ),
                (
                    f"sum by (node) (increase(lanenet_consensus_timeouts_total{{{SEL}}}[{RATE}]))",
                    "timeouts {{node}}",
                ),
            ),
        ),
        Panel(
            "Current view",
            ((f"max by (node) (lanenet_consensus_view{{{SEL}}})", "{{node}}"),),
            kind="stat",
            width=6,
        ),
        Panel(
            "Slot",
            ((f"max by (node) (lanenet_consensus_slot{{{SEL}}})", "{{node}}"),),
            kind="stat",
            width=6,
        ),
        Panel(
            "Validators up",
            ((f'sum(up{{job="lanenet",{SEL}}})', "up"),),
            kind="stat",
            width=6,
        ),
        Panel(
            "Mempool",
            ((f"sum by (node) (lanenet_mempool_size_txs{{{SEL}}})", "{{node}}"),),
            width=6,
        ),
    ),
)

LANES = Dashboard(
    "lanenet-lanes",
    "lanenet / lanes and data availability",
    "Each validator's lane of cars: tips, proofs of availability, car sizes and rates.",
    (
        Panel(
            "Tip per lane",
            ((f"max by (lane) (lanenet_lanes_tip_position{{{SEL}}})", "lane {{lane}}"),),
            description="Highest car position any selected node stored, per lane.",
        ),
        Panel(
            "Tip spread across nodes",
            (
                (
                    f"max by (lane) (lanenet_lanes_tip_position{{{SEL}}}) - "
                    f"min by (lane) (lanenet_lanes_tip_position{{{SEL}}})",
                    "lane {{lane}}",
                ),
            ),
            description="Cars by which the slowest node trails the fastest, per lane.",
        ),
        Panel(
            "PoA latency",
            quantiles("lanenet_lanes_poa_latency_seconds"),
            unit="s",
            description="Sealing a car to its proof of availability (f+1 votes).",
        ),
        Panel(
            "Cars sealed per second",
            (
                (
                    f"sum by (node) (rate(lanenet_lanes_cars_sealed_total{{{SEL}}}[{RATE}]))",
                    "{{node}}",
                ),
            ),
            unit="ops",
        ),
        Panel(
            "Car size",
            (
                (
                    f"sum(rate(lanenet_lanes_car_size_bytes_sum{{{SEL}}}[{RATE}])) / "
                    f"sum(rate(lanenet_lanes_car_size_bytes_count{{{SEL}}}[{RATE}]))",
                    "mean",
                ),
                *quantiles("lanenet_lanes_car_size_bytes")[1:],
            ),
            unit="bytes",
        ),
        Panel(
            "Transactions per car",
            (
                (
                    f"sum(rate(lanenet_lanes_car_txs_sum{{{SEL}}}[{RATE}])) / "
                    f"sum(rate(lanenet_lanes_car_txs_count{{{SEL}}}[{RATE}]))",
                    "mean",
                ),
            ),
        ),
        Panel(
            "Mempool admissions per second",
            (
                (
                    f"sum by (node) (rate(lanenet_mempool_admitted_txs_total{{{SEL}}}[{RATE}]))",
                    "{{node}}",
                ),
            ),
            unit="ops",
        ),
        Panel(
            "Mempool bytes",
            ((f"sum by (node) (lanenet_mempool_size_bytes{{{SEL}}})", "{{node}}"),),
            unit="bytes",
        ),
    ),
)

EXECUTION = Dashboard(
    "lanenet-execution",
    "lanenet / execution and storage",
    "How far execution trails commit, block execution time, and the storage tiers.",
    (
        Panel(
            "Execution lag",
            (
                (
                    f"lanenet_consensus_committed_height{{{SEL}}} - "
                    f"lanenet_execution_executed_height{{{SEL}}}",
                    "{{node}}",
                ),
            ),
            description="Committed blocks not yet executed, per node.",
        ),
        Panel(
            "Block execution time",
            quantiles("lanenet_execution_block_duration_seconds"),
            unit="s",
        ),
        Panel(
            "Executed transactions by status",
            (
                (
                    f"sum by (status) (rate(lanenet_execution_txs_total{{{SEL}}}[{RATE}]))",
                    "{{status}}",
                ),
            ),
            unit="ops",
        ),
        Panel(
            "DB size per tier",
            (
                (
                    f"sum by (node, tier) (lanenet_storage_db_size_bytes{{{SEL}}})",
                    "{{node}} {{tier}}",
                ),
            ),
            unit="bytes",
        ),
        Panel(
            "Archive progress",
            (
                (f"max by (node) (lanenet_storage_archived_height{{{SEL}}})", "archived {{node}}"),
                (
                    f"lanenet_execution_executed_height{{{SEL}}} - "
                    f"lanenet_storage_archived_height{{{SEL}}}",
                    "not yet archived {{node}}",
                ),
            ),
            description="Highest height sealed into the archive tier, and blocks behind it.",
        ),
    ),
)

RESOURCES = Dashboard(
    "lanenet-resources",
    "lanenet / node resources",
    "CPU, memory, queues, peers and client API load per validator process.",
    (
        Panel(
            "CPU",
            (
                (
                    f'rate(process_cpu_seconds_total{{job="lanenet",{SEL}}}[{RATE}])',
                    "{{node}}",
                ),
            ),
            unit="percentunit",
            description="CPU seconds per second of each node process (1 = one core).",
        ),
        Panel(
            "Resident memory",
            ((f'process_resident_memory_bytes{{job="lanenet",{SEL}}}', "{{node}}"),),
            unit="bytes",
        ),
        Panel(
            "Queue depths",
            (
                (
                    f"max by (node, queue) (lanenet_runtime_queue_depth{{{SEL}}})",
                    "{{node}} {{queue}}",
                ),
            ),
        ),
        Panel(
            "Peers",
            (
                (
                    f"max by (node, transport) (lanenet_net_peers{{{SEL}}})",
                    "{{node}} {{transport}}",
                ),
            ),
        ),
        Panel(
            "Event loop lag",
            quantiles("lanenet_runtime_event_loop_lag_seconds"),
            unit="s",
        ),
        Panel(
            "Peer messages per second",
            (
                (
                    f"sum by (node) (rate(lanenet_net_messages_sent_total{{{SEL}}}[{RATE}]))",
                    "sent {{node}}",
                ),
                (
                    f"sum by (node) (rate(lanenet_net_messages_received_total{{{SEL}}}[{RATE}]))",
                    "received {{node}}",
                ),
            ),
            unit="ops",
        ),
        Panel(
            "Client API requests",
            (
                (
                    f"sum by (api, outcome) (rate(lanenet_rpc_requests_total{{{SEL}}}[{RATE}]))",
                    "{{api}} {{outcome}}",
                ),
            ),
            unit="reqps",
        ),
        Panel(
            "Client API latency",
            quantiles("lanenet_rpc_request_duration_seconds", "api"),
            unit="s",
        ),
        Panel(
            "Open file descriptors",
            ((f'process_open_fds{{job="lanenet",{SEL}}}', "{{node}}"),),
        ),
    ),
)

DASHBOARDS = (OVERVIEW, LANES, EXECUTION, RESOURCES)


def node_variable() -> dict[str, object]:
    return {
        "name": "node",
        "label": "node",
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": "label_values(lanenet_node_info, node)", "refId": "node"},
        "definition": "label_values(lanenet_node_info, node)",
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, object]:
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": expr,
                "legendFormat": legend,
                "range": True,
            }
            for i, (expr, legend) in enumerate(panel.targets)
        ],
    }


def dashboard_json(dashboard: Dashboard) -> dict[str, object]:
    panels = []
    x = y = 0
    for i, panel in enumerate(dashboard.panels, start=1):
        if x + panel.width > 24:
            x, y = 0, y + 8
        panels.append(panel_json(panel, i, x, y))
        x += panel.width
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": ["lanenet"],
        "editable": False,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-15m", "to": "now"},
        "timezone": "browser",
        "templating": {"list": [node_variable()]},
        "links": [
            {"type": "dashboards", "tags": ["lanenet"], "asDropdown": False, "title": "lanenet"}
        ],
        "panels": panels,
    }


def render() -> dict[Path, str]:
    return {
        OUT / f"{d.uid}.json": json.dumps(dashboard_json(d), indent=2) + "\n" for d in DASHBOARDS
    }


def main(argv: list[str]) -> int:
    files = render()
    if "--check" in argv:
        stale = [p.name for p, text in files.items() if not p.exists() or p.read_text() != text]
        if stale:
            print(f"stale dashboards (run grafana/build_dashboards.py): {stale}", file=sys.stderr)
            return 1
        return 0
    OUT.mkdir(exist_ok=True)
    for path, text in files.items():
        path.write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
