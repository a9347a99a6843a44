"""The JSON-RPC HTTP server on 127.0.0.1: POST bodies, size limit, CORS, other verbs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from node.metrics.registry import Metrics
from node.rpc.hexjson import INVALID_REQUEST
from node.rpc.jsonrpc import JsonRpcServer
from tests.unit.rpc.helpers import CHAIN_ID, funded_chain, signed_transfer

Check = Callable[[aiohttp.ClientSession, str], Awaitable[None]]


def _with_server(check: Check, **server_args: Any) -> None:
    async def main() -> None:
        server = JsonRpcServer(funded_chain(), host="127.0.0.1", port=0, **server_args)
        await server.start()
        try:
            async with aiohttp.ClientSession() as session:
                await check(session, server.url)
        finally:
            await server.stop()

    asyncio.run(main())


def test_single_and_batch_requests_over_http() -> None:
    """A single request returns an object, a batch a list, both as application/json."""

    async def check(session: aiohttp.ClientSession, url: str) -> None:
        single = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}
        async with session.post(url, json=single) as response:
            assert response.status == 200
            assert response.content_type == "application/json"
            assert await response.json() == {"jsonrpc": "2.0", "id": 1, "result": hex(CHAIN_ID)}
        raw = "0x" + signed_transfer(nonce=0).hex()
        batch = [
            {"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": [raw]},
            {"jsonrpc": "2.0", "id": 2, "method": "net_version"},
        ]
        async with session.post(url, json=batch) as response:
            body = await response.json()
            assert [r["id"] for r in body] == [1, 2]
            assert len(body[0]["result"]) == 66
            assert body[1]["result"] == str(CHAIN_ID)

    _with_server(check)


def test_oversized_body_is_refused_with_413() -> None:
    """A body over the limit answers HTTP 413 with a JSON-RPC -32600 naming the limit."""

    async def check(session: aiohttp.ClientSession, url: str) -> None:
        big = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "x" * 2000})
        async with session.post(url, data=big) as response:
            assert response.status == 413
            body = await response.json()
            assert body["error"]["code"] == INVALID_REQUEST
            assert "exceeds the limit of 1024 bytes" in body["error"]["message"]

        async def chunks() -> Any:
            for _ in range(4):
                yield b" " * 512

        async with session.post(url, data=chunks()) as response:  # no Content-Length
            assert response.status == 413

    _with_server(check, max_body_bytes=1024)


def test_parse_error_over_http_is_still_http_200() -> None:
    """JSON-RPC errors travel in a 200 response, as geth sends them."""

    async def check(session: aiohttp.ClientSession, url: str) -> None:
        async with session.post(url, data=b"{oops") as response:
            assert response.status == 200
            assert (await response.json())["error"]["code"] == -32700

    _with_server(check)


def test_get_is_not_allowed() -> None:
    """GET / answers 405 pointing at POST."""

    async def check(session: aiohttp.ClientSession, url: str) -> None:
        async with session.get(url) as response:
            assert response.status == 405
            assert "POST" in response.headers["Allow"]

    _with_server(check)


def test_cors_headers_only_for_allowed_origins() -> None:
    """With CORS origins configured, a preflight from an allowed origin gets the headers."""

    async def check(session: aiohttp.ClientSession, url: str) -> None:
        headers = {"Origin": "http://wallet.local", "Access-Control-Request-Method": "POST"}
        async with session.options(url, headers=headers) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == "http://wallet.local"
        async with session.options(url, headers={"Origin": "http://evil.local"}) as response:
            assert "Access-Control-Allow-Origin" not in response.headers

    _with_server(check, cors_origins=["http://wallet.local"])


def test_requests_are_counted_in_metrics() -> None:
    """Each call is counted by method and outcome on the node's registry."""
    metrics = Metrics(process_metrics=False)

    async def check(session: aiohttp.ClientSession, url: str) -> None:
        for method in ("eth_chainId", "eth_chainId", "eth_nope"):
            async with session.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method}):
                pass

    _with_server(check, metrics=metrics)
    sample = metrics.registry.get_sample_value
    labels = {"api": "jsonrpc", "method": "eth_chainId", "outcome": "ok"}
    assert sample("lanenet_rpc_requests_total", labels) == 2
    labels = {"api": "jsonrpc", "method": "unknown", "outcome": "error"}
    assert sample("lanenet_rpc_requests_total", labels) == 1
