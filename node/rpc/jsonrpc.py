"""Ethereum JSON-RPC 2.0 over HTTP (aiohttp): single and batched requests on ``POST /``.

The envelope is handled here, the methods in ``eth_api``. Errors follow JSON-RPC 2.0:
``-32700`` unparsable JSON, ``-32600`` a request that is not a request (also an empty or
oversized batch, and a body over ``max_body_bytes``, which is answered with HTTP 413),
``-32601`` unknown method, ``-32602`` bad parameters (naming the argument), ``-32603`` a
bug on our side; ``-32000`` a refused transaction (geth's wording for the reason),
``-32001``/``-32002`` a state query for a block that does not exist / is pruned.
Lookups of an unknown transaction, receipt or block answer ``null``, as geth does.

In a batch, all ``eth_sendRawTransaction`` calls are admitted with one
``ChainView.submit_raw_txs`` call (before the other calls run), so a client that batches
its transactions reaches the mempool in one step.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import structlog
from aiohttp import web

from node.metrics.registry import Metrics, NoopMetrics
from node.rpc.chain_view import ChainView
from node.rpc.eth_api import (
    CLIENT_VERSION,
    EthApi,
    Method,
    Params,
    parse_raw_tx,
    submit_result_json,
)
from node.rpc.hexjson import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RpcError,
)

DEFAULT_JSONRPC_PORT: Final = 8545
DEFAULT_MAX_BODY_BYTES: Final = 5 * 1024 * 1024
DEFAULT_MAX_BATCH: Final = 1000

log = structlog.get_logger("rpc")

Json = dict[str, object]
RequestId = str | int | float | None


@dataclass(frozen=True, slots=True)
class _Call:
    """A well-formed request envelope; ``is_notification`` when it carries no id."""

    id: RequestId
    is_notification: bool
    method: Method | None
    name: str
    params: Params


def _response(request_id: RequestId, result: object) -> Json:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def _error(request_id: RequestId, error: RpcError) -> Json:
    return {"jsonrpc": "2.0", "id": request_id, "error": error.to_json()}


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


class JsonRpcHandler:
    """Turns request bodies into response bodies; independent of the HTTP server."""

    def __init__(
        self,
        chain: ChainView,
        *,
        metrics: Metrics | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        client_version: str = CLIENT_VERSION,
    ) -> None:
        self._chain = chain
        self._api = EthApi(chain, client_version)
        self._metrics = metrics or NoopMetrics()
        self._max_batch = max_batch

    async def handle_body(self, body: bytes) -> object | None:
        """The JSON response for a request body, or None when nothing is to be sent back."""
        try:
            request = json.loads(body, parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            return _error(None, RpcError(PARSE_ERROR, f"parse error: {exc}"))
        except RecursionError:
            return _error(None, RpcError(PARSE_ERROR, "parse error: JSON nested too deeply"))
        if isinstance(request, list):
            return await self._handle_batch(request)
        responses = await self._run([self._parse_envelope(request)])
        return responses[0] if responses else None

    async def _handle_batch(self, entries: list[object]) -> object | None:
        if not entries:
            return _error(None, RpcError(INVALID_REQUEST, "empty batch"))
        if len(entries) > self._max_batch:
            return _error(
                None,
                RpcError(
                    INVALID_REQUEST,
                    f"batch of {len(entries)} requests exceeds the limit of {self._max_batch}",
                ),
            )
        responses = await self._run([self._parse_envelope(e) for e in entries])
        return responses or None

    def _parse_envelope(self, request: object) -> _Call | Json:
        """A call, or the error response for an entry that is not a valid request."""
        if not isinstance(request, dict):
            return _error(None, RpcError(INVALID_REQUEST, "invalid request: expected an object"))
        request_id = request.get("id")
        if isinstance(request_id, bool) or not isinstance(request_id, str | int | float | None):
            return _error(None, RpcError(INVALID_REQUEST, "invalid request: bad id type"))
        if isinstance(request_id, float) and not math.isfinite(request_id):
            return _error(None, RpcError(INVALID_REQUEST, "invalid request: id is not finite"))
        if request.get("jsonrpc") != "2.0":
            return _error(
                request_id, RpcError(INVALID_REQUEST, 'invalid request: jsonrpc must be "2.0"')
            )
        name = request.get("method")
        if not isinstance(name, str):
            return _error(
                request_id, RpcError(INVALID_REQUEST, "invalid request: method must be a string")
            )
        params = request.get("params", [])
        if params is None:
            params = []
        if not isinstance(params, list):
            return _error(
                request_id,
                RpcError(INVALID_REQUEST, "invalid request: params must be an array"),
            )
        method = self._api.methods.get(name)
        return _Call(request_id, "id" not in request, method, name, params)

    async def _run(self, parsed: Sequence[_Call | Json]) -> list[Json]:
        """Run the calls (submissions together first); responses in input order, no
        responses to notifications."""
        responses = await self._submit_together(parsed)
        for index, call in enumerate(parsed):
            if index not in responses:
                responses[index] = call if isinstance(call, dict) else await self._run_one(call)
        return [
            responses[i]
            for i, call in enumerate(parsed)
            if isinstance(call, dict) or not call.is_notification
        ]

    async def _run_one(self, call: _Call) -> Json:
        started = time.perf_counter()
        label = call.name if call.method is not None else "unknown"
        try:
            if call.method is None:
                raise RpcError(
                    METHOD_NOT_FOUND, f"the method {call.name} does not exist/is not available"
                )
            response = _response(call.id, await self._api.call(call.method, call.params))
            outcome = "ok"
        except RpcError as exc:
            response, outcome = _error(call.id, exc), "error"
        except Exception:  # the edge answers every request; the bug is logged
            log.exception("jsonrpc method failed", method=call.name)
            response = _error(call.id, RpcError(INTERNAL_ERROR, "internal error"))
            outcome = "error"
        self._record(label, outcome, started)
        return response

    async def _submit_together(self, parsed: Sequence[_Call | Json]) -> dict[int, Json]:
        """Answer every eth_sendRawTransaction in ``parsed`` through one submit call."""
        out: dict[int, Json] = {}
        submits: list[tuple[int, _Call, bytes]] = []
        for index, call in enumerate(parsed):
            if isinstance(call, dict) or call.name != EthApi.SEND_RAW or call.method is None:
                continue
            try:
                call.method.check_arity(call.params)
                submits.append((index, call, parse_raw_tx(call.params)))
            except RpcError as exc:
                out[index] = _error(call.id, exc)
                self._record(call.name, "error", time.perf_counter())
        if not submits:
            return out
        started = time.perf_counter()
        results = await self._chain.submit_raw_txs([raw for _, _, raw in submits])
        for (index, call, _), result in zip(submits, results, strict=True):
            try:
                out[index] = _response(call.id, submit_result_json(result))
                outcome = "ok"
            except RpcError as exc:
                out[index] = _error(call.id, exc)
                outcome = "error"
            self._metrics.rpc_submitted_txs.labels(
                api="jsonrpc", outcome="accepted" if result.accepted else "rejected"
            ).inc()
            self._record(call.name, outcome, started)
        return out

    def _record(self, method: str, outcome: str, started: float) -> None:
        self._metrics.rpc_requests.labels(api="jsonrpc", method=method, outcome=outcome).inc()
        self._metrics.rpc_duration.labels(api="jsonrpc", method=method).observe(
            time.perf_counter() - started
        )


class JsonRpcServer:
    """The HTTP server: ``POST /`` with a JSON-RPC body; optional CORS for browsers."""

    def __init__(
        self,
        chain: ChainView,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_JSONRPC_PORT,
        metrics: Metrics | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_batch: int = DEFAULT_MAX_BATCH,
        cors_origins: Sequence[str] = (),
    ) -> None:
        self._handler = JsonRpcHandler(chain, metrics=metrics, max_batch=max_batch)
        self._host = host
        self._port = port
        self._max_body = max_body_bytes
        self._cors = tuple(cors_origins)
        self._runner: web.AppRunner | None = None
        self.app = self._build_app()

    @property
    def port(self) -> int:
        """The bound port (differs from the requested one when that was 0)."""
        if self._runner is not None:
            for address in self._runner.addresses:
                if isinstance(address, tuple) and len(address) >= 2:
                    return int(address[1])
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}/"

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        log.info("jsonrpc server started", host=self._host, port=self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _build_app(self) -> web.Application:
        # aiohttp's own limit stays above ours so that we answer oversize bodies ourselves
        app = web.Application(client_max_size=self._max_body + 1)
        app.router.add_post("/", self._on_post)
        app.router.add_route("OPTIONS", "/", self._on_options)
        app.router.add_get("/", self._on_get)
        return app

    async def _on_post(self, request: web.Request) -> web.StreamResponse:
        too_big = request.content_length is not None and request.content_length > self._max_body
        body = b"" if too_big else await _read_capped(request, self._max_body + 1)
        if too_big or len(body) > self._max_body:
            error = RpcError(
                INVALID_REQUEST,
                f"request body exceeds the limit of {self._max_body} bytes",
            )
            return self._json(request, _error(None, error), status=413)
        result = await self._handler.handle_body(body)
        if result is None:
            return self._with_cors(request, web.Response(status=200))
        return self._json(request, result)

    async def _on_get(self, request: web.Request) -> web.StreamResponse:
        return self._with_cors(
            request,
            web.Response(
                status=405, text="JSON-RPC: use POST\n", headers={"Allow": "POST, OPTIONS"}
            ),
        )

    async def _on_options(self, request: web.Request) -> web.StreamResponse:
        return self._with_cors(request, web.Response(status=204))

    def _json(self, request: web.Request, body: object, status: int = 200) -> web.StreamResponse:
        text = json.dumps(body, separators=(",", ":"))
        return self._with_cors(
            request, web.Response(text=text, status=status, content_type="application/json")
        )

    def _with_cors(self, request: web.Request, response: web.Response) -> web.Response:
        origin = request.headers.get("Origin")
        if origin and ("*" in self._cors or origin in self._cors):
            response.headers["Access-Control-Allow-Origin"] = "*" if "*" in self._cors else origin
            response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type"
            response.headers["Access-Control-Max-Age"] = "600"
        return response


async def _read_capped(request: web.Request, limit: int) -> bytes:
    """The whole body, or its first ``limit`` bytes (``content.read(n)`` returns only what
    has arrived so far, which cuts large bodies short)."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await request.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
