"""The fate of every spammed transaction, and the counts and latencies drawn from it.

Each transaction is in exactly one state, so the counts add up by construction:

    unsent ──send──▶ submitted ──reply──▶ accepted ──in an executed block──▶ committed
                         │                                                     ▲
                         └──reply / RPC failure──▶ rejected ───────────────────┘

A transaction seen in a block is committed whatever its reply said (a reply can arrive
after the block, and a batch whose RPC failed may still have been admitted). So at the end
``sent == accepted + rejected`` and ``accepted == committed + pending``, where *accepted*
counts the committed ones too.

Memory: a byte of state per planned transaction, plus an entry per transaction sent and
not yet committed (hash → index and send time) and 4 bytes per latency.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

UNSENT, SUBMITTED, ACCEPTED, REJECTED, COMMITTED = range(5)
RECENT_LATENCIES = 2048
TPS_WINDOW_MS = 5000


@dataclass(frozen=True, slots=True)
class Counts:
    sent: int
    accepted: int  # committed ones included
    rejected: int
    committed: int
    awaiting_reply: int

    @property
    def pending(self) -> int:
        """Accepted, not (yet) seen in an executed block."""
        return self.accepted - self.committed


def percentile(sorted_values: Sequence[int], p: float) -> int | None:
    """The nearest-rank ``p``-th percentile (0 < p <= 100) of ascending values."""
    if not sorted_values:
        return None
    if not 0 < p <= 100:
        raise ValueError(f"percentile {p} outside (0, 100]")
    rank = math.ceil(p / 100 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


def reason_key(reason: str) -> str:
    """A rejection reason without its details (``nonce too low: nonce 5, next 6``)."""
    return reason.split(":", 1)[0].strip() or "rejected"


class Ledger:
    """Counts and latencies of one run of ``total`` planned transactions."""

    def __init__(self, total: int, start_ms: int) -> None:
        self.start_ms = start_ms
        self._state = bytearray(total)
        self._open: dict[bytes, tuple[int, int]] = {}
        self._counts = [0] * 5
        self.latencies = array("l")
        self.commit_latencies = array("l")
        self.lags = array("l")
        self.reasons: Counter[str] = Counter()
        self._reason_of: dict[int, str] = {}
        self.recent: deque[int] = deque(maxlen=RECENT_LATENCIES)
        self._commit_times: deque[tuple[int, int]] = deque()
        self.commits_per_s: Counter[int] = Counter()
        self.first_send_ms: int | None = None
        self.last_send_ms: int | None = None
        self.last_commit_ms: int | None = None
        self.foreign_txs = 0
        self.rejected_then_committed = 0

    # ---------------------------------------------------------------- events

    def on_sent(self, first_tx: int, hashes: Sequence[bytes], send_ms: int, now_ms: int) -> None:
        """A batch due at ``send_ms`` left at ``now_ms``."""
        for i, tx_hash in enumerate(hashes):
            self._move(first_tx + i, SUBMITTED)
            self._open[tx_hash] = (first_tx + i, send_ms)
        self.lags.append(now_ms - send_ms)
        if self.first_send_ms is None:
            self.first_send_ms = send_ms
        self.last_send_ms = now_ms

    def on_reply(self, first_tx: int, outcomes: Sequence[tuple[bool, str]]) -> None:
        """The node's verdicts on a batch, in order."""
        for i, (accepted, reason) in enumerate(outcomes):
            if self._state[first_tx + i] != SUBMITTED:
                continue
            if accepted:
                self._move(first_tx + i, ACCEPTED)
            else:
                key = reason_key(reason)
                self._move(first_tx + i, REJECTED)
                self._reason_of[first_tx + i] = key
                self.reasons[key] += 1

    def on_failure(self, first_tx: int, count: int, reason: str) -> None:
        """The RPC carrying a batch failed: its transactions count as rejected."""
        self.on_reply(first_tx, [(False, reason)] * count)

    def on_block(
        self, tx_hashes: Iterable[bytes], seen_ms: int, commit_ms: int | None = None
    ) -> int:
        """An executed block seen at ``seen_ms`` (committed at ``commit_ms`` by the node's
        clock, when known); returns how many of ours it held."""
        ours = 0
        for tx_hash in tx_hashes:
            entry = self._open.pop(tx_hash, None)
            if entry is None:
                self.foreign_txs += 1
                continue
            index, send_ms = entry
            if self._state[index] == REJECTED:
                self.reasons[self._reason_of.pop(index)] -= 1
                self.rejected_then_committed += 1
            self._move(index, COMMITTED)
            latency = seen_ms - send_ms
            self.latencies.append(latency)
            self.recent.append(latency)
            if commit_ms is not None:
                self.commit_latencies.append(commit_ms - send_ms)
            ours += 1
        if ours:
            self.last_commit_ms = seen_ms
            self._commit_times.append((seen_ms, ours))
            self.commits_per_s[(seen_ms - self.start_ms) // 1000] += ours
        return ours

    def _move(self, index: int, state: int) -> None:
        self._counts[self._state[index]] -= 1
        self._counts[state] += 1
        self._state[index] = state

    # ---------------------------------------------------------------- queries

    def counts(self) -> Counts:
        c = self._counts
        return Counts(
            sent=c[SUBMITTED] + c[ACCEPTED] + c[REJECTED] + c[COMMITTED],
            accepted=c[ACCEPTED] + c[COMMITTED],
            rejected=c[REJECTED],
            committed=c[COMMITTED],
            awaiting_reply=c[SUBMITTED],
        )

    def recent_tps(self, now_ms: int) -> float:
        """Committed transactions per second over the last few seconds."""
        while self._commit_times and self._commit_times[0][0] < now_ms - TPS_WINDOW_MS:
            self._commit_times.popleft()
        return sum(n for _, n in self._commit_times) * 1000 / TPS_WINDOW_MS

    def recent_p50(self) -> int | None:
        return percentile(sorted(self.recent), 50)
