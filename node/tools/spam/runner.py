"""One spam run from start to report: size and fund the pool, sign ahead, send open-loop,
watch executed blocks, settle, report.

JSON-RPC is always needed (funding reads balances and nonces); transactions go over gRPC
``SubmitBatch`` or JSON-RPC batches (``mode``), and blocks are watched on one node
(``watch``) the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp
from coincurve import PrivateKey

from node.mempool.routing import lane_of
from node.rpc.grpc_api import ClientApiClient
from node.tools.spam.endpoints import (
    BlockFeed,
    Endpoint,
    GrpcBlockFeed,
    GrpcSubmitter,
    JsonRpc,
    JsonRpcBlockFeed,
    JsonRpcSubmitter,
    Submitter,
)
from node.tools.spam.funding import fund_pool
from node.tools.spam.keys import PoolAccount, TransferSigner, derive_pool, lane_groups
from node.tools.spam.ledger import Ledger
from node.tools.spam.plan import (
    PlanSpec,
    accounts_needed,
    default_accounts,
    plan_batches,
    round_up,
    txs_per_account,
)
from node.tools.spam.progress import NoProgress, Progress, Snapshot
from node.tools.spam.report import Report, RunInfo, build_report
from node.tools.spam.sending import QueueSource, RealClock, Sender, Watcher
from node.tools.spam.signer import SigningThread, estimate_sign_seconds
from node.types.errors import ConfigError

PROGRESS_INTERVAL_S = 0.25
START_MARGIN_S = 0.5
# the value of a transfer is its send time in ms: fund for values up to a day from now
VALUE_HORIZON_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class SpamConfig:
    tps: int
    duration_s: float
    accounts: int | None = None
    mode: str = "grpc"
    route: str = "auto"
    batch_ms: int = 20
    settle_s: float = 10.0
    seed: bytes | None = None
    watch: int = 0
    sign_ahead_s: float = 60.0
    max_inflight: int = 512

    def __post_init__(self) -> None:
        if self.mode not in ("grpc", "jsonrpc"):
            raise ConfigError(f"mode must be grpc or jsonrpc, not {self.mode!r}")
        if self.route not in ("auto", "lane", "any"):
            raise ConfigError(f"route must be auto, lane or any, not {self.route!r}")
        if self.tps < 1 or self.duration_s <= 0 or self.batch_ms < 1:
            raise ConfigError("--tps, --duration and --batch-ms must be positive")


Say = Callable[[str], None]
MakeProgress = Callable[[], Progress]


@dataclass(frozen=True, slots=True)
class Network:
    chain_id: int
    validators: int
    by_lane: bool


async def run_spam(
    cfg: SpamConfig,
    endpoints: Sequence[Endpoint],
    dev_keys: Sequence[bytes],
    say: Say,
    make_progress: MakeProgress = NoProgress,
    on_sending: Callable[[], None] | None = None,
) -> Report:
    """Run ``cfg`` against ``endpoints`` and return the report; ``on_sending`` is called
    when the first batch is due (after funding and the signing lead)."""
    if not endpoints or any(e.jsonrpc is None for e in endpoints):
        raise ConfigError("every node needs a JSON-RPC URL (funding reads accounts over it)")
    if cfg.mode == "grpc" and any(e.grpc is None for e in endpoints):
        raise ConfigError("--mode grpc needs a gRPC target for every node")
    if not 0 <= cfg.watch < len(endpoints):
        raise ConfigError(f"--watch {cfg.watch}: there are {len(endpoints)} nodes")
    async with aiohttp.ClientSession() as session, contextlib.AsyncExitStack() as stack:
        rpcs = [JsonRpc(str(e.jsonrpc), session) for e in endpoints]
        net = await _network(cfg, endpoints, rpcs[cfg.watch])
        notes: list[str] = []
        if not net.by_lane:
            notes.append(
                "route any: a node answers 'accepted' for a transaction it forwards to the "
                "lane owner; a refusal there is not reported back (it shows as pending)"
            )
        pool, spec, groups = _size(cfg, net, len(endpoints), notes, say)
        signer = TransferSigner(net.chain_id)
        need = txs_per_account(spec, groups) * signer.max_cost(_value_bound(cfg))
        route = _router(rpcs, net)
        nonces = await fund_pool(rpcs[cfg.watch], route, dev_keys, pool, need, signer, say)
        submitters, feed = await _clients(cfg, endpoints, rpcs, stack)
        start_height = await _executed_height(rpcs[cfg.watch]) + 1
        info = RunInfo(
            cfg.tps,
            cfg.duration_s,
            len(pool),
            cfg.mode,
            "lane" if net.by_lane else "any",
            len(endpoints),
            cfg.batch_ms,
        )
        run = _Run(cfg, spec, signer, submitters, feed, say, make_progress, on_sending)
        ledger = await run.execute(pool, groups, nonces, start_height, notes)
        return build_report(ledger, info, notes)


async def _network(cfg: SpamConfig, endpoints: Sequence[Endpoint], rpc: JsonRpc) -> Network:
    status = await rpc.call("lanenet_status")
    if not isinstance(status, dict):
        raise ConfigError(f"{rpc.url}: lanenet_status answered {status!r}")
    validators = int(status["validators"])
    indexed = [e.index for e in endpoints] == list(range(validators))
    if cfg.route == "lane" and len(endpoints) != validators:
        raise ConfigError(f"--route lane needs all {validators} validators, in index order")
    by_lane = cfg.route == "lane" or (cfg.route == "auto" and indexed)
    return Network(int(status["chain_id"]), validators, by_lane)


def _size(
    cfg: SpamConfig, net: Network, nodes: int, notes: list[str], say: Say
) -> tuple[list[PoolAccount], PlanSpec, list[list[int]]]:
    count = cfg.accounts or default_accounts(cfg.tps, nodes)
    if net.by_lane:
        count = round_up(count, net.validators)
    wanted = accounts_needed(cfg.tps)
    if count < wanted:
        notes.append(
            f"{count} accounts is below the {wanted} that keep each account within 16 "
            f"transactions in flight at 3 s latency: expect nonce-gap or sender-full rejections"
        )
    seed = cfg.seed if cfg.seed is not None else os.urandom(16)
    pool = derive_pool(seed, count, net.validators, balanced=net.by_lane)
    groups = lane_groups(pool, net.validators) if net.by_lane else [list(range(count))]
    duration_ms = max(1, round(cfg.duration_s * 1000))
    spec = PlanSpec(cfg.tps, duration_ms, cfg.batch_ms, nodes, net.by_lane)
    say(f"{spec.total_txs} transactions from {count} accounts over {nodes} nodes")
    return pool, spec, groups


def _value_bound(cfg: SpamConfig) -> int:
    return int(time.time() * 1000) + int(cfg.duration_s * 1000) + VALUE_HORIZON_MS


def _router(rpcs: Sequence[JsonRpc], net: Network) -> Callable[[bytes], JsonRpc]:
    if not net.by_lane:
        return lambda address: rpcs[0]
    return lambda address: rpcs[lane_of(address, net.validators)]


async def _executed_height(rpc: JsonRpc) -> int:
    return int(str(await rpc.call("eth_blockNumber")), 16)


async def _clients(
    cfg: SpamConfig,
    endpoints: Sequence[Endpoint],
    rpcs: Sequence[JsonRpc],
    stack: contextlib.AsyncExitStack,
) -> tuple[list[Submitter], BlockFeed]:
    if cfg.mode == "jsonrpc":
        jsubs: list[Submitter] = [
            JsonRpcSubmitter(e.name, r) for e, r in zip(endpoints, rpcs, strict=True)
        ]
        return jsubs, JsonRpcBlockFeed(rpcs[cfg.watch])
    clients = [await stack.enter_async_context(ClientApiClient(str(e.grpc))) for e in endpoints]
    gsubs: list[Submitter] = [
        GrpcSubmitter(e.name, c) for e, c in zip(endpoints, clients, strict=True)
    ]
    # the watcher gets a channel of its own so block streaming does not queue behind submits
    watch_client = await stack.enter_async_context(ClientApiClient(str(endpoints[cfg.watch].grpc)))
    return gsubs, GrpcBlockFeed(watch_client)


class _Run:
    """The timed part of a run: signer thread, sender, watcher, progress."""

    def __init__(
        self,
        cfg: SpamConfig,
        spec: PlanSpec,
        signer: TransferSigner,
        submitters: list[Submitter],
        feed: BlockFeed,
        say: Say,
        make_progress: MakeProgress,
        on_sending: Callable[[], None] | None,
    ) -> None:
        self.cfg = cfg
        self.on_sending = on_sending
        self.spec = spec
        self.signer = signer
        self.submitters = submitters
        self.feed = feed
        self.say = say
        self.make_progress = make_progress
        self.clock = RealClock()
        self.phase = "sending"

    async def execute(
        self,
        pool: list[PoolAccount],
        groups: list[list[int]],
        nonces: list[int],
        start_height: int,
        notes: list[str],
    ) -> Ledger:
        cfg, spec = self.cfg, self.spec
        ahead = min(spec.total_txs, math.ceil(cfg.tps * cfg.sign_ahead_s))
        lead = estimate_sign_seconds(self.signer, ahead) * 1.25 + START_MARGIN_S
        self.say(f"signing {ahead} transactions ahead; sending starts in {lead:.1f} s")
        start = self.clock.monotonic() + lead
        start_ms = self.clock.wall_ms() + round(lead * 1000)
        keys = [PrivateKey(a.key) for a in pool]
        batches = plan_batches(spec, groups, nonces)
        max_batches = math.ceil(cfg.sign_ahead_s * 1000 / cfg.batch_ms)
        thread = SigningThread(batches, self.signer, keys, start_ms, max_batches)
        ledger = Ledger(spec.total_txs, start_ms)
        thread.start()
        try:
            await self._timed(ledger, QueueSource(thread.queue), start, start_height, notes)
        finally:
            thread.stop()
        return ledger

    async def _timed(
        self, ledger: Ledger, source: QueueSource, start: float, height: int, notes: list[str]
    ) -> None:
        sender = Sender(self.submitters, ledger, self.clock, self.cfg.max_inflight)
        watcher = Watcher(self.feed, ledger, self.clock)
        progress = self.make_progress()
        loop = asyncio.get_running_loop()
        interrupted = _on_sigint(loop, sender.stop)
        settled = False
        try:
            async with asyncio.TaskGroup() as group:
                watching = group.create_task(watcher.run(height))
                showing = group.create_task(self._show(progress, ledger, watcher, start))
                await self.clock.sleep_until(start)
                if self.on_sending is not None:
                    self.on_sending()
                await sender.run(source, start, group)
                self.phase = "settling"
                settled = await watcher.settle(self.cfg.settle_s)
                watching.cancel()
                showing.cancel()
        finally:
            progress.close()
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGINT)
        _add_notes(notes, ledger, sender, self.feed, settled, interrupted, self.cfg)

    async def _show(
        self, progress: Progress, ledger: Ledger, watcher: Watcher, start: float
    ) -> None:
        while True:
            now = self.clock.monotonic()
            phase = "waiting" if now < start else self.phase
            progress.update(
                Snapshot(
                    phase,
                    max(0.0, now - start),
                    ledger.counts(),
                    ledger.recent_tps(self.clock.wall_ms()),
                    ledger.recent_p50(),
                    self.cfg.tps,
                    watcher.height,
                )
            )
            await asyncio.sleep(PROGRESS_INTERVAL_S)


def _on_sigint(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> list[bool]:
    """First Ctrl-C stops sending (the run still settles and reports); the next one aborts."""
    hit: list[bool] = []

    def handle() -> None:
        hit.append(True)
        stop.set()
        loop.remove_signal_handler(signal.SIGINT)

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, handle)
    return hit


def _add_notes(
    notes: list[str],
    ledger: Ledger,
    sender: Sender,
    feed: BlockFeed,
    settled: bool,
    interrupted: list[bool],
    cfg: SpamConfig,
) -> None:
    if interrupted:
        notes.append("interrupted: sending stopped early")
    if not settled:
        notes.append(
            f"{ledger.counts().pending} accepted transactions still pending after "
            f"--settle {cfg.settle_s:g} s"
        )
    reconnects = getattr(feed, "reconnects", 0)
    if reconnects:
        last_error = getattr(feed, "last_error", "")
        notes.append(f"block feed re-opened {reconnects} times (last error: {last_error})")
    lags = sorted(ledger.lags)
    if lags and lags[len(lags) * 99 // 100] > 5 * cfg.batch_ms:
        notes.append(
            "the spammer fell behind its schedule (p99 send lag above 5 batch intervals): "
            "the load generator, not only the nodes, limited this run"
        )
    if sender.cap_waits:
        notes.append(
            f"{sender.cap_waits} batches waited for one of the {sender.max_inflight} "
            "in-flight RPC slots: the nodes answered too slowly for an open loop"
        )
    if ledger.counts().rejected:
        notes.append(
            "nonces are pre-signed: a refused transaction leaves the later ones of its account "
            "behind a nonce gap (refused as such, or pending until --settle ends)"
        )
    if ledger.rejected_then_committed:
        notes.append(
            f"{ledger.rejected_then_committed} transactions reported rejected were "
            "committed anyway (counted as committed)"
        )
