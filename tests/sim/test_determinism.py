"""A run is a pure function of (validators, scenario, seed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from node.sim.harness import run_scenario
from node.sim.metrics import compute_metrics
from node.sim.scenarios import build

ROOT = Path(__file__).resolve().parents[2]


def _fingerprint(scenario: str, n: int, seed: int) -> tuple[str, int, int, list[float]]:
    result = run_scenario(build(scenario, n, seed))
    metrics = compute_metrics(result)
    return result.ledger_fingerprint(), result.events, len(result.violations), metrics.latencies_md


@pytest.mark.parametrize(("scenario", "seed"), [("mixed", 3), ("crash", 1), ("twins", 2)])
def test_two_runs_of_one_seed_are_identical(scenario: str, seed: int) -> None:
    """Running one seed twice yields the same ledgers, event count and latencies."""
    assert _fingerprint(scenario, 4, seed) == _fingerprint(scenario, 4, seed)


def test_different_seeds_give_different_runs() -> None:
    """The seed actually drives the run."""
    assert _fingerprint("lossy", 4, 1)[0] != _fingerprint("lossy", 4, 2)[0]


def test_runs_do_not_depend_on_the_hash_seed() -> None:
    """Two processes with different PYTHONHASHSEED produce the same ledgers (no set order leaks)."""
    code = (
        "from node.sim.harness import run_scenario\n"
        "from node.sim.scenarios import build\n"
        "print(run_scenario(build('mixed', 4, 5)).ledger_fingerprint())\n"
    )
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        outputs.append(done.stdout.strip())
    assert outputs[0] == outputs[1]
    assert len(outputs[0]) == 32
