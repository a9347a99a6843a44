"""Durable consensus persistence: the protocol's ``Persist`` effects, one fsync per effect list.

The protocol's rule (node/protocol/effects.py) is that a ``Persist`` is durable before any
later effect of the same step is carried out, which is how a vote is on disk before it leaves
the node. The runtime therefore hands every ``Persist`` of a step to ``save`` before it
carries out the step's sends: one atomic, synced batch, so a crash leaves either all of the
step's records or none.
"""

from __future__ import annotations

from collections.abc import Sequence

from node.protocol.effects import Persist, PersistKey
from node.storage.codec import decode_persist_value, encode_persist_value
from node.storage.kv import KeyValueStore
from node.storage.schema import Table, decode_persist_key, persist_key, table_range
from node.types.errors import FatalError


class ConsensusStore:
    """The CONSENSUS table of ``kv``: what ``Replica.restore`` needs after a restart."""

    def __init__(self, kv: KeyValueStore) -> None:
        self.kv = kv

    def save(self, effects: Sequence[Persist]) -> None:
        """Write every record of ``effects`` in one atomic batch and fsync it (none: no I/O)."""
        if not effects:
            return
        batch: list[tuple[bytes, bytes | None]] = []
        for effect in effects:
            try:
                key = persist_key(effect.key)
                value = (
                    None if effect.value is None else encode_persist_value(effect.key, effect.value)
                )
            except ValueError as exc:
                raise FatalError(f"cannot persist {effect.key!r}: {exc}") from exc
            batch.append((key, value))
        self.kv.write(batch, sync=True)

    def load_all(self) -> dict[PersistKey, object]:
        """Every persisted record, decoded, for ``Replica.restore``."""
        records: dict[PersistKey, object] = {}
        start, stop = table_range(Table.CONSENSUS)
        for raw_key, data in self.kv.iterate(start, stop):
            try:
                key = decode_persist_key(raw_key)
                records[key] = decode_persist_value(key, data)
            except ValueError as exc:
                raise FatalError(
                    f"corrupt consensus record under key {raw_key.hex()}: {exc}"
                ) from exc
        return records
