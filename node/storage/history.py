"""Versioned state in the hot tier: every value a state key had, by height, newest first.

A block's writes go to the current-state table (flat, what execution reads) and, in the
same batch, to STATE_HISTORY as ``(state key, inverted height) -> value`` plus one
STATE_CHANGES row listing the keys the block wrote (what pruning and the archiver walk).
An empty value is a deletion: stored state values are never empty.

Pruning below a floor keeps, for each key, its newest version at or below the floor (Sei's
keep-last-version), so a read at any height >= floor still finds the value a key has held
since long before; reads below the floor go to the archive or fail with ``PrunedError``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from node.storage import schema
from node.storage.kv import KeyValueStore
from node.storage.records import decode_state_keys, encode_state_keys
from node.types.errors import FatalError, InvalidInput

Writes = list[tuple[bytes, bytes | None]]
Change = tuple[bytes, bytes | None]
"""A state write: ``(state key, new value)``, None for a deletion."""


class PrunedError(InvalidInput):
    """A read of a height whose history this node no longer keeps."""

    def __init__(self, what: str, height: int, earliest: int) -> None:
        super().__init__(
            f"{what} at height {height} is pruned: this node keeps history from height "
            f"{earliest} on"
        )
        self.height = height
        self.earliest = earliest


def history_writes(height: int, changes: Sequence[Change]) -> Writes:
    """The STATE_HISTORY and STATE_CHANGES rows recording ``changes`` made at ``height``."""
    writes: Writes = [
        (schema.state_history_key(key, height), b"" if value is None else value)
        for key, value in changes
    ]
    keys = [key for key, _value in changes]
    writes.append((schema.state_changes_key(height), encode_state_keys(keys)))
    return writes


def get_version(kv: KeyValueStore, state_key: bytes, height: int) -> tuple[bool, bytes | None]:
    """``(found, value)``: the newest version of ``state_key`` at or below ``height``.

    ``found`` is False when no version is stored (never written, or pruned away); a found
    deletion is ``(True, None)``.
    """
    for _key, value in kv.iterate(*schema.state_history_range(state_key, height)):
        return True, value or None
    return False, None


def get_changed_keys(kv: KeyValueStore, height: int) -> list[bytes] | None:
    """The state keys block ``height`` wrote, or None if its row is not stored."""
    data = kv.get(schema.state_changes_key(height))
    if data is None:
        return None
    try:
        return decode_state_keys(data)
    except ValueError as exc:
        raise FatalError(f"corrupt state changes of height {height}: {exc}") from exc


def get_versions(kv: KeyValueStore, height: int) -> list[tuple[bytes, bytes]]:
    """Every ``(state key, value)`` written at ``height`` (value b"" for a deletion)."""
    keys = get_changed_keys(kv, height)
    if keys is None:
        raise FatalError(f"state changes of height {height} are missing from the hot tier")
    versions = []
    for key in keys:
        value = kv.get(schema.state_history_key(key, height))
        if value is None:
            raise FatalError(f"state history of {key.hex()} at height {height} is missing")
        versions.append((key, value))
    return versions


def prune_writes(kv: KeyValueStore, keys: Iterable[bytes], floor: int) -> Writes:
    """Deletions that drop each key's versions below ``floor`` except the one a read at
    ``floor`` needs: the newest at or below it (dropped too if it is a deletion below it).
    """
    writes: Writes = []
    for key in sorted(set(keys)):
        newest = True
        for hkey, value in kv.iterate(*schema.state_history_range(key, floor)):
            if newest:
                newest = False
                _k, height = schema.decode_state_history_key(hkey)
                if value or height == floor:
                    continue
            writes.append((hkey, None))
    return writes
