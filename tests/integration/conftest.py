"""A real local testnet for the integration tests: 4 `lanenet node run` processes on 127.0.0.1.

``testnet`` (one per test module) and ``fresh_testnet`` (one per test, for tests that kill
nodes) generate a testnet under a temporary directory with free ports and libp2p off, start
it with ``node.tools.testnet.up``, wait until every node answers JSON-RPC and sees its three
peers, and always stop it with ``down``. When a test that used one fails, the tail of every
node's log is attached to the report.

Waiting is polling a remote process against a deadline (``Testnet.wait_until``); no test
asserts anything after a fixed sleep.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from node.execution.signing import address_of, sign_1559
from node.tools import testnet as tn

VALIDATORS = 4
CHAIN_ID = 7357
GWEI = 10**9
MAX_FEE = 10 * GWEI
TIP = GWEI
START_TIMEOUT = 30.0
LOG_TAIL_LINES = 80
# Below Linux's ephemeral range (32768-60999), so outgoing connections cannot take them.
PORT_RANGE = (20000, 32000)
PORT_KINDS = 5


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "integration: runs real node processes on 127.0.0.1 (local testnet)"
    )


# ------------------------------------------------------------------------------ JSON-RPC


class RpcFailed(Exception):
    """A JSON-RPC error response: ``code`` and ``message`` as the node sent them."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def post(url: str, body: bytes, timeout: float = 5.0) -> tuple[int, Any]:
    """POST a raw body; the HTTP status and the decoded JSON reply (None for an empty one)."""
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, text = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read()
    return status, json.loads(text) if text else None


def call(url: str, method: str, *params: object, timeout: float = 5.0) -> Any:
    """One JSON-RPC call; raises ``RpcFailed`` on an error response."""
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    _, reply = post(url, json.dumps(body).encode(), timeout)
    if "error" in reply:
        raise RpcFailed(reply["error"]["code"], reply["error"]["message"])
    return reply["result"]


def batch(
    url: str, calls: Sequence[tuple[str, Sequence[object]]], timeout: float = 10.0
) -> list[Any]:
    """Several calls in one batch; each entry is the result or an ``RpcFailed``, in order."""
    if not calls:
        return []
    body = [
        {"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
        for i, (m, p) in enumerate(calls)
    ]
    _, replies = post(url, json.dumps(body).encode(), timeout)
    by_id = {r["id"]: r for r in replies}
    return [
        RpcFailed(r["error"]["code"], r["error"]["message"]) if "error" in r else r["result"]
        for r in (by_id[i] for i in range(len(calls)))
    ]


# ------------------------------------------------------------------------------ accounts


@dataclass(frozen=True, slots=True)
class DevAccount:
    key: bytes
    address: bytes

    @property
    def hex(self) -> str:
        return "0x" + self.address.hex()

    def transfer(self, nonce: int, to: bytes, value: int) -> bytes:
        """A signed EIP-1559 transfer of ``value`` wei to ``to``."""
        return sign_1559(
            self.key,
            chain_id=CHAIN_ID,
            nonce=nonce,
            max_fee_per_gas=MAX_FEE,
            max_priority_fee_per_gas=TIP,
            to=to,
            value=value,
        )


def sink_address(i: int) -> bytes:
    """A recipient that no test signs for: 0x00..00<i+1>."""
    return (i + 1).to_bytes(20, "big")


# ------------------------------------------------------------------------------ the testnet


@dataclass
class Testnet:
    """A running local testnet: its directory, its nodes' JSON-RPC URLs, funded accounts."""

    __test__ = False  # a fixture value, not a test class

    directory: Path
    urls: list[str]
    accounts: list[DevAccount]

    # ---------------------------------------------------------------- processes

    def pid(self, node: int) -> int:
        return int((self.directory / f"node{node}" / "pid").read_text())

    def kill(self, node: int) -> None:
        """kill -9 one validator and wait until it is gone (reaped)."""
        pid = self.pid(node)
        os.kill(pid, signal.SIGKILL)
        self.wait_until(lambda: not _running(pid), f"node{node} (pid {pid}) to die", 10.0)

    def restart(self) -> None:
        """Start the nodes that are not running (``up`` skips live ones) and wait for them."""
        tn.up(self.directory)
        self.wait_ready()

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until every node answers JSON-RPC and is connected to all its peers."""

        def ready() -> bool:
            for i in range(VALIDATORS):
                if not _running(self.pid(i)):
                    raise AssertionError(f"node{i} exited during startup:\n{self.log_tail(i)}")
            return all(
                (s := self.try_status(i)) is not None and s["peers"] == VALIDATORS - 1
                for i in range(VALIDATORS)
            )

        self.wait_until(ready, "every node to serve JSON-RPC and see its peers", timeout)

    # ---------------------------------------------------------------- queries

    def call(self, node: int, method: str, *params: object) -> Any:
        return call(self.urls[node], method, *params)

    def batch(self, node: int, calls: Sequence[tuple[str, Sequence[object]]]) -> list[Any]:
        return batch(self.urls[node], calls)

    def try_status(self, node: int) -> dict[str, Any] | None:
        try:
            status = call(self.urls[node], "lanenet_status", timeout=2.0)
        except (OSError, RpcFailed, ValueError):
            return None
        return status if isinstance(status, dict) else None

    def height(self, node: int) -> int:
        """The node's executed height (blocks it lists), -1 if it does not answer."""
        status = self.try_status(node)
        return -1 if status is None else int(status["executed_height"])

    def heights(self, nodes: Sequence[int] | None = None) -> list[int]:
        return [self.height(i) for i in (range(VALIDATORS) if nodes is None else nodes)]

    def block_hashes(self, node: int, first: int, last: int) -> list[str | None]:
        """The hashes of blocks ``first..last`` as one node lists them (None: not listed)."""
        calls = [("eth_getBlockByNumber", (hex(h), False)) for h in range(first, last + 1)]
        out: list[str | None] = []
        for start in range(0, len(calls), 200):
            for block in self.batch(node, calls[start : start + 200]):
                assert not isinstance(block, RpcFailed), block
                out.append(None if block is None else block["hash"])
        return out

    def blocks(self, node: int, first: int, last: int) -> list[dict[str, Any]]:
        calls = [("eth_getBlockByNumber", (hex(h), False)) for h in range(first, last + 1)]
        out: list[dict[str, Any]] = []
        for start in range(0, len(calls), 200):
            out.extend(self.batch(node, calls[start : start + 200]))
        return out

    def receipts(self, node: int, tx_hashes: Sequence[str]) -> list[dict[str, Any] | None]:
        calls = [("eth_getTransactionReceipt", (h,)) for h in tx_hashes]
        out: list[dict[str, Any] | None] = []
        for start in range(0, len(calls), 200):
            out.extend(self.batch(node, calls[start : start + 200]))
        return out

    def nonces(self, node: int, accounts: Sequence[DevAccount]) -> list[int]:
        """Each account's nonce in the node's latest executed state."""
        replies = self.batch(
            node, [("eth_getTransactionCount", (a.hex, "latest")) for a in accounts]
        )
        return [int(r, 16) for r in replies]

    # ---------------------------------------------------------------- sending

    def send_transfers(
        self, rounds: int, accounts: Sequence[DevAccount] | None = None
    ) -> list[str]:
        """``rounds`` transfers from each account, spread over the nodes round-robin, each
        round of each node sent as one batch; returns the accepted transaction hashes."""
        accounts = list(self.accounts if accounts is None else accounts)
        start = self.nonces(0, accounts)
        hashes: list[str] = []
        for r in range(rounds):
            per_node: dict[int, list[bytes]] = {}
            for i, account in enumerate(accounts):
                raw = account.transfer(start[i] + r, sink_address(i), value=r + 1)
                per_node.setdefault((r + i) % VALIDATORS, []).append(raw)
            for node, raws in per_node.items():
                replies = self.batch(
                    node, [("eth_sendRawTransaction", ("0x" + raw.hex(),)) for raw in raws]
                )
                for reply in replies:
                    assert not isinstance(reply, RpcFailed), (
                        f"node{node} refused a transfer: {reply}"
                    )
                    hashes.append(reply)
        return hashes

    def wait_for_nonces(
        self, node: int, accounts: Sequence[DevAccount], targets: Sequence[int], timeout: float
    ) -> None:
        self.wait_until(
            lambda: all(n >= t for n, t in zip(self.nonces(node, accounts), targets, strict=True)),
            f"node{node} to execute every account's transfers up to nonces {list(targets)}",
            timeout,
        )

    # ---------------------------------------------------------------- waiting, logs

    def wait_until(
        self, predicate: Callable[[], bool], what: str, timeout: float, poll: float = 0.1
    ) -> None:
        """Poll ``predicate`` until it holds; fail naming ``what`` (and the heights) after
        ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout:.0f}s waiting for {what}; "
                    f"executed heights now {self.heights()}"
                )
            time.sleep(poll)

    def log_tail(self, node: int, lines: int = LOG_TAIL_LINES) -> str:
        path = self.directory / f"node{node}" / "node.log"
        try:
            text = path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _running(pid: int) -> bool:
    return tn._alive(pid)


def free_port_base(count: int, rng: random.Random) -> int:
    """The first of ``count`` consecutive ports on 127.0.0.1 that are free right now."""
    for _ in range(200):
        base = rng.randrange(PORT_RANGE[0], PORT_RANGE[1] - count)
        with ExitStack() as stack:
            try:
                for port in range(base, base + count):
                    sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return base
    raise RuntimeError(f"no {count} consecutive free ports in {PORT_RANGE}")


def start_testnet(directory: Path) -> Testnet:
    """Generate and start a 4-validator testnet under ``directory``; it is ready when this
    returns (the caller must ``tn.down`` it, also when this raises)."""
    base = free_port_base(PORT_KINDS * VALIDATORS, random.Random())
    ports = tn.Ports(
        grpc=base,
        client=base + VALIDATORS,
        jsonrpc=base + 2 * VALIDATORS,
        metrics=base + 3 * VALIDATORS,
        p2p=base + 4 * VALIDATORS,
    )
    tn.generate(directory, validators=VALIDATORS, chain_id=CHAIN_ID, ports=ports, p2p=False)
    accounts = [
        DevAccount(bytes.fromhex(a["private_key"][2:]), bytes.fromhex(a["address"][2:]))
        for a in tn.load_accounts(directory)
    ]
    assert all(address_of(a.key) == a.address for a in accounts)
    urls = [f"http://127.0.0.1:{ports.jsonrpc + i}/" for i in range(VALIDATORS)]
    net = Testnet(directory, urls, accounts)
    tn.up(directory)
    try:
        net.wait_ready()
    except AssertionError as exc:
        logs = "\n".join(f"--- node{i} log ---\n{net.log_tail(i)}" for i in range(VALIDATORS))
        raise AssertionError(f"{exc}\n{logs}") from None
    return net


@pytest.fixture(scope="module")
def testnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testnet]:
    """One testnet shared by the tests of a module (they must leave all four nodes up)."""
    directory = tmp_path_factory.mktemp("testnet")
    try:
        yield start_testnet(directory)
    finally:
        tn.down(directory, grace=5.0)


@pytest.fixture
def fresh_testnet(tmp_path: Path) -> Iterator[Testnet]:
    """A testnet of this test's own, which it may kill and restart nodes of."""
    directory = tmp_path / "testnet"
    try:
        yield start_testnet(directory)
    finally:
        tn.down(directory, grace=5.0)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the tail of every node's log to the report of a failed test that ran a testnet."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not report.failed:
        return
    funcargs = getattr(item, "funcargs", {})
    for value in funcargs.values():
        if isinstance(value, Testnet):
            for i in range(VALIDATORS):
                report.sections.append(
                    (f"node{i} log (last {LOG_TAIL_LINES} lines)", value.log_tail(i))
                )
