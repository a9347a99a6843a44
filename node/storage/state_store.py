"""The state tables as one unit: current values, their history and their LtHash commitment.

``execution_writes`` turns a block's state changes into the rows that record them — the
current-state rows, the history rows (node/storage/history.py), the commitment after the
block (EXEC_RESULT) and the running LtHash (STATE_HASH) — so the caller writes them in the
same batch as the executed height and a crash never leaves the commitment out of step with
the state. Old values are read from the current-state table to subtract their hashes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from node.execution.state import Account
from node.storage import schema
from node.storage.history import Change, Writes, history_writes
from node.storage.kv import KeyValueStore
from node.storage.lthash import LtHash
from node.storage.records import (
    decode_state_hash,
    encode_account,
    encode_commitment,
    encode_state_hash,
)
from node.types.errors import FatalError


def account_changes(accounts: Iterable[tuple[bytes, Account]]) -> list[Change]:
    """State changes of account writes: an empty account is a deletion (it reads the same)."""
    return [
        (schema.account_key(address), None if a.is_empty else encode_account(a))
        for address, a in accounts
    ]


class StateStore:
    """The state tables of ``kv``. One writer at a time; the running LtHash lives here."""

    def __init__(self, kv: KeyValueStore) -> None:
        self.kv = kv
        self._lock = threading.Lock()
        self._height, self._lthash = self._load()

    def _load(self) -> tuple[int | None, LtHash]:
        data = self.kv.get(schema.state_hash_key())
        if data is None:
            return None, LtHash()
        try:
            height, lanes = decode_state_hash(data)
            return height, LtHash.from_bytes(lanes)
        except ValueError as exc:
            raise FatalError(f"corrupt state hash in the database: {exc}") from exc

    def lthash(self) -> LtHash:
        """The LtHash of the current state (of every saved block)."""
        return self._lthash

    def hashed_height(self) -> int | None:
        """The height the stored LtHash belongs to (None: nothing executed or applied)."""
        return self._height

    def execution_writes(self, height: int, changes: Sequence[Change]) -> tuple[Writes, LtHash]:
        """The rows recording ``changes`` made by block ``height``, and the LtHash after them.

        The caller writes the rows in one batch, then calls ``advance`` with the LtHash.
        A key may appear once in ``changes``.
        """
        added, removed = [], []
        for key, value in changes:
            old = self.kv.get(key)
            if old == value:
                continue
            if old is not None:
                removed.append((key, old))
            if value is not None:
                added.append((key, value))
        lthash = self._lthash.update(added, removed)
        writes: Writes = list(changes)
        writes += history_writes(height, changes)
        writes.append((schema.exec_result_key(height), encode_commitment(lthash.digest())))
        writes.append((schema.state_hash_key(), encode_state_hash(height, lthash.to_bytes())))
        return writes, lthash

    def advance(self, height: int, lthash: LtHash) -> None:
        """Record that the rows of ``execution_writes(height)`` are written."""
        with self._lock:
            self._height, self._lthash = height, lthash
