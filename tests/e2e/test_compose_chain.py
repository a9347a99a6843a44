"""The compose testnet: four healthy validators that commit the spammer container's load,
every accepted transaction exactly once, with the same block hash on every node."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.chain import assert_same_chain, wait_caught_up
from tests.e2e.stack import NODES, VALIDATORS, Stack

pytestmark = pytest.mark.e2e


def test_validators_are_ready_and_connected(stack: Stack) -> None:
    """Each validator container is healthy, answers /healthz and /readyz with 200 and sees a
    quorum of peers, and Prometheus scrapes all four."""
    for i, name in enumerate(NODES):
        assert stack.health(name) == "healthy"
        code, live = stack.probe(i, "/healthz")
        assert code == 200, live
        code, ready = stack.probe(i, "/readyz")
        assert code == 200, ready
        assert ready["peers"] + 1 >= ready["quorum"], ready
        assert ready["node_id"] == name
    up = stack.query('up{job="lanenet"} == 1')
    assert sorted(s["metric"]["node"] for s in up) == list(NODES)


def test_spammer_load_is_committed_exactly(stack: Stack, spam_report: dict[str, Any]) -> None:
    """The spammer container's report adds up: every transaction it sent was accepted, and
    every accepted one was committed (none pending) within its settle time."""
    report = spam_report
    assert report["sent"] > 0
    assert report["rejected"] == 0, report["rejected_reasons"]
    assert report["accepted"] == report["sent"]
    assert report["committed"] == report["accepted"], f"pending: {report['pending']}"
    assert report["nodes"] == VALIDATORS


def test_every_node_has_the_same_blocks_after_load(
    stack: Stack, spam_report: dict[str, Any]
) -> None:
    """After the load, all four nodes execute up to the same height and list the same block
    hash at every height."""
    top = max(stack.heights().values())
    wait_caught_up(stack, top, timeout=60)
    common = assert_same_chain(stack)
    assert common >= top
