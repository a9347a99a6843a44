"""Fixtures of the e2e tests against a running docker compose testnet (see stack.py).

Tests marked ``e2e`` are skipped unless ``LANENET_E2E_COMPOSE`` names the compose files of
a running stack (``.ci/e2e`` sets it), so a plain ``pytest -q`` needs no Docker.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.e2e.stack import NODES, Stack, stack_from_env, wait_until

SPAM_TPS = int(os.environ.get("LANENET_E2E_SPAM_TPS", "200"))
SPAM_SECONDS = int(os.environ.get("LANENET_E2E_SPAM_SECONDS", "30"))


@pytest.fixture(scope="session")
def stack() -> Stack:
    found = stack_from_env()
    if found is None:
        pytest.skip("LANENET_E2E_COMPOSE is not set: no compose stack to test (see .ci/e2e)")
    wait_until(
        lambda: all(found.health(name) == "healthy" for name in NODES),
        "every validator container to report healthy",
        timeout=120,
    )
    return found


@pytest.fixture(scope="session")
def spam_report(stack: Stack) -> dict[str, Any]:
    """One run of the spammer container against all four validators (the load of the suite)."""
    return stack.spam("--tps", str(SPAM_TPS), "--duration", str(SPAM_SECONDS))
