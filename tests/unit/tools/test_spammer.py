"""The spammer: its plan keeps the rate and routing, its ledger's counts add up, its sender
is open-loop, and a whole run against an in-memory chain reports what happened."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from coincurve import PrivateKey

from node.execution.signing import address_of, sign_1559
from node.execution.tx import decode_tx
from node.mempool.routing import lane_of
from node.rpc.chain_view import BlockInfo
from node.rpc.fake_chain import FakeChain
from node.rpc.grpc_api import ClientApiClient, serve_client_api
from node.rpc.jsonrpc import JsonRpcServer
from node.tools import spammer
from node.tools.spam.endpoints import Endpoint, GrpcBlockFeed, Outcome, SeenBlock
from node.tools.spam.keys import SINK, TransferSigner, derive_pool, lane_groups
from node.tools.spam.ledger import Ledger, percentile, reason_key
from node.tools.spam.plan import (
    PlanSpec,
    accounts_needed,
    default_accounts,
    plan_batches,
    target_shares,
    txs_due,
    txs_per_account,
)
from node.tools.spam.report import RunInfo, build_report, render_text, steady_tps
from node.tools.spam.runner import SpamConfig, run_spam
from node.tools.spam.sending import ListSource, Sender, Watcher
from node.tools.spam.signer import SignedBatch, SigningThread, sign_batch
from node.types.errors import ConfigError

CHAIN_ID = 4242
START_MS = 1_800_000_000_000


# ------------------------------------------------------------------------------ plan


@pytest.mark.parametrize(
    ("tps", "duration_ms", "batch_ms"),
    [(200, 5000, 20), (2000, 1000, 20), (7, 3000, 20), (333, 1000, 7), (50_000, 200, 50)],
)
def test_plan_never_drifts_a_whole_transaction_from_the_rate(
    tps: int, duration_ms: int, batch_ms: int
) -> None:
    """After every batch, the planned count is floor(tps * elapsed) and the total is exact."""
    spec = PlanSpec(tps, duration_ms, batch_ms, nodes=4)
    sent = 0
    for batch in plan_batches(spec, [list(range(50))], [0] * 50):
        assert batch.offset_ms % batch_ms == 0
        assert batch.first_tx == sent
        sent += len(batch.txs)
        assert sent == txs_due(tps, batch.offset_ms + batch_ms)
    assert sent == spec.total_txs == tps * spec.ticks * batch_ms // 1000


def test_plan_sends_batches_to_the_nodes_in_turn() -> None:
    """Non-empty batches go to node 0, 1, 2, 3, 0, ... and their shares are even."""
    spec = PlanSpec(7, 10_000, 20, nodes=4)
    targets = [b.target for b in plan_batches(spec, [[0, 1]], [0, 0])]
    assert targets == [i % 4 for i in range(len(targets))]
    shares = target_shares(spec)
    assert sum(shares) == spec.total_txs and max(shares) - min(shares) <= 1


def test_plan_by_lane_only_sends_each_node_its_own_accounts() -> None:
    """With lane routing, node i's batches hold only lane-i accounts, nonces in order."""
    pool = derive_pool(b"seed", 40, lanes=4, balanced=True)
    groups = lane_groups(pool, 4)
    assert [len(g) for g in groups] == [10] * 4
    spec = PlanSpec(1000, 2000, 20, nodes=4, by_lane=True)
    start = [random.Random(1).randrange(5) for _ in pool]
    next_nonce = list(start)
    for batch in plan_batches(spec, groups, start):
        for account, nonce in batch.txs:
            assert pool[account].lane == batch.target
            assert lane_of(pool[account].address, 4) == batch.target
            assert nonce == next_nonce[account]
            next_nonce[account] += 1
    sent = [n - s for n, s in zip(next_nonce, start, strict=True)]
    assert max(sent) <= txs_per_account(spec, groups)
    assert max(sent) - min(sent) <= 1 + spec.tps * spec.batch_ms // 1000


def test_pool_is_sized_for_the_in_flight_window() -> None:
    """The default pool keeps each account within 16 in flight at 3 s, splits over nodes."""
    assert accounts_needed(2000) == 375
    assert default_accounts(2000, 4) == 376
    assert default_accounts(100, 4) == 200
    with pytest.raises(ConfigError):
        plan_batches(PlanSpec(10, 100, 20, nodes=2, by_lane=True), [[0]], [0]).__next__()


# ------------------------------------------------------------------------------ keys, signing


def test_transfer_signer_matches_the_reference_signer() -> None:
    """TransferSigner produces exactly sign_1559's bytes, and the hash decode_tx computes."""
    signer = TransferSigner(CHAIN_ID)
    for i in range(20):
        key = bytes([i + 1]) * 32
        raw, tx_hash = signer.sign(PrivateKey(key), i, SINK, START_MS + i)
        assert raw == sign_1559(
            key,
            chain_id=CHAIN_ID,
            nonce=i,
            max_fee_per_gas=signer.max_fee,
            max_priority_fee_per_gas=signer.priority_fee,
            to=SINK,
            value=START_MS + i,
        )
        tx = decode_tx(raw, CHAIN_ID)
        assert (tx.hash, tx.sender, tx.value) == (tx_hash, address_of(key), START_MS + i)


def test_pool_keys_are_deterministic_and_balanced_over_lanes() -> None:
    """The same seed gives the same pool; balancing gives every lane the same count."""
    assert derive_pool(b"s", 12, 4, balanced=True) == derive_pool(b"s", 12, 4, balanced=True)
    assert derive_pool(b"s", 12, 4, balanced=True) != derive_pool(b"t", 12, 4, balanced=True)
    loose = derive_pool(b"s", 12, 4, balanced=False)
    assert [a.key for a in loose] == [a.key for a in derive_pool(b"s", 12, 1, balanced=False)]
    with pytest.raises(ConfigError):
        derive_pool(b"s", 10, 4, balanced=True)


def test_every_transaction_carries_its_send_time() -> None:
    """A signed batch's transfers go to the sink with value = start + offset of the batch."""
    spec = PlanSpec(500, 200, 20, nodes=2)
    keys = [PrivateKey(bytes([i + 1]) * 32) for i in range(5)]
    signer = TransferSigner(CHAIN_ID)
    for planned in plan_batches(spec, [list(range(5))], [0] * 5):
        batch = sign_batch(signer, keys, planned, START_MS)
        assert batch.send_ms == START_MS + planned.offset_ms
        for raw, (account, nonce) in zip(batch.raws, planned.txs, strict=True):
            tx = decode_tx(raw, CHAIN_ID)
            assert (tx.to, tx.value, tx.nonce) == (SINK, batch.send_ms, nonce)
            assert tx.sender == address_of(keys[account].secret)


def test_signing_thread_delivers_the_plan_in_order_then_ends() -> None:
    """The thread signs every batch in order through its bounded queue, then sends None."""
    spec = PlanSpec(1000, 300, 20, nodes=4)
    keys = [PrivateKey(bytes([i + 1]) * 32) for i in range(8)]
    thread = SigningThread(
        plan_batches(spec, [list(range(8))], [0] * 8), TransferSigner(CHAIN_ID), keys, 0, 2
    )
    thread.start()
    got: list[SignedBatch] = []
    while (item := thread.queue.get(timeout=10)) is not None:
        got.append(item)
    thread.stop()
    assert [b.plan.index for b in got] == list(range(len(got)))
    assert sum(len(b.raws) for b in got) == spec.total_txs == thread.signed


# ------------------------------------------------------------------------------ ledger


def test_percentile_is_nearest_rank() -> None:
    """p50 of 1..10 is 5, p90 is 9, p99 and p100 are 10; none of nothing."""
    values = list(range(1, 11))
    assert [percentile(values, p) for p in (50, 90, 99, 100)] == [5, 9, 10, 10]
    assert percentile([7], 1) == 7
    assert percentile([], 50) is None
    with pytest.raises(ValueError, match="outside"):
        percentile(values, 0)


def test_reason_key_drops_the_details() -> None:
    """Rejections group by the reason before the colon."""
    assert reason_key("nonce too low: nonce 5, next 6") == "nonce too low"
    assert reason_key("") == "rejected"


@pytest.mark.parametrize("seed", range(20))
def test_ledger_counts_add_up_whatever_the_event_order(seed: int) -> None:
    """Random replies, failures and blocks in any order: sent = accepted + rejected and
    accepted = committed + pending, with rejection reasons summing to the rejected."""
    rng = random.Random(seed)
    total = 300
    hashes = [rng.randbytes(32) for _ in range(total)]
    ledger = Ledger(total, START_MS)
    batches = [(i, min(i + rng.randint(1, 30), total)) for i in range(0, total, 30)]
    events: list[tuple[str, int, int]] = []
    for first, end in batches:
        events.append(("send", first, end))
    rng.shuffle(events)
    sent: list[tuple[int, int]] = []
    for _, first, end in events:
        ledger.on_sent(first, hashes[first:end], START_MS + first, START_MS + first + 1)
        sent.append((first, end))
    actions: list[tuple[str, int, int]] = [("reply", f, e) for f, e in sent]
    actions += [("block", f, e) for f, e in sent if rng.random() < 0.7]
    rng.shuffle(actions)
    for kind, first, end in actions:
        if kind == "block":
            chosen = [h for h in hashes[first:end] if rng.random() < 0.8]
            ledger.on_block([*chosen, rng.randbytes(32)], START_MS + 5000)
        elif rng.random() < 0.2:
            ledger.on_failure(first, end - first, "rpc failed: UNAVAILABLE")
        else:
            ledger.on_reply(
                first, [(rng.random() < 0.9, "nonce too low: x") for _ in range(end - first)]
            )
    report = build_report(ledger, RunInfo(100, 3.0, 10, "grpc", "lane", 4, 20), [])
    assert report.check_counts()
    assert report.sent == sum(e - f for f, e in sent)
    assert ledger.counts().awaiting_reply == 0


def test_a_transaction_in_a_block_is_committed_even_if_its_reply_said_no() -> None:
    """Blocks beat replies: a committed transaction counts as accepted and committed."""
    ledger = Ledger(2, START_MS)
    ledger.on_sent(0, [b"a" * 32, b"b" * 32], START_MS, START_MS)
    ledger.on_failure(0, 2, "rpc failed: DEADLINE_EXCEEDED")
    assert ledger.on_block([b"a" * 32], START_MS + 700) == 1
    counts = ledger.counts()
    assert (counts.sent, counts.accepted, counts.rejected, counts.committed) == (2, 1, 1, 1)
    assert dict(ledger.reasons) == {"rpc failed": 1}
    assert list(ledger.latencies) == [700]
    assert ledger.rejected_then_committed == 1


def test_commit_latency_uses_the_node_clock_and_seen_latency_the_spammer_clock() -> None:
    """A block's commit time gives the commit latency; the time it was seen, the latency."""
    ledger = Ledger(1, START_MS)
    ledger.on_sent(0, [b"a" * 32], START_MS, START_MS)
    ledger.on_reply(0, [(True, "")])
    ledger.on_block([b"a" * 32], START_MS + 900, commit_ms=START_MS + 600)
    report = build_report(ledger, RunInfo(1, 1.0, 1, "grpc", "lane", 1, 20), [])
    assert report.latency_ms.p50 == 900 and report.commit_latency_ms.p50 == 600


def test_steady_rate_leaves_out_the_ends() -> None:
    """The steady rate averages the seconds between the ramp-up and the tail."""
    assert steady_tps([10, 50, 90, 100, 100, 100, 20], 6.0) == 100.0
    assert steady_tps([10], 2.0) is None


def test_report_has_the_documented_json_keys_and_text() -> None:
    """One JSON line with the promised keys; the text shows the same counts."""
    ledger = Ledger(3, START_MS)
    ledger.on_sent(0, [b"x" * 32, b"y" * 32, b"z" * 32], START_MS, START_MS + 2)
    ledger.on_reply(0, [(True, ""), (True, ""), (False, "txpool is full: 50000")])
    ledger.on_block([b"x" * 32], START_MS + 400)
    report = build_report(ledger, RunInfo(3, 1.0, 200, "grpc", "lane", 4, 20), ["n"])
    doc = json.loads(report.to_json())
    promised = {"sent", "accepted", "rejected", "committed", "pending", "duration_s"}
    promised |= {"target_tps", "achieved_tps", "latency_ms", "rejected_reasons"}
    assert promised <= set(doc)
    assert doc["latency_ms"] == {"p50": 400, "p90": 400, "p99": 400, "max": 400}
    assert doc["rejected_reasons"] == {"txpool is full": 1}
    assert (doc["sent"], doc["accepted"], doc["committed"], doc["pending"]) == (3, 2, 1, 1)
    assert doc["achieved_tps"] == 2.5
    text = render_text(report)
    assert "pending             1" in text and "1 x txpool is full" in text


# ------------------------------------------------------------------------------ sender


class VirtualClock:
    """Time that passes only when the sender sleeps: no test waits for real time."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def wall_ms(self) -> int:
        return START_MS + round(self.now * 1000)

    async def sleep_until(self, deadline: float) -> None:
        await asyncio.sleep(0)  # let tasks made before this sleep run at the current time
        self.now = max(self.now, deadline)


class RecordingSubmitter:
    """Accepts everything, remembering when each batch arrived; can hold replies back."""

    def __init__(self, name: str, clock: VirtualClock, log: list[tuple[str, float, int]]) -> None:
        self.name = name
        self._clock = clock
        self._log = log
        self.release = asyncio.Event()
        self.release.set()
        self.reject: set[int] = set()

    async def submit(self, raws: list[bytes]) -> list[Outcome]:
        self._log.append((self.name, self._clock.now, len(raws)))
        await self.release.wait()
        return [(len(raw) not in self.reject, "nonce too low: x") for raw in raws]


def _fake_batches(spec: PlanSpec) -> list[SignedBatch]:
    out = []
    for planned in plan_batches(spec, [list(range(10))], [0] * 10):
        raws = [bytes([1]) * (40 + i % 3) for i in range(len(planned.txs))]
        hashes = [(planned.first_tx + i).to_bytes(32, "big") for i in range(len(planned.txs))]
        out.append(SignedBatch(planned, START_MS + planned.offset_ms, raws, hashes))
    return out


def test_sender_sends_each_batch_when_due_to_the_nodes_in_turn() -> None:
    """Batch k leaves at start + k * batch_ms, to node k mod n, with no send lag."""
    spec = PlanSpec(1000, 500, 20, nodes=3)
    batches = _fake_batches(spec)

    async def main() -> list[tuple[str, float, int]]:
        clock = VirtualClock()
        log: list[tuple[str, float, int]] = []
        subs = [RecordingSubmitter(f"n{i}", clock, log) for i in range(3)]
        ledger = Ledger(spec.total_txs, START_MS)
        async with asyncio.TaskGroup() as group:
            await Sender(subs, ledger, clock).run(ListSource(batches), 0.0, group)
        assert ledger.counts().accepted == spec.total_txs
        assert set(ledger.lags) == {0}
        return log

    log = asyncio.run(main())
    assert [name for name, _, _ in log] == [f"n{i % 3}" for i in range(len(batches))]
    assert [t for _, t, _ in log] == pytest.approx([b.plan.offset_ms / 1000 for b in batches])
    assert [n for _, _, n in log] == [20] * 25


def test_sender_is_open_loop_and_counts_rejections_and_failures() -> None:
    """Unanswered batches do not hold back later ones; rejections and failures are counted."""
    spec = PlanSpec(500, 400, 20, nodes=2)
    batches = _fake_batches(spec)

    class Failing:
        name = "bad"

        async def submit(self, raws: list[bytes]) -> list[Outcome]:
            raise OSError("connection refused")

    refused = sum(len(r) == 41 for b in batches if b.target == 0 for r in b.raws)
    failed = sum(len(b.raws) for b in batches if b.target == 1)

    async def main() -> None:
        clock = VirtualClock()
        log: list[tuple[str, float, int]] = []
        held = RecordingSubmitter("held", clock, log)
        held.release.clear()
        held.reject = {41}
        ledger = Ledger(spec.total_txs, START_MS)
        async with asyncio.TaskGroup() as group:
            sending = group.create_task(
                Sender([held, Failing()], ledger, clock).run(ListSource(batches), 0.0, group)
            )
            while ledger.counts().rejected < failed:  # yields to the sender; no time passes
                await asyncio.sleep(0)
            counts = ledger.counts()
            assert counts.sent == spec.total_txs  # everything left, none answered by `held`
            assert counts.awaiting_reply == spec.total_txs - failed
            held.release.set()
            await sending
        counts = ledger.counts()
        assert (counts.sent, counts.rejected) == (spec.total_txs, refused + failed)
        assert ledger.reasons == {"rpc failed OSError": failed, "nonce too low": refused}

    asyncio.run(main())


def test_watcher_commits_what_blocks_hold_and_settles() -> None:
    """Blocks from the feed commit the ledger's transactions; settle returns once none pend."""
    hashes = [bytes([i]) * 32 for i in range(6)]

    class Feed:
        def __init__(self) -> None:
            self.queue: asyncio.Queue[SeenBlock] = asyncio.Queue()

        async def blocks(self, start_height: int) -> AsyncIterator[SeenBlock]:
            while True:
                yield await self.queue.get()

    async def main() -> None:
        clock = VirtualClock()
        ledger = Ledger(6, START_MS)
        ledger.on_sent(0, hashes, START_MS, START_MS)
        ledger.on_reply(0, [(True, "")] * 6)
        feed = Feed()
        watcher = Watcher(feed, ledger, clock)
        async with asyncio.TaskGroup() as group:
            watching = group.create_task(watcher.run(1))
            feed.queue.put_nowait(SeenBlock(1, hashes[:4]))
            clock.now = 0.25
            feed.queue.put_nowait(SeenBlock(2, hashes[4:]))
            assert await watcher.settle(30.0)
            watching.cancel()
        assert ledger.counts().committed == 6 and watcher.height == 2

    asyncio.run(main())


class ExecutedOnlyChain(FakeChain):
    """Lists only executed blocks, as the node's ChainView does (FakeChain lists committed)."""

    def get_block(self, height: int, *, full_txs: bool = False) -> BlockInfo | None:
        if height > self.executed_height():
            return None
        return super().get_block(height, full_txs=full_txs)


def test_grpc_feed_waits_while_execution_trails_commit_and_delivers_each_block_once() -> None:
    """Blocks committed but not executed yet hold the stream (the node streams executed
    blocks only); once they execute the feed delivers every block once, in order, without
    having had to re-open the stream."""
    dev = b"\xd0" * 32
    chain = ExecutedOnlyChain(
        chain_id=CHAIN_ID, balances={address_of(dev): 10**21}, auto_commit=False
    )
    signer = TransferSigner(CHAIN_ID)

    async def main() -> None:
        server, port = await serve_client_api(chain, port=0)
        try:
            async with ClientApiClient(f"127.0.0.1:{port}") as client:
                feed = GrpcBlockFeed(client)
                blocks = feed.blocks(1)
                first = asyncio.ensure_future(anext(blocks))
                raws = [signer.sign(PrivateKey(dev), n, SINK, 1)[0] for n in range(2)]
                results = await chain.submit_raw_txs(raws)
                assert all(r.accepted for r in results)
                for r in results:
                    chain.commit([r.tx_hash or b""])
                done, _ = await asyncio.wait([first], timeout=0.3)
                assert not done, "a block was delivered before it was executed"
                chain.execute()
                got = [await first, await anext(blocks)]
                await blocks.aclose()
        finally:
            await server.stop(None)
        assert [b.height for b in got] == [1, 2]
        assert all(len(b.tx_hashes) == 1 and b.commit_ms for b in got)
        assert feed.reconnects == 0

    asyncio.run(main())


# ------------------------------------------------------------------------------ whole runs


@pytest.mark.parametrize("mode", ["grpc", "jsonrpc"])
def test_a_run_against_an_in_memory_chain_commits_everything(mode: str) -> None:
    """Funding, signing, sending and watching against FakeChain: every transaction commits,
    the counts add up, and the chain holds the pool's transfers to the sink."""
    dev = [bytes([0xD0 + i]) * 32 for i in range(2)]
    chain = FakeChain(chain_id=CHAIN_ID, balances={address_of(k): 10**21 for k in dev})

    async def main() -> None:
        grpc_server, port = await serve_client_api(chain, port=0)
        http = JsonRpcServer(chain, host="127.0.0.1", port=0)
        await http.start()
        try:
            nodes = [Endpoint(i, f"node{i}", http.url, f"127.0.0.1:{port}") for i in range(4)]
            cfg = SpamConfig(
                tps=400,
                duration_s=0.5,
                accounts=8,
                mode=mode,
                settle_s=10,
                seed=b"t",
                sign_ahead_s=5,
            )
            report = await run_spam(cfg, nodes, dev, lambda _: None)
        finally:
            await http.stop()
            await grpc_server.stop(None)
        assert report.check_counts()
        assert (report.sent, report.committed, report.rejected) == (200, 200, 0)
        assert report.route == "lane" and report.accounts == 8
        assert report.latency_ms.p50 is not None and report.latency_ms.p50 >= 0
        assert chain.get_account(SINK)[0] == 0 and chain.get_account(SINK)[1] > 0

    asyncio.run(main())


def test_cli_fails_clearly_without_a_testnet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`lanenet spam` on a directory with no testnet exits 2 with a message."""
    code = spammer.main(["--tps", "10", "--duration", "1", "--dir", str(tmp_path)])
    assert code == 2
    assert "no testnet here" in capsys.readouterr().err
