"""Execution trails consensus: committed and executed heights move separately, in order."""

from __future__ import annotations

import pytest

from node.execution.pipeline import ExecutionPipeline
from node.execution.state import Account, genesis_state
from node.types.errors import FatalError
from tests.eth import BASE_FEE, FEE_SINK, address, signed_transfer


def make_pipeline() -> ExecutionPipeline:
    state = genesis_state({address(0): 10**18})
    return ExecutionPipeline(state, base_fee=BASE_FEE, fee_sink=FEE_SINK)


def test_commits_run_ahead_and_execution_catches_up() -> None:
    """Commits advance the committed height alone; execute() advances the executed height."""
    pipeline = make_pipeline()
    assert pipeline.next_height() is None
    for height in (1, 2, 3):
        pipeline.on_committed(height)
    assert (pipeline.committed_height, pipeline.executed_height, pipeline.lag) == (3, 0, 3)
    for height in (1, 2, 3):
        assert pipeline.next_height() == height
        result = pipeline.execute(height, [signed_transfer(0, height - 1)])
        assert result.height == height
    assert (pipeline.executed_height, pipeline.lag, pipeline.next_height()) == (3, 0, None)


def test_writes_are_applied_to_the_state() -> None:
    """After executing a block, the state store holds its writes."""
    state = genesis_state({address(0): 10**18})
    pipeline = ExecutionPipeline(state, base_fee=BASE_FEE, fee_sink=FEE_SINK)
    pipeline.on_committed(1)
    pipeline.execute(1, [signed_transfer(0, 0, value=5)])
    assert state.get_account(address(1)) == Account(0, 5)


def test_out_of_order_heights_stop_the_node() -> None:
    """A commit that skips a height, or executing anything but the next height, is fatal."""
    pipeline = make_pipeline()
    with pytest.raises(FatalError, match="skips"):
        pipeline.on_committed(2)
    pipeline.on_committed(1)
    pipeline.on_committed(1)  # a repeated commit is harmless
    with pytest.raises(FatalError, match="next is 1"):
        pipeline.execute(2, [])
    pipeline.execute(1, [])
    with pytest.raises(FatalError, match="next is None"):
        pipeline.execute(2, [])
