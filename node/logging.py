"""Logging setup: structlog, JSON lines (``--log-format json``) or a console format.

Every line carries the node id: ``configure_logging`` sets the process default, and
``bind_node_id`` overrides it for the current task and the tasks it starts (several nodes
in one test process each bind their own). Code binds ``slot=`` / ``height=`` where they
matter. Logs from the standard library's ``logging`` (aiohttp, grpc, libp2p) go through
the same renderer, so a container's output is JSON throughout.

Never log per transaction (reference/costs.md: ~11 µs per JSON line).
"""

from __future__ import annotations

import logging
import sys
from typing import Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

LogFormat = Literal["json", "console"]
LOG_FORMATS: tuple[LogFormat, ...] = ("json", "console")
NODE_ID_KEY = "node_id"


class _DefaultNodeId:
    """Adds the process's node id to events that did not bind their own."""

    def __init__(self, node_id: str | None) -> None:
        self.node_id = node_id

    def __call__(self, logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
        if self.node_id is not None:
            event.setdefault(NODE_ID_KEY, self.node_id)
        return event


def _level_number(level: str | int) -> int:
    if isinstance(level, int):
        return level
    number = logging.getLevelNamesMapping().get(level.upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r}")
    return number


def configure_logging(
    fmt: LogFormat = "console",
    level: str | int = "info",
    node_id: str | None = None,
    *,
    stream: TextIO | None = None,
) -> None:
    """Route structlog and stdlib logging to ``stream`` (stderr) as JSON or console lines."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {LOG_FORMATS}, got {fmt!r}")
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        _DefaultNodeId(node_id),
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: list[Processor]
    if fmt == "json":
        renderer = [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]
    else:
        renderer = [structlog.dev.ConsoleRenderer(colors=False)]
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # caching would pin loggers to this configuration, and tests reconfigure
        # (structlog.testing.capture_logs) after module-level loggers were first used
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(_level_number(level))


def bind_node_id(node_id: str) -> None:
    """Tag every line logged from this context (and tasks started from it) with ``node_id``."""
    structlog.contextvars.bind_contextvars(**{NODE_ID_KEY: node_id})
