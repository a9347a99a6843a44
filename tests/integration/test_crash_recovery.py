"""kill -9 of one validator under load: the other three keep committing, the restarted one
catches up to the same chain, and no transaction a client saw committed is ever lost."""

from __future__ import annotations

import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from node.mempool.routing import lane_of
from node.runtime.config import load_node_config
from node.tools import testnet as tn
from tests.integration.conftest import (
    VALIDATORS,
    DevAccount,
    RpcFailed,
    Testnet,
    batch,
    sink_address,
)

pytestmark = pytest.mark.integration

QUERY_NODE = 0  # receipts are read here; never killed
WINDOW = 4  # transactions in flight per account
OUTAGE_BLOCKS = 40  # blocks the live nodes commit while the victim is down
STALE_AFTER = 4.0  # seconds without a receipt before an account re-reads its nonce
STEP_PAUSE = 0.02  # pacing between load steps (not a wait for anything)
# what a node may answer to a transfer the generator sends again after a resync
EXPECTED_REFUSALS = ("nonce too low", "replacement transaction underpriced", "already known")


@dataclass(frozen=True, slots=True)
class Seen:
    """Where the query node said a transaction committed."""

    account: int
    block_number: str
    block_hash: str
    status: str
    seen_at: float


@dataclass
class _Pending:
    tx_hash: str
    sent_at: float


@dataclass
class LoadGenerator:
    """Sends transfers from several accounts round-robin to the nodes, ``WINDOW`` in flight
    per account, and records every receipt the query node reports.

    A transaction lost with a dead node (its mempool, or forwarded to it as lane owner)
    never gets a receipt; after ``STALE_AFTER`` seconds the account re-reads its executed
    nonce and carries on from there.
    """

    testnet: Testnet
    accounts: Sequence[DevAccount]
    committed: dict[str, Seen] = field(default_factory=dict)
    sent: int = 0
    refused: list[str] = field(default_factory=list)
    resyncs: int = 0
    error: BaseException | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _turn: int = 0
    _value: int = 0

    def __post_init__(self) -> None:
        self._next = self.testnet.nonces(QUERY_NODE, self.accounts)
        self._pending: list[dict[int, _Pending]] = [{} for _ in self.accounts]

    # ---------------------------------------------------------------- control

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            assert not self._thread.is_alive(), "the load generator did not stop"
        if self.error is not None:
            raise AssertionError("the load generator failed") from self.error

    def snapshot(self) -> dict[str, Seen]:
        with self._lock:
            return dict(self.committed)

    def count(self) -> int:
        with self._lock:
            return len(self.committed)

    def committed_since(self, accounts: set[int], since: float) -> int:
        """How many transfers from ``accounts`` the query node first reported after ``since``."""
        with self._lock:
            return sum(
                1 for s in self.committed.values() if s.account in accounts and s.seen_at > since
            )

    def check(self) -> None:
        """Re-raise a failure of the load thread in the test's thread."""
        if self.error is not None:
            raise AssertionError("the load generator failed") from self.error

    # ---------------------------------------------------------------- the loop

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._send_step()
                self._poll_receipts()
                self._resync_stale()
                self._stop.wait(STEP_PAUSE)
        except BaseException as exc:  # noqa: BLE001 - the test thread re-raises it (check, stop)
            self.error = exc

    def _send_step(self) -> None:
        """One new transfer for every account with room in its window; one batch per node."""
        per_node: dict[int, list[tuple[int, int, bytes]]] = {}
        for a, account in enumerate(self.accounts):
            if len(self._pending[a]) >= WINDOW:
                continue
            self._value += 1
            nonce = self._next[a]
            raw = account.transfer(nonce, sink_address(a), self._value)
            node = self._turn % VALIDATORS
            self._turn += 1
            per_node.setdefault(node, []).append((a, nonce, raw))
        for node, entries in per_node.items():
            calls = [("eth_sendRawTransaction", ("0x" + raw.hex(),)) for _, _, raw in entries]
            try:
                replies = batch(self.testnet.urls[node], calls, timeout=5.0)
            except (OSError, urllib.error.URLError):
                continue  # node down: these nonces are sent again next step
            now = time.monotonic()
            for (a, nonce, _), reply in zip(entries, replies, strict=True):
                if isinstance(reply, RpcFailed):
                    self.refused.append(f"node{node}: {reply.message}")
                    self._resync(a)
                    continue
                self._pending[a][nonce] = _Pending(reply, now)
                self._next[a] = nonce + 1
                self.sent += 1

    def _poll_receipts(self) -> None:
        waiting = [(a, n, p.tx_hash) for a, txs in enumerate(self._pending) for n, p in txs.items()]
        if not waiting:
            return
        calls = [("eth_getTransactionReceipt", (h,)) for _, _, h in waiting]
        replies = batch(self.testnet.urls[QUERY_NODE], calls, timeout=5.0)
        now = time.monotonic()
        for (a, nonce, tx_hash), receipt in zip(waiting, replies, strict=True):
            assert not isinstance(receipt, RpcFailed), receipt
            if receipt is None:
                continue
            seen = Seen(a, receipt["blockNumber"], receipt["blockHash"], receipt["status"], now)
            with self._lock:
                self.committed[tx_hash] = seen
            del self._pending[a][nonce]

    def _resync_stale(self) -> None:
        now = time.monotonic()
        for a, txs in enumerate(self._pending):
            if txs and now - min(p.sent_at for p in txs.values()) > STALE_AFTER:
                self._resync(a)

    def _resync(self, a: int) -> None:
        [self._next[a]] = self.testnet.nonces(QUERY_NODE, [self.accounts[a]])
        self._pending[a].clear()
        self.resyncs += 1


def wait_for_receipts(testnet: Testnet, load: LoadGenerator, above: int, what: str) -> None:
    def grown() -> bool:
        load.check()
        return load.count() >= above

    testnet.wait_until(grown, what, timeout=60)


def test_kill_one_validator_under_load_then_restart_it(fresh_testnet: Testnet) -> None:
    """Under a steady load, kill -9 of one validator leaves the other three committing; once
    restarted it catches up and holds the same block at every height as the others, and every
    transaction the client saw committed, before, during or after the crash, has the same
    receipt (block number and hash) on all four nodes."""
    net = fresh_testnet
    lanes = [lane_of(a.address, VALIDATORS) for a in net.accounts]
    # the node owning most of the senders' lanes, so its lane's recovery is exercised too
    victim = max((i for i in range(VALIDATORS) if i != QUERY_NODE), key=lanes.count)
    others = [i for i in range(VALIDATORS) if i != victim]
    load = LoadGenerator(net, net.accounts)
    load.start()
    try:
        # before: the chain grows under load
        start_height = net.height(QUERY_NODE)
        wait_for_receipts(net, load, 30, "30 committed transfers before the crash")
        net.wait_until(
            lambda: net.height(QUERY_NODE) >= start_height + 5,
            "5 blocks before the crash",
            timeout=30,
        )

        # during: kill -9 one validator; the other three keep committing
        net.kill(victim)
        assert net.try_status(victim) is None
        at_kill = net.heights(others)
        committed_at_kill = load.count()
        net.wait_until(
            lambda: all(h >= max(at_kill) + OUTAGE_BLOCKS for h in net.heights(others)),
            f"the three live nodes to commit {OUTAGE_BLOCKS} blocks past {max(at_kill)} "
            f"without node{victim}",
            timeout=60,
        )
        wait_for_receipts(
            net, load, committed_at_kill + 20, "20 more committed transfers while a node is down"
        )
        assert net.try_status(victim) is None, "the killed node came back by itself"

        # after: restart it; it catches up while the load goes on
        net.restart()
        at_restart = max(net.heights(others))
        net.wait_until(
            lambda: net.height(victim) >= at_restart,
            f"node{victim} to catch up to height {at_restart}",
            timeout=60,
        )
        caught_up_at = time.monotonic()
        committed_at_restart = load.count()
        wait_for_receipts(
            net, load, committed_at_restart + 20, "20 more committed transfers after the restart"
        )
        # the restarted validator's own lane carries transactions again
        victims_lane = {a for a, lane in enumerate(lanes) if lane == victim}
        if victims_lane:
            net.wait_until(
                lambda: load.committed_since(victims_lane, caught_up_at) >= 3,
                f"transfers from node{victim}'s lane (accounts {sorted(victims_lane)}) to "
                "commit again after its restart",
                timeout=60,
            )
    finally:
        load.stop()

    # the chain settles: every node reaches the highest height any node reached
    target = max(net.heights())
    net.wait_until(
        lambda: min(net.heights()) >= target,
        f"every node to execute up to height {target}",
        timeout=60,
    )
    top = min(net.heights())
    chains = [net.block_hashes(i, 1, top) for i in range(VALIDATORS)]
    for h in range(top):
        at_height = {chains[i][h] for i in range(VALIDATORS)}
        assert len(at_height) == 1 and None not in at_height, (
            f"nodes disagree at height {h + 1}: {[c[h] for c in chains]}"
        )

    blocks = net.blocks(QUERY_NODE, 1, top)
    included = [(tx, block["number"]) for block in blocks for tx in block["transactions"]]
    assert len(included) == len({tx for tx, _ in included}), "a transaction is in two blocks"
    where = dict(included)

    committed = load.snapshot()
    print(f"sent {load.sent}, committed {len(committed)}, resyncs {load.resyncs}, top {top}")
    assert not [r for r in load.refused if not r.split(": ", 1)[1].startswith(EXPECTED_REFUSALS)]
    hashes = sorted(committed)
    for i in range(VALIDATORS):
        receipts = net.receipts(i, hashes)
        lost = [
            (h, committed[h], r)
            for h, r in zip(hashes, receipts, strict=True)
            if r is None
            or isinstance(r, RpcFailed)
            or (r["blockNumber"], r["blockHash"], r["status"])
            != (committed[h].block_number, committed[h].block_hash, committed[h].status)
        ]
        assert not lost, f"node{i} lost or changed {len(lost)} committed transfers: {lost[:3]}"
    assert all(where.get(h) == seen.block_number for h, seen in committed.items())


def _cars_sealed(net: Testnet, node: int) -> float:
    port = load_node_config(net.directory / f"node{node}" / "config.toml").metrics_port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2.0) as reply:
        text = reply.read().decode()
    for line in text.splitlines():
        if line.startswith("lanenet_lanes_cars_sealed_total "):
            return float(line.split()[1])
    return 0.0


def test_restarted_lane_owner_still_counts_the_transactions_of_its_sealed_cars(
    fresh_testnet: Testnet,
) -> None:
    """A transaction sealed into its lane owner's car but not yet committed when the owner is
    killed -9 still holds its nonce after the restart: a second transaction with the same
    nonce is refused (not accepted and then silently dropped), and the first one commits."""
    net = fresh_testnet
    account = net.accounts[0]
    owner = lane_of(account.address, VALIDATORS)
    peers = [i for i in range(VALIDATORS) if i != owner]
    nonce = int(net.call(owner, "eth_getTransactionCount", account.hex, "latest"), 16)
    sealed_before = _cars_sealed(net, owner)
    for peer in peers:  # no votes and no commits: the car stays sealed but uncommitted
        os.kill(net.pid(peer), signal.SIGSTOP)
    try:
        first = account.transfer(nonce, sink_address(1), 1)
        tx_hash = net.call(owner, "eth_sendRawTransaction", "0x" + first.hex())
        net.wait_until(
            lambda: _cars_sealed(net, owner) > sealed_before,
            f"node{owner} to seal a car with the transfer",
            timeout=10,
        )
        net.kill(owner)
        tn.up(net.directory)  # only the killed node starts; the stopped peers keep it from
        net.wait_until(  # committing anything while the second transaction is sent
            lambda: net.try_status(owner) is not None, f"node{owner} to serve again", timeout=30
        )
        second = account.transfer(nonce, sink_address(2), 1)
        with pytest.raises(RpcFailed, match="nonce too low"):
            net.call(owner, "eth_sendRawTransaction", "0x" + second.hex())
        pending = int(net.call(owner, "eth_getTransactionCount", account.hex, "pending"), 16)
        assert pending == nonce + 1
        assert net.call(owner, "eth_getTransactionReceipt", tx_hash) is None
    finally:
        for peer in peers:
            os.kill(net.pid(peer), signal.SIGCONT)
    net.wait_until(
        lambda: net.call(QUERY_NODE, "eth_getTransactionReceipt", tx_hash) is not None,
        "the transfer sealed before the crash to commit",
        timeout=60,
    )
