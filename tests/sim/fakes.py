"""A scripted stand-in for the replica, so harness mechanics are tested without a protocol."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import ClassVar

from node.crypto.signing import Signer, Verifier
from node.protocol.config import ProtocolConfig
from node.protocol.effects import Effect, PersistKey
from node.protocol.events import Event
from node.types.committee import Committee

Script = Callable[["ScriptedReplica", Event], list[Effect]]


class ScriptedReplica:
    """Records every event it sees and answers with whatever ``script`` returns."""

    instances: ClassVar[list[ScriptedReplica]] = []

    def __init__(self, me: int, script: Script) -> None:
        self.me = me
        self.script = script
        self.events: list[Event] = []
        self.restored: dict[PersistKey, object] | None = None
        ScriptedReplica.instances.append(self)

    def restore(self, records: Mapping[PersistKey, object]) -> None:
        self.restored = dict(records)

    def step(self, event: Event) -> list[Effect]:
        self.events.append(event)
        return self.script(self, event)


def scripted(script: Script) -> Callable[..., ScriptedReplica]:
    """A replica factory for ``Simulation`` that builds ScriptedReplicas running ``script``."""
    ScriptedReplica.instances = []

    def factory(
        committee: Committee, me: int, signer: Signer, verifier: Verifier, config: ProtocolConfig
    ) -> ScriptedReplica:
        return ScriptedReplica(me, script)

    return factory
