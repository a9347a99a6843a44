"""MemoryState reads unknown addresses as empty, applies writes, and keeps no empty accounts."""

from __future__ import annotations

import pytest

from node.execution.state import EMPTY_ACCOUNT, Account, MemoryState, StateWrites, genesis_state

A = b"\x0a" * 20
B = b"\x0b" * 20


def test_genesis_allocates_balances_with_nonce_zero() -> None:
    """genesis_state gives each address its balance and nonce 0; others read as empty."""
    state = genesis_state({A: 100, B: 0})
    assert state.get_account(A) == Account(0, 100)
    assert state.get_account(B) == EMPTY_ACCOUNT
    assert state.total_balance() == 100
    assert list(state.addresses()) == [A]


def test_apply_writes_and_drop_emptied_accounts() -> None:
    """Writes replace accounts; an account written back to empty disappears."""
    state = genesis_state({A: 100})
    state.apply_writes(StateWrites.from_changes({B: Account(1, 5), A: Account(0, 0)}))
    assert state.accounts() == {B: Account(1, 5)}
    assert state == MemoryState({B: Account(1, 5)})


def test_writes_are_sorted_by_address() -> None:
    """StateWrites has one canonical order whatever order the changes came in."""
    writes = StateWrites.from_changes({B: Account(0, 1), A: Account(0, 2)})
    assert [address for address, _ in writes] == [A, B]
    assert writes == StateWrites.from_changes({A: Account(0, 2), B: Account(0, 1)})
    assert writes.as_dict() == {A: Account(0, 2), B: Account(0, 1)}
    assert len(writes) == 2


def test_copy_is_independent() -> None:
    """A copy does not see writes applied to the original."""
    state = genesis_state({A: 1})
    copy = state.copy()
    state.apply_writes(StateWrites.from_changes({A: Account(0, 2)}))
    assert copy.get_account(A) == Account(0, 1)


@pytest.mark.parametrize(
    ("address", "account", "message"),
    [(b"\x01" * 19, Account(0, 1), "19 bytes"), (A, Account(0, -1), "negative")],
)
def test_bad_accounts_refused(address: bytes, account: Account, message: str) -> None:
    """Short addresses and negative balances are programming errors, refused loudly."""
    with pytest.raises(ValueError, match=message):
        MemoryState({address: account})
