"""Simulated throughput and message complexity of the protocol core (prints figures).

For each committee size, runs the fault-free `happy` scenario of the simulator and reports:
committed cars per simulated second, transactions per simulated second, and messages per
committed slot split into consensus messages (Prepare, votes, Confirm, Commit, Timeout, TC)
and data-layer messages (cars, lane votes, PoAs, sync). Consensus messages per slot should
grow linearly with n (leader-collects: O(n) per phase), independently of the backlog.

    python bench/sim_throughput.py [--sizes 4 16 64] [--duration-ms 3000] [--seed 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections import Counter
from collections.abc import Mapping
from typing import ClassVar

from node.crypto.signing import Signer, Verifier
from node.protocol.config import ProtocolConfig
from node.protocol.effects import Broadcast, Effect, PersistKey, Send
from node.protocol.events import Event
from node.protocol.replica import Replica
from node.sim.clock import ms
from node.sim.harness import run_scenario
from node.sim.scenarios import happy
from node.types.committee import Committee

CONSENSUS = {"Prepare", "Vote", "Confirm", "Commit", "Timeout", "TC"}
CATCH_UP = {"CommitSyncRequest"}  # one broadcast per node at start: not per slot


class CountingReplica:
    """The real replica, counting every message it sends (a broadcast counts n-1)."""

    sent: ClassVar[Counter[str]] = Counter()

    def __init__(self, replica: Replica, size: int) -> None:
        self.replica = replica
        self.size = size

    def restore(self, records: Mapping[PersistKey, object]) -> None:
        self.replica.restore(records)

    def step(self, event: Event) -> list[Effect]:
        effects = self.replica.step(event)
        for e in effects:
            if isinstance(e, Send):
                CountingReplica.sent[type(e.message).__name__] += 1
            elif isinstance(e, Broadcast):
                CountingReplica.sent[type(e.message).__name__] += self.size - 1
        return effects


def counting_factory(
    committee: Committee, me: int, signer: Signer, verifier: Verifier, config: ProtocolConfig
) -> CountingReplica:
    return CountingReplica(Replica(committee, me, signer, verifier, config), committee.size)


def measure(n: int, duration_ms: int, seed: int, car_interval_ms: int) -> dict[str, float]:
    CountingReplica.sent = Counter()
    # One car interval for every size, so the figures compare like with like.
    base = happy(n, seed)
    config = dataclasses.replace(base.config, car_interval_ms=car_interval_ms)
    scenario = dataclasses.replace(base, config=config, heal=ms(duration_ms // 2))
    scenario = scenario.with_duration(ms(duration_ms))
    started = time.perf_counter()
    result = run_scenario(scenario, counting_factory)
    wall = time.perf_counter() - started
    ledger = result.ledgers[min(result.ledgers)]
    slots = len(ledger)
    cars = sum(len(b.cars) for b in ledger)
    txs = sum(b.tx_count for b in ledger)
    seconds = duration_ms / 1000
    sent = CountingReplica.sent
    consensus = sum(v for k, v in sent.items() if k in CONSENSUS)
    data = sum(v for k, v in sent.items() if k not in CONSENSUS | CATCH_UP)
    return {
        "n": n,
        "slots": slots,
        "cars_per_s": cars / seconds,
        "txs_per_s": txs / seconds,
        "consensus_msgs_per_slot": consensus / max(slots, 1),
        "consensus_msgs_per_slot_per_n": consensus / max(slots, 1) / n,
        "data_msgs_per_car": data / max(cars, 1),
        "violations": len(result.violations),
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--duration-ms", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--car-interval-ms", type=int, default=250)
    args = parser.parse_args()
    print(
        f"{'n':>4} {'slots':>6} {'cars/s':>8} {'txs/s':>8} {'cons msgs/slot':>15} "
        f"{'per n':>7} {'data msgs/car':>14} {'viol':>5} {'wall s':>7}"
    )
    for n in args.sizes:
        r = measure(n, args.duration_ms, args.seed, args.car_interval_ms)
        print(
            f"{r['n']:>4} {r['slots']:>6} {r['cars_per_s']:>8.1f} {r['txs_per_s']:>8.1f} "
            f"{r['consensus_msgs_per_slot']:>15.1f} {r['consensus_msgs_per_slot_per_n']:>7.2f} "
            f"{r['data_msgs_per_car']:>14.1f} {r['violations']:>5} {r['wall_s']:>7.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
