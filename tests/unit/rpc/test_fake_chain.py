"""FakeChain honours the ChainView contract and really executes transfers."""

from __future__ import annotations

import asyncio

import pytest

from node.rpc.chain_view import HistoryUnavailable
from node.rpc.fake_chain import GWEI
from tests.unit.rpc.chain_view_contract import check_chain_view_contract
from tests.unit.rpc.helpers import (
    ALICE,
    BOB,
    CAROL,
    ETHER,
    address_bytes,
    funded_chain,
    signed_transfer,
)


def test_fake_chain_meets_the_contract() -> None:
    """The shared ChainView contract holds for FakeChain."""
    raws = [signed_transfer(nonce=0), signed_transfer(nonce=1), signed_transfer(BOB, nonce=0)]
    check_chain_view_contract(funded_chain, address_bytes(ALICE), raws)


def test_transfers_move_balances_and_charge_fees() -> None:
    """A transfer moves the value and charges gas used times the effective price."""
    chain = funded_chain()
    asyncio.run(chain.submit_raw_txs([signed_transfer(nonce=0, value=ETHER)]))
    nonce, balance = chain.get_account(address_bytes(ALICE))
    assert nonce == 1
    assert balance == 100 * ETHER - ETHER - 21_000 * 2 * GWEI
    assert chain.get_account(address_bytes(CAROL)) == (0, ETHER)
    assert chain.get_account(address_bytes(CAROL), 0) == (0, 0)


def test_execution_can_trail_commit() -> None:
    """Without auto-commit, blocks commit first and execute later; state waits for execution."""
    chain = funded_chain(auto_commit=False)
    asyncio.run(chain.submit_raw_txs([signed_transfer(nonce=0)]))
    assert chain.pending_nonce(address_bytes(ALICE)) == 1
    block = chain.commit()
    assert (chain.committed_height(), chain.executed_height()) == (1, 0)
    assert not block.is_executed
    with pytest.raises(HistoryUnavailable, match="not executed"):
        chain.get_account(address_bytes(ALICE), 1)
    chain.execute()
    executed = chain.get_block(1)
    assert executed is not None
    assert executed.gas_used == 21_000


def test_admission_checks() -> None:
    """Gapped nonces, too little gas and fee caps under the base fee are refused."""
    chain = funded_chain(auto_commit=False)
    results = asyncio.run(
        chain.submit_raw_txs([signed_transfer(nonce=5), signed_transfer(nonce=0, gas=20_000)])
    )
    assert [r.reason for r in results] == ["nonce too high", "intrinsic gas too low"]
