"""Log lines are JSON or console text, and every one carries the node id."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from node.logging import bind_node_id, configure_logging
from node.metrics.http import MetricsServer
from node.metrics.registry import NoopMetrics


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers, root.level = handlers, level
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def _lines(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


def test_json_lines_carry_node_id_level_logger_and_time() -> None:
    """With the json format each line is one JSON object with node_id, level, logger, timestamp."""
    out = io.StringIO()
    configure_logging("json", "info", node_id="validator-2", stream=out)
    structlog.get_logger("consensus").info("slot committed", slot=7, height=5)
    [line] = _lines(out)
    event = json.loads(line)
    assert event["event"] == "slot committed"
    assert event["node_id"] == "validator-2"
    assert event["level"] == "info"
    assert event["logger"] == "consensus"
    assert (event["slot"], event["height"]) == (7, 5)
    assert event["timestamp"].endswith("Z")


def test_level_filters_and_stdlib_logs_share_the_format() -> None:
    """Debug lines are dropped at info level; stdlib loggers' lines are JSON with the node id."""
    out = io.StringIO()
    configure_logging("json", "info", node_id="n1", stream=out)
    structlog.get_logger("x").debug("hidden")
    logging.getLogger("aiohttp.server").warning("from stdlib %s", "logging")
    [line] = _lines(out)
    event = json.loads(line)
    assert event["event"] == "from stdlib logging"
    assert event["node_id"] == "n1"
    assert event["logger"] == "aiohttp.server"


def test_console_format_names_the_node() -> None:
    """The console format is plain text that still includes the node id."""
    out = io.StringIO()
    configure_logging("console", "debug", node_id="n3", stream=out)
    structlog.get_logger("net").debug("peer connected", peer=2)
    [line] = _lines(out)
    assert "peer connected" in line
    assert "node_id=n3" in line
    assert not line.startswith("{")


def test_bound_node_id_wins_over_the_default() -> None:
    """A node running in a shared process binds its own id for its tasks."""
    out = io.StringIO()
    configure_logging("json", "info", node_id="process-default", stream=out)

    async def node(name: str) -> None:
        bind_node_id(name)
        structlog.get_logger("node").info("started")

    async def main() -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(node("a"))
            group.create_task(node("b"))

    asyncio.run(main())
    structlog.get_logger("main").info("outside")
    ids = sorted(json.loads(line)["node_id"] for line in _lines(out))
    assert ids == ["a", "b", "process-default"]


def test_bad_format_and_level_are_refused() -> None:
    """An unknown format or level is a clear error, not a silent default."""
    with pytest.raises(ValueError, match="log format"):
        configure_logging("yaml", "info")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("json", "loud")


def test_servers_log_where_they_listen() -> None:
    """Starting the metrics server logs its host and bound port (checked with capture_logs)."""
    configure_logging("json", "info", node_id="n0", stream=io.StringIO())

    async def main() -> int:
        server = MetricsServer(NoopMetrics().registry, host="127.0.0.1", port=0)
        await server.start()
        await server.stop()
        return server.port

    with capture_logs() as logs:
        port = asyncio.run(main())
    [started] = [e for e in logs if e["event"] == "metrics server started"]
    assert started["host"] == "127.0.0.1"
    assert started["port"] > 0
    assert port == 0  # stopped: the requested port again
    assert started["log_level"] == "info"
