"""The Grafana dashboards' queries, as PromQL Prometheus can run without Grafana."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.stack import ROOT

DASHBOARDS = ROOT / "grafana" / "dashboards"
# What Grafana would put in for its variables; a 2 m window spans many 5 s scrapes.
SUBSTITUTES = {
    "${node}": ".*",
    "$node": ".*",
    "$__rate_interval": "2m",
    "$__interval": "15s",
    "$__range": "15m",
}


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref: str
    expr: str

    def promql(self) -> str:
        text = self.expr
        for var, value in SUBSTITUTES.items():
            text = text.replace(var, value)
        return text

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref}"


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def panel_queries(path: Path) -> list[PanelQuery]:
    doc = json.loads(path.read_text())
    queries = []
    for panel in doc["panels"]:
        for target in panel.get("targets", []):
            queries.append(PanelQuery(doc["uid"], panel["title"], target["refId"], target["expr"]))
    return queries


def all_queries() -> list[PanelQuery]:
    return [q for path in dashboard_files() for q in panel_queries(path)]
