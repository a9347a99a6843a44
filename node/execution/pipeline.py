"""Execution trailing consensus: committed and executed heights, tracked apart.

Consensus never waits for execution (DESIGN §2). The runtime reports each committed height
with ``on_committed``; whenever ``next_height`` names a block, it loads that block's
transactions from storage (committed blocks are durable, so nothing is queued here and
memory stays bounded however far execution falls behind), recovers their senders, and calls
``execute``. This class holds no I/O and no clock: the runtime decides where it runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from node.execution.executor import BlockResult, execute_block
from node.execution.state import StateStore
from node.execution.tx import EthTx, UndecodableTx
from node.types.errors import FatalError


class ExecutionPipeline:
    """Executes committed blocks strictly in height order on one state store."""

    __slots__ = ("_base_fee", "_committed", "_executed", "_fee_sink", "_state")

    def __init__(
        self,
        state: StateStore,
        *,
        base_fee: int,
        fee_sink: bytes,
        executed_height: int = 0,
    ) -> None:
        self._state = state
        self._base_fee = base_fee
        self._fee_sink = fee_sink
        self._executed = executed_height
        self._committed = executed_height

    @property
    def committed_height(self) -> int:
        return self._committed

    @property
    def executed_height(self) -> int:
        return self._executed

    @property
    def lag(self) -> int:
        """How many committed blocks wait to be executed."""
        return self._committed - self._executed

    def on_committed(self, height: int) -> None:
        """Consensus committed ``height``; heights at or below the known one are ignored."""
        if height > self._committed + 1:
            raise FatalError(f"committed height {height} skips {self._committed + 1}")
        self._committed = max(self._committed, height)

    def next_height(self) -> int | None:
        """The committed height to execute next, or None when execution has caught up."""
        return self._executed + 1 if self._executed < self._committed else None

    def execute(self, height: int, block_txs: Sequence[EthTx | UndecodableTx]) -> BlockResult:
        """Execute the block at ``next_height()`` and apply its writes to the state."""
        if height != self.next_height():
            raise FatalError(f"asked to execute height {height}, next is {self.next_height()}")
        result = execute_block(self._state, height, block_txs, self._base_fee, self._fee_sink)
        self._state.apply_writes(result.writes)
        self._executed = height
        return result
