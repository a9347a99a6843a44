"""From committed cuts to a total order of cars: one block per committed slot.

Rule (shared/reference/autobahn.md §a.4): slots are ordered in increasing slot number; for each
lane in committee order, the cars after the last ordered position up to the cut's tip, found by
following parent digests back from the tip (so on a forked lane only the committed branch is
ordered), ascending. A tip at or below the last ordered position adds nothing. Missing cars are
fetched from the tip's PoA signers in one range request; ordering waits for them.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.crypto.hashing import ZERO_DIGEST
from node.protocol.effects import Deliver, Effect, Persist
from node.protocol.lanes import Lanes
from node.types.messages import Block, Car, Cut


@dataclass(frozen=True, slots=True)
class OrderingCheckpoint:
    """Where the total order stands: persisted after every delivered block."""

    next_slot: int
    height: int
    last_block: bytes
    lane_positions: tuple[tuple[int, bytes], ...]


class Ordering:
    def __init__(self, lanes: Lanes) -> None:
        self.lanes = lanes
        n = lanes.committee.size
        self.next_slot = 1
        self.height = 0
        self.last_block = ZERO_DIGEST
        self.positions: list[tuple[int, bytes]] = [(0, ZERO_DIGEST)] * n
        self.pending: dict[int, Cut] = {}

    def on_committed(self, slot: int, cut: Cut) -> list[Effect]:
        if slot >= self.next_slot:
            self.pending.setdefault(slot, cut)
        return self.advance()

    def advance(self) -> list[Effect]:
        """Deliver every block whose slot is next and whose cars are all held."""
        effects: list[Effect] = []
        while self.next_slot in self.pending:
            cut = self.pending[self.next_slot]
            cars = self._collect(cut, effects)
            if cars is None:
                break
            effects += self._deliver(cut, cars)
        return effects

    def _collect(self, cut: Cut, effects: list[Effect]) -> list[Car] | None:
        out: list[Car] = []
        complete = True
        for tip in cut.tips:
            start = self.positions[tip.lane][0]
            if tip.pos <= start:
                continue
            cars = self.lanes.chain(tip.lane, start + 1, tip.pos, tip.car_digest)
            if cars is None:
                complete = False
                signers = tip.poa.signers if tip.poa is not None else ()
                effects += self.lanes.request(
                    tip.lane, start + 1, tip.pos, tip.car_digest, (tip.lane, *signers)
                )
            elif complete:
                out.extend(cars)
        return out if complete else None

    def _deliver(self, cut: Cut, cars: list[Car]) -> list[Effect]:
        slot = self.next_slot
        del self.pending[slot]
        self.height += 1
        block = Block(self.height, slot, self.last_block, cut.digest, tuple(cars))
        self.last_block = block.digest
        self.next_slot = slot + 1
        effects: list[Effect] = []
        for tip in cut.tips:
            if tip.pos > self.positions[tip.lane][0]:
                self.positions[tip.lane] = (tip.pos, tip.car_digest)
                effects += self.lanes.on_ordered(tip.lane, tip.pos, tip.car_digest)
        checkpoint = OrderingCheckpoint(
            self.next_slot, self.height, self.last_block, tuple(self.positions)
        )
        # Deliver first: a crash before the checkpoint re-delivers this block after restart,
        # which the driver ignores by height; the other order would lose it.
        return [Deliver(block), Persist(("ordering",), checkpoint), *effects]

    def restore(self, checkpoint: OrderingCheckpoint) -> None:
        self.next_slot = checkpoint.next_slot
        self.height = checkpoint.height
        self.last_block = checkpoint.last_block
        self.positions = list(checkpoint.lane_positions)
        for lane, (pos, _digest) in enumerate(self.positions):
            self.lanes.ordered_pos[lane] = pos
