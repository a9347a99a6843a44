"""Protocol metrics read off the messages a node sees and the effects its replica emits.

The state machines stay pure; this observer watches the traffic around them and records
what an operator plots: cars sealed (count, bytes, transactions), time from a car's first
sighting to its proof of availability per lane, a slot's time from its proposal to its
commit, timeouts sent and view changes (distinct timeout certificates seen).

Every map is bounded: entries that never complete (a car never certified, a slot skipped)
are dropped oldest first, so the observer cannot grow without limit.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from node.metrics.registry import Metrics, NoopMetrics
from node.types.messages import Car, Message, PoA, Prepare, Timeout

MAX_TRACKED = 4096


Key = tuple[int, int]


def _bounded_put(table: OrderedDict[Key, float], key: Key, t: float) -> None:
    if key not in table:
        table[key] = t
        if len(table) > MAX_TRACKED:
            table.popitem(last=False)


class ProtocolObserver:
    """Feeds ``metrics`` from inbound messages and outbound broadcasts of one node."""

    def __init__(self, index: int, metrics: Metrics | NoopMetrics, clock: Callable[[], float]):
        self.index = index
        self.metrics = metrics
        self.clock = clock
        self.car_seen: OrderedDict[Key, float] = OrderedDict()
        self.slot_seen: OrderedDict[Key, float] = OrderedDict()
        self.certified: OrderedDict[Key, float] = OrderedDict()
        self.view_changes: OrderedDict[Key, float] = OrderedDict()

    def inbound(self, message: Message) -> None:
        self._see(message, own=False)

    def outbound(self, message: Message) -> None:
        self._see(message, own=True)

    def committed(self, slot: int) -> None:
        started = self.slot_seen.pop((slot, 0), None)
        if started is not None:
            self.metrics.commit_latency.observe(max(0.0, self.clock() - started))

    def _see(self, message: Message, own: bool) -> None:
        if isinstance(message, Car):
            self._car(message, own)
        elif isinstance(message, PoA):
            self._poa(message)
        elif isinstance(message, Prepare):
            self._prepare(message)
        elif isinstance(message, Timeout) and own and message.voter == self.index:
            self.metrics.timeouts.inc()

    def _car(self, car: Car, own: bool) -> None:
        now = self.clock()
        if own and car.lane == self.index and (car.lane, car.pos) not in self.car_seen:
            self.metrics.cars_sealed.inc()
            self.metrics.car_size.observe(sum(len(tx) for tx in car.txs))
            self.metrics.car_txs.observe(len(car.txs))
        _bounded_put(self.car_seen, (car.lane, car.pos), now)
        if car.parent_poa is not None:
            self._poa(car.parent_poa)

    def _poa(self, poa: PoA) -> None:
        key = (poa.lane, poa.pos)
        if key in self.certified:
            return
        _bounded_put(self.certified, key, 0.0)
        seen = self.car_seen.pop(key, None)
        if seen is not None:
            latency = max(0.0, self.clock() - seen)
            self.metrics.poa_latency.labels(lane=str(poa.lane)).observe(latency)

    def _prepare(self, prepare: Prepare) -> None:
        proposal = prepare.proposal
        # Commit latency is measured per slot from its first proposal (view 0).
        if proposal.view == 0:
            _bounded_put(self.slot_seen, (proposal.slot, 0), self.clock())
        tc = prepare.ticket.tc
        if tc is not None and (tc.slot, tc.view) not in self.view_changes:
            _bounded_put(self.view_changes, (tc.slot, tc.view), 0.0)
            self.metrics.view_changes.inc()
