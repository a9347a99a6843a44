"""The gRPC client API (service ``lanenet.v1.Client``) and an async client for it.

``add_client_service(server, chain)`` mounts the service on the node's ``grpc.aio``
server, beside the validator service. Transactions arrive in batches (``SubmitBatch``),
never one call per transaction; ``StreamBlocks`` sends every committed block in order
from a start height, reading blocks it missed from the chain rather than buffering them,
so a slow reader costs no memory. ``ClientApiClient`` is what the spammer and tools use.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Final, NoReturn, Protocol, TypeVar

import grpc
import structlog

from node.metrics.registry import Metrics, NoopMetrics
from node.rpc import grpc_codec as codec
from node.rpc.chain_view import ChainStatus, ChainView, ReceiptInfo, SubmitResult
from node.types.errors import MalformedMessage

DEFAULT_MAX_BATCH_TXS: Final = 10_000
DEFAULT_MAX_MESSAGE_BYTES: Final = 64 << 20
MAX_SYNC_BLOCKS: Final = 256
"""Blocks per ``GetCommittedBlocks`` reply (fewer once ``MAX_SYNC_REPLY_BYTES`` is reached)."""
MAX_SYNC_REPLY_BYTES: Final = 16 << 20
MAX_WAIT_MS: Final = 30_000

log = structlog.get_logger("rpc")

_Reply = TypeVar("_Reply")


class SyncSource(Protocol):
    """What a node serves to nodes that state-sync or follow it (node/runtime/statesync*.py):
    snapshot manifests and chunks, and committed blocks with their commits, wire-encoded."""

    def get_snapshot_manifest(self, height: int | None) -> bytes | None: ...

    def get_snapshot_chunk(self, height: int, index: int) -> bytes | None: ...

    def get_committed_blocks(
        self, first: int, last: int, max_bytes: int
    ) -> list[tuple[bytes, bytes]]: ...

    def committed_height(self) -> int: ...

    async def wait_committed(self, above: int) -> int: ...


class ClientService:
    """The ``Client`` service's methods over a ``ChainView`` (and a ``SyncSource``)."""

    def __init__(
        self,
        chain: ChainView,
        *,
        metrics: Metrics | None = None,
        max_batch_txs: int = DEFAULT_MAX_BATCH_TXS,
        sync: SyncSource | None = None,
    ) -> None:
        self._chain = chain
        self._sync = sync
        self._metrics = metrics or NoopMetrics()
        self._max_batch = max_batch_txs

    async def _observe(
        self, method: str, context: grpc.aio.ServicerContext, body: Callable[[], Awaitable[_Reply]]
    ) -> _Reply:
        """Run ``body``, turning bad input into INVALID_ARGUMENT, and count the call."""
        started = time.perf_counter()
        outcome = "error"
        try:
            reply = await body()
            outcome = "ok"
            return reply
        except MalformedMessage as exc:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        finally:
            self._metrics.rpc_requests.labels(api="grpc", method=method, outcome=outcome).inc()
            self._metrics.rpc_duration.labels(api="grpc", method=method).observe(
                time.perf_counter() - started
            )

    async def SubmitBatch(  # noqa: N802  # gRPC method names are the proto's
        self, request: codec.TxBatchMsg, context: grpc.aio.ServicerContext
    ) -> codec.SubmitResultsMsg:
        async def body() -> codec.SubmitResultsMsg:
            if len(request.txs) > self._max_batch:
                raise MalformedMessage(
                    f"txs: batch of {len(request.txs)} exceeds the limit of {self._max_batch}"
                )
            results = await self._chain.submit_raw_txs([bytes(t) for t in request.txs])
            accepted = sum(r.accepted for r in results)
            submitted = self._metrics.rpc_submitted_txs
            submitted.labels(api="grpc", outcome="accepted").inc(accepted)
            submitted.labels(api="grpc", outcome="rejected").inc(len(results) - accepted)
            return codec.encode_submit_results(results)

        return await self._observe("SubmitBatch", context, body)

    async def GetBlock(  # noqa: N802
        self, request: codec.GetBlockRequestMsg, context: grpc.aio.ServicerContext
    ) -> codec.BlockMsg:
        async def body() -> codec.BlockMsg:
            which = codec.block_selector(request)
            full = request.full_txs
            if isinstance(which, bytes):
                block = self._chain.get_block_by_hash(which, full_txs=full)
            else:
                height = self._chain.committed_height() if which is None else which
                block = self._chain.get_block(height, full_txs=full)
            if block is None:
                await _abort(context, grpc.StatusCode.NOT_FOUND, f"no block {which!r}")
            return codec.encode_block(block)

        return await self._observe("GetBlock", context, body)

    async def GetTransaction(  # noqa: N802
        self, request: codec.GetTransactionRequestMsg, context: grpc.aio.ServicerContext
    ) -> codec.TxMsg:
        async def body() -> codec.TxMsg:
            tx = self._chain.get_tx(codec.request_hash(request.hash, "hash"))
            if tx is None:
                await _abort(context, grpc.StatusCode.NOT_FOUND, "unknown transaction")
            return codec.encode_tx(tx)

        return await self._observe("GetTransaction", context, body)

    async def GetReceipt(  # noqa: N802
        self, request: codec.GetReceiptRequestMsg, context: grpc.aio.ServicerContext
    ) -> codec.ReceiptMsg:
        async def body() -> codec.ReceiptMsg:
            receipt = self._chain.get_receipt(codec.request_hash(request.tx_hash, "tx_hash"))
            if receipt is None:
                await _abort(context, grpc.StatusCode.NOT_FOUND, "no receipt (unknown or pending)")
            return codec.encode_receipt(receipt)

        return await self._observe("GetReceipt", context, body)

    async def Status(  # noqa: N802
        self, request: codec.StatusRequestMsg, context: grpc.aio.ServicerContext
    ) -> codec.StatusMsg:
        async def body() -> codec.StatusMsg:
            return codec.encode_status(self._chain.status())

        return await self._observe("Status", context, body)

    async def StreamBlocks(  # noqa: N802
        self, request: codec.StreamRequestMsg, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[codec.BlockSummaryMsg]:
        self._metrics.rpc_requests.labels(api="grpc", method="StreamBlocks", outcome="ok").inc()
        start = codec.stream_start(request)
        next_height = self._chain.executed_height() + 1 if start is None else start
        while True:
            while next_height <= self._chain.executed_height():
                block = self._chain.get_block(next_height)
                if block is None:
                    await _abort(
                        context, grpc.StatusCode.NOT_FOUND, f"block {next_height} is not available"
                    )
                yield codec.encode_summary(block)
                next_height += 1
            await self._chain.wait_for_execution(next_height - 1)

    # ------------------------------------------------------------ state sync

    async def _sync_source(self, context: grpc.aio.ServicerContext) -> SyncSource:
        if self._sync is None:
            await _abort(context, grpc.StatusCode.UNIMPLEMENTED, "this node serves no sync data")
        return self._sync

    async def GetSnapshotManifest(  # noqa: N802
        self, request: codec.SnapshotManifestRequestMsg, context: grpc.aio.ServicerContext
    ) -> codec.SnapshotManifestMsg:
        async def body() -> codec.SnapshotManifestMsg:
            sync = await self._sync_source(context)
            height = request.height if request.HasField("height") else None
            data = sync.get_snapshot_manifest(height)
            if data is None:
                await _abort(context, grpc.StatusCode.NOT_FOUND, "no such snapshot")
            return codec.SnapshotManifestMsg(manifest=data)

        return await self._observe("GetSnapshotManifest", context, body)

    async def GetSnapshotChunk(  # noqa: N802
        self, request: codec.SnapshotChunkRequestMsg, context: grpc.aio.ServicerContext
    ) -> codec.SnapshotChunkMsg:
        async def body() -> codec.SnapshotChunkMsg:
            sync = await self._sync_source(context)
            data = sync.get_snapshot_chunk(request.height, request.index)
            if data is None:
                what = f"chunk {request.index} of snapshot {request.height}"
                await _abort(context, grpc.StatusCode.NOT_FOUND, f"no {what}")
            return codec.SnapshotChunkMsg(data=data)

        return await self._observe("GetSnapshotChunk", context, body)

    async def GetCommittedBlocks(  # noqa: N802
        self, request: codec.CommittedBlocksRequestMsg, context: grpc.aio.ServicerContext
    ) -> codec.CommittedBlocksMsg:
        async def body() -> codec.CommittedBlocksMsg:
            sync = await self._sync_source(context)
            first, last = request.from_height, request.to_height
            if first < 1 or last < first:
                raise MalformedMessage(f"bad block range {first}..{last}")
            last = min(last, first + MAX_SYNC_BLOCKS - 1)
            wait_s = min(request.wait_ms, MAX_WAIT_MS) / 1000
            if wait_s and sync.committed_height() < first:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(sync.wait_committed(first - 1), wait_s)
            found = sync.get_committed_blocks(first, last, MAX_SYNC_REPLY_BYTES)
            return codec.CommittedBlocksMsg(
                blocks=[codec.CommittedBlockMsg(block=b, commit=c) for b, c in found],
                committed_height=sync.committed_height(),
            )

        return await self._observe("GetCommittedBlocks", context, body)


async def _abort(
    context: grpc.aio.ServicerContext, code: grpc.StatusCode, details: str
) -> NoReturn:
    """End the call with ``code``; grpc's ``abort`` raises, which the types cannot tell."""
    await context.abort(code, details)
    raise AssertionError("grpc.aio abort returned")


def add_client_service(
    server: grpc.aio.Server,
    chain: ChainView,
    *,
    metrics: Metrics | None = None,
    max_batch_txs: int = DEFAULT_MAX_BATCH_TXS,
    sync: SyncSource | None = None,
) -> ClientService:
    """Mount the ``lanenet.v1.Client`` service on ``server`` (before ``server.start()``)."""
    service = ClientService(chain, metrics=metrics, max_batch_txs=max_batch_txs, sync=sync)
    codec.add_servicer(service, server)
    return service


async def serve_client_api(
    chain: ChainView,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    metrics: Metrics | None = None,
    sync: SyncSource | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Start a ``grpc.aio`` server with only the client service; returns it and its port.

    For tools and tests; the node mounts the service on its own server instead.
    """
    server = grpc.aio.server(options=_message_size_options(DEFAULT_MAX_MESSAGE_BYTES))
    add_client_service(server, chain, metrics=metrics, sync=sync)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    log.info("grpc client api started", host=host, port=bound)
    return server, bound


def _message_size_options(limit: int) -> list[tuple[str, int]]:
    return [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]


class ClientApiClient:
    """An async client of one node's client API (``async with ClientApiClient(target)``)."""

    def __init__(self, target: str, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self.target = target
        self._channel = grpc.aio.insecure_channel(
            target, options=_message_size_options(max_message_bytes)
        )
        self._stub = codec.make_stub(self._channel)

    async def __aenter__(self) -> ClientApiClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def submit_batch(self, raws: list[bytes]) -> list[SubmitResult]:
        reply = await self._stub.SubmitBatch(codec.TxBatchMsg(txs=raws))
        return codec.decode_submit_results(reply, len(raws))

    async def get_block(
        self, block: int | bytes | None = None, *, full_txs: bool = False
    ) -> codec.RawBlock | None:
        """The block at a height, with a hash, or the latest (None); None if there is none."""
        request = codec.encode_block_request(block, full_txs)
        reply = await _none_if_not_found(self._stub.GetBlock(request))
        return None if reply is None else codec.decode_block(reply)

    async def get_transaction(self, tx_hash: bytes) -> codec.TxRecord | None:
        request = codec.GetTransactionRequestMsg(hash=tx_hash)
        reply = await _none_if_not_found(self._stub.GetTransaction(request))
        return None if reply is None else codec.decode_tx(reply)

    async def get_receipt(self, tx_hash: bytes) -> ReceiptInfo | None:
        request = codec.GetReceiptRequestMsg(tx_hash=tx_hash)
        reply = await _none_if_not_found(self._stub.GetReceipt(request))
        return None if reply is None else codec.decode_receipt(reply)

    async def status(self) -> ChainStatus:
        return codec.decode_status(await self._stub.Status(codec.StatusRequestMsg()))

    async def stream_blocks(
        self, start_height: int | None = None
    ) -> AsyncGenerator[codec.BlockSummary, None]:
        """Committed blocks from ``start_height`` (default: the next commit), until cancelled."""
        call = self._stub.StreamBlocks(codec.encode_stream_request(start_height))
        try:
            async for msg in call:
                yield codec.decode_summary(msg)
        finally:
            call.cancel()

    async def get_snapshot_manifest(self, height: int | None = None) -> bytes | None:
        """The canonical manifest bytes of the node's newest snapshot (or of ``height``)."""
        request = codec.SnapshotManifestRequestMsg()
        if height is not None:
            request.height = height
        reply = await _none_if_not_found(self._stub.GetSnapshotManifest(request))
        return None if reply is None else bytes(reply.manifest)

    async def get_snapshot_chunk(self, height: int, index: int) -> bytes | None:
        request = codec.SnapshotChunkRequestMsg(height=height, index=index)
        reply = await _none_if_not_found(self._stub.GetSnapshotChunk(request))
        return None if reply is None else bytes(reply.data)

    async def get_committed_blocks(
        self, first: int, last: int, *, wait_ms: int = 0
    ) -> tuple[list[tuple[bytes, bytes]], int]:
        """``([(block, commit), ...], committed height)``: wire-encoded blocks from ``first``
        (the commit is b"" when the node no longer holds it); decode and verify them with
        node/runtime/statesync.py."""
        request = codec.CommittedBlocksRequestMsg(
            from_height=first, to_height=last, wait_ms=wait_ms
        )
        reply = await self._stub.GetCommittedBlocks(request)
        blocks = [(bytes(b.block), bytes(b.commit)) for b in reply.blocks]
        return blocks, int(reply.committed_height)


async def _none_if_not_found(call: Awaitable[_Reply]) -> _Reply | None:
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise
