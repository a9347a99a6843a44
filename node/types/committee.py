"""The validator set and its quorums (stake weights allowed; unit weights by default)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from node.types.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Validator:
    """One validator: its index (also its lane id), name, ed25519 public key and weight."""

    index: int
    name: str
    public_key: bytes
    weight: int = 1


@dataclass(frozen=True, slots=True)
class Committee:
    """A fixed committee. Quorums follow Sei: F = floor((W-1)/3), Q = W - F, PoA = F + 1."""

    chain_id: int
    validators: tuple[Validator, ...]

    def __post_init__(self) -> None:
        if not self.validators:
            raise ConfigError("a committee needs at least one validator")
        for i, v in enumerate(self.validators):
            if v.index != i:
                raise ConfigError(f"validator {v.name!r} has index {v.index}, expected {i}")
            if v.weight <= 0:
                raise ConfigError(f"validator {v.name!r} has non-positive weight {v.weight}")

    @property
    def size(self) -> int:
        return len(self.validators)

    @property
    def total_weight(self) -> int:
        return sum(v.weight for v in self.validators)

    @property
    def max_faulty(self) -> int:
        """F: the weight that may be Byzantine."""
        return (self.total_weight - 1) // 3

    @property
    def poa_quorum(self) -> int:
        """Weight of a proof of availability: at least one correct signer."""
        return self.max_faulty + 1

    @property
    def quorum(self) -> int:
        """Weight of a PrepareQC, a slow CommitQC, and a timeout certificate."""
        return self.total_weight - self.max_faulty

    @property
    def fast_quorum(self) -> int:
        """Weight of a fast-path CommitQC: every validator."""
        return self.total_weight

    def is_member(self, index: int) -> bool:
        return 0 <= index < len(self.validators)

    def weight_of(self, signers: Iterable[int]) -> int:
        """Total weight of distinct, known signers."""
        return sum(self.validators[i].weight for i in set(signers) if self.is_member(i))

    def leader(self, slot: int, view: int) -> int:
        """Round-robin leader of (slot, view)."""
        return (slot + view) % len(self.validators)

    def indices(self) -> range:
        return range(len(self.validators))
