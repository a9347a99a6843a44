"""CI sweep: 1,000 seeds of the mixed scenario (f Byzantine nodes of mixed kinds, twins included,
plus partitions, loss and an honest crash-restart) across 4, 7 and 10 validators.

Runs in CI (marked ``slow`` so a quick local loop can skip it with ``-m "not slow"``), on two
worker processes. Seeds listed in ``regressions.KNOWN_BUGS`` are open protocol bugs: they are
reported but tolerated here, and pinned as strict xfails in test_scenarios.
"""

from __future__ import annotations

import pytest

from node.sim.runner import Job, replay_command, run_jobs
from tests.sim.regressions import KNOWN_BUGS

# validators -> seeds, largest first for load balance. Measured: about 300 CPU-seconds in all
# (n=10: 115, n=7: 104, n=4: 84), so 2.5-3 minutes on two otherwise idle cores.
SWEEP = {10: 150, 7: 250, 4: 600}
WORKERS = 2


@pytest.mark.slow
def test_mixed_sweep_of_a_thousand_seeds_keeps_every_invariant() -> None:
    """1,000 seeded mixed-fault runs: no violation outside the known open bugs, and progress."""
    jobs = [Job("mixed", n, seed) for n, count in SWEEP.items() for seed in range(count)]
    assert len(jobs) >= 1000
    unexpected: list[str] = []
    known: list[str] = []
    commits = 0
    for outcome in run_jobs(jobs, WORKERS):
        commits += outcome.metrics.commits
        if not outcome.violations:
            continue
        job = outcome.job
        line = f"{replay_command(job)}: {'; '.join(outcome.violations[:3])}"
        if (job.validators, job.scenario, job.seed) in KNOWN_BUGS:
            known.append(line)
        else:
            unexpected.append(line)
    print(f"sweep: {len(jobs)} runs, {commits} commits, {len(known)} known-bug seeds")
    for line in known:
        print(f"  known: {line}")
    assert unexpected == [], "\n".join(unexpected)
    assert commits > 10 * len(jobs)
