"""Virtual time: one event heap ordered by (time, sequence number).

Time is an integer number of microseconds since the start of a run. Replicas see milliseconds
(``now_ms``); the finer unit lets seeded latencies reorder messages without ties everywhere.
Equal times run in scheduling order, so a run is a pure function of what was scheduled.
"""

from __future__ import annotations

import heapq
from typing import Any

US_PER_MS = 1000


def ms(value: float) -> int:
    """Milliseconds to clock ticks (microseconds)."""
    return round(value * US_PER_MS)


class VirtualClock:
    """A discrete-event scheduler. ``pop`` advances ``now`` to the next event's time."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, int, tuple[Any, ...]]] = []
        self._seq = 0
        self.now = 0

    @property
    def now_ms(self) -> int:
        return self.now // US_PER_MS

    def __len__(self) -> int:
        return len(self._heap)

    def schedule(self, at: int, kind: int, *payload: Any) -> None:
        """Run event ``kind`` with ``payload`` at time ``at`` (never earlier than now)."""
        self._seq += 1
        heapq.heappush(self._heap, (max(at, self.now), self._seq, kind, payload))

    def schedule_in(self, delay: int, kind: int, *payload: Any) -> None:
        self.schedule(self.now + delay, kind, *payload)

    def peek_time(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def pop(self) -> tuple[int, tuple[Any, ...]]:
        """Remove the earliest event, advance ``now`` to its time, return (kind, payload)."""
        time, _, kind, payload = heapq.heappop(self._heap)
        self.now = time
        return kind, payload
