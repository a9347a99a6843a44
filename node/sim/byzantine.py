"""Byzantine behaviours: wrappers around an honest replica's outgoing and incoming messages.

A Byzantine node runs the real replica and a chain of behaviours; each behaviour may rewrite,
multiply or drop every message the replica sends (after broadcasts are split per peer), see
every message it receives, and inject messages of its own. Forgeries are signed with the
node's own key, so they are exactly what a malicious validator could produce.

Twins (two replicas sharing one key) are not a behaviour: the harness hosts two instances
of one validator, each talking to its own half of the peers (see ``harness``).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from typing import Protocol

from node.crypto.hashing import ZERO_DIGEST
from node.crypto.signing import Signer
from node.types.committee import Committee
from node.types.messages import (
    QC,
    Car,
    Commit,
    Confirm,
    Cut,
    CutTip,
    ExecVote,
    LaneVote,
    Message,
    MsgKind,
    PoA,
    Prepare,
    Proposal,
    Timeout,
    Vote,
    signing_bytes,
)

Outgoing = list[tuple[int, Message]]

KINDS = (
    "equivocate-leader",
    "fork-lane",
    "withhold",
    "bad-sig",
    "replay",
    "partial-commit",
    "stale-timeout",
)
"""Behaviour names accepted by ``make_behaviour``; "twins" is handled by the harness."""


class ByzContext(Protocol):
    """What a behaviour may use: its identity and key, randomness, time, and the network."""

    index: int
    committee: Committee
    signer: Signer
    rng: random.Random

    @property
    def now(self) -> int: ...

    def inject(self, to: int, message: Message) -> None: ...

    def every(self, period: int, action: Callable[[], None]) -> None: ...


class Behaviour:
    """The honest default: pass everything through unchanged."""

    name = "honest"

    def on_start(self, ctx: ByzContext) -> None:
        """Called once when the node first starts."""

    def on_send(self, ctx: ByzContext, to: int, message: Message) -> Outgoing:
        return [(to, message)]

    def on_receive(self, ctx: ByzContext, sender: int, message: Message) -> None:
        """Sees every message the node receives."""


def split_peers(me: int, size: int, rng: random.Random) -> frozenset[int]:
    """A seeded half of the other validators (the rest form the other half)."""
    peers = [i for i in range(size) if i != me]
    rng.shuffle(peers)
    return frozenset(peers[: len(peers) // 2])


class EquivocatingLeader(Behaviour):
    """As leader, sends a different, validly signed cut to one half of the peers."""

    name = "equivocate-leader"

    def __init__(self, half: frozenset[int]) -> None:
        self.half = half
        self.variants: dict[tuple[int, int], Prepare] = {}
        self.tips: dict[int, dict[int, CutTip]] = {}

    def on_receive(self, ctx: ByzContext, sender: int, message: Message) -> None:
        if isinstance(message, Prepare):
            self._learn(message.proposal.cut)

    def on_send(self, ctx: ByzContext, to: int, message: Message) -> Outgoing:
        if not isinstance(message, Prepare) or message.proposal.leader != ctx.index:
            return [(to, message)]
        self._learn(message.proposal.cut)
        if to not in self.half:
            return [(to, message)]
        key = (message.proposal.slot, message.proposal.view)
        if key not in self.variants:
            self.variants[key] = self._variant(ctx, message)
        return [(to, self.variants[key])]

    def _learn(self, cut: Cut) -> None:
        for tip in cut.tips:
            if tip.poa is not None:
                self.tips.setdefault(tip.lane, {})[tip.pos] = tip

    def _variant(self, ctx: ByzContext, prepare: Prepare) -> Prepare:
        proposal = prepare.proposal
        cut = self._other_cut(ctx.rng, proposal.cut)
        if cut is None:
            return prepare
        signed = signing_bytes(
            MsgKind.PROPOSAL, ctx.committee.chain_id, proposal.slot, proposal.view, cut.digest
        )
        other = Proposal(
            proposal.slot, proposal.view, cut, proposal.leader, ctx.signer.sign(signed)
        )
        return Prepare(other, prepare.ticket)

    def _other_cut(self, rng: random.Random, cut: Cut) -> Cut | None:
        """Roll some lanes back to an older certified tip (or to empty if none is known)."""
        tips = list(cut.tips)
        older = {
            i: [t for pos, t in sorted(self.tips.get(tip.lane, {}).items()) if pos < tip.pos]
            for i, tip in enumerate(tips)
        }
        candidates = [i for i, options in older.items() if options]
        if candidates:
            for i in rng.sample(candidates, rng.randint(1, len(candidates))):
                tips[i] = rng.choice(older[i])
            return Cut(tuple(tips))
        nonempty = [i for i, tip in enumerate(tips) if tip.pos > 0]
        if not nonempty:
            return None
        i = rng.choice(nonempty)
        tips[i] = CutTip(tips[i].lane, 0, ZERO_DIGEST, None)
        return Cut(tuple(tips))


class ForkedLane(Behaviour):
    """As lane owner, sends a different, validly signed car at some positions to one half."""

    name = "fork-lane"

    def __init__(self, half: frozenset[int], rate: float = 0.5) -> None:
        self.half = half
        self.rate = rate
        self.variants: dict[int, Car | None] = {}

    def on_send(self, ctx: ByzContext, to: int, message: Message) -> Outgoing:
        if not isinstance(message, Car) or message.lane != ctx.index or to not in self.half:
            return [(to, message)]
        if message.pos not in self.variants:
            forked = ctx.rng.random() < self.rate
            self.variants[message.pos] = fork_car(ctx, message) if forked else None
        variant = self.variants[message.pos]
        return [(to, variant if variant is not None else message)]


def fork_car(ctx: ByzContext, car: Car) -> Car:
    """The same position and parent with other transactions, signed by the owner."""
    txs = tuple(b"fork|" + tx for tx in car.txs) or (b"fork|%d|%d" % (car.lane, car.pos),)
    unsigned = Car.create(car.lane, car.pos, car.parent, car.parent_poa, txs, b"")
    signed = signing_bytes(MsgKind.CAR, ctx.committee.chain_id, car.lane, car.pos, unsigned.digest)
    return dataclasses.replace(unsigned, signature=ctx.signer.sign(signed))


class WithholdVotes(Behaviour):
    """Never sends a LaneVote, PrepareVote or ConfirmAck."""

    name = "withhold"

    def on_send(self, ctx: ByzContext, to: int, message: Message) -> Outgoing:
        if isinstance(message, (LaneVote, Vote)):
            return []
        return [(to, message)]


class BadSignatures(Behaviour):
    """Corrupts a signature in a share ``rate`` of the messages it sends."""

    name = "bad-sig"

    def __init__(self, rate: float = 0.5) -> None:
        self.rate = rate

    def on_send(self, ctx: ByzContext, to: int, message: Message) -> Outgoing:
        if ctx.rng.random() >= self.rate:
            return [(to, message)]
        return [(to, corrupt_signature(message, ctx.rng))]


def flip(signature: bytes, rng: random.Random) -> bytes:
    if not signature:
        return b"\x01"
    at = rng.randrange(len(signature))
    return signature[:at] + bytes([signature[at] ^ (1 << rng.randrange(8))]) + signature[at + 1 :]


def corrupt_signature(message: Message, rng: random.Random) -> Message:
    """The same message with one signature (its own, or one inside a certificate) damaged."""
    if isinstance(message, (Car, LaneVote, Vote, Timeout, ExecVote)):
        return dataclasses.replace(message, signature=flip(message.signature, rng))
    if isinstance(message, Prepare):
        proposal = message.proposal
        bad = dataclasses.replace(proposal, signature=flip(proposal.signature, rng))
        return Prepare(bad, message.ticket)
    if isinstance(message, PoA):
        return dataclasses.replace(message, signatures=_flip_one(message.signatures, rng))
    if isinstance(message, (Confirm, Commit)):
        qc = message.prepare_qc if isinstance(message, Confirm) else message.commit_qc
        bad_qc = dataclasses.replace(qc, signatures=_flip_one(qc.signatures, rng))
        if isinstance(message, Confirm):
            return Confirm(bad_qc, message.cut)
        return Commit(bad_qc, message.cut)
    return message


def _flip_one(signatures: Sequence[bytes], rng: random.Random) -> tuple[bytes, ...]:
    if not signatures:
        return tuple(signatures)
    items = list(signatures)
    at = rng.randrange(len(items))
    items[at] = flip(items[at], rng)
    return tuple(items)


class Replayer(Behaviour):
    """Keeps a seeded sample of old traffic and re-sends it to random peers later."""

    name = "replay"

    def __init__(self, period: int, capacity: int = 256) -> None:
        self.period = period
        self.capacity = capacity
        self.sample: list[Message] = []
        self.seen = 0

    def on_start(self, ctx: ByzContext) -> None:
        ctx.every(self.period, lambda: self._replay(ctx))

    def on_receive(self, ctx: ByzContext, sender: int, message: Message) -> None:
        self._keep(ctx.rng, message)

    def on_send(self, ctx: ByzContext, to: int, message: Message) -> Outgoing:
        self._keep(ctx.rng, message)
        return [(to, message)]

    def _keep(self, rng: random.Random, message: Message) -> None:
        self.seen += 1
        if len(self.sample) < self.capacity:
            self.sample.append(message)
        else:
            at = rng.randrange(self.seen)
            if at < self.capacity:
                self.sample[at] = message

    def _replay(self, ctx: ByzContext) -> None:
        if not self.sample:
            return
        peers = [i for i in ctx.committee.indices() if i != ctx.index]
        for _ in range(ctx.rng.randint(1, 3)):
            ctx.inject(ctx.rng.choice(peers), ctx.rng.choice(self.sample))


class PartialCommit(Behaviour):
    """As leader, sends Confirm and Commit to only a seeded part of the peers, so a slot is
    decided while most replicas hold at most a lock and must learn it through view change."""

    name = "partial-commit"

    def __init__(self, keep: float) -> None:
        self.keep = keep

    def on_send(self, ctx: ByzContext, to: int, message: Message) -> Outgoing:
        if isinstance(message, (Confirm, Commit)) and ctx.rng.random() >= self.keep:
            return []
        return [(to, message)]


class StaleTimeouts(Behaviour):
    """Times out with an older lock and vote than it holds (or none), re-signed: the view
    change must still carry every decided or locked cut."""

    name = "stale-timeout"

    def __init__(self) -> None:
        self.oldest_qc: dict[int, tuple[QC, Cut]] = {}
        self.oldest_prop: dict[int, Proposal] = {}

    def on_receive(self, ctx: ByzContext, sender: int, message: Message) -> None:
        if isinstance(message, Timeout):
            self._learn(message)

    def on_send(self, ctx: ByzContext, to: int, message: Message) -> Outgoing:
        if not isinstance(message, Timeout) or message.voter != ctx.index:
            return [(to, message)]
        self._learn(message)
        return [(to, self._stale(ctx, message))]

    def _learn(self, timeout: Timeout) -> None:
        slot = timeout.slot
        if timeout.high_qc is not None and timeout.high_qc_cut is not None:
            old = self.oldest_qc.get(slot)
            if old is None or timeout.high_qc.view < old[0].view:
                self.oldest_qc[slot] = (timeout.high_qc, timeout.high_qc_cut)
        prop = timeout.high_prop
        if prop is not None:
            old_prop = self.oldest_prop.get(slot)
            if old_prop is None or prop.view < old_prop.view:
                self.oldest_prop[slot] = prop

    def _stale(self, ctx: ByzContext, timeout: Timeout) -> Timeout:
        hide = ctx.rng.random() < 0.5
        qc_pair = None if hide else self.oldest_qc.get(timeout.slot)
        prop = None if hide else self.oldest_prop.get(timeout.slot)
        unsigned = Timeout(
            timeout.slot,
            timeout.view,
            qc_pair[0] if qc_pair else None,
            qc_pair[1] if qc_pair else None,
            prop,
            timeout.voter,
            b"",
        )
        signed = signing_bytes(
            MsgKind.TIMEOUT,
            ctx.committee.chain_id,
            timeout.slot,
            timeout.view,
            unsigned.content_digest,
        )
        return dataclasses.replace(unsigned, signature=ctx.signer.sign(signed))


def make_behaviour(kind: str, me: int, size: int, rng: random.Random) -> Behaviour:
    """A behaviour by name, with its seeded choices (which half, how often) made now."""
    if kind == "equivocate-leader":
        return EquivocatingLeader(split_peers(me, size, rng))
    if kind == "fork-lane":
        return ForkedLane(split_peers(me, size, rng))
    if kind == "withhold":
        return WithholdVotes()
    if kind == "bad-sig":
        return BadSignatures(rate=rng.choice((0.25, 0.5, 1.0)))
    if kind == "replay":
        return Replayer(period=rng.randint(20, 80) * 1000)
    if kind == "partial-commit":
        return PartialCommit(keep=rng.choice((0.0, 0.25, 0.5)))
    if kind == "stale-timeout":
        return StaleTimeouts()
    raise ValueError(f"unknown Byzantine behaviour {kind!r}")
