"""The send plan: which transaction goes when, to which node, from which account.

Time is cut into ticks of ``batch_ms``. Tick ``k`` is due ``k * batch_ms`` after the start
and carries ``floor(tps * (k+1) * batch_ms / 1000) - floor(tps * k * batch_ms / 1000)``
transactions, so after any tick the plan is never a whole transaction off the target rate,
whatever the rate (fractions of a transaction per tick carry over exactly). Ticks with no
transaction are skipped; the others are numbered and go to the nodes in turn.

Routing. With ``by_lane``, the batch for node ``i`` holds only transactions of accounts whose
lane is ``i``, so no node has to forward it (and the reply of the node is the verdict of the
lane owner's mempool, not a promise to forward). Otherwise accounts are taken round-robin
from the whole pool and nodes forward what is not theirs.

Each account's nonces go out in order, one account after another round-robin within a
group, so an account sends at ``tps / accounts`` and has about ``latency * tps / accounts``
transactions outstanding: ``accounts_needed`` sizes the pool to keep that within a window.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from node.types.errors import ConfigError

# The mempool rejects a nonce more than 16 past a sender's next one and holds at most 64
# pending per sender (node/mempool/mempool.py); 16 outstanding per account stays clear of
# both even when forwarding reorders a sender's transactions.
DEFAULT_WINDOW = 16
# The latency (seconds) the pool is sized for: the p99 target of the benchmark.
DEFAULT_LATENCY_BUDGET_S = 3.0
MIN_ACCOUNTS = 200


@dataclass(frozen=True, slots=True)
class PlanSpec:
    """The schedule: rate, length, tick and how many nodes share the batches."""

    tps: int
    duration_ms: int
    batch_ms: int
    nodes: int
    by_lane: bool = False

    def __post_init__(self) -> None:
        if self.tps < 1 or self.duration_ms < 1 or self.batch_ms < 1 or self.nodes < 1:
            raise ConfigError(f"tps, duration, batch interval and nodes must be positive: {self}")

    @property
    def ticks(self) -> int:
        return -(-self.duration_ms // self.batch_ms)

    @property
    def total_txs(self) -> int:
        return txs_due(self.tps, self.ticks * self.batch_ms)


@dataclass(frozen=True, slots=True)
class PlannedBatch:
    """One submission: ``txs`` are (account, nonce) pairs, numbered from ``first_tx``."""

    index: int
    offset_ms: int
    target: int
    first_tx: int
    txs: tuple[tuple[int, int], ...]


def txs_due(tps: int, elapsed_ms: int) -> int:
    """How many transactions the plan has sent ``elapsed_ms`` after the start."""
    return tps * elapsed_ms // 1000


def accounts_needed(
    tps: int, latency_budget_s: float = DEFAULT_LATENCY_BUDGET_S, window: int = DEFAULT_WINDOW
) -> int:
    """The smallest pool that keeps each account within ``window`` transactions in flight
    while transactions take ``latency_budget_s`` to commit."""
    return max(1, math.ceil(tps * latency_budget_s / window))


def default_accounts(tps: int, nodes: int) -> int:
    """The pool size used when none is asked for: enough for the window, at least 200,
    and a multiple of ``nodes`` so lanes get equal shares."""
    return round_up(max(MIN_ACCOUNTS, accounts_needed(tps)), nodes)


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def plan_batches(
    spec: PlanSpec, groups: Sequence[Sequence[int]], start_nonces: Sequence[int]
) -> Iterator[PlannedBatch]:
    """The batches of ``spec`` in order.

    ``groups[i]`` lists the accounts (indices into ``start_nonces``) whose transactions go to
    node ``i`` when routing by lane; otherwise ``groups`` is one group used for every node.
    """
    _check_groups(spec, groups)
    cursors = [0] * len(groups)
    nonces = list(start_nonces)
    first_tx = 0
    index = 0
    for tick in range(spec.ticks):
        offset = tick * spec.batch_ms
        count = txs_due(spec.tps, offset + spec.batch_ms) - txs_due(spec.tps, offset)
        if count == 0:
            continue
        target = index % spec.nodes
        g = target if spec.by_lane else 0
        group = groups[g]
        txs = []
        for i in range(cursors[g], cursors[g] + count):
            account = group[i % len(group)]
            txs.append((account, nonces[account]))
            nonces[account] += 1
        cursors[g] += count
        yield PlannedBatch(index, offset, target, first_tx, tuple(txs))
        first_tx += count
        index += 1


def _check_groups(spec: PlanSpec, groups: Sequence[Sequence[int]]) -> None:
    wanted = spec.nodes if spec.by_lane else 1
    if len(groups) != wanted or not all(groups):
        raise ConfigError(f"need {wanted} non-empty account groups, got {len(groups)}")


def target_shares(spec: PlanSpec) -> list[int]:
    """How many transactions the plan sends to each node."""
    shares = [0] * spec.nodes
    index = 0
    for tick in range(spec.ticks):
        offset = tick * spec.batch_ms
        count = txs_due(spec.tps, offset + spec.batch_ms) - txs_due(spec.tps, offset)
        if count:
            shares[index % spec.nodes] += count
            index += 1
    return shares


def txs_per_account(spec: PlanSpec, groups: Sequence[Sequence[int]]) -> int:
    """The most transactions any one account sends under ``spec``."""
    if not spec.by_lane:
        return -(-spec.total_txs // len(groups[0]))
    shares = target_shares(spec)
    return max(-(-share // len(group)) for share, group in zip(shares, groups, strict=True))
