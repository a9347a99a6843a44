"""Runs every invariant checker over one finished run (honest nodes only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.sim.invariants import (
    Violation,
    check_agreement,
    check_execution,
    check_inclusion,
    check_liveness,
    check_no_duplicates,
    check_poas,
    check_slot_agreement,
)

if TYPE_CHECKING:
    from node.sim.harness import RunResult, Simulation


def check_run(result: RunResult, sim: Simulation) -> list[Violation]:
    """Safety always; liveness (a commit within the bound after heal) and inclusion (every
    transaction given before heal to an honest, never-crashed lane is ordered) when the run
    recovered early or lasted the bound."""
    ledgers = result.ledgers
    found = check_agreement(ledgers)
    found += check_slot_agreement(result.monitor.committed_cuts(result.honest))
    found += check_no_duplicates(ledgers, result.honest)
    found += check_poas(ledgers, result.monitor.poas)
    found += check_execution(result.monitor.execution)
    scenario = result.scenario
    since, bound = scenario.heal, scenario.liveness_bound
    if result.recovered_at is None and result.end < since + bound:
        return found  # a shortened run (--duration-ms) that never reached the bound
    up = [i for i in result.honest if sim.hosts[i].instances[0].replica is not None]
    commit_times = {i: [r.time for r in result.monitor.commits.get(i, {}).values()] for i in up}
    found += check_liveness(commit_times, since, bound)
    expected = {
        tx: lane
        for tx, (lane, at) in result.submitted.items()
        if at <= since and lane not in result.crashed
    }
    found += check_inclusion(expected, ledgers)
    return found
