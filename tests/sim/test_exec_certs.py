"""Execution certificates in the simulator: a validator with a corrupted state is detected
and halts, the others keep committing and certify only the honest commitment."""

from __future__ import annotations

import pytest

from node.sim.harness import run_scenario
from node.sim.invariants import ExecBook, check_execution
from node.sim.scenarios import build
from node.types.messages import ExecCert


@pytest.mark.parametrize("n", [4, 7, 10])
@pytest.mark.parametrize("seed", range(4))
def test_corrupted_validator_halts_and_the_rest_keep_committing(n: int, seed: int) -> None:
    """The corrupt host, and only it, halts; honest nodes commit past its halt and every
    certificate they carry holds the honest commitment."""
    scenario = build("corrupt-state", n, seed)
    ((corrupt, _),) = scenario.byzantine
    result = run_scenario(scenario)
    assert [str(v) for v in result.violations] == []
    assert result.halted == {corrupt}
    (honest_halt, reason) = result.monitor.execution.halts[corrupt]
    assert not honest_halt and "execution diverged at height" in reason
    interval = scenario.config.exec_cert_interval
    first_bad_checkpoint = -(-scenario.corrupt_from // interval) * interval
    assert all(len(ledger) > first_bad_checkpoint + interval for ledger in result.ledgers.values())
    certified = {height for height, _ in result.monitor.execution.certs}
    assert any(h >= first_bad_checkpoint for h in certified), "no certificate past the corruption"


def test_mixed_faults_form_certificates_and_halt_no_one() -> None:
    """Byzantine kinds, partitions and crashes do not halt honest nodes; certificates form."""
    long_runs = 0
    for seed in range(5):
        scenario = build("mixed", 4, seed)
        result = run_scenario(scenario)
        assert [str(v) for v in result.violations] == []
        assert result.halted == frozenset()
        interval = scenario.config.exec_cert_interval
        if min(len(ledger) for ledger in result.ledgers.values()) >= 2 * interval:
            long_runs += 1
            assert result.monitor.execution.certs, f"seed {seed}: no certificate carried"
    assert long_runs > 0


def test_execution_checker_flags_honest_halts_and_wrong_certificates() -> None:
    """The invariant itself fails on a planted honest halt and a certificate for a commitment
    no honest node has."""
    book = ExecBook()
    book.on_commitment(5, b"\x01" * 32)
    book.on_cert(ExecCert(1, 5, b"\x01" * 32, (0, 1, 2), (b"s",) * 3))
    book.on_halt(3, False, "byzantine host halted")
    assert check_execution(book) == []
    book.on_cert(ExecCert(1, 5, b"\x02" * 32, (1, 2, 3), (b"s",) * 3))
    book.on_halt(0, True, "execution diverged")
    kinds = sorted(v.kind for v in check_execution(book))
    assert kinds == ["bad-exec-cert", "honest-halt"]
