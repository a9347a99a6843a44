"""A light load that remembers every transaction a node accepted, for the exactly-once check.

``lanenet spam`` reports counts, not the hashes it got accepted, and its pre-signed nonces
strand an account behind a refused transaction; under perturbations both matter. This
loader sends signed transfers from a few funded accounts at a low rate, each account to
the node that owns its lane, and records (hash, node, time) for every 'accepted' reply.

Nonces: an account asks its lane owner for its pending nonce before its first send and
again after any refusal or failed call (the owner was killed, paused or cut off): the
owner's mempool is the source of truth, so the loader never leaves a gap after a crash
wiped that mempool, and never sends a second transaction for a nonce the owner still holds.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from node.execution.signing import address_of, sign_1559
from node.mempool.routing import lane_of
from node.tools.invariants import RPC_ERRORS, Accepted, RpcNode
from node.tools.perturb_targets import NodeInfo
from node.types.errors import ConfigError

GWEI = 10**9
MAX_FEE = 10 * GWEI
TIP = GWEI
SINK = (0xDEAD).to_bytes(20, "big")
TICK_S = 0.1
RETRY_S = 0.5
CALL_TIMEOUT_S = 1.0
FUND_WEI = 10**20  # 100 ETH: far more than a run of transfers costs
FUND_TIMEOUT_S = 30.0


def derive_keys(validators: int, per_lane: int, salt: bytes | None = None) -> list[bytes]:
    """``per_lane`` fresh keys for each lane, so that every node owns some of the load."""
    salt = os.urandom(8) if salt is None else salt
    lanes: dict[int, list[bytes]] = {lane: [] for lane in range(validators)}
    i = 0
    while any(len(keys) < per_lane for keys in lanes.values()):
        key = hashlib.sha256(b"lanenet-perturb/" + salt + i.to_bytes(8, "big")).digest()
        i += 1
        keys = lanes[lane_of(address_of(key), validators)]
        if len(keys) < per_lane:
            keys.append(key)
    return [k for lane in range(validators) for k in lanes[lane]]


def fund(
    nodes: Sequence[NodeInfo], dev_key: bytes, keys: Sequence[bytes], chain_id: int
) -> None:
    """Send ``FUND_WEI`` to each key's address from ``dev_key`` and wait until executed."""
    dev = address_of(dev_key)
    rpc = RpcNode(nodes[0].name, nodes[0].jsonrpc)
    owner = RpcNode("owner", nodes[lane_of(dev, len(nodes))].jsonrpc)
    try:
        nonce = int(str(owner.call("eth_getTransactionCount", "0x" + dev.hex(), "pending")), 16)
        raws = [
            "0x"
            + sign_1559(
                dev_key,
                chain_id=chain_id,
                nonce=nonce + i,
                max_fee_per_gas=MAX_FEE,
                max_priority_fee_per_gas=TIP,
                to=address_of(key),
                value=FUND_WEI,
            ).hex()
            for i, key in enumerate(keys)
        ]
        hashes = owner.batch([("eth_sendRawTransaction", (raw,)) for raw in raws])
        deadline = time.monotonic() + FUND_TIMEOUT_S
        while any(r is None for r in rpc.receipts(hashes)):
            if time.monotonic() > deadline:
                raise ConfigError(f"funding the load accounts took over {FUND_TIMEOUT_S:g} s")
            time.sleep(RETRY_S)
    except RPC_ERRORS as exc:
        raise ConfigError(f"funding the load accounts: {exc}") from None


@dataclass
class _Account:
    key: bytes
    address: bytes
    owner: int
    nonce: int | None = None
    retry_at: float = 0.0


@dataclass
class LoadStats:
    sent: int = 0
    accepted: int = 0
    refused: int = 0
    failed: int = 0  # no answer: the transaction's fate is unknown, it is not counted accepted
    refusals: dict[str, int] = field(default_factory=dict)


class RecordingLoad:
    """``tps`` transfers a second from ``keys`` (funded accounts) to the nodes, in a thread."""

    def __init__(
        self, nodes: Sequence[NodeInfo], keys: Sequence[bytes], tps: float, chain_id: int
    ) -> None:
        self.rpcs = [RpcNode(n.name, n.jsonrpc, CALL_TIMEOUT_S) for n in nodes]
        self.chain_id = chain_id
        self.tps = tps
        self.accounts = [
            _Account(k, address_of(k), lane_of(address_of(k), len(nodes))) for k in keys
        ]
        self.accepted: list[Accepted] = []
        self.stats = LoadStats()
        self._value = 0
        self._turn = 0
        self._down_until = [0.0] * len(nodes)  # a node that did not answer is left alone
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="perturb-load", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        carry = 0.0
        while not self._stop.wait(TICK_S):
            due = carry + self.tps * TICK_S
            count = int(due)
            carry = due - count
            self._send(self._pick(count))

    def _pick(self, count: int) -> list[_Account]:
        """Up to ``count`` accounts in turn, each with a known nonce (resynced if needed)."""
        now = time.monotonic()
        picked: list[_Account] = []
        for _ in range(len(self.accounts)):
            if len(picked) >= count:
                break
            account = self.accounts[self._turn % len(self.accounts)]
            self._turn += 1
            if self._down_until[account.owner] > now:
                continue
            if account.nonce is None and account.retry_at <= now:
                self._resync(account, now)
            if account.nonce is not None:
                picked.append(account)
        return picked

    def _resync(self, account: _Account, now: float) -> None:
        try:
            nonce = self.rpcs[account.owner].call(
                "eth_getTransactionCount", "0x" + account.address.hex(), "pending"
            )
            account.nonce = int(str(nonce), 16)
        except RPC_ERRORS:
            account.retry_at = now + RETRY_S
            self._down_until[account.owner] = time.monotonic() + RETRY_S

    def _send(self, accounts: list[_Account]) -> None:
        by_owner: dict[int, list[_Account]] = {}
        for account in accounts:
            by_owner.setdefault(account.owner, []).append(account)
        for owner, group in by_owner.items():
            raws = []
            for account in group:
                self._value += 1
                raws.append(self._sign(account))
            self._submit(owner, group, raws)

    def _sign(self, account: _Account) -> str:
        assert account.nonce is not None  # picked accounts have one
        raw = sign_1559(
            account.key,
            chain_id=self.chain_id,
            nonce=account.nonce,
            max_fee_per_gas=MAX_FEE,
            max_priority_fee_per_gas=TIP,
            to=SINK,
            value=self._value,
        )
        return "0x" + raw.hex()

    def _submit(self, owner: int, group: list[_Account], raws: list[str]) -> None:
        rpc = self.rpcs[owner]
        body = [
            {"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction", "params": [raw]}
            for i, raw in enumerate(raws)
        ]
        self.stats.sent += len(raws)
        now = time.monotonic()
        try:
            replies = rpc.post(body)
            by_id = {r.get("id"): r for r in replies}
        except (*RPC_ERRORS, AttributeError, TypeError):
            self.stats.failed += len(raws)
            self._down_until[owner] = time.monotonic() + RETRY_S
            for account in group:
                account.nonce, account.retry_at = None, now + RETRY_S
            return
        at = time.time()
        for i, account in enumerate(group):
            reply = by_id.get(i) or {}
            if "result" in reply and account.nonce is not None:
                sender = "0x" + account.address.hex()
                record = Accepted(str(reply["result"]), rpc.name, at, sender, account.nonce)
                self.accepted.append(record)
                self.stats.accepted += 1
                account.nonce += 1
            else:
                error = reply.get("error") or {}
                reason = str(error.get("message", "no reply")).split(":", 1)[0]
                self.stats.refused += 1
                self.stats.refusals[reason] = self.stats.refusals.get(reason, 0) + 1
                account.nonce, account.retry_at = None, now + RETRY_S
