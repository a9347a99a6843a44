"""The in-memory network: seeded per-link latency, loss, duplication, partitions, filters.

The network only decides *when* (if ever) a message sent at ``now`` from ``src`` reaches
``dst``; the harness puts deliveries on the clock. Reordering is not a separate knob: it
follows from per-message jitter on top of each link's fixed base latency.

Latency of one message on link (i, j) = base[i][j] + Exp(jitter_mean), where base[i][j] is
drawn once per run, uniformly in [base_min, base_max]. The mean one-way delay (one "message
delay", md) is therefore the mean of the bases plus the jitter mean; metrics divide by it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from node.sim.clock import ms
from node.types.errors import ConfigError
from node.types.messages import Message

DeliveryFilter = Callable[[int, int, Message, int], bool]
"""``(src, dst, message, now) -> deliver?``; used for targeted drops (e.g. a silenced leader)."""


@dataclass(frozen=True, slots=True)
class LinkModel:
    """Latency distribution and background faults shared by every link, in milliseconds."""

    base_min_ms: float = 2.0
    base_max_ms: float = 10.0
    jitter_mean_ms: float = 2.0
    loss: float = 0.0
    duplicate: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.base_min_ms <= self.base_max_ms:
            raise ConfigError("link model: need 0 <= base_min_ms <= base_max_ms")
        if self.jitter_mean_ms < 0:
            raise ConfigError("link model: jitter_mean_ms must not be negative")
        if not (0 <= self.loss < 1 and 0 <= self.duplicate < 1):
            raise ConfigError("link model: loss and duplicate are probabilities below 1")


@dataclass(frozen=True, slots=True)
class Partition:
    """Between ``start`` and ``end`` (clock ticks) only nodes in the same group talk.

    With ``hold`` a message across the cut is delayed until the partition heals (reliable
    channels, partial synchrony: the paper's model and the artifact's blip simulation);
    without it the message is lost, as when a TCP stream breaks.
    """

    start: int
    end: int
    groups: tuple[frozenset[int], ...]
    hold: bool = True

    def separates(self, a: int, b: int) -> bool:
        for group in self.groups:
            if a in group:
                return b not in group
        return True  # a node in no group is isolated

    def is_active(self, now: int) -> bool:
        return self.start <= now < self.end


@dataclass(frozen=True, slots=True)
class LossWindow:
    """Extra message loss probability between ``start`` and ``end``."""

    start: int
    end: int
    loss: float


@dataclass(slots=True)
class NetworkStats:
    sent: int = 0
    delivered: int = 0
    lost: int = 0
    cut: int = 0
    held: int = 0
    duplicated: int = 0
    filtered: int = 0


@dataclass(slots=True)
class Network:
    """Decides delivery times for one run. Every draw comes from ``rng``, in call order."""

    size: int
    model: LinkModel
    rng: random.Random
    partitions: Sequence[Partition] = ()
    loss_windows: Sequence[LossWindow] = ()
    filters: list[DeliveryFilter] = field(default_factory=list)
    stats: NetworkStats = field(default_factory=NetworkStats)
    _base: list[list[int]] = field(default_factory=list)
    _jitter_rate: float = 0.0

    def __post_init__(self) -> None:
        lo, hi = self.model.base_min_ms, self.model.base_max_ms
        self._base = [
            [ms(self.rng.uniform(lo, hi)) for _ in range(self.size)] for _ in range(self.size)
        ]
        jitter = ms(self.model.jitter_mean_ms)
        self._jitter_rate = 1.0 / jitter if jitter > 0 else 0.0

    @property
    def mean_delay(self) -> float:
        """Expected one-way delay in clock ticks (one message delay, md)."""
        links = [self._base[i][j] for i in range(self.size) for j in range(self.size) if i != j]
        mean_base = sum(links) / len(links) if links else 0.0
        return mean_base + ms(self.model.jitter_mean_ms)

    def sample_delay(self, src: int, dst: int) -> int:
        jitter = self.rng.expovariate(self._jitter_rate) if self._jitter_rate else 0.0
        return self._base[src][dst] + int(jitter)

    def route(self, now: int, src: int, dst: int, message: Message) -> list[int]:
        """Delivery times for one message: none (lost), one, or two (duplicated)."""
        self.stats.sent += 1
        if src == dst:
            self.stats.delivered += 1
            return [now]
        for keep in self.filters:
            if not keep(src, dst, message, now):
                self.stats.filtered += 1
                return []
        earliest = now
        for part in self.partitions:
            if part.is_active(now) and part.separates(src, dst):
                if not part.hold:
                    self.stats.cut += 1
                    return []
                self.stats.held += 1
                earliest = max(earliest, part.end)
        if self.rng.random() < self._loss_at(now):
            self.stats.lost += 1
            return []
        times = [earliest + self.sample_delay(src, dst)]
        if self.model.duplicate and self.rng.random() < self.model.duplicate:
            self.stats.duplicated += 1
            times.append(earliest + self.sample_delay(src, dst))
        self.stats.delivered += len(times)
        return times

    def _loss_at(self, now: int) -> float:
        loss = self.model.loss
        for window in self.loss_windows:
            if window.start <= now < window.end:
                loss = max(loss, window.loss)
        return loss
