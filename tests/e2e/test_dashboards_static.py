"""The Grafana provisioning and dashboards are consistent without running anything: the
committed JSON is what grafana/build_dashboards.py writes, every panel queries the
provisioned datasource, and every metric a query names is one the node defines."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from node.metrics.registry import Metrics, family_names
from tests.e2e.dashboards import DASHBOARDS, all_queries, dashboard_files
from tests.e2e.stack import ROOT

DATASOURCE_UID = "lanenet-prom"
METRIC = re.compile(r"\b((?:lanenet|process)_[a-z0-9_]+)")
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def test_committed_dashboards_match_the_generator() -> None:
    """Editing the panel lists without regenerating (or the JSON by hand) is caught."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "grafana" / "build_dashboards.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_the_four_dashboards_exist_with_panels() -> None:
    """Overview, lanes, execution and resources dashboards, each with panels and the node
    variable a viewer filters by."""
    uids = {}
    for path in dashboard_files():
        doc = json.loads(path.read_text())
        uids[doc["uid"]] = doc
        assert doc["panels"], path
        assert [v["name"] for v in doc["templating"]["list"]] == ["node"]
    assert set(uids) == {
        "lanenet-overview",
        "lanenet-lanes",
        "lanenet-execution",
        "lanenet-resources",
    }


def test_every_panel_uses_the_provisioned_datasource() -> None:
    """The datasource uid of every panel and target is the one grafana/provisioning fixes."""
    provisioned = (ROOT / "grafana/provisioning/datasources/lanenet.yml").read_text()
    assert f"uid: {DATASOURCE_UID}" in provisioned
    for path in dashboard_files():
        doc = json.loads(path.read_text())
        for panel in doc["panels"]:
            assert panel["datasource"]["uid"] == DATASOURCE_UID, (path.name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == DATASOURCE_UID


def test_queries_name_only_metrics_the_node_defines() -> None:
    """Every lanenet_* family a panel queries is defined in node/metrics/registry.py, and
    process_* ones are among those prometheus_client exports."""
    metrics = Metrics(node_id="test")
    defined = family_names(metrics)
    unknown = set()
    queries = all_queries()
    assert len(queries) >= 30
    for query in queries:
        for name in METRIC.findall(query.expr):
            base = name
            for suffix in SUFFIXES:
                base = base.removesuffix(suffix)
            if base not in defined:
                unknown.add((str(query), name))
    assert not unknown, sorted(unknown)
    assert DASHBOARDS.is_dir()
