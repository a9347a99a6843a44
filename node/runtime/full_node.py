"""A non-validating full node: follows committed blocks, executes them, serves the client APIs.

    sync_peers (client-API gRPC) ──GetCommittedBlocks──▶ ChainFollower (hash chain + commit
    QC of the genesis committee) ──▶ ChainStore ──▶ executor task ──▶ ChainStore
    JSON-RPC / gRPC client API ◀── NodeChainView; transactions forwarded to a validator

It holds no validator key and never joins consensus (the validator mesh needs a key); it
reaches validators through their client API only. It may start from a snapshot
(``lanenet node run --state-sync``, node/runtime/statesync.py) instead of genesis; a node
started from a snapshot holds no history below it, so its archiver drops old heights
(``archive = "prune"``) whatever the config says. It writes snapshots of its own too.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Sequence

import grpc
import structlog

from node.crypto.signing import CachingVerifier, Ed25519Verifier
from node.execution.executor import BlockResult
from node.execution.state import Account
from node.execution.tx import EthTx, UndecodableTx, recover_batch
from node.mempool.mempool import Mempool, MempoolLimits
from node.metrics.registry import Metrics
from node.protocol.validation import MessageChecker
from node.rpc.chain_view import SubmitResult
from node.rpc.grpc_api import ClientApiClient
from node.rpc.height_watch import HeightWatch
from node.runtime.config import Genesis, NodeConfig
from node.runtime.node import (
    execute_and_save,
    make_archiver,
    named_pool,
    run_archiver,
    run_snapshotter,
)
from node.runtime.statesync import (
    SyncError,
    SyncPeer,
    choose_manifest,
    fetch_blocks,
    fetch_snapshot_block,
    fetch_state,
    follower_after,
)
from node.storage.archive import Archive
from node.storage.chain_store import ChainStore
from node.storage.kv import KeyValueStore, LevelDBKV
from node.storage.snapshot import SnapshotStore, Snapshotter
from node.storage.snapshot_install import install_snapshot, is_empty
from node.types.errors import ConfigError
from node.types.messages import Block

log = structlog.get_logger("lanenet.full_node")

FOLLOW_BATCH = 256
FOLLOW_WAIT_MS = 2_000
RETRY_S = 0.5
RECENT_BLOCK_TIMES = 4096


class UpstreamPeers:
    """The validators a full node follows; ``connected_peers`` are those that answered last."""

    def __init__(self, targets: Sequence[str]) -> None:
        self.clients = [ClientApiClient(t) for t in targets]
        self.answered: set[int] = set()

    def connected_peers(self) -> frozenset[int]:
        return frozenset(self.answered)

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


async def state_sync(
    kv: KeyValueStore, genesis: Genesis, peers: Sequence[SyncPeer], checker: MessageChecker
) -> int:
    """Install the newest snapshot ``f+1`` peers agree on into the empty store ``kv``;
    returns its height."""
    needed = genesis.committee.max_faulty + 1
    manifest = await choose_manifest(peers, needed)
    log.info("state_sync_manifest", height=manifest.height, chunks=len(manifest.chunks))
    pairs = await fetch_state(peers, manifest)
    block, _later = await fetch_snapshot_block(peers, checker, manifest)
    install_snapshot(kv, manifest, pairs, block)
    log.info("state_sync_installed", height=manifest.height, accounts=len(pairs))
    return manifest.height


def message_checker(genesis: Genesis) -> MessageChecker:
    committee = genesis.committee
    verifier = CachingVerifier(Ed25519Verifier([v.public_key for v in committee.validators]))
    return MessageChecker(committee, verifier)


async def open_store(
    config: NodeConfig, genesis: Genesis, *, sync: bool, peers: Sequence[SyncPeer]
) -> LevelDBKV:
    """The node's database, state-synced first if asked for and still empty."""
    kv = LevelDBKV(config.data_dir / "db")
    if sync and is_empty(kv):
        if not peers:
            kv.close()
            raise ConfigError("--state-sync needs sync_peers in the config")
        try:
            await state_sync(kv, genesis, peers, message_checker(genesis))
        except BaseException:
            kv.close()
            raise
    return kv


class FullNode:
    """One non-validating node process: storage, block following, execution."""

    def __init__(
        self, config: NodeConfig, genesis: Genesis, kv: LevelDBKV, metrics: Metrics | None = None
    ) -> None:
        if not config.sync_peers:
            raise ConfigError("a full node needs sync_peers (validators' client API addresses)")
        self.config = config
        self.genesis = genesis
        self.committee = genesis.committee
        self.metrics = metrics or Metrics(node_id=config.name)
        self.checker = message_checker(genesis)
        self.kv = kv
        self.archive = Archive(config.archive_dir)
        self.chain = ChainStore(kv, self.archive)
        self.archiver = make_archiver(config, self.chain, self.archive)
        self.snapshots = SnapshotStore(config.data_dir / "snapshots")
        self.snapshotter = Snapshotter(
            self.chain, self.snapshots, interval=config.snapshot_interval
        )
        self.chain.apply_genesis(
            {bytes.fromhex(a[2:]): Account(0, b) for a, b in genesis.alloc.items()}
        )
        # empty: transactions go to a validator; the views read pending nonces from it
        self.mempool = Mempool(
            MempoolLimits(max_txs=1), chain_id=genesis.chain_id, base_fee=genesis.base_fee
        )
        self.transport = UpstreamPeers(config.sync_peers)
        self.committed = HeightWatch(self.chain.committed_height())
        self.executed = HeightWatch(self.chain.executed_height())
        self.block_times: OrderedDict[int, int] = OrderedDict()
        self.last_commit_ms: int | None = None
        self.slot = 0
        self.view = 0
        self.pool = named_pool("recover", 1)
        self.exec_pool = named_pool("execute", 1)
        self.archive_pool = named_pool("archive", 1)
        self.snapshot_pool = named_pool("snapshot", 1)
        self.stopping = asyncio.Event()

    # ------------------------------------------------------------ following

    async def _follow(self) -> None:
        """Fetch, verify and save committed blocks from one peer after another."""
        follower = follower_after(self.chain, self.checker)
        peer = 0
        clients = self.transport.clients
        while True:
            client = clients[peer]
            try:
                first = follower.next_height + len(follower.pending)
                blocks, _committed = await fetch_blocks(
                    client, follower, first + FOLLOW_BATCH - 1, wait_ms=FOLLOW_WAIT_MS
                )
                self.transport.answered.add(peer)
                if not blocks and follower.next_height + len(follower.pending) == first:
                    # at the tip with blocks whose commit the peer had not saved yet when
                    # it sent them: ask for them again (with their commits) next time
                    follower.reset()
            except (SyncError, grpc.aio.AioRpcError) as exc:
                log.warning("follow_peer_failed", peer=client.target, why=str(exc)[:200])
                self.transport.answered.discard(peer)
                follower.reset()
                peer = (peer + 1) % len(clients)
                await asyncio.sleep(RETRY_S)
                continue
            for block in blocks:
                self._save(block)

    def _save(self, block: Block) -> None:
        self.chain.save_block(block)
        now = int(time.time() * 1000)
        self.block_times[block.height] = now
        while len(self.block_times) > RECENT_BLOCK_TIMES:
            self.block_times.popitem(last=False)
        self.last_commit_ms = now
        self.slot = block.slot
        self.committed.advance(block.height)
        self.metrics.committed_height.set(block.height)

    # ------------------------------------------------------------ execution

    async def _execute(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            height = self.chain.executed_height() + 1
            if height > self.chain.committed_height():
                await self.committed.wait_above(height - 1)
                continue
            block = self.chain.get_block(height)
            if block is None:
                raise RuntimeError(f"committed block {height} is missing from the store")
            raws = [tx for car in block.cars for tx in car.txs]
            txs = await loop.run_in_executor(
                self.pool, recover_batch, raws, self.genesis.chain_id
            )
            await loop.run_in_executor(self.exec_pool, self._execute_and_save, height, txs)
            self.metrics.executed_height.set(height)
            self.executed.advance(height)

    def _execute_and_save(self, height: int, txs: list[EthTx | UndecodableTx]) -> BlockResult:
        return execute_and_save(self.chain, self.genesis, height, txs)

    # ------------------------------------------------------------ background storage

    async def _archive(self) -> None:
        await run_archiver(self.archive_pool, self.archiver, self.metrics)

    async def _snapshot(self) -> None:
        await run_snapshotter(self.snapshot_pool, self.snapshotter)

    # ------------------------------------------------------------ clients

    async def submit_raw_txs(self, raws: list[bytes]) -> list[SubmitResult]:
        """Forward transactions to the first validator that takes the batch."""
        for client in self.transport.clients:
            try:
                return await client.submit_batch(raws)
            except grpc.aio.AioRpcError:
                continue
        return [SubmitResult.rejected("no validator reachable") for _ in raws]

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        log.info(
            "full_node_started",
            node=self.config.name,
            committed=self.chain.committed_height(),
            executed=self.chain.executed_height(),
            peers=list(self.config.sync_peers),
        )
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(self._follow()),
                    group.create_task(self._execute()),
                    group.create_task(self._archive()),
                    group.create_task(self._snapshot()),
                ]
                await self.stopping.wait()
                for task in tasks:
                    task.cancel()
        finally:
            await self.transport.close()
            for pool in (self.pool, self.exec_pool, self.archive_pool, self.snapshot_pool):
                pool.shutdown(wait=True, cancel_futures=True)
            self.kv.close()
            log.info("node_stopped", node=self.config.name)

    @property
    def certified_height(self) -> int:
        return 0  # execution certificates travel in proposals, which a full node never sees

    def stop(self) -> None:
        self.stopping.set()
