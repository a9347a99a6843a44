"""Shared builders and a tiny deterministic network for the protocol unit tests.

``Keys`` holds a committee with its signers and builds correctly signed values (cars, PoAs,
proposals, votes, QCs, timeouts, TCs) so a test can hand-craft honest or Byzantine input.
``Net`` runs n replicas on a virtual clock with fixed message delay, a drop filter, persisted
records per replica and crash/restart, recording every event and effect list.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from node.crypto.hashing import ZERO_DIGEST
from node.crypto.signing import (
    Ed25519Signer,
    Ed25519Verifier,
    KeyedHashSigner,
    KeyedHashVerifier,
    Signer,
    Verifier,
)
from node.protocol.config import ProtocolConfig
from node.protocol.effects import (
    Broadcast,
    CancelTimer,
    Committed,
    Deliver,
    Effect,
    Ignore,
    Persist,
    PersistKey,
    Reject,
    Send,
    SetTimer,
)
from node.protocol.events import Event, MessageReceived, Start, Timer, TimerFired, TxsSubmitted
from node.protocol.replica import Replica
from node.types.committee import Committee, Validator
from node.types.messages import (
    QC,
    TC,
    Block,
    Car,
    Cut,
    CutTip,
    LaneVote,
    Message,
    MsgKind,
    PoA,
    Prepare,
    Proposal,
    Ticket,
    Timeout,
    Vote,
    signing_bytes,
)

CHAIN_ID = 7
FAST_CONFIG = ProtocolConfig()


# ---------------------------------------------------------------- keys and signed values


class Keys:
    """A committee plus every member's signer, able to sign anything on anyone's behalf."""

    def __init__(
        self,
        n: int = 4,
        weights: Sequence[int] | None = None,
        chain_id: int = CHAIN_ID,
        ed25519: bool = False,
    ) -> None:
        weights = list(weights) if weights is not None else [1] * n
        self.signers: list[Signer]
        if ed25519:
            eds = [Ed25519Signer(bytes([i + 1]) * 32) for i in range(n)]
            self.signers = list(eds)
            public = [s.public_key for s in eds]
            self.verifier: Verifier = Ed25519Verifier(public)
        else:
            secrets = [bytes([i + 1]) * 32 for i in range(n)]
            self.signers = [KeyedHashSigner(s) for s in secrets]
            public = [b"k" * 32] * n
            self.verifier = KeyedHashVerifier(secrets)
        self.committee = Committee(
            chain_id, tuple(Validator(i, f"v{i}", public[i], weights[i]) for i in range(n))
        )
        self.chain_id = chain_id
        self.n = n

    # -------------------------------------------------------- replicas

    def replica(self, me: int, config: ProtocolConfig = FAST_CONFIG) -> Replica:
        return Replica(self.committee, me, self.signers[me], self.verifier, config)

    def quorum_signers(self, threshold: int, skip: Iterable[int] = ()) -> tuple[int, ...]:
        """The lowest indices (skipping ``skip``) whose weight reaches ``threshold``."""
        out: list[int] = []
        skipped = set(skip)
        for v in self.committee.validators:
            if self.committee.weight_of(out) >= threshold:
                break
            if v.index not in skipped:
                out.append(v.index)
        return tuple(out)

    @property
    def poa_signers(self) -> tuple[int, ...]:
        return self.quorum_signers(self.committee.poa_quorum)

    @property
    def quorum(self) -> tuple[int, ...]:
        return self.quorum_signers(self.committee.quorum)

    @property
    def everyone(self) -> tuple[int, ...]:
        return tuple(range(self.n))

    def sign(self, signer: int, kind: MsgKind, first: int, second: int, digest: bytes) -> bytes:
        message = signing_bytes(kind, self.chain_id, first, second, digest)
        return self.signers[signer].sign(message)

    # -------------------------------------------------------- data layer

    def car(
        self,
        lane: int,
        pos: int,
        parent: bytes = ZERO_DIGEST,
        txs: tuple[bytes, ...] = (b"tx",),
        parent_poa: PoA | None = None,
        signer: int | None = None,
    ) -> Car:
        unsigned = Car.create(lane, pos, parent, parent_poa, txs, b"")
        sig = self.sign(lane if signer is None else signer, MsgKind.CAR, lane, pos, unsigned.digest)
        return Car(lane, pos, parent, parent_poa, txs, sig, unsigned.digest)

    def lane_vote(self, car: Car, voter: int) -> LaneVote:
        sig = self.sign(voter, MsgKind.LANE_VOTE, car.lane, car.pos, car.digest)
        return LaneVote(car.lane, car.pos, car.digest, voter, sig)

    def poa(self, car: Car, signers: Sequence[int] | None = None) -> PoA:
        who = tuple(signers) if signers is not None else self.poa_signers
        sigs = tuple(self.sign(s, MsgKind.LANE_VOTE, car.lane, car.pos, car.digest) for s in who)
        return PoA(car.lane, car.pos, car.digest, who, sigs)

    def lane(
        self,
        lane: int,
        length: int,
        tag: bytes = b"",
        first_parent: bytes = ZERO_DIGEST,
        first_pos: int = 1,
        first_poa: PoA | None = None,
        poas: bool = True,
    ) -> list[Car]:
        """``length`` chained cars of ``lane``, each carrying its parent's PoA if ``poas``."""
        cars: list[Car] = []
        parent, poa = first_parent, first_poa
        for pos in range(first_pos, first_pos + length):
            car = self.car(lane, pos, parent, (tag + b"tx%d-%d" % (lane, pos),), poa)
            cars.append(car)
            parent, poa = car.digest, self.poa(car) if poas else None
        return cars

    def tip(self, car: Car, signers: Sequence[int] | None = None) -> CutTip:
        return CutTip(car.lane, car.pos, car.digest, self.poa(car, signers))

    def cut(self, *tips: CutTip) -> Cut:
        """A cut with the given tips and empty tips for every other lane."""
        by_lane = {t.lane: t for t in tips}
        return Cut(tuple(by_lane.get(i, CutTip(i, 0, ZERO_DIGEST, None)) for i in range(self.n)))

    # -------------------------------------------------------- consensus

    def proposal(
        self, slot: int, view: int, cut: Cut, leader: int | None = None, signer: int | None = None
    ) -> Proposal:
        who = self.committee.leader(slot, view) if leader is None else leader
        sig = self.sign(who if signer is None else signer, MsgKind.PROPOSAL, slot, view, cut.digest)
        return Proposal(slot, view, cut, who, sig)

    def prepare(
        self,
        slot: int,
        view: int,
        cut: Cut,
        ticket: Ticket | None = None,
        leader: int | None = None,
        signer: int | None = None,
    ) -> Prepare:
        return Prepare(self.proposal(slot, view, cut, leader, signer), ticket or Ticket())

    def vote(self, phase: MsgKind, slot: int, view: int, cut: Cut | bytes, voter: int) -> Vote:
        digest = cut.digest if isinstance(cut, Cut) else cut
        return Vote(phase, slot, view, digest, voter, self.sign(voter, phase, slot, view, digest))

    def qc(
        self,
        phase: MsgKind,
        slot: int,
        view: int,
        cut: Cut | bytes,
        signers: Sequence[int] | None = None,
    ) -> QC:
        digest = cut.digest if isinstance(cut, Cut) else cut
        who = tuple(signers) if signers is not None else self.quorum
        sigs = tuple(self.sign(s, phase, slot, view, digest) for s in who)
        return QC(phase, slot, view, digest, who, sigs)

    def prepare_qc(
        self, slot: int, view: int, cut: Cut, signers: Sequence[int] | None = None
    ) -> QC:
        return self.qc(MsgKind.PREPARE_VOTE, slot, view, cut, signers)

    def timeout(
        self,
        slot: int,
        view: int,
        voter: int,
        high_qc: QC | None = None,
        high_qc_cut: Cut | None = None,
        high_prop: Proposal | None = None,
    ) -> Timeout:
        unsigned = Timeout(slot, view, high_qc, high_qc_cut, high_prop, voter, b"")
        sig = self.sign(voter, MsgKind.TIMEOUT, slot, view, unsigned.content_digest)
        return Timeout(slot, view, high_qc, high_qc_cut, high_prop, voter, sig)

    def tc(self, slot: int, view: int, voters: Sequence[int] | None = None) -> TC:
        """A TC of plain timeouts (no lock, no last vote) from ``voters``."""
        who = voters if voters is not None else self.quorum
        return TC(slot, view, tuple(self.timeout(slot, view, v) for v in who))


# ---------------------------------------------------------------- effect helpers


def messages(effects: Iterable[Effect], kind: type | tuple[type, ...] = object) -> list[Message]:
    """Messages of type ``kind`` leaving in Send or Broadcast effects, in order."""
    out: list[Message] = []
    for e in effects:
        if isinstance(e, Send | Broadcast) and isinstance(e.message, kind):
            out.append(e.message)
    return out


def sends_to(effects: Iterable[Effect], kind: type) -> list[tuple[int | None, Message]]:
    """(recipient or None for broadcast, message) for messages of type ``kind``."""
    out: list[tuple[int | None, Message]] = []
    for e in effects:
        if isinstance(e, Send) and isinstance(e.message, kind):
            out.append((e.to, e.message))
        elif isinstance(e, Broadcast) and isinstance(e.message, kind):
            out.append((None, e.message))
    return out


def drops(effects: Iterable[Effect]) -> list[Ignore | Reject]:
    return [e for e in effects if isinstance(e, Ignore | Reject)]


def rejects(effects: Iterable[Effect]) -> list[Reject]:
    return [e for e in effects if isinstance(e, Reject)]


def own_votes(effects: Iterable[Effect], me: int) -> list[Vote]:
    return [m for m in messages(effects, Vote) if isinstance(m, Vote) and m.voter == me]


def receive(replica: Replica, sender: int, message: Message, now: int = 0) -> list[Effect]:
    return replica.step(MessageReceived(now, sender, message))


def fire(replica: Replica, timer: Timer, now: int = 0) -> list[Effect]:
    return replica.step(TimerFired(now, timer))


def snapshot(replica: Replica) -> dict[str, object]:
    """A deep copy of the state a rejected input must not change."""
    lanes, cons, order = replica.lanes, replica.consensus, replica.ordering
    return copy.deepcopy(
        {
            "store": lanes.store,
            "last_voted": lanes.last_voted,
            "certified": lanes.certified,
            "ordered_pos": lanes.ordered_pos,
            "sync": {
                k: (v.from_pos, v.to_pos, v.to_digest, v.candidates, v.attempt)
                for k, v in lanes.sync.items()
            },
            "pending": lanes.pending,
            "own_votes": lanes.own_votes,
            "slots": cons.slots,
            "commits": cons.commits,
            "known_commit_slots": cons.known_commit_slots,
            "latest_proposal": cons.latest_proposal,
            "top": cons.top,
            "next_slot": order.next_slot,
            "height": order.height,
            "positions": order.positions,
            "pending_cuts": order.pending,
        }
    )


# ---------------------------------------------------------------- signed-value bookkeeping


def signed_claims(effects: Iterable[Effect], me: int) -> list[tuple[tuple[object, ...], bytes]]:
    """(what, content) for every value ``me`` signed and revealed in ``effects``: one content
    per ``what`` is the vote-uniqueness rule."""
    out: list[tuple[tuple[object, ...], bytes]] = []
    for m in messages(effects):
        if isinstance(m, Vote) and m.voter == me:
            out.append((("vote", int(m.phase), m.slot, m.view), m.cut_digest))
        elif isinstance(m, LaneVote) and m.voter == me:
            out.append((("lane_vote", m.lane, m.pos), m.car_digest))
        elif isinstance(m, Timeout) and m.voter == me:
            out.append((("timeout", m.slot, m.view), m.content_digest))
        elif isinstance(m, Prepare) and m.proposal.leader == me:
            out.append((("proposal", m.proposal.slot, m.proposal.view), m.proposal.cut.digest))
        elif isinstance(m, Car) and m.lane == me:
            out.append((("car", m.lane, m.pos), m.digest))
    return out


def conflicts(claims: Iterable[tuple[tuple[object, ...], bytes]]) -> list[tuple[object, ...]]:
    seen: dict[tuple[object, ...], bytes] = {}
    bad: list[tuple[object, ...]] = []
    for what, content in claims:
        if seen.setdefault(what, content) != content:
            bad.append(what)
    return bad


# ---------------------------------------------------------------- a tiny network


@dataclass
class Step:
    """One event handed to one replica and the effects it returned."""

    time: int
    node: int
    event: Event
    effects: list[Effect]


Drop = Callable[[int, int, Message], bool]
Tamper = Callable[[int, int, Message], Message | None]


@dataclass
class Net:
    """n replicas on a virtual clock. Messages take ``delay`` plus up to ``jitter`` ms and are
    lost with probability ``loss`` (seeded), or by the ``drop`` filter; the ``tamper`` hook
    returns the message to deliver, or None to drop it. ``silent`` nodes receive and send
    nothing. ``crash`` = (node, k, j): on its k-th step the node applies only the first j
    effects, then restarts from its persisted records."""

    keys: Keys
    config: ProtocolConfig = FAST_CONFIG
    delay: int = 10
    jitter: int = 0
    loss: float = 0.0
    seed: int = 0
    silent: frozenset[int] = frozenset()
    drop: Drop | None = None
    tamper: Tamper | None = None
    replicas: list[Replica] = field(default_factory=list)
    persisted: list[dict[PersistKey, object]] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    committed: list[list[Committed]] = field(default_factory=list)
    delivered: list[list[Block]] = field(default_factory=list)
    now: int = 0
    crash: tuple[int, int, int] | None = None
    after_restart: Callable[[Net, int], Iterable[tuple[int, Message]]] | None = None

    def __post_init__(self) -> None:
        n = self.keys.n
        self.replicas = [self.keys.replica(i, self.config) for i in range(n)]
        self.persisted = [{} for _ in range(n)]
        self.committed = [[] for _ in range(n)]
        self.delivered = [[] for _ in range(n)]
        self._queue: list[tuple[int, int, int, object]] = []
        self._seq = itertools.count()
        self._timers: dict[tuple[int, Timer], int] = {}
        self._rng = random.Random(self.seed)
        self._step_count = [0] * n
        self.restarts: list[int] = []

    # -------------------------------------------------------- scheduling

    def push(self, time: int, node: int, item: object) -> None:
        heapq.heappush(self._queue, (time, next(self._seq), node, item))

    def start(self, txs_every: int = 20, until: int = 1000, per_tx: int = 3) -> None:
        for i in range(self.keys.n):
            self.push(0, i, Start(0))
        counter = itertools.count()
        for t in range(0, until, txs_every):
            for i in range(self.keys.n):
                txs = tuple(b"tx-%d" % next(counter) for _ in range(per_tx))
                self.push(t, i, TxsSubmitted(t, txs))

    def deliver(self, time: int, sender: int, to: int, message: Message) -> None:
        self.push(time, to, MessageReceived(time, sender, message))

    def run(self, until: int, max_steps: int = 200_000) -> None:
        count = 0
        while self._queue and self._queue[0][0] <= until and count < max_steps:
            time, _, node, item = heapq.heappop(self._queue)
            self.now = time
            if node in self.silent:
                continue
            if isinstance(item, tuple):
                _, timer, token = item
                if self._timers.get((node, timer)) != token:
                    continue
                del self._timers[(node, timer)]
                event: Event = TimerFired(time, timer)
            else:
                assert isinstance(item, Start | MessageReceived | TxsSubmitted | TimerFired)
                event = item
            self.step(node, event)
            count += 1

    def step(self, node: int, event: Event) -> Step:
        effects = self.replicas[node].step(event)
        self._step_count[node] += 1
        crash = self.crash
        if crash is not None and crash[0] == node and crash[1] == self._step_count[node]:
            effects = effects[: crash[2]]
            record = Step(self.now, node, event, effects)
            self.steps.append(record)
            self.apply(node, effects)
            self.restart(node)
            return record
        record = Step(self.now, node, event, effects)
        self.steps.append(record)
        self.apply(node, effects)
        return record

    def apply(self, node: int, effects: Iterable[Effect]) -> None:
        for e in effects:
            if isinstance(e, Send):
                self._send(node, e.to, e.message)
            elif isinstance(e, Broadcast):
                for j in range(self.keys.n):
                    if j != node:
                        self._send(node, j, e.message)
            elif isinstance(e, Persist):
                if e.value is None:
                    self.persisted[node].pop(e.key, None)
                else:
                    self.persisted[node][e.key] = e.value
            elif isinstance(e, SetTimer):
                token = next(self._seq)
                self._timers[(node, e.timer)] = token
                self.push(self.now + e.delay_ms, node, ("timer", e.timer, token))
            elif isinstance(e, CancelTimer):
                self._timers.pop((node, e.timer), None)
            elif isinstance(e, Committed):
                self.committed[node].append(e)
            elif isinstance(e, Deliver):
                self.delivered[node].append(e.block)

    def _send(self, sender: int, to: int, message: Message) -> None:
        if sender in self.silent or to in self.silent:
            return
        if self.drop is not None and self.drop(sender, to, message):
            return
        if self.tamper is not None:
            changed = self.tamper(sender, to, message)
            if changed is None:
                return
            message = changed
        if self.loss and self._rng.random() < self.loss:
            return
        extra = self._rng.randint(0, self.jitter) if self.jitter else 0
        self.deliver(self.now + self.delay + extra, sender, to, message)

    # -------------------------------------------------------- crash and restart

    def restart(self, node: int) -> Step:
        """Replace ``node`` by a replica rebuilt from its persisted records and start it."""
        self._timers = {k: v for k, v in self._timers.items() if k[0] != node}
        self.restarts.append(len(self.steps))
        fresh = self.keys.replica(node, self.config)
        fresh.restore(dict(self.persisted[node]))
        self.replicas[node] = fresh
        self.delivered[node] = self.delivered[node][: fresh.ordering.height]
        record = self.step(node, Start(self.now))
        if self.after_restart is not None:
            for sender, message in self.after_restart(self, node):
                self.deliver(self.now + 1, sender, node, message)
        return record

    # -------------------------------------------------------- queries

    def effects_of(self, node: int) -> list[Effect]:
        return [e for s in self.steps if s.node == node for e in s.effects]

    def committed_slots(self, node: int) -> list[int]:
        return [c.slot for c in self.committed[node]]


# ---------------------------------------------------------------- persistence contract


VOTE_KEYS = {MsgKind.PREPARE_VOTE: "prepare_vote", MsgKind.CONFIRM_ACK: "confirm_ack"}


def unpersisted_reveals(
    steps: Iterable[Step],
    node: int,
    durable: dict[PersistKey, object] | None = None,
    lane_votes_sent: set[tuple[int, int]] | None = None,
) -> list[tuple[int, Message]]:
    """Own signed values ``node`` sent or broadcast without an equal value being durable at
    that point of its effect list (persisted earlier in the list or in an earlier step;
    ``durable`` and ``lane_votes_sent`` describe the state before ``steps``)."""
    durable = dict(durable or {})
    lane_votes_sent = set(lane_votes_sent or ())
    bad: list[tuple[int, Message]] = []
    for index, s in enumerate(steps):
        if s.node != node:
            continue
        for e in s.effects:
            if isinstance(e, Persist):
                if e.value is None:
                    durable.pop(e.key, None)
                else:
                    durable[e.key] = e.value
                continue
            if not isinstance(e, Send | Broadcast):
                continue
            m = e.message
            ok = True
            if isinstance(m, Vote) and m.voter == node:
                ok = durable.get((VOTE_KEYS.get(m.phase, "?"), m.slot)) == m
            elif isinstance(m, Timeout) and m.voter == node:
                ok = durable.get(("timeout", m.slot)) == m
            elif isinstance(m, Prepare) and m.proposal.leader == node:
                ok = durable.get(("proposal", m.proposal.slot)) == m
            elif isinstance(m, Car) and m.lane == node:
                ok = durable.get(("car", node, m.pos)) == m
            elif isinstance(m, LaneVote) and m.voter == node:
                # The persisted car at (lane, pos) is the record of the vote.
                car = durable.get(("car", m.lane, m.pos))
                ok = isinstance(car, Car) and car.digest == m.car_digest
                lane_votes_sent.add((m.lane, m.pos))
            if not ok:
                bad.append((index, m))
    return bad
