"""Peer penalties and reconnect backoff. Time and randomness come in as arguments."""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from node.net.transport import NetCounters, TransportLimits


@dataclass(slots=True)
class _Record:
    penalties: deque[float] = field(default_factory=deque)
    banned_until: float = 0.0
    bans: int = 0


class PeerScore:
    """Counts penalties per peer; ``threshold`` of them within ``window`` seconds bans it.

    A ban lasts ``ban_duration`` seconds, doubling with each further ban up to
    ``max_ban_duration``. While banned, a peer's streams are closed and its input dropped.
    """

    def __init__(self, limits: TransportLimits, counters: NetCounters) -> None:
        self._limits = limits
        self._counters = counters
        self._records: dict[int, _Record] = {}

    def penalize(self, peer: int, now: float) -> bool:
        """Record one penalty at ``now``; return True if the peer is (now) banned."""
        self._counters.penalties += 1
        record = self._records.setdefault(peer, _Record())
        if record.banned_until > now:
            return True
        record.penalties.append(now)
        while record.penalties and record.penalties[0] <= now - self._limits.penalty_window:
            record.penalties.popleft()
        if len(record.penalties) < self._limits.penalty_threshold:
            return False
        duration = min(self._limits.ban_duration * 2**record.bans, self._limits.max_ban_duration)
        record.bans += 1
        record.banned_until = now + duration
        record.penalties.clear()
        self._counters.bans += 1
        return True

    def is_banned(self, peer: int, now: float) -> bool:
        record = self._records.get(peer)
        return record is not None and record.banned_until > now

    def banned_until(self, peer: int) -> float:
        record = self._records.get(peer)
        return record.banned_until if record is not None else 0.0


class Backoff:
    """Exponential reconnect delays with jitter: attempt k waits in [d/2, d], d = base * 2^k,
    capped at ``cap``. The jitter comes from a seeded RNG so runs can be replayed."""

    def __init__(self, base: float, cap: float, rng: random.Random) -> None:
        if base <= 0 or cap < base:
            raise ValueError(f"backoff needs 0 < base <= cap, got base={base} cap={cap}")
        self._base = base
        self._cap = cap
        self._rng = rng
        self._attempt = 0

    @property
    def attempt(self) -> int:
        return self._attempt

    def next_delay(self) -> float:
        ceiling: float = min(self._cap, self._base * 2.0 ** min(self._attempt, 62))
        self._attempt += 1
        jitter: float = self._rng.uniform(0, ceiling / 2)
        return ceiling / 2 + jitter

    def reset(self) -> None:
        self._attempt = 0
