"""Who runs where: validator keys, the replica port, hosts and their instances (machines).

A host is one validator index; it runs one instance, or two for Byzantine twins. An instance
outlives crashes (its persisted store and ordered ledger survive), its replica does not.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from node.crypto.signing import Signer, Verifier
from node.protocol.config import ProtocolConfig
from node.protocol.effects import Effect, PersistKey
from node.protocol.events import Event, Timer
from node.sim.byzantine import Behaviour
from node.types.committee import Committee, Validator
from node.types.messages import Block, Message

CHAIN_ID = 7357
GENESIS_COMMITMENT = bytes(32)


def next_commitment(previous: bytes, block: Block) -> bytes:
    """The simulator's stand-in for execution: a hash chain over the ordered blocks, so equal
    ledgers have equal commitments at every height."""
    return hashlib.blake2b(b"state" + previous + block.digest, digest_size=32).digest()


class ReplicaLike(Protocol):
    def restore(self, records: Mapping[PersistKey, object]) -> None: ...

    def step(self, event: Event) -> list[Effect]: ...


ReplicaFactory = Callable[[Committee, int, Signer, Verifier, ProtocolConfig], ReplicaLike]


def real_replica(
    committee: Committee, me: int, signer: Signer, verifier: Verifier, config: ProtocolConfig
) -> ReplicaLike:
    from node.protocol.replica import Replica

    return Replica(committee, me, signer, verifier, config)


def make_keys(validators: int, seed: int) -> tuple[Committee, list[bytes]]:
    """Per-validator secrets derived from the seed, and the committee they sign for."""
    secrets = [
        hashlib.blake2b(b"lanenet-sim/%d/%d" % (seed, i), digest_size=32).digest()
        for i in range(validators)
    ]
    members = tuple(
        Validator(i, f"v{i}", hashlib.blake2b(s, digest_size=32).digest())
        for i, s in enumerate(secrets)
    )
    return Committee(CHAIN_ID, members), secrets


@dataclass(slots=True)
class Instance:
    """One machine running validator ``host``: survives crashes, unlike its replica."""

    host: int
    number: int
    audience: frozenset[int] | None
    store: dict[PersistKey, object] = field(default_factory=dict)
    ledger: list[Block] = field(default_factory=list)
    replica: ReplicaLike | None = None
    timers: dict[Timer, int] = field(default_factory=dict)
    incarnation: int = 0
    crash_pending: int | None = None
    crashes: int = 0
    gapped: bool = False
    inbox: deque[tuple[int, Message]] | None = None
    """The last messages received, kept only when a crash may ask to re-deliver them."""
    commitments: list[bytes] = field(default_factory=list)
    """The state commitment after each ledger height (``commitments[h - 1]``)."""
    corrupt_from: int | None = None
    """From this height on the machine's state is corrupted: it reports other commitments."""
    halted: bool = False

    def reported_commitment(self, height: int) -> bytes:
        """What this machine's execution reports after ``height``: the true commitment, or a
        corrupted one from ``corrupt_from`` on."""
        true = self.commitments[height - 1]
        if self.corrupt_from is not None and height >= self.corrupt_from:
            return hashlib.blake2b(b"corrupt" + true, digest_size=32).digest()
        return true

    def hears(self, peer: int) -> bool:
        return self.audience is None or peer in self.audience


@dataclass(slots=True)
class Host:
    index: int
    honest: bool
    instances: list[Instance]
    behaviours: list[Behaviour]
