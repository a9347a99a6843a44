"""`lanenet node run`: one validator (or full node) process with its servers, until SIGTERM.

``role = "full"`` runs a ``FullNode`` (node/runtime/full_node.py); ``--state-sync`` makes a
node whose database is empty start from a snapshot of its ``sync_peers``; a validator then
saves verified blocks up to near their tip before it starts consensus there
(node/runtime/statesync.py). Both serve the
same JSON-RPC and client API, snapshots and committed blocks (node/runtime/statesync_serve.py).

Exit codes: 0 after a clean shutdown, 2 for a configuration the operator must fix, 3 when the
node stopped itself on a fatal error (storage failure, broken invariant), 4 when state sync
found no snapshot or peer to trust.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import structlog

from node.logging import configure_logging
from node.metrics.http import MetricsServer
from node.rpc.grpc_api import ClientApiClient, serve_client_api
from node.rpc.health import health_probes
from node.rpc.jsonrpc import JsonRpcServer
from node.runtime.chain_view import NodeChainView
from node.runtime.config import NodeConfig, load_genesis, load_node_config, load_validator_key
from node.runtime.full_node import FullNode, message_checker, open_store
from node.runtime.node import ValidatorNode
from node.runtime.statesync import SyncError, follow_to_tip
from node.runtime.statesync_serve import ChainSyncSource
from node.storage.chain_store import ChainStore
from node.storage.consensus_store import ConsensusStore
from node.types.errors import ConfigError, FatalError

log = structlog.get_logger("lanenet.process")


async def _open_node(config: NodeConfig, state_sync: bool) -> ValidatorNode | FullNode:
    genesis = load_genesis(config.genesis_path)
    peers = [ClientApiClient(target) for target in config.sync_peers]
    try:
        if config.is_full_node:
            kv = await open_store(config, genesis, sync=state_sync, peers=peers)
            return FullNode(config, genesis, kv)
        key = load_validator_key(config.key_path)
        if not state_sync:
            return ValidatorNode(config, genesis, key)
        kv = await open_store(config, genesis, sync=True, peers=peers)
        try:
            if not ConsensusStore(kv).load_all():  # a fresh (or interrupted) sync
                await follow_to_tip(ChainStore(kv), peers, message_checker(genesis))
            return ValidatorNode(config, genesis, key, kv=kv)
        except BaseException:
            kv.close()
            raise
    finally:
        for peer in peers:
            await peer.close()


async def serve(
    config_path: Path, log_format: str | None = None, *, state_sync: bool = False
) -> None:
    config = load_node_config(config_path)
    fmt = log_format or config.log_format
    configure_logging("json" if fmt == "json" else "console", config.log_level, config.name)
    node = await _open_node(config, state_sync)
    view = NodeChainView(node)
    sync = ChainSyncSource(node.chain, node.snapshots, node.committed)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, node.stop)
    host = config.listen_host
    rpc = JsonRpcServer(view, host=host, port=config.jsonrpc_port, metrics=node.metrics)
    probes = health_probes(view, metrics=node.metrics)
    metrics_server = MetricsServer(
        node.metrics.registry, probes, host=host, port=config.metrics_port
    )
    try:
        async with listening("JSON-RPC", host, config.jsonrpc_port):
            await rpc.start()
        async with listening("metrics", host, config.metrics_port):
            await metrics_server.start()
        async with listening("client gRPC", host, config.client_port):
            client_server, client_port = await serve_client_api(
                view, host=host, port=config.client_port, metrics=node.metrics, sync=sync
            )
    except BaseException:
        await rpc.stop()
        await metrics_server.stop()
        node.kv.close()  # node.run() never ran: nothing else holds the database
        raise
    log.info(
        "serving",
        jsonrpc=rpc.url,
        client_grpc=f"{host}:{client_port}",
        metrics=f"http://{host}:{metrics_server.port}/metrics",
    )
    try:
        await node.run()
    finally:
        await client_server.stop(grace=1.0)
        await rpc.stop()
        await metrics_server.stop()


@contextlib.asynccontextmanager
async def listening(what: str, host: str, port: int) -> AsyncIterator[None]:
    """Turn "address already in use" while starting a server into a ConfigError."""
    try:
        yield
    except (OSError, RuntimeError) as exc:  # grpc: RuntimeError "Failed to bind"
        in_use = isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE
        if not (in_use or "already in use" in str(exc) or "bind" in str(exc).lower()):
            raise
        raise ConfigError(
            f"cannot listen on {host}:{port} for {what}: the address is already in use "
            "(another node or program holds it)"
        ) from exc


def _fatal_in(exc: BaseException) -> FatalError | ConfigError | None:
    if isinstance(exc, FatalError | ConfigError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _fatal_in(inner)
            if found is not None:
                return found
    return None


GC_THRESHOLDS = (50_000, 20, 100)
"""A node allocates hundreds of thousands of short-lived objects per second (decoded
transactions, messages, futures), nearly all freed by reference counting. With CPython's
default thresholds (700, 10, 10) the cyclic collector ran hundreds of times a second,
rescanning the same live objects. In one run each of bench/testnet_tps.py at 2,000 tx/s
offered, these thresholds gave 1,755 instead of 1,616 committed tx/s and 7 % less CPU per
transaction."""


def tune_gc() -> None:
    """Freeze what start-up allocated (modules, config) out of the collector's reach and
    collect less often (GC_THRESHOLDS)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run_node(config_path: Path, log_format: str | None = None, *, state_sync: bool = False) -> int:
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    tune_gc()
    try:
        asyncio.run(serve(config_path, log_format, state_sync=state_sync))
    except SyncError as exc:
        print(f"lanenet: state sync failed: {exc}", file=sys.stderr)
        return 4
    except (ConfigError, FatalError, BaseExceptionGroup) as exc:
        found = _fatal_in(exc)
        if found is None:
            raise
        kind = "configuration error" if isinstance(found, ConfigError) else "fatal error"
        print(f"lanenet: {kind}: {found}", file=sys.stderr)
        return 2 if isinstance(found, ConfigError) else 3
    return 0
