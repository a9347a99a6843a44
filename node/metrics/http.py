"""The metrics HTTP port: ``/metrics`` for Prometheus, plus the health probes given to it.

The probes (``/healthz``, ``/readyz``) are defined in ``node.rpc.health`` and handed in as
coroutines returning a ``ProbeResult``: 200 with a JSON body when ``ok``, else 503, so a
Kubernetes probe or ``curl -f`` needs nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

DEFAULT_METRICS_PORT = 26660

log = structlog.get_logger("metrics")


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """A health probe's verdict and the facts behind it (served as JSON)."""

    ok: bool
    detail: Mapping[str, object] = field(default_factory=dict)


Probe = Callable[[], Awaitable[ProbeResult]]


def build_metrics_app(
    registry: CollectorRegistry, probes: Mapping[str, Probe] | None = None
) -> web.Application:
    """An aiohttp app serving ``registry`` on GET /metrics and each probe on its path."""
    app = web.Application()

    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/metrics", metrics)
    for path, probe in (probes or {}).items():
        app.router.add_get(path, _probe_handler(probe))
    return app


def _probe_handler(probe: Probe) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        result = await probe()
        body = json.dumps({"ok": result.ok, **result.detail}, sort_keys=True)
        return web.Response(
            text=body, status=200 if result.ok else 503, content_type="application/json"
        )

    return handle


class MetricsServer:
    """Serves ``build_metrics_app`` on ``host:port`` (port 0 picks a free port)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        probes: Mapping[str, Probe] | None = None,
        *,
        host: str = "0.0.0.0",
        port: int = DEFAULT_METRICS_PORT,
    ) -> None:
        self._app = build_metrics_app(registry, probes)
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        """The bound port (differs from the requested one when that was 0)."""
        return _bound_port(self._runner) or self._port

    async def start(self) -> None:
        self._runner = web.AppRunner(self._app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        log.info("metrics server started", host=self._host, port=self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _bound_port(runner: web.AppRunner | None) -> int | None:
    if runner is None:
        return None
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return None
