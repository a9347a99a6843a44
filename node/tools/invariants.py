"""The invariants a testnet must keep through perturbations, checked over JSON-RPC.

(a) agreement: every node lists the same block hash at every height two nodes share, and
    each chain links by parent hash;
(b) exactly once: every accepted transaction is in exactly one block and has one receipt,
    in that block; no transaction hash appears twice in the chain at all;
(c) liveness: after the last perturbation ends, every node commits above the highest
    height any node had committed then, within a bound.

A node keeps every transaction it answered "accepted" on disk until it executes
(node/runtime/durable_txs.py), so one accepted by a node that is then killed or restarted
must still commit: a loss is a violation, and those whose node crashed after accepting them
are also counted apart (``lost_in_crash``, a subset of ``missing``) to point at the cause.
An accepted transaction whose nonce went to another transaction of the same sender
(``replaced``: a client that lost a reply in a crash and sent the nonce again; the chain
keeps one of the two, as it must) is counted apart and is a violation only with ``strict``.
The checks are pure functions over what the nodes answered (``check_agreement``,
``check_exactly_once``, ``check_liveness``); ``RpcNode`` asks a real node.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from node.types.errors import TransientError

BATCH = 200  # calls per JSON-RPC batch
SHOWN_MISSING = 5  # missing transactions named one by one
RPC_ERRORS = (OSError, urllib.error.URLError, ValueError, TransientError)

Block = Mapping[str, Any]
Receipt = Mapping[str, Any]


class ChainNode(Protocol):
    """What the checker asks of a node (``RpcNode`` over JSON-RPC; a fake in the tests)."""

    name: str

    def status(self) -> dict[str, Any] | None: ...

    def blocks(self, first: int, last: int) -> list[Block | None]: ...

    def receipts(self, tx_hashes: Sequence[str]) -> list[Receipt | None]: ...

    def nonces(self, addresses: Sequence[str]) -> list[int]: ...


class RpcNode:
    """A node's JSON-RPC endpoint, with batched calls; raises ``TransientError`` on an
    error reply and ``OSError`` when the node does not answer."""

    def __init__(self, name: str, url: str, timeout: float = 5.0) -> None:
        self.name = name
        self.url = url
        self.timeout = timeout

    def batch(self, calls: Sequence[tuple[str, Sequence[object]]]) -> list[Any]:
        out: list[Any] = []
        for start in range(0, len(calls), BATCH):
            chunk = calls[start : start + BATCH]
            body = [
                {"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
                for i, (m, p) in enumerate(chunk)
            ]
            replies = self.post(body)
            if not isinstance(replies, list):
                raise TransientError(f"{self.url}: batch answered {replies!r:.200}")
            by_id = {r.get("id"): r for r in replies if isinstance(r, dict)}
            for i in range(len(chunk)):
                reply = by_id.get(i)
                if reply is None or "error" in reply:
                    error = reply.get("error") if reply else "no reply"
                    raise TransientError(f"{self.url}: {chunk[i][0]}: {error}")
                out.append(reply.get("result"))
        return out

    def call(self, method: str, *params: object) -> Any:
        reply = self.post({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        if not isinstance(reply, dict) or "error" in reply:
            raise TransientError(f"{self.url}: {method}: {reply!r:.200}")
        return reply.get("result")

    def post(self, body: object) -> Any:
        """POST one JSON-RPC request or batch; the decoded reply."""
        data = json.dumps(body).encode()
        req = urllib.request.Request(self.url, data, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            return json.loads(resp.read())

    def status(self) -> dict[str, Any] | None:
        try:
            info = self.call("lanenet_status")
        except RPC_ERRORS:
            return None
        return info if isinstance(info, dict) else None

    def blocks(self, first: int, last: int) -> list[Block | None]:
        calls = [("eth_getBlockByNumber", (hex(h), False)) for h in range(first, last + 1)]
        return list(self.batch(calls))

    def receipts(self, tx_hashes: Sequence[str]) -> list[Receipt | None]:
        return list(self.batch([("eth_getTransactionReceipt", (h,)) for h in tx_hashes]))

    def nonces(self, addresses: Sequence[str]) -> list[int]:
        """Each address's nonce in the latest executed state."""
        calls = [("eth_getTransactionCount", (a, "latest")) for a in addresses]
        return [int(str(n), 16) for n in self.batch(calls)]


@dataclass(frozen=True, slots=True)
class Accepted:
    """A transaction a node answered 'accepted' for; ``node`` and ``at`` (wall seconds) are
    known when the perturb tool sent it, not when the hashes come from a file."""

    tx_hash: str
    node: str | None = None
    at: float | None = None
    sender: str | None = None
    nonce: int | None = None

    def describe(self) -> str:
        """The hash, and who accepted it when, from whom, where known."""
        parts = [f"tx {self.tx_hash}"]
        if self.node is not None and self.at is not None:
            clock = time.strftime("%H:%M:%S", time.gmtime(self.at)) + f".{self.at % 1:.3f}"[2:]
            parts.append(f"(accepted by {self.node} at {clock} UTC")
            if self.sender is not None:
                parts[-1] += f", nonce {self.nonce} of {self.sender}"
            parts[-1] += ")"
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Crash:
    """A node lost its memory (killed or restarted) at wall time ``at``."""

    node: str
    at: float


@dataclass(frozen=True, slots=True)
class Violation:
    invariant: str  # agreement | exactly_once | liveness
    message: str


@dataclass(frozen=True, slots=True)
class TxCounts:
    accepted: int
    committed_once: int
    duplicated: int
    missing: int
    lost_in_crash: int
    replaced: int = 0


@dataclass
class Verdict:
    """Everything the checks found; ``ok`` when there is no violation."""

    heights: dict[str, int | None] = field(default_factory=dict)
    common_height: int = 0
    compared_heights: int = 0
    txs: TxCounts | None = None
    recovery_s: float | None = None
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


# ------------------------------------------------------------------------------ (a) agreement


def check_agreement(chains: Mapping[str, Sequence[Block | None]]) -> tuple[list[Violation], int]:
    """Chains are blocks 0..top as each node lists them; returns the violations and the
    number of heights at least two nodes share."""
    out: list[Violation] = []
    for name, chain in chains.items():
        for h, (parent, child) in enumerate(zip(chain, chain[1:], strict=False), start=1):
            if parent is None or child is None:
                continue
            if child.get("parentHash") != parent.get("hash"):
                out.append(Violation("agreement", f"{name}: block {h} does not link to {h - 1}"))
                break
    shared = 0
    top = max((len(c) for c in chains.values()), default=0)
    for h in range(top):
        seen = {n: c[h] for n, c in chains.items() if h < len(c)}
        missing = sorted(n for n, b in seen.items() if b is None)
        if missing:
            out.append(Violation("agreement", f"height {h}: not listed by {', '.join(missing)}"))
        hashes = {str(b.get("hash")): n for n, b in sorted(seen.items()) if b is not None}
        if len(seen) >= 2:
            shared += 1
        if len(hashes) > 1:
            detail = ", ".join(f"{n} {x[:18]}" for x, n in hashes.items())
            out.append(Violation("agreement", f"height {h}: nodes disagree ({detail})"))
    return out, shared


# ------------------------------------------------------------------------------ (b) exactly once


def check_exactly_once(
    chain: Sequence[Block | None],
    receipts: Mapping[str, Receipt | None],
    accepted: Sequence[Accepted],
    crashes: Sequence[Crash] = (),
    strict: bool = False,
    nonces: Mapping[str, int] | None = None,
) -> tuple[list[Violation], TxCounts]:
    """``chain`` is one node's blocks (with transaction hashes), ``receipts`` that node's
    receipt for each accepted hash, ``nonces`` the executed nonce of senders (lowercase)."""
    nonces = nonces or {}
    out: list[Violation] = []
    where: dict[str, list[int]] = {}
    for h, block in enumerate(chain):
        for tx in (block or {}).get("transactions", []):
            where.setdefault(str(tx).lower(), []).append(h)
    for tx, heights in where.items():
        if len(heights) > 1:
            out.append(Violation("exactly_once", f"tx {tx} is in blocks {heights}"))
    once = duplicated = missing = lost = replaced = 0
    for acc in _unique(accepted):
        key = acc.tx_hash.lower()
        heights = where.get(key, [])
        receipt = receipts.get(acc.tx_hash)
        if len(heights) > 1:
            duplicated += 1
        elif heights and receipt is not None:
            if _number(receipt.get("blockNumber")) != heights[0]:
                out.append(
                    Violation(
                        "exactly_once",
                        f"tx {acc.tx_hash}: receipt says block "
                        f"{receipt.get('blockNumber')}, the chain has it in {heights[0]}",
                    )
                )
            once += 1
        elif heights:
            out.append(
                Violation("exactly_once", f"tx {acc.tx_hash}: in block {heights[0]}, no receipt")
            )
        elif receipt is not None:
            out.append(
                Violation("exactly_once", f"tx {acc.tx_hash}: a receipt but in no listed block")
            )
        elif _replaced(acc, nonces) and not strict:
            replaced += 1
        else:
            missing += 1
            crashed = _crashed_after(acc, crashes)
            lost += crashed
            if missing <= SHOWN_MISSING:
                why = " (its node crashed after accepting it)" if crashed else ""
                message = f"{acc.describe()}: accepted, never committed{why}"
                out.append(Violation("exactly_once", message))
    if missing > SHOWN_MISSING:
        message = f"... {missing} accepted transactions in all were never committed"
        out.append(Violation("exactly_once", message))
    counts = TxCounts(len(_unique(accepted)), once, duplicated, missing, lost, replaced)
    return out, counts


def _unique(accepted: Sequence[Accepted]) -> list[Accepted]:
    first: dict[str, Accepted] = {}
    for acc in accepted:
        first.setdefault(acc.tx_hash, acc)
    return list(first.values())


def _replaced(acc: Accepted, nonces: Mapping[str, int]) -> bool:
    if acc.sender is None or acc.nonce is None:
        return False
    return nonces.get(acc.sender.lower(), -1) > acc.nonce


def senders_to_ask(chain: Sequence[Block | None], accepted: Sequence[Accepted]) -> list[str]:
    """Senders of accepted transactions not in ``chain`` (lowercase), for their nonces."""
    included = {str(tx).lower() for b in chain for tx in (b or {}).get("transactions", [])}
    return sorted(
        {a.sender.lower() for a in accepted if a.sender and a.tx_hash.lower() not in included}
    )


def _crashed_after(acc: Accepted, crashes: Sequence[Crash]) -> bool:
    if acc.node is None or acc.at is None:
        return False
    return any(c.node == acc.node and c.at >= acc.at for c in crashes)


def _number(value: object) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value, 16)
        except ValueError:
            return None
    return None


# ------------------------------------------------------------------------------ (c) liveness


def check_liveness(
    nodes: Sequence[ChainNode],
    bound_s: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    poll_s: float = 0.25,
) -> tuple[list[Violation], float | None]:
    """Every node must commit above the highest height any node had committed when this
    was called, within ``bound_s`` seconds; returns the violations and the time it took."""
    start = clock()
    mark = max((_committed(n) or 0 for n in nodes), default=0)
    behind = {n.name for n in nodes}
    while True:
        behind = {n.name for n in nodes if n.name in behind and (_committed(n) or -1) <= mark}
        elapsed = clock() - start
        if not behind:
            return [], elapsed
        if elapsed > bound_s:
            names = ", ".join(sorted(behind))
            message = f"{names} did not commit above height {mark} within {bound_s:g} s"
            return [Violation("liveness", message)], None
        sleep(poll_s)


def _committed(node: ChainNode) -> int | None:
    status = node.status()
    if status is None:
        return None
    value = status.get("committed_height")
    return value if isinstance(value, int) else None


# ------------------------------------------------------------------------------ all three


def check_all(
    nodes: Sequence[ChainNode],
    accepted: Sequence[Accepted],
    crashes: Sequence[Crash] = (),
    liveness_bound_s: float | None = 30.0,
    strict: bool = False,
) -> Verdict:
    """Liveness first (so the chains are read after recovery), then agreement and exactly
    once over every node's listed (executed) blocks."""
    verdict = Verdict()
    if liveness_bound_s is not None:
        violations, verdict.recovery_s = check_liveness(nodes, liveness_bound_s)
        verdict.violations += violations
    chains: dict[str, list[Block | None]] = {}
    for node in nodes:
        status = node.status()
        top = status.get("executed_height") if status else None
        verdict.heights[node.name] = top if isinstance(top, int) else None
        if not isinstance(top, int):
            verdict.violations.append(Violation("agreement", f"{node.name}: does not answer"))
            continue
        try:
            chains[node.name] = node.blocks(0, top)
        except RPC_ERRORS as exc:
            verdict.violations.append(Violation("agreement", f"{node.name}: {exc}"))
    violations, verdict.compared_heights = check_agreement(chains)
    verdict.violations += violations
    if not chains:
        return verdict
    verdict.common_height = min(len(c) for c in chains.values()) - 1
    ref = max(chains, key=lambda n: len(chains[n]))
    hashes = sorted({a.tx_hash for a in accepted})
    by_name = {n.name: n for n in nodes}
    senders = senders_to_ask(chains[ref], accepted)
    try:
        got = by_name[ref].receipts(hashes)
        nonces = dict(zip(senders, by_name[ref].nonces(senders), strict=True))
    except RPC_ERRORS as exc:
        verdict.violations.append(Violation("exactly_once", f"{ref}: receipts: {exc}"))
        return verdict
    receipts = dict(zip(hashes, got, strict=True))
    violations, verdict.txs = check_exactly_once(
        chains[ref], receipts, accepted, crashes, strict, nonces
    )
    verdict.violations += violations
    return verdict


def verdict_to_dict(verdict: Verdict) -> dict[str, Any]:
    txs = verdict.txs
    return {
        "ok": verdict.ok,
        "heights": verdict.heights,
        "common_height": verdict.common_height,
        "compared_heights": verdict.compared_heights,
        "txs": None
        if txs is None
        else {
            "accepted": txs.accepted,
            "committed_once": txs.committed_once,
            "duplicated": txs.duplicated,
            "missing": txs.missing,
            "lost_in_crash": txs.lost_in_crash,
            "replaced": txs.replaced,
        },
        "recovery_s": None if verdict.recovery_s is None else round(verdict.recovery_s, 2),
        "violations": [
            {"invariant": v.invariant, "message": v.message} for v in verdict.violations
        ],
    }


def render_verdict(verdict: Verdict) -> str:
    lines = ["invariants:"]
    heights = ", ".join(f"{n} {h if h is not None else '-'}" for n, h in verdict.heights.items())
    agree = not any(v.invariant == "agreement" for v in verdict.violations)
    lines.append(
        f"  (a) agreement     {'ok' if agree else 'VIOLATED'}: {verdict.compared_heights} heights "
        f"compared, common height {verdict.common_height} (executed: {heights})"
    )
    txs = verdict.txs
    once = not any(v.invariant == "exactly_once" for v in verdict.violations)
    if txs is not None:
        lines.append(
            f"  (b) exactly once  {'ok' if once else 'VIOLATED'}: {txs.accepted} accepted, "
            f"{txs.committed_once} committed once, {txs.duplicated} duplicated, "
            f"{txs.missing} missing ({txs.lost_in_crash} accepted by a node that crashed later), "
            f"{txs.replaced} replaced by another of the same nonce"
        )
    live = not any(v.invariant == "liveness" for v in verdict.violations)
    took = "-" if verdict.recovery_s is None else f"{verdict.recovery_s:.1f} s"
    lines.append(f"  (c) liveness      {'ok' if live else 'VIOLATED'}: recovered in {took}")
    lines.extend(f"  violation ({v.invariant}): {v.message}" for v in verdict.violations)
    lines.append("  result: " + ("ok" if verdict.ok else f"{len(verdict.violations)} violations"))
    return "\n".join(lines)
