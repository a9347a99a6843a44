"""Execution certificates: validators agree on the state after execution, after the fact.

At every checkpoint height h (a positive multiple of ``exec_cert_interval``) each validator
signs ExecVote(h - interval + 1, h, commitment), its state commitment after h, and broadcasts
it. Quorum weight of matching votes forms an ExecCert; the latest one rides in every Prepare a
leader sends, so a validator that missed the votes still learns it. Checkpoints are fixed
heights, so every correct validator signs the same bytes and votes always match.

A validator whose own commitment at h differs from a certified one (a cert, or quorum weight
of votes), or from one f+1 weight voted for (so at least one correct validator), has diverged:
it emits ``Halt`` once and from then on does nothing, instead of serving a state no one else
has. Nothing here is persisted: votes are a deterministic function of the executed chain, and
after a restart the runtime reports the latest executed checkpoint again.
"""

from __future__ import annotations

from node.crypto.signing import Signer
from node.protocol.config import ProtocolConfig
from node.protocol.effects import Broadcast, Effect, Halt, Ignore, Reject
from node.protocol.validation import MessageChecker
from node.types.committee import Committee
from node.types.messages import ExecCert, ExecVote, MsgKind, compute_exec_digest, signing_bytes

RETAINED_CHECKPOINTS = 8
"""Own commitments (and votes) kept this many checkpoints back, for late votes and certs."""
AHEAD_CHECKPOINTS = 64
"""Votes accepted this many checkpoints beyond the own executed height (bounds memory)."""
VERIFIED_CERTS = 16
"""Certificates remembered as verified: leaders' certs for one checkpoint differ in signers."""


class ExecutionCheck:
    """Signs own execution results at checkpoints, forms certificates, detects divergence."""

    def __init__(
        self,
        committee: Committee,
        me: int,
        signer: Signer,
        checks: MessageChecker,
        config: ProtocolConfig,
    ) -> None:
        self.committee = committee
        self.me = me
        self.signer = signer
        self.checks = checks
        self.config = config
        self.interval = config.exec_cert_interval
        self.executed = 0
        self.own: dict[int, bytes] = {}
        self.votes: dict[int, dict[int, ExecVote]] = {}
        self.certified: dict[int, bytes] = {}
        self.latest_cert: ExecCert | None = None
        self.verified: dict[ExecCert, None] = {}
        self.halted: Halt | None = None

    # ------------------------------------------------------------ own execution

    def on_executed(self, height: int, commitment: bytes) -> list[Effect]:
        if height <= self.executed:
            return [Ignore("execution result for a height already reported")]
        self.executed = height
        if not self.config.is_exec_checkpoint(height):
            return []
        self.own[height] = commitment
        self._collect_garbage()
        halt = self._check(height)
        if halt:
            return halt
        first = height - self.interval + 1
        digest = compute_exec_digest(first, height, commitment)
        chain = self.committee.chain_id
        signature = self.signer.sign(signing_bytes(MsgKind.EXEC_VOTE, chain, first, height, digest))
        vote = ExecVote(first, height, commitment, self.me, signature)
        return [Broadcast(vote), *self._add_vote(vote)]

    # ------------------------------------------------------------ peers' votes and certs

    def on_vote(self, sender: int, vote: ExecVote) -> list[Effect]:
        if vote.voter != sender:
            return [Reject(sender, "execution vote relayed for another voter")]
        horizon = self.interval * AHEAD_CHECKPOINTS
        if vote.last <= self._floor() or vote.last > self.executed + horizon:
            return [Ignore("execution vote outside the retained checkpoints")]
        if sender in self.votes.get(vote.last, {}):
            return [Ignore("duplicate execution vote")]
        reason = self.checks.validate_exec_vote(vote, self.interval)
        if reason is not None:
            return [Reject(sender, reason)]
        return self._add_vote(vote)

    def validate_cert(self, cert: ExecCert) -> str | None:
        """Why ``cert`` is invalid, or None; a recently verified one is not checked again."""
        if cert == self.latest_cert or cert in self.verified:
            return None
        reason = self.checks.validate_exec_cert(cert, self.interval)
        if reason is None:
            self.verified[cert] = None
            if len(self.verified) > VERIFIED_CERTS:
                del self.verified[next(iter(self.verified))]
        return reason

    def on_cert(self, cert: ExecCert) -> list[Effect]:
        """A valid certificate (checked with ``validate_cert``), formed here or carried by a
        Prepare; an older one than the latest is still checked against the own result."""
        if self.latest_cert is None or cert.last > self.latest_cert.last:
            self.latest_cert = cert
        if cert.last > self._floor():
            self.certified[cert.last] = cert.commitment
        return self._check(cert.last)

    # ------------------------------------------------------------ internals

    def _floor(self) -> int:
        """Checkpoints at or below this height are no longer tracked."""
        return self.executed - self.interval * RETAINED_CHECKPOINTS

    def _add_vote(self, vote: ExecVote) -> list[Effect]:
        bucket = self.votes.setdefault(vote.last, {})
        bucket[vote.voter] = vote
        matching = sorted(v for v, other in bucket.items() if other.commitment == vote.commitment)
        if (
            self.certified.get(vote.last) != vote.commitment
            and self.committee.weight_of(matching) >= self.committee.quorum
        ):
            cert = ExecCert(
                vote.first,
                vote.last,
                vote.commitment,
                tuple(matching),
                tuple(bucket[v].signature for v in matching),
            )
            return self.on_cert(cert)
        return self._check(vote.last)

    def _check(self, height: int) -> list[Effect]:
        """Halt if the own commitment at ``height`` contradicts a certified one, or one that
        at least one correct validator voted for."""
        own = self.own.get(height)
        if own is None or self.halted is not None:
            return []
        certified = self.certified.get(height)
        if certified is not None and certified != own:
            return self._halt(height, own, certified, "a quorum certified")
        weights: dict[bytes, list[int]] = {}
        for voter, vote in self.votes.get(height, {}).items():
            if vote.commitment != own:
                weights.setdefault(vote.commitment, []).append(voter)
        for commitment, voters in sorted(weights.items()):
            if self.committee.weight_of(voters) >= self.committee.poa_quorum:
                return self._halt(height, own, commitment, f"validators {voters} voted for")
        return []

    def _halt(self, height: int, own: bytes, other: bytes, why: str) -> list[Effect]:
        reason = (
            f"execution diverged at height {height}: own state commitment {own.hex()}, "
            f"but {why} {other.hex()}"
        )
        self.halted = Halt(reason, height, own, other)
        return [self.halted]

    def _collect_garbage(self) -> None:
        floor = self._floor()
        for table in (self.own, self.votes, self.certified):
            for height in [h for h in table if h <= floor]:
                del table[height]
