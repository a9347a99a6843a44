"""Chain checks shared by the e2e tests: every node holds the same block at every height."""

from __future__ import annotations

from collections.abc import Sequence

from tests.e2e.stack import VALIDATORS, Stack, wait_until


def wait_caught_up(
    stack: Stack, target: int, timeout: float, nodes: Sequence[int] = range(VALIDATORS)
) -> None:
    """Wait until every node in ``nodes`` has executed at least ``target``."""
    wait_until(
        lambda: (h := stack.heights(nodes)).keys() == set(nodes)
        and min(h.values()) >= target,
        f"nodes {list(nodes)} to execute height {target}",
        timeout=timeout,
    )


def assert_same_chain(stack: Stack, nodes: Sequence[int] = range(VALIDATORS)) -> int:
    """Every node lists the same block hash at every height they all have; returns that
    common height (at least 1)."""
    heights = stack.heights(nodes)
    assert heights.keys() == set(nodes), f"nodes not answering: {set(nodes) - heights.keys()}"
    top = min(heights.values())
    assert top >= 1, f"no block committed yet: {heights}"
    chains = {i: stack.block_hashes(i, 1, top) for i in nodes}
    for h in range(top):
        at_height = {chains[i][h] for i in nodes}
        assert None not in at_height, f"height {h + 1} is missing on some node"
        assert len(at_height) == 1, f"nodes disagree at height {h + 1}: {at_height}"
    return top
