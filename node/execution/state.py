"""Account state as execution sees it: a read port, a batch of writes, an in-memory twin.

Execution only reads through ``StateReader`` and returns ``StateWrites``; the caller applies
them (to ``MemoryState`` here, to LevelDB in node/storage), so executing a block never
mutates state as a side effect and the same block can be replayed on the same state.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

ADDRESS_SIZE = 20


@dataclass(frozen=True, slots=True)
class Account:
    """An externally owned account: the next nonce it must use and its balance in wei."""

    nonce: int = 0
    balance: int = 0

    @property
    def is_empty(self) -> bool:
        return self.nonce == 0 and self.balance == 0


EMPTY_ACCOUNT = Account()


class StateReader(Protocol):
    """Read access to the current state; an address never seen reads as ``EMPTY_ACCOUNT``."""

    def get_account(self, address: bytes) -> Account: ...


class StateStore(StateReader, Protocol):
    """A state that also takes the writes of an executed block."""

    def apply_writes(self, writes: StateWrites) -> None: ...


@dataclass(frozen=True, slots=True)
class StateWrites:
    """The accounts a block changed, sorted by address (one canonical order to hash/store)."""

    accounts: tuple[tuple[bytes, Account], ...] = ()

    @classmethod
    def from_changes(cls, changes: Mapping[bytes, Account]) -> StateWrites:
        return cls(tuple(sorted(changes.items())))

    def as_dict(self) -> dict[bytes, Account]:
        return dict(self.accounts)

    def __iter__(self) -> Iterator[tuple[bytes, Account]]:
        return iter(self.accounts)

    def __len__(self) -> int:
        return len(self.accounts)


class MemoryState:
    """The in-memory twin of the state store: a dict from address to account.

    Empty accounts are not stored, so two states with the same non-empty accounts compare
    equal however they were reached.
    """

    __slots__ = ("_accounts",)

    def __init__(self, accounts: Mapping[bytes, Account] | None = None) -> None:
        self._accounts: dict[bytes, Account] = {}
        for address, account in (accounts or {}).items():
            self._set(address, account)

    def get_account(self, address: bytes) -> Account:
        return self._accounts.get(address, EMPTY_ACCOUNT)

    def apply_writes(self, writes: StateWrites) -> None:
        for address, account in writes:
            self._set(address, account)

    def accounts(self) -> dict[bytes, Account]:
        """A copy of every non-empty account."""
        return dict(self._accounts)

    def addresses(self) -> Iterable[bytes]:
        return tuple(self._accounts)

    def total_balance(self) -> int:
        return sum(account.balance for account in self._accounts.values())

    def copy(self) -> MemoryState:
        return MemoryState(self._accounts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MemoryState):
            return NotImplemented
        return self._accounts == other._accounts

    __hash__ = None  # type: ignore[assignment]  # mutable: equal states may later differ

    def _set(self, address: bytes, account: Account) -> None:
        if len(address) != ADDRESS_SIZE:
            raise ValueError(f"address of {len(address)} bytes, not {ADDRESS_SIZE}")
        if account.nonce < 0 or account.balance < 0:
            raise ValueError(f"negative nonce or balance: {account}")
        if account.is_empty:
            self._accounts.pop(address, None)
        else:
            self._accounts[address] = account


def genesis_state(allocations: Mapping[bytes, int]) -> MemoryState:
    """The state at height 0: each address holds its allocated balance with nonce 0."""
    return MemoryState({address: Account(0, balance) for address, balance in allocations.items()})
