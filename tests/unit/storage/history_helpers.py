"""A small chain with execution results and a plain model of every state it went through,
shared by the history, archive and archiver tests."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from node.execution.executor import Receipt
from node.execution.state import EMPTY_ACCOUNT, Account
from node.storage.chain_store import ChainStore
from tests.unit.storage.test_chain_store import make_chain

ADDRESSES = [bytes([i]) * 20 for i in range(1, 9)]


@dataclass
class Model:
    """The state after each height (0 = genesis) as plain dicts, and every receipt."""

    states: list[dict[bytes, Account]] = field(default_factory=list)
    receipts: dict[bytes, Receipt] = field(default_factory=dict)

    def account(self, address: bytes, height: int) -> Account:
        return self.states[height].get(address, EMPTY_ACCOUNT)


def tx_receipt(height: int, index: int, sender: bytes) -> Receipt:
    return Receipt(
        tx_hash=height.to_bytes(8, "big") + index.to_bytes(4, "big") + b"\x77" * 20,
        index=index,
        status=1,
        gas_used=21_000,
        cumulative_gas_used=21_000 * (index + 1),
        effective_gas_price=10**9,
        sender=sender,
        to=ADDRESSES[0],
        height=height,
    )


def grow(chain: ChainStore, model: Model, blocks: int, seed: int = 1) -> None:
    """Commit and execute ``blocks`` more blocks with random account writes (some emptied)."""
    rng = random.Random(seed * 1000 + chain.executed_height())
    if not model.states:
        genesis = {a: Account(0, 10**18) for a in ADDRESSES[:4]}
        chain.apply_genesis(genesis)
        model.states.append(dict(genesis))
    start = chain.committed_height()
    for block in make_chain(start + blocks)[start:]:
        chain.save_block(block)
        state = dict(model.states[-1])
        writes: dict[bytes, Account] = {}
        for address in rng.sample(ADDRESSES, rng.randint(0, 4)):
            account = Account(rng.randint(0, 3), rng.choice([0, rng.randint(1, 10**20)]))
            writes[address] = account
            if account.is_empty:
                state.pop(address, None)
            else:
                state[address] = account
        receipts = [tx_receipt(block.height, i, ADDRESSES[i]) for i in range(rng.randint(0, 3))]
        chain.save_execution(block.height, receipts, writes)
        model.states.append(state)
        model.receipts.update((r.tx_hash, r) for r in receipts)
