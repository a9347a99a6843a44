"""The nodes as the spammer sees them: where they listen, and their client APIs behind two
small interfaces, ``Submitter`` (a batch of raw transactions in, one verdict each out) and
``BlockFeed`` (executed blocks in height order, as lists of transaction hashes).

gRPC: ``SubmitBatch`` and the ``StreamBlocks`` stream (re-opened from the next height if it
breaks). JSON-RPC: a batch of ``eth_sendRawTransaction`` calls per submission (split at the
server's batch limit) and polling of ``eth_blockNumber`` / ``eth_getBlockByNumber``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiohttp
import grpc

from node.rpc.grpc_api import ClientApiClient
from node.runtime.config import load_node_config
from node.tools import testnet
from node.types.errors import ConfigError

Outcome = tuple[bool, str]
JSONRPC_MAX_BATCH = 1000
POLL_INTERVAL_S = 0.05
RECONNECT_DELAY_S = 0.2
NOT_FOUND_RETRY_S = 0.01
_BLOCKS_PER_POLL = 64


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One node: its validator index (None when unknown) and its client API addresses."""

    index: int | None
    name: str
    jsonrpc: str | None
    grpc: str | None


def endpoints_from_dir(directory: Path) -> list[Endpoint]:
    """The nodes of a testnet written by ``lanenet testnet generate``, by validator index."""
    found = []
    for node_dir in testnet.node_dirs(directory):
        cfg = load_node_config(node_dir / "config.toml")
        host = cfg.listen_host
        found.append(
            Endpoint(
                cfg.index,
                cfg.name,
                f"http://{host}:{cfg.jsonrpc_port}",
                f"{host}:{cfg.client_port}",
            )
        )
    return sorted(found, key=lambda e: e.index or 0)


def endpoints_from_lists(rpc: Sequence[str], grpc_targets: Sequence[str]) -> list[Endpoint]:
    """Nodes given on the command line; the i-th URL of each list is the same node."""
    if rpc and grpc_targets and len(rpc) != len(grpc_targets):
        raise ConfigError("--rpc and --grpc must list the same nodes in the same order")
    count = max(len(rpc), len(grpc_targets))
    return [
        Endpoint(
            None,
            f"node{i}",
            rpc[i] if rpc else None,
            grpc_targets[i] if grpc_targets else None,
        )
        for i in range(count)
    ]


class RpcFailure(Exception):
    """A JSON-RPC call answered an error object."""


class JsonRpc:
    """A small async JSON-RPC 2.0 client over one aiohttp session."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self._session = session
        self._ids = itertools.count(1)

    async def call(self, method: str, *params: object) -> object:
        [(result, error)] = await self.batch([(method, list(params))])
        if error is not None:
            raise RpcFailure(f"{self.url} {method}: {error}")
        return result

    async def batch(
        self, calls: Sequence[tuple[str, list[object]]]
    ) -> list[tuple[object, str | None]]:
        """(result, error message) per call, in order."""
        first = next(self._ids)
        body = [
            {"jsonrpc": "2.0", "id": first + i, "method": m, "params": p}
            for i, (m, p) in enumerate(calls)
        ]
        for _ in range(len(calls) - 1):
            next(self._ids)
        async with self._session.post(self.url, json=body) as resp:
            replies = await resp.json(content_type=None)
        if not isinstance(replies, list):
            raise RpcFailure(f"{self.url}: expected a batch reply, got {str(replies)[:200]}")
        by_id = {r.get("id"): r for r in replies if isinstance(r, dict)}
        out: list[tuple[object, str | None]] = []
        for i in range(len(calls)):
            reply = by_id.get(first + i, {"error": {"message": "no reply"}})
            error = reply.get("error")
            out.append((reply.get("result"), None if error is None else _message(error)))
        return out


def _message(error: object) -> str:
    if isinstance(error, dict):
        return str(error.get("message", error))
    return str(error)


# ------------------------------------------------------------------------------ submitters


class Submitter(Protocol):
    name: str

    async def submit(self, raws: list[bytes]) -> list[Outcome]: ...


class GrpcSubmitter:
    def __init__(self, name: str, client: ClientApiClient) -> None:
        self.name = name
        self._client = client

    async def submit(self, raws: list[bytes]) -> list[Outcome]:
        results = await self._client.submit_batch(raws)
        return [(r.accepted, r.reason) for r in results]


class JsonRpcSubmitter:
    def __init__(self, name: str, rpc: JsonRpc) -> None:
        self.name = name
        self._rpc = rpc

    async def submit(self, raws: list[bytes]) -> list[Outcome]:
        out: list[Outcome] = []
        for start in range(0, len(raws), JSONRPC_MAX_BATCH):
            chunk = raws[start : start + JSONRPC_MAX_BATCH]
            calls: list[tuple[str, list[object]]] = [
                ("eth_sendRawTransaction", ["0x" + raw.hex()]) for raw in chunk
            ]
            replies = await self._rpc.batch(calls)
            out.extend((error is None, error or "") for _, error in replies)
        return out


# ------------------------------------------------------------------------------ block feeds


@dataclass(frozen=True, slots=True)
class SeenBlock:
    """An executed block: its transactions and, when the API gives it in milliseconds, the
    wall-clock time the node recorded its commit."""

    height: int
    tx_hashes: Sequence[bytes]
    commit_ms: int | None = None


class BlockFeed(Protocol):
    def blocks(self, start_height: int) -> AsyncIterator[SeenBlock]: ...


class GrpcBlockFeed:
    """Executed blocks from ``StreamBlocks``; the stream is re-opened where it broke."""

    def __init__(self, client: ClientApiClient) -> None:
        self._client = client
        self.reconnects = 0
        self.last_error = ""

    async def blocks(self, start_height: int) -> AsyncIterator[SeenBlock]:
        next_height = start_height
        while True:
            try:
                async for summary in self._client.stream_blocks(next_height):
                    if summary.height < next_height:
                        continue
                    next_height = summary.height + 1
                    yield SeenBlock(summary.height, summary.tx_hashes, summary.timestamp_ms)
            except grpc.aio.AioRpcError as exc:
                self.reconnects += 1
                self.last_error = f"{exc.code().name}: {exc.details()}"
                # NOT_FOUND: the node streamed past its executed height; it will be there soon
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    await asyncio.sleep(NOT_FOUND_RETRY_S)
                    continue
            await asyncio.sleep(RECONNECT_DELAY_S)


class JsonRpcBlockFeed:
    """Executed blocks by polling ``eth_blockNumber`` and ``eth_getBlockByNumber``."""

    def __init__(self, rpc: JsonRpc) -> None:
        self._rpc = rpc
        self.reconnects = 0
        self.last_error = ""

    async def blocks(self, start_height: int) -> AsyncIterator[SeenBlock]:
        next_height = start_height
        while True:
            try:
                head = int(str(await self._rpc.call("eth_blockNumber")), 16)
                while next_height <= head:
                    last = min(head, next_height + _BLOCKS_PER_POLL - 1)
                    for block in await self._fetch(next_height, last):
                        yield block
                        next_height = block.height + 1
                    if next_height <= last:
                        break  # a block the node listed is not readable yet: poll again
            except (aiohttp.ClientError, RpcFailure, ValueError) as exc:
                self.reconnects += 1
                self.last_error = str(exc)
            await asyncio.sleep(POLL_INTERVAL_S)

    async def _fetch(self, first: int, last: int) -> list[SeenBlock]:
        calls: list[tuple[str, list[object]]] = [
            ("eth_getBlockByNumber", [hex(h), False]) for h in range(first, last + 1)
        ]
        found = []
        for height, (block, _error) in zip(
            range(first, last + 1), await self._rpc.batch(calls), strict=True
        ):
            if not isinstance(block, dict):
                break
            hashes = [bytes.fromhex(str(h)[2:]) for h in block.get("transactions", [])]
            found.append(SeenBlock(height, hashes))
        return found
