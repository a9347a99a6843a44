"""Every panel of every Grafana dashboard shows data from the live compose testnet: each
PromQL expression, run against the real Prometheus after the spammer's load, returns at
least one finite value."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.dashboards import all_queries
from tests.e2e.stack import Stack, StackError, has_finite_value, wait_until

pytestmark = pytest.mark.e2e


def test_every_panel_query_returns_data(stack: Stack, spam_report: dict[str, Any]) -> None:
    """No panel would be empty on a live testnet under load: a query naming a metric the
    node never sets, a wrong label or a bad expression fails here, listed by panel."""
    assert spam_report["committed"] > 0
    # the last scrape after the load must have landed before rates are read
    wait_until(
        lambda: has_finite_value(stack.query("max(lanenet_consensus_committed_txs_total) > 0")),
        "Prometheus to have scraped the committed transactions",
        timeout=30,
    )
    empty = []
    for query in all_queries():
        try:
            result = stack.query(query.promql())
        except StackError as exc:
            empty.append(f"{query}: error {exc}")
            continue
        if not has_finite_value(result):
            empty.append(f"{query}: no data for {query.promql()}")
    assert not empty, "panels without data:\n" + "\n".join(empty)
