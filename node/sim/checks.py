"""Runs every invariant checker over one finished run (honest nodes only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.sim.invariants import (
    Violation,
    check_agreement,
    check_inclusion,
    check_liveness,
    check_no_duplicates,
    check_poas,
    check_slot_agreement,
)

if TYPE_CHECKING:
    from node.sim.harness import RunResult, Simulation


def check_run(result: RunResult, sim: Simulation) -> list[Violation]:
    """Safety always; liveness and inclusion when the run lasted long enough after heal."""
    ledgers = result.ledgers
    found = check_agreement(ledgers)
    found += check_slot_agreement(result.monitor.committed_cuts(result.honest))
    found += check_no_duplicates(ledgers, result.honest)
    found += check_poas(ledgers, result.monitor.poas)
    scenario = result.scenario
    since, bound = scenario.heal, scenario.liveness_bound
    if result.end < since + bound:
        return found
    up = [i for i in result.honest if sim.hosts[i].instances[0].replica is not None]
    commit_times = {i: [r.time for r in result.monitor.commits.get(i, {}).values()] for i in up}
    found += check_liveness(commit_times, since, bound)
    deadline = result.end - bound
    expected = {
        tx: lane
        for tx, (lane, at) in result.submitted.items()
        if at <= deadline and lane not in result.crashed
    }
    found += check_inclusion(expected, ledgers)
    return found
