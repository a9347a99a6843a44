"""``lanenet sim``: run K seeds of a scenario and end with one JSON line of results.

Exit status 0 when no run broke an invariant, 1 otherwise; each failing seed is printed
with the command that replays it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TextIO

from node.sim.clock import ms
from node.sim.harness import run_scenario
from node.sim.metrics import Aggregate, RunMetrics, compute_metrics
from node.sim.scenarios import SCENARIOS, build


@dataclass(frozen=True, slots=True)
class Job:
    scenario: str
    validators: int
    seed: int
    duration_ms: int | None = None


@dataclass(slots=True)
class Outcome:
    job: Job
    violations: list[str]
    metrics: RunMetrics
    events: int
    fingerprint: str


def run_job(job: Job) -> Outcome:
    """One seeded run, reduced to what the parent process needs."""
    scenario = build(job.scenario, job.validators, job.seed)
    if job.duration_ms is not None:
        scenario = scenario.with_duration(ms(job.duration_ms))
    result = run_scenario(scenario)
    return Outcome(
        job,
        [str(v) for v in result.violations],
        compute_metrics(result),
        result.events,
        result.ledger_fingerprint(),
    )


def replay_command(job: Job) -> str:
    command = (
        f"lanenet sim --validators {job.validators} --scenario {job.scenario} --seed {job.seed}"
    )
    if job.duration_ms is not None:
        command += f" --duration-ms {job.duration_ms}"
    return command


def run_jobs(jobs: list[Job], workers: int) -> Iterator[Outcome]:
    """Outcomes in job order; ``workers`` > 1 runs seeds in parallel processes."""
    if workers <= 1 or len(jobs) <= 1:
        yield from map(run_job, jobs)
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from pool.imap(run_job, jobs, chunksize=max(1, min(8, len(jobs) // (4 * workers))))


def summarize(outcomes: Iterable[Outcome], out: TextIO, verbose: bool) -> Aggregate:
    total = Aggregate()
    for outcome in outcomes:
        total.add(outcome.metrics, len(outcome.violations))
        if outcome.violations:
            print(f"FAIL seed {outcome.job.seed}: {len(outcome.violations)} violation(s)", file=out)
            for violation in outcome.violations[:10]:
                print(f"  {violation}", file=out)
            print(f"  replay: {replay_command(outcome.job)}", file=out)
        elif verbose:
            metrics = outcome.metrics
            hangover = "-" if metrics.hangover_ms is None else f"{metrics.hangover_ms:.0f} ms"
            print(
                f"ok seed {outcome.job.seed}: {metrics.commits} commits, "
                f"{metrics.fast}/{metrics.fast + metrics.slow} fast, hangover {hangover}, "
                f"{outcome.events} events",
                file=out,
            )
    return total


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="lanenet sim", description="Deterministic multi-validator simulation."
    )
    parser.add_argument("--validators", "-n", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=10, help="number of seeds to run")
    parser.add_argument("--seed-start", type=int, default=0, help="first seed")
    parser.add_argument("--seed", type=int, default=None, help="replay this one seed")
    parser.add_argument("--scenario", default="happy", choices=sorted(SCENARIOS))
    parser.add_argument(
        "--duration-ms",
        type=int,
        default=None,
        help="virtual run length (default: the scenario's own)",
    )
    parser.add_argument("--jobs", "-j", type=int, default=1, help="worker processes")
    parser.add_argument(
        "--quiet", "-q", action="store_true", help="print only failures and the final JSON line"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print only the final JSON line (and failures to stderr)",
    )
    args = parser.parse_args(argv)
    if args.validators < 1 or args.seeds < 1 or args.jobs < 1:
        parser.error("--validators, --seeds and --jobs must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    seeds = (
        [args.seed]
        if args.seed is not None
        else list(range(args.seed_start, args.seed_start + args.seeds))
    )
    jobs = [Job(args.scenario, args.validators, s, args.duration_ms) for s in seeds]
    failures = sys.stderr if args.json else sys.stdout
    verbose = not (args.quiet or args.json)
    total = summarize(run_jobs(jobs, args.jobs), failures, verbose)
    print(json.dumps(total.summary()))
    return 1 if total.violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
