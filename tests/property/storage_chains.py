"""Hypothesis strategies for chains with execution results, and a builder that feeds one
to a ChainStore while keeping the plain model of every state (shared by the storage
property tests)."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from node.execution.state import Account
from node.storage.chain_store import ChainStore
from tests.unit.storage.history_helpers import ADDRESSES, Model, tx_receipt
from tests.unit.storage.test_chain_store import make_chain


@dataclass(frozen=True)
class BlockSpec:
    """One block's account writes (address index -> account; empty deletes) and tx count."""

    writes: dict[int, Account]
    txs: int


accounts = st.builds(
    Account, st.integers(0, 3), st.sampled_from([0, 1, 10**18, 2**255]) | st.integers(0, 99)
)
block_specs = st.builds(
    BlockSpec,
    st.dictionaries(st.integers(0, len(ADDRESSES) - 1), accounts, max_size=4),
    st.integers(0, 3),
)
GENESIS = {ADDRESSES[0]: Account(0, 10**18), ADDRESSES[1]: Account(0, 5)}


def apply_blocks(chain: ChainStore, model: Model, specs: list[BlockSpec]) -> None:
    """Commit and execute one block per spec on ``chain``, recording states in ``model``."""
    if not model.states:
        chain.apply_genesis(GENESIS)
        model.states.append(dict(GENESIS))
    start = chain.committed_height()
    for spec, block in zip(specs, make_chain(start + len(specs))[start:], strict=True):
        chain.save_block(block)
        writes = {ADDRESSES[i]: account for i, account in spec.writes.items()}
        receipts = [tx_receipt(block.height, i, ADDRESSES[i]) for i in range(spec.txs)]
        chain.save_execution(block.height, receipts, writes)
        state = {**model.states[-1], **writes}
        model.states.append({a: acc for a, acc in state.items() if not acc.is_empty})
        model.receipts.update((r.tx_hash, r) for r in receipts)
