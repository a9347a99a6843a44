"""The lanenet command parses its own subcommands and hands `sim` arguments through untouched."""

from __future__ import annotations

import sys
import types

import pytest

from node import __version__
from node.cli import main


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`lanenet version` prints the version and succeeds."""
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == f"lanenet {__version__}"


def test_sim_passes_every_argument_to_the_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    """`lanenet sim ARGS` calls node.sim.runner.main(ARGS) in order and returns its code."""
    seen: list[list[str]] = []

    def fake_main(argv: list[str]) -> int:
        seen.append(argv)
        return 7

    runner = types.ModuleType("node.sim.runner")
    runner.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "node.sim.runner", runner)
    args = ["--validators", "4", "--seeds", "20", "extra", "--help", "-x=1"]
    assert main(["sim", *args]) == 7
    assert seen == [args]


def test_sim_without_runner_fails_clearly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without node.sim.runner, `lanenet sim` exits 2 with a message instead of a traceback."""
    monkeypatch.setitem(sys.modules, "node.sim.runner", None)
    assert main(["sim"]) == 2
    assert "node.sim.runner is missing" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [[], ["bogus"], ["version", "extra"]])
def test_bad_command_lines_exit_with_usage(argv: list[str]) -> None:
    """A missing or unknown subcommand, or a stray argument, is a usage error (exit 2)."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
