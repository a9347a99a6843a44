"""`lanenet spam` against a real 4-validator testnet of local processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.tools import spammer
from node.tools.spam.localnet import local_testnet

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_spam_at_200_tps_for_5_s_commits_every_accepted_transaction(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """200 tx/s for 5 s over gRPC: nothing is rejected, everything accepted is committed and
    executed, and the JSON report's counts add up."""
    directory = tmp_path / "net"
    with local_testnet(directory):
        args = ["--dir", str(directory), "--tps", "200", "--duration", "5", "--settle", "30"]
        code = spammer.main([*args, "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    report = json.loads(out[-1])
    assert report["sent"] == 1000
    assert report["rejected"] == 0, report["rejected_reasons"]
    assert report["committed"] == report["accepted"] == 1000
    assert report["pending"] == 0
    assert report["latency_ms"]["p50"] is not None
