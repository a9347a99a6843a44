"""``lanenet sim`` runs seeds, prints failing seeds with a replay command, ends with JSON."""

from __future__ import annotations

import io
import json

import pytest

from node.sim.metrics import RunMetrics
from node.sim.runner import Job, Outcome, main, replay_command, run_jobs, summarize

KEYS = {"runs", "violations", "commits", "fast_path_ratio", "p50_commit_md", "max_hangover_ms"}


def test_main_ends_with_one_json_line_and_exit_zero(capsys: pytest.CaptureFixture[str]) -> None:
    """Two clean seeds: exit 0, and the last line is the summary with the promised keys."""
    assert main(["--validators", "4", "--seeds", "2", "--scenario", "crash", "--quiet"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    summary = json.loads(last)
    assert set(summary) >= KEYS
    assert summary["runs"] == 2
    assert summary["violations"] == 0
    assert summary["commits"] > 0
    assert 0 < summary["fast_path_ratio"] <= 1
    assert summary["max_hangover_ms"] is not None


def test_failing_seed_is_printed_with_its_replay_command() -> None:
    """A run with violations is listed with the exact command that replays it."""
    job = Job("mixed", 7, 42)
    bad = Outcome(job, ["agreement: height 3 differs"], RunMetrics(5, 1, 1, [3.0], None), 10, "x")
    good = Outcome(Job("mixed", 7, 43), [], RunMetrics(7, 2, 0, [3.5], 12.0), 10, "y")
    out = io.StringIO()
    total = summarize([bad, good], out, verbose=False)
    text = out.getvalue()
    assert "FAIL seed 42" in text
    assert "agreement: height 3 differs" in text
    assert "lanenet sim --validators 7 --scenario mixed --seed 42" in text
    assert "seed 43" not in text
    assert total.summary() == {
        "runs": 2,
        "violations": 1,
        "commits": 12,
        "fast_path_ratio": 0.75,
        "p50_commit_md": 3.25,
        "max_hangover_ms": 12.0,
    }


def test_replay_command_keeps_a_duration_override() -> None:
    """A run with a non-default duration replays with the same duration."""
    assert replay_command(Job("lossy", 4, 9, 1500)).endswith("--seed 9 --duration-ms 1500")


def test_parallel_and_serial_runs_agree() -> None:
    """--jobs 2 gives the same outcomes, in the same order, as one process."""
    jobs = [Job("lossy", 4, seed) for seed in range(3)]
    serial = [(o.job, o.fingerprint, o.violations) for o in run_jobs(jobs, 1)]
    parallel = [(o.job, o.fingerprint, o.violations) for o in run_jobs(jobs, 2)]
    assert serial == parallel


def test_replaying_one_seed_runs_only_that_seed(capsys: pytest.CaptureFixture[str]) -> None:
    """--seed X replays exactly one run."""
    assert main(["--scenario", "happy", "--seed", "5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip())["runs"] == 1


def test_bad_arguments_are_refused() -> None:
    """Unknown scenarios and non-positive counts exit with a usage error."""
    with pytest.raises(SystemExit):
        main(["--scenario", "nope"])
    with pytest.raises(SystemExit):
        main(["--seeds", "0"])
