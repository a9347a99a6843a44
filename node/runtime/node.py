"""The map of a running validator: what is wired to what.

    transport (gRPC peers) ──▶ events queue ──▶ Replica.step ──▶ effects ──▶ driver
    RPC / gRPC / forwarded txs ──▶ Ingress ──▶ mempool ──▶ feeder ──▶ TxsSubmitted
    driver: Persist ─▶ ConsensusStore (fsync before any later send), Send/Broadcast ─▶
            transport, SetTimer/CancelTimer ─▶ loop timers, Deliver ─▶ ChainStore
    executor task: committed blocks ─▶ recover senders (threads) ─▶ execute ─▶ ChainStore

Every task lives in one TaskGroup; SIGTERM sets the stop event and everything shuts down
in order (servers, transport, then the database).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import structlog

from node.crypto.signing import CachingVerifier, Ed25519Signer, Ed25519Verifier
from node.execution.executor import BlockResult, execute_block
from node.execution.keccak import keccak256
from node.execution.state import Account
from node.execution.tx import EthTx, UndecodableTx, recover_batch
from node.mempool.mempool import AddResult, Mempool, MempoolLimits, RejectReason
from node.mempool.routing import lane_of
from node.metrics.registry import CounterLike, Metrics
from node.net.config import GossipConfig, GrpcConfig
from node.net.gossip import Gossip
from node.net.grpc_transport import GrpcTransport
from node.protocol.effects import (
    Broadcast,
    CancelTimer,
    Committed,
    Deliver,
    Effect,
    Halt,
    Persist,
    Reject,
    Send,
    SetTimer,
)
from node.protocol.events import (
    Event,
    Executed,
    MessageReceived,
    Start,
    Timer,
    TimerFired,
    TxsSubmitted,
)
from node.protocol.replica import Replica
from node.rpc.chain_view import SubmitResult
from node.rpc.height_watch import HeightWatch
from node.runtime.config import Genesis, NodeConfig, p2p_identity_seed
from node.runtime.durable_txs import REFORWARD_EVERY_S, AcceptedTxs
from node.runtime.observe import ProtocolObserver
from node.runtime.senders import SenderCache
from node.runtime.statesync import with_resume_checkpoint
from node.storage import schema
from node.storage.archive import Archive
from node.storage.archiver import Archiver
from node.storage.chain_store import ChainStore
from node.storage.consensus_store import ConsensusStore
from node.storage.history import PrunedError
from node.storage.kv import LevelDBKV
from node.storage.snapshot import SnapshotStore, Snapshotter
from node.types.errors import ConfigError, FatalError
from node.types.messages import Car, Message

log = structlog.get_logger("lanenet.node")

FEE_SINK = bytes.fromhex("0000000000000000000000000000000000000fee")
MAX_QUEUED_MESSAGES = 50_000
STEP_BATCH = 256
ARCHIVE_IDLE_S = 2.0
SNAPSHOT_IDLE_S = 1.0
MAX_EARLY_RECOVERIES = 256  # cars whose senders are being recovered ahead of execution
RECOVERED_CARS_KEPT = 4096  # digests of cars already recovered: a re-sent car is not redone
RECENT_BLOCK_TIMES = 4096
GETH_REASONS = {
    RejectReason.NONCE_TOO_LOW: "nonce too low",
    RejectReason.DUPLICATE: "already known",
    RejectReason.INSUFFICIENT_BALANCE: "insufficient funds for gas * price + value",
    RejectReason.FEE_BELOW_BASE_FEE: "max fee per gas less than block base fee",
    RejectReason.REPLACEMENT_UNDERPRICED: "replacement transaction underpriced",
    RejectReason.POOL_FULL: "txpool is full",
    RejectReason.INTRINSIC_GAS: "intrinsic gas too low",
    RejectReason.TOO_LARGE: "oversized data",
}


def now_ms() -> int:
    return int(time.monotonic() * 1000)


class ValidatorNode:
    """One validator process: protocol core, storage, networking, execution, mempool."""

    def __init__(
        self,
        config: NodeConfig,
        genesis: Genesis,
        seed: bytes,
        metrics: Metrics | None = None,
        kv: LevelDBKV | None = None,
    ) -> None:
        committee = genesis.committee
        if not committee.is_member(config.index):
            raise ConfigError(f"node index {config.index} is not in the genesis committee")
        self.config = config
        self.genesis = genesis
        self.committee = committee
        self.index = config.index
        self.signer = Ed25519Signer(seed)
        if self.signer.public_key != committee.validators[config.index].public_key:
            raise ConfigError(
                f"{config.key_path}: this key is not validator {config.index}'s key in genesis"
            )
        self.metrics = metrics or Metrics(node_id=config.name)
        self.observer = ProtocolObserver(config.index, self.metrics, time.monotonic)
        self._children: dict[tuple[int, type], CounterLike] = {}
        self.verifier = CachingVerifier(
            Ed25519Verifier([v.public_key for v in committee.validators])
        )
        marker = halted_marker(config)
        if marker.exists():
            raise FatalError(
                f"{marker}: this validator halted because its execution diverged from the "
                "certified state; it must not serve or sign that state again. Rebuild its data "
                "(state sync or a fresh data_dir) and delete the file to start it."
            )
        self.kv = kv or LevelDBKV(config.data_dir / "db")  # kv: opened (and synced) by caller
        self.archive = Archive(config.archive_dir)  # serves sealed segments in either mode
        self.chain = ChainStore(self.kv, self.archive)
        self.archiver = make_archiver(config, self.chain, self.archive)
        self.snapshots = SnapshotStore(config.data_dir / "snapshots")
        self.snapshotter = Snapshotter(
            self.chain, self.snapshots, interval=config.snapshot_interval
        )
        self.consensus_store = ConsensusStore(self.kv)
        self.chain.apply_genesis(
            {bytes.fromhex(a[2:]): Account(0, b) for a, b in genesis.alloc.items()}
        )
        self.replica = Replica(committee, self.index, self.signer, self.verifier, genesis.protocol)
        records = self.consensus_store.load_all()
        self.replica.restore(with_resume_checkpoint(records, self.chain, committee.size))
        self.mempool = Mempool(
            MempoolLimits(max_txs=config.mempool_max_txs),
            chain_id=genesis.chain_id,
            base_fee=genesis.base_fee,
        )
        limits = self.mempool.limits
        self.accepted = AcceptedTxs(
            self.kv, self.index, committee.size, max_txs=limits.max_txs, max_bytes=limits.max_bytes
        )
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.timers: dict[Timer, asyncio.TimerHandle] = {}
        self.committed = HeightWatch(self.chain.committed_height())
        self.executed = HeightWatch(self.chain.executed_height())
        self.block_times: OrderedDict[int, int] = OrderedDict()
        self.last_commit_ms: int | None = None
        self.slot = 0
        self.view = 0
        self.pool = named_pool("recover", 1)
        self.exec_pool = named_pool("execute", 1)
        self.persist_pool = named_pool("persist", 1)
        self.archive_pool = named_pool("archive", 1)
        self.snapshot_pool = named_pool("snapshot", 1)
        peers = {p.index: f"{p.host}:{p.port}" for p in config.peers}
        self.transport = GrpcTransport(
            GrpcConfig(listen_host=config.listen_host, listen_port=config.grpc_port, peers=peers),
            committee,
            self.index,
            self.signer,
            self._on_peer_message,
            self._on_forwarded_txs,
            self.verifier,
        )
        self.gossip: Gossip | None = None
        if config.p2p_enabled:
            self.gossip = Gossip(
                GossipConfig(
                    enabled=True,
                    listen=f"/ip4/{config.listen_host}/tcp/{config.p2p_port}",
                    bootstrap=config.p2p_bootstrap,
                    identity_seed=p2p_identity_seed(seed),
                ),
                self._on_gossip_txs,
            )
        self.forwarded: list[bytes] = []
        self.senders = SenderCache()
        self.car_recoveries: dict[bytes, asyncio.Future[list[EthTx | UndecodableTx]]] = {}
        self.recovered_cars: dict[bytes, None] = {}  # insertion-ordered, oldest first
        self.forwarded_event = asyncio.Event()
        self.stopping = asyncio.Event()

    # ------------------------------------------------------------ inbound

    def _on_peer_message(self, sender: int, message: Message) -> None:
        if self.events.qsize() > MAX_QUEUED_MESSAGES:
            self.metrics.messages_rejected.labels(reason="queue full").inc()
            return
        self._counted(self.metrics.messages_in, type(message)).inc()
        self.observer.inbound(message)
        if isinstance(message, Car):
            self._recover_car_early(message)
        self.events.put_nowait(MessageReceived(now_ms(), sender, message))

    def _counted(self, family: CounterLike, kind: type) -> CounterLike:
        """The child of a per-message-type counter, looked up once per type (labels() is
        not free and runs for every message)."""
        key = (id(family), kind)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(type=kind.__name__)
        return child

    def _on_gossip_txs(self, source: str, txs: list[bytes]) -> None:
        self._on_forwarded_txs(-1, txs)  # only this lane's transactions are kept

    def _on_forwarded_txs(self, sender: int, txs: list[bytes]) -> None:
        self.forwarded.extend(txs)
        self.forwarded_event.set()

    # ------------------------------------------------------------ the driver

    async def _apply(self, effects: list[Effect]) -> None:
        """Carry out the effects of one or more steps with a single fsync: delivered blocks are
        saved first (a block before its ordering checkpoint), then every Persist in one
        durable batch, then messages and timers. Holding a send back until later steps'
        records are durable is always safe; revealing a record before it is durable is not.
        The fsync runs in a worker thread (LevelDB releases the GIL), so the loop keeps
        serving I/O, clients and execution meanwhile; nothing else steps the replica."""
        persists: list[Persist] = []
        rest: list[Effect] = []
        for effect in effects:
            if isinstance(effect, Persist):
                persists.append(effect)
            elif isinstance(effect, Deliver | Committed | Halt):
                self._apply_one(effect)
            else:
                rest.append(effect)
        if persists:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self.persist_pool, self.consensus_store.save, persists)
        for effect in rest:
            self._apply_one(effect)

    def _apply_one(self, effect: Effect) -> None:
        if isinstance(effect, Send):
            self.transport.send(effect.to, effect.message)
            self._counted(self.metrics.messages_out, type(effect.message)).inc()
            self.observer.outbound(effect.message)
        elif isinstance(effect, Broadcast):
            self.transport.broadcast(effect.message)
            self._counted(self.metrics.messages_out, type(effect.message)).inc()
            self.observer.outbound(effect.message)
        elif isinstance(effect, SetTimer):
            self._set_timer(effect.timer, effect.delay_ms)
        elif isinstance(effect, CancelTimer):
            handle = self.timers.pop(effect.timer, None)
            if handle is not None:
                handle.cancel()
        elif isinstance(effect, Deliver):
            self._on_deliver(effect)
        elif isinstance(effect, Committed):
            self._on_committed(effect)
        elif isinstance(effect, Reject):
            self.metrics.messages_rejected.labels(reason=effect.reason[:60]).inc()
            self.metrics.penalties.labels(peer=str(effect.peer)).inc()
            log.debug("rejected", peer=effect.peer, reason=effect.reason)
        elif isinstance(effect, Halt):
            self._halt(effect)

    def _halt(self, halt: Halt) -> None:
        """Own execution diverged from what the network certified: stop before anything else
        of this batch goes out; the process exits with code 3 (never serve that state)."""
        self.metrics.divergence.set(halt.height)
        record = {
            "height": halt.height,
            "own_commitment": halt.own.hex(),
            "certified_commitment": halt.certified.hex(),
            "reason": halt.reason,
        }
        with contextlib.suppress(OSError):  # best effort: the exit below happens regardless
            halted_marker(self.config).write_text(json.dumps(record, indent=2) + "\n")
        log.error(
            "execution_diverged",
            height=halt.height,
            own_commitment=halt.own.hex(),
            certified_commitment=halt.certified.hex(),
            reason=halt.reason,
        )
        raise FatalError(halt.reason)

    def _set_timer(self, timer: Timer, delay_ms: int) -> None:
        old = self.timers.pop(timer, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self.timers[timer] = loop.call_later(delay_ms / 1000, self._fire, timer)

    def _fire(self, timer: Timer) -> None:
        self.timers.pop(timer, None)
        self.events.put_nowait(TimerFired(now_ms(), timer))

    def _on_deliver(self, effect: Deliver) -> None:
        block = effect.block
        if block.height <= self.chain.committed_height():
            return  # re-delivered after a restart: already saved
        self.chain.save_block(block)
        self.block_times[block.height] = int(time.time() * 1000)
        while len(self.block_times) > RECENT_BLOCK_TIMES:
            self.block_times.popitem(last=False)
        self.last_commit_ms = self.block_times[block.height]
        self.committed.advance(block.height)
        self.metrics.committed_height.set(block.height)
        self.metrics.committed_txs.inc(block.tx_count)

    def _on_committed(self, effect: Committed) -> None:
        self.slot = max(self.slot, effect.slot)
        self.view = effect.view
        self.metrics.slot.set(self.slot)
        self.metrics.view.set(effect.view)
        self.metrics.commits.labels(path="fast" if effect.fast else "slow").inc()
        self.observer.committed(effect.slot)

    async def _drive(self) -> None:
        """Step the replica through queued events in batches of up to STEP_BATCH, so one
        fsync covers every vote and car record of the batch."""
        await self._apply(self.replica.step(Start(now_ms())))
        while True:
            effects = self.replica.step(await self.events.get())
            for _ in range(STEP_BATCH - 1):
                try:
                    event = self.events.get_nowait()
                except asyncio.QueueEmpty:
                    break
                effects += self.replica.step(event)
            await self._apply(effects)
            self.metrics.queue_depth.labels(queue="events").set(self.events.qsize())
            await asyncio.sleep(0)  # let I/O run even under a constant stream of events

    # ------------------------------------------------------------ execution

    async def _execute(self) -> None:
        loop = asyncio.get_running_loop()
        chain_id = self.genesis.chain_id
        interval = self.genesis.protocol.exec_cert_interval
        self._report_execution(self.chain.executed_height() // interval * interval)
        while True:
            height = self.chain.executed_height() + 1
            if height > self.chain.committed_height():
                await self.committed.wait_above(height - 1)
                continue
            block = self.chain.get_block(height)
            if block is None:
                raise RuntimeError(f"committed block {height} is missing from the store")
            raws = [tx for car in block.cars for tx in car.txs]
            started = time.perf_counter()
            for car in block.cars:
                early = self.car_recoveries.get(car.digest)
                if early is not None:
                    await asyncio.wait([early])  # started when the car arrived: nearly done
            found, missing = self.senders.take(raws)
            if missing:
                self.metrics.late_recoveries.inc(len(missing))
                again = [raws[i] for i in missing]
                for i, tx in zip(
                    missing,
                    await loop.run_in_executor(self.pool, recover_batch, again, chain_id),
                    strict=True,
                ):
                    found[i] = tx
            txs = [tx for tx in found if tx is not None]
            result = await loop.run_in_executor(self.exec_pool, self._execute_and_save, height, txs)
            nonces, skipped = result.sender_nonces(), [s.tx_hash for s in result.skipped]
            self.mempool.on_executed(nonces)
            self.mempool.remove(skipped)
            self.accepted.on_executed(nonces, skipped)
            self.metrics.execution_time.observe(time.perf_counter() - started)
            succeeded = sum(1 for r in result.receipts if r.status == 1)
            self.metrics.executed_txs.labels(status="success").inc(succeeded)
            self.metrics.executed_txs.labels(status="failed").inc(len(result.receipts) - succeeded)
            self.metrics.executed_txs.labels(status="skipped").inc(len(result.skipped))
            self.metrics.executed_height.set(height)
            self.executed.advance(height)
            self._report_execution(height)

    def _execute_and_save(self, height: int, txs: list[EthTx | UndecodableTx]) -> BlockResult:
        return execute_and_save(self.chain, self.genesis, height, txs)

    def _report_execution(self, height: int) -> None:
        """Tell the replica the state commitment after ``height`` (for execution votes).
        After a restart this runs once for the latest executed checkpoint."""
        try:
            commitment = self.chain.get_state_commitment(height) if height > 0 else None
        except PrunedError:  # below the snapshot this node started from
            return
        if commitment is None:
            return
        corrupt_at = debug_corrupt_commitment_at()
        if corrupt_at is not None and height >= corrupt_at:
            commitment = bytes([commitment[0] ^ 0xFF]) + commitment[1:]
        self.events.put_nowait(Executed(now_ms(), height, commitment))

    def _recover_car_early(self, car: Car) -> None:
        """Recover a peer car's senders in a worker thread now, for its execution later."""
        if car.lane == self.index or not car.txs:
            return
        if car.digest in self.car_recoveries or car.digest in self.recovered_cars:
            return  # a re-sent car: its senders are recovered or on the way
        if len(self.car_recoveries) >= MAX_EARLY_RECOVERIES:
            return  # far behind: execution recovers what is missing itself
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.pool, recover_batch, car.txs, self.genesis.chain_id)
        self.car_recoveries[car.digest] = future

        def done(f: asyncio.Future[list[EthTx | UndecodableTx]]) -> None:
            self.car_recoveries.pop(car.digest, None)
            if not f.cancelled() and f.exception() is None:
                self.senders.put(f.result())
                recovered = self.recovered_cars
                recovered[car.digest] = None
                if len(recovered) > RECOVERED_CARS_KEPT:
                    del recovered[next(iter(recovered))]

        future.add_done_callback(done)

    # ------------------------------------------------------------ transactions in

    async def submit_raw_txs(self, raws: list[bytes]) -> list[SubmitResult]:
        """Admit transactions for this node's lane; forward the others to their lane owner.
        Every one answered "accepted" is on disk before this returns (durable_txs.py)."""
        loop = asyncio.get_running_loop()
        txs = await loop.run_in_executor(self.pool, recover_batch, raws, self.genesis.chain_id)
        results: list[SubmitResult] = []
        forward: dict[int, list[bytes]] = {}
        now = time.monotonic()
        for tx in txs:
            if isinstance(tx, UndecodableTx):
                results.append(SubmitResult.rejected(tx.reason))
                continue
            owner = lane_of(tx.sender, self.committee.size)
            if owner != self.index:
                rejected = self.mempool.precheck(tx, self.chain.get_account(tx.sender))
                if rejected is None and not self.accepted.has_room(tx):
                    rejected = AddResult.reject(
                        RejectReason.POOL_FULL, f"{self.accepted.forwarded} forwarded, unexecuted"
                    )
                if rejected is not None:
                    results.append(self._rejection(rejected, tx))
                    continue
                self.accepted.stage(tx, owner, now)
                forward.setdefault(owner, []).append(tx.raw)
                results.append(SubmitResult.ok(tx.hash))
                continue
            results.append(self._admit(tx))
        self.accepted.flush()
        connected = self.transport.connected_peers()
        for owner, batch in forward.items():
            self.transport.send_raw_txs(owner, batch)  # buffered until the link is up
            if owner not in connected and self.gossip is not None and self.gossip.running:
                self.gossip.publish_txs(batch)  # best-effort second path while it is down
        self.metrics.mempool_txs.set(self.mempool.size)
        return results

    def _admit(self, tx: EthTx) -> SubmitResult:
        result = self.mempool.add(tx, self.chain.get_account(tx.sender))
        if result.accepted:
            self.accepted.discard(result.evicted)
            self.accepted.stage(tx, self.index, 0.0)  # replaces result.replaced (same nonce)
            self.senders.put((tx,))
            self.metrics.mempool_admitted.inc()
            return SubmitResult.ok(tx.hash)
        return self._rejection(result, tx)

    def _rejection(self, result: AddResult, tx: EthTx) -> SubmitResult:
        reason = result.reason
        self.metrics.mempool_rejected.labels(reason=str(reason)).inc()
        text = GETH_REASONS.get(reason, str(reason)) if reason is not None else "rejected"
        detail = f": {result.detail}" if result.detail else ""
        return SubmitResult.rejected(f"{text}{detail}", tx.hash)

    async def _ingest_forwarded(self) -> None:
        while True:
            await self.forwarded_event.wait()
            self.forwarded_event.clear()
            batch, self.forwarded = self.forwarded, []
            await self._ingest(batch)

    async def _ingest(self, batch: list[bytes]) -> None:
        """Admit the forwarded transactions of this lane (kept on disk as accepted). Peers
        forward again what did not execute in time by their clock (durable_txs.py), so a
        hash the pool holds, or one executed already, is dropped before the costly sender
        recovery (a hash lookup is ~1 µs, a recovery ~125 µs)."""
        loop = asyncio.get_running_loop()
        batch = [raw for raw in batch if not self._is_known(keccak256(raw))]
        txs = await loop.run_in_executor(self.pool, recover_batch, batch, self.genesis.chain_id)
        for tx in txs:
            if isinstance(tx, EthTx) and lane_of(tx.sender, self.committee.size) == self.index:
                self._admit(tx)
        self.accepted.flush()

    def _is_known(self, tx_hash: bytes) -> bool:
        """In the pool, or executed recently (the hot tier's tx index; a bloom-filtered miss)."""
        return tx_hash in self.mempool or self.kv.get(schema.tx_index_key(tx_hash)) is not None

    async def _feed_lane(self) -> None:
        """Move transactions from the mempool into the own lane, keeping at most two cars'
        worth waiting there (the lane window holds the rest back in the mempool)."""
        if debug_hold_lane():
            return
        protocol = self.genesis.protocol
        interval = protocol.car_interval_ms / 2000
        target = 2 * protocol.car_max_txs
        while True:
            await asyncio.sleep(interval)
            room = target - len(self.replica.lanes.pending)
            if room > 0 and self.mempool.size:
                txs = self.mempool.select(room, 2 * protocol.car_max_bytes)
                if txs:
                    self.mempool.mark_selected(txs)
                    self.events.put_nowait(TxsSubmitted(now_ms(), tuple(t.raw for t in txs)))
            # also when nothing moved: execution empties the pool without this loop
            self.metrics.mempool_txs.set(self.mempool.size)
            self.metrics.mempool_bytes.set(self.mempool.size_bytes)

    async def _report(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(1.0)
            if ticks % 10 == 0:
                self.metrics.db_size.labels(tier="hot").set(dir_size(self.config.data_dir / "db"))
                self.metrics.db_size.labels(tier="archive").set(dir_size(self.config.archive_dir))
            ticks += 1
            self.metrics.peers.labels(transport="grpc").set(len(self.transport.connected_peers()))
            if self.gossip is not None:
                self.metrics.peers.labels(transport="libp2p").set(len(self.gossip.peers))
            for lane, (pos, _digest) in enumerate(self.replica.lanes.last_voted):
                self.metrics.lane_tip.labels(lane=str(lane)).set(pos)

    async def _archive(self) -> None:
        await run_archiver(self.archive_pool, self.archiver, self.metrics)

    def _readmit_in_flight(self) -> int:
        """After a restart the mempool is empty, but this lane's cars sealed before the crash
        (not yet committed, or committed and not yet executed) still carry transactions.
        Put them back as in flight, so pending nonces count them and a client cannot get a
        second transaction with the same nonce accepted. Returns how many were readmitted."""
        lanes, me = self.replica.lanes, self.index
        raws: list[bytes] = []
        for height in range(self.chain.executed_height() + 1, self.chain.committed_height() + 1):
            block = self.chain.get_block(height)
            if block is not None:
                raws += [tx for car in block.cars if car.lane == me for tx in car.txs]
        for pos in range(self.replica.ordering.positions[me][0] + 1, lanes.own_tip[0] + 1):
            car = lanes.get_car(me, pos, lanes.voted[me].get(pos, b""))
            if car is not None:
                raws += car.txs
        readmitted = []
        for tx in recover_batch(raws, self.genesis.chain_id):
            if not isinstance(tx, EthTx):
                continue
            if self.mempool.add(tx, self.chain.get_account(tx.sender)).accepted:
                readmitted.append(tx)
        self.mempool.mark_selected(readmitted)
        return len(readmitted)

    def _readmit_accepted(self) -> tuple[int, int]:
        """After a restart, what this node answered "accepted" for and has not executed
        (durable_txs.py) goes back: this lane's transactions to the mempool, after
        ``_readmit_in_flight`` (those in its cars answer "already known" and stay kept),
        other lanes' to be forwarded again. Returns how many of each."""
        own = self.accepted.restore(
            self.genesis.chain_id,
            self.pool,
            lambda address: self.chain.get_account(address).nonce,
            time.monotonic(),
        )
        refused = []
        for tx in own:
            result = self.mempool.add(tx, self.chain.get_account(tx.sender))
            if not result.accepted and result.reason is not RejectReason.DUPLICATE:
                refused.append(tx.hash)
        self.accepted.discard(refused)
        self.accepted.flush()
        return len(own) - len(refused), self.accepted.forwarded

    async def _reforward(self) -> None:
        """Forward again, to connected owners, other lanes' transactions not executed within
        RETRY_S (durable_txs.py): a batch lost in transit or with an owner killed meanwhile."""
        while True:
            await asyncio.sleep(REFORWARD_EVERY_S)
            due = self.accepted.due_for_forward(time.monotonic(), self.transport.connected_peers())
            for owner, raws in due.items():
                self.transport.send_raw_txs(owner, raws)
                self.metrics.mempool_reforwarded.inc(len(raws))

    async def _snapshot(self) -> None:
        await run_snapshotter(self.snapshot_pool, self.snapshotter)

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Run until ``stop()``; servers are started by the caller around this."""
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump_tasks)
        readmitted = self._readmit_in_flight()
        if readmitted:
            log.info("readmitted_in_flight", txs=readmitted)
        own, forwarded = self._readmit_accepted()
        if own or forwarded:
            log.info("readmitted_accepted", own_lane=own, other_lanes=forwarded)
        await self.transport.start()
        if self.gossip is not None and not await self.gossip.start():
            log.warning("p2p_disabled", reason="libp2p gossip did not start; gRPC only")
        log.info(
            "node_started",
            node=self.config.name,
            index=self.index,
            committed=self.chain.committed_height(),
            executed=self.chain.executed_height(),
        )
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(self._drive()),
                    group.create_task(self._execute()),
                    group.create_task(self._ingest_forwarded()),
                    group.create_task(self._feed_lane()),
                    group.create_task(self._reforward()),
                    group.create_task(self._report()),
                    group.create_task(self._archive()),
                    group.create_task(self._snapshot()),
                ]
                await self.stopping.wait()
                for task in tasks:
                    task.cancel()
        finally:
            for handle in self.timers.values():
                handle.cancel()
            if self.gossip is not None:
                await self.gossip.stop()
            await self.transport.stop()
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.exec_pool.shutdown(wait=True, cancel_futures=True)
            self.persist_pool.shutdown(wait=True, cancel_futures=True)
            self.archive_pool.shutdown(wait=True, cancel_futures=True)
            self.snapshot_pool.shutdown(wait=True, cancel_futures=True)
            self.kv.close()
            log.info("node_stopped", node=self.config.name)

    @property
    def certified_height(self) -> int:
        """The last height the newest execution certificate this node holds covers."""
        cert = self.replica.execution.latest_cert
        return 0 if cert is None else cert.last

    def stop(self) -> None:
        self.stopping.set()


def debug_corrupt_commitment_at() -> int | None:
    """Test hook: with LANENET_DEBUG_CORRUPT_COMMITMENT_AT=H this node reports a corrupted
    state commitment for every height >= H to its replica, so the network's execution
    certificates expose it and it halts. Never set it on a real node."""
    value = os.environ.get("LANENET_DEBUG_CORRUPT_COMMITMENT_AT")
    if not value:
        return None
    if not value.isdigit():
        raise ConfigError(f"LANENET_DEBUG_CORRUPT_COMMITMENT_AT={value!r}: expected a height")
    return int(value)


def debug_hold_lane() -> bool:
    """Test hook: with LANENET_DEBUG_HOLD_LANE=1 this node never moves transactions from its
    mempool into its lane, so what it accepts stays unsealed (tests/integration/
    test_durable_txs.py kills it in that state). Never set it on a real node."""
    return os.environ.get("LANENET_DEBUG_HOLD_LANE") == "1"


def data_path(config: NodeConfig) -> Path:
    return config.data_dir


def execute_and_save(
    chain: ChainStore, genesis: Genesis, height: int, txs: list[EthTx | UndecodableTx]
) -> BlockResult:
    """Runs in the execution thread: execute block ``height`` and store its results."""
    result = execute_block(chain, height, txs, genesis.base_fee, FEE_SINK)
    chain.save_block_result(result)
    return result


def make_archiver(config: NodeConfig, chain: ChainStore, archive: Archive) -> Archiver:
    """The node's archiver. A node started from a snapshot holds no history below it, so
    with no sealed segment and a hot floor above 0 it drops old heights (``prune``)
    whatever ``archive`` says: there is nothing below to seal a gap-free archive from."""
    synced = chain.hot_floor() > 0 and archive.last_height() is None
    return Archiver(
        chain,
        hot_blocks=config.hot_blocks,
        mode="prune" if synced or config.archive == "prune" else "keep",
        segment_blocks=config.segment_blocks,
    )


async def run_archiver(pool: ThreadPoolExecutor, archiver: Archiver, metrics: Metrics) -> None:
    """Seal history older than ``hot_blocks`` into archive segments (or drop it, with
    ``archive = "prune"``), one segment per step, in a worker thread; idle when caught up.
    A FatalError (a segment that does not verify, a full disk) stops the node."""
    loop = asyncio.get_running_loop()
    while True:
        result = await loop.run_in_executor(pool, archiver.step)
        if result.archived_height is not None:
            metrics.archived_height.set(result.archived_height)
        if result.action == "idle":
            await asyncio.sleep(ARCHIVE_IDLE_S)


async def run_snapshotter(pool: ThreadPoolExecutor, snapshotter: Snapshotter) -> None:
    """Write a state snapshot every ``snapshot_interval`` executed heights
    (node/storage/snapshot.py) in a worker thread; idle in between."""
    loop = asyncio.get_running_loop()
    while True:
        result = await loop.run_in_executor(pool, snapshotter.step)
        if result.action == "created":
            log.info("snapshot_created", height=result.height, accounts=result.accounts)
        else:
            await asyncio.sleep(SNAPSHOT_IDLE_S)


def await_chain(task: asyncio.Task[object]) -> list[str]:
    """Where a task is suspended: file:line function, from the outer coroutine inwards."""
    chain: list[str] = []
    awaited: object = task.get_coro()
    while awaited is not None and len(chain) < 40:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None)
        if frame is None:
            chain.append(repr(awaited)[:120])
            break
        chain.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "ag_await", None)
    return chain


def dump_tasks() -> None:
    """SIGUSR1: log every asyncio task and where it waits (a stuck link, a stalled loop)."""
    for task in asyncio.all_tasks():
        log.warning("task_dump", task=task.get_name(), stack=await_chain(task))


def halted_marker(config: NodeConfig) -> Path:
    """Written when the node halts on diverged execution; a node that finds it refuses to
    start (a restart would serve the divergent state until the next checkpoint)."""
    return config.data_dir / "HALTED"


def name_thread(name: str) -> None:
    """Show ``name`` for the calling thread in top -H, ps -L and /proc (best effort)."""
    with contextlib.suppress(OSError):
        Path(f"/proc/self/task/{threading.get_native_id()}/comm").write_text(name[:15])


def named_pool(name: str, workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(workers, name, initializer=name_thread, initargs=(name,))


def dir_size(path: Path) -> int:
    """Bytes in the regular files under ``path`` (0 if it does not exist)."""
    total = 0
    stack = [path]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
    return total
