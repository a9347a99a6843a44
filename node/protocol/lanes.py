"""The data layer: every validator's own lane of cars, in-order lane votes, PoAs, and car sync.

Rules (shared/reference/autobahn.md §a.2, DESIGN §4):
- A validator votes for (lane, pos) only after storing the car and having voted for pos-1 with
  the digest the car names as parent; positions only grow, so it never votes twice at one pos.
- f+1 weight of votes forms a PoA, broadcast at once and carried by the next car.
- A lane runs ahead of its last PoA by at most ``lane_window`` cars.
- A car whose parent is missing is stored and the gap is fetched in one range request.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.crypto.hashing import ZERO_DIGEST
from node.crypto.signing import Signer
from node.protocol.config import ProtocolConfig
from node.protocol.effects import (
    Broadcast,
    CancelTimer,
    Effect,
    Ignore,
    Persist,
    Reject,
    Send,
    SetTimer,
)
from node.protocol.events import Timer
from node.protocol.validation import MessageChecker
from node.types.committee import Committee
from node.types.messages import (
    Car,
    CutTip,
    LaneVote,
    MsgKind,
    PoA,
    SyncReply,
    SyncRequest,
    compute_car_digest,
    compute_payload_hash,
    signing_bytes,
)

CAR_TIMER = Timer("car")
MAX_FORKS_PER_POS = 2
MAX_RESEND_BACKOFF = 8
"""An uncertified own car is re-sent at most every 8 x sync_retry_ms."""


def sync_timer(lane: int) -> Timer:
    return Timer("sync", lane)


@dataclass(slots=True)
class SyncTarget:
    """Cars of a lane this replica is fetching: ``from_pos`` up to (to_pos, to_digest)."""

    from_pos: int
    to_pos: int
    to_digest: bytes
    candidates: tuple[int, ...]
    attempt: int = 0


class Lanes:
    """All lanes as one replica sees them, and the replica's own lane."""

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
        n = committee.size
        self.store: list[dict[int, dict[bytes, Car]]] = [{} for _ in range(n)]
        self.last_voted: list[tuple[int, bytes]] = [(0, ZERO_DIGEST)] * n
        self.voted: list[dict[int, bytes]] = [{} for _ in range(n)]
        self.certified: list[PoA | None] = [None] * n
        self.ordered_pos: list[int] = [0] * n
        self.sync: dict[int, SyncTarget] = {}
        # own lane
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.own_votes: dict[int, dict[int, bytes]] = {}
        self.car_ticks = 0
        # own position -> (car tick of its next re-send, re-sends so far)
        self.resend_due: dict[int, tuple[int, int]] = {}

    # ------------------------------------------------------------ queries

    @property
    def own_tip(self) -> tuple[int, bytes]:
        return self.last_voted[self.me]

    def certified_pos(self, lane: int) -> int:
        """The highest position known to be certified: its PoA, or an ordered car (every
        ordered car had a PoA in its cut). A validator restored from a snapshot holds no
        PoA of its own lane, only the ordered position."""
        poa = self.certified[lane]
        return max(poa.pos if poa is not None else 0, self.ordered_pos[lane])

    def tips(self) -> tuple[CutTip, ...]:
        """The highest certified tip of every lane (pos 0 where none is known)."""
        out = []
        for lane, poa in enumerate(self.certified):
            if poa is None:
                out.append(CutTip(lane, 0, ZERO_DIGEST, None))
            else:
                out.append(CutTip(lane, poa.pos, poa.car_digest, poa))
        return tuple(out)

    def get_car(self, lane: int, pos: int, digest: bytes) -> Car | None:
        return self.store[lane].get(pos, {}).get(digest)

    def chain(self, lane: int, from_pos: int, to_pos: int, to_digest: bytes) -> list[Car] | None:
        """Cars from ``from_pos`` to the car (to_pos, to_digest) following parent digests,
        ascending; None if any is missing."""
        cars: list[Car] = []
        digest = to_digest
        for pos in range(to_pos, from_pos - 1, -1):
            car = self.get_car(lane, pos, digest)
            if car is None:
                return None
            cars.append(car)
            digest = car.parent
        cars.reverse()
        return cars

    # ------------------------------------------------------------ own lane

    def on_start(self) -> list[Effect]:
        """Arm the car timer and re-send own cars not yet certified (votes may have been lost)."""
        effects: list[Effect] = [SetTimer(CAR_TIMER, self.config.car_interval_ms)]
        top = self.own_tip[0]
        for pos in range(self.certified_pos(self.me) + 1, top + 1):
            car = self.get_car(self.me, pos, self.voted[self.me].get(pos, b""))
            if car is not None:
                self.own_votes.setdefault(pos, {})[self.me] = self._sign_vote(car)
                effects.append(Broadcast(car))
        return effects

    def on_txs(self, txs: tuple[bytes, ...]) -> list[Effect]:
        self.pending.extend(txs)
        self.pending_bytes += sum(len(t) for t in txs)
        if (
            len(self.pending) >= self.config.car_max_txs
            or self.pending_bytes >= self.config.car_max_bytes
        ):
            return self._seal_cars()
        return []

    def on_car_timer(self) -> list[Effect]:
        effects = self._seal_cars() + self._resend_uncertified()
        effects.append(SetTimer(CAR_TIMER, self.config.car_interval_ms))
        return effects

    def _resend_uncertified(self) -> list[Effect]:
        """Re-send own cars still short of a PoA to the peers that have not voted for them:
        a partition that dropped them must not leave the lane stuck at its window.

        A car is first re-sent ``sync_retry_ms`` after this replica first saw it uncertified,
        then at doubling intervals (up to 8x): under load votes are merely slow, and every
        early re-send costs each peer a car decode and a vote."""
        self.car_ticks += 1
        tick = self.car_ticks
        due = self.resend_due
        for pos in [p for p in due if p not in self.own_votes]:
            del due[pos]
        every = max(2, self.config.sync_retry_ms // self.config.car_interval_ms)
        effects: list[Effect] = []
        for pos in sorted(self.own_votes):
            entry = due.get(pos)
            if entry is None:  # first seen uncertified: the first re-send is due in `every`
                due[pos] = (tick + every, 0)
                continue
            at, resends = entry
            if at > tick:
                continue
            due[pos] = (tick + every * min(1 << (resends + 1), MAX_RESEND_BACKOFF), resends + 1)
            car = self.get_car(self.me, pos, self.voted[self.me][pos])
            if car is None:
                continue
            voters = self.own_votes[pos]
            effects += [Send(p, car) for p in self.committee.indices() if p not in voters]
        return effects

    def _seal_cars(self) -> list[Effect]:
        effects: list[Effect] = []
        while self.pending and self.own_tip[0] + 1 - self.certified_pos(self.me) <= (
            self.config.lane_window
        ):
            effects.extend(self._seal_one())
        return effects

    def _take_payload(self) -> tuple[bytes, ...]:
        count, size = 0, 0
        for tx in self.pending:
            if count >= self.config.car_max_txs or size + len(tx) > self.config.car_max_bytes:
                break
            count += 1
            size += len(tx)
        count = max(count, 1)
        txs = tuple(self.pending[:count])
        del self.pending[:count]
        self.pending_bytes -= sum(len(t) for t in txs)
        return txs

    def _seal_one(self) -> list[Effect]:
        parent_pos, parent = self.own_tip
        pos = parent_pos + 1
        txs = self._take_payload()
        poa = self.certified[self.me]
        parent_poa = poa if poa is not None and poa.pos == parent_pos else None
        digest = compute_car_digest(self.me, pos, parent, compute_payload_hash(txs))
        sig = self.signer.sign(
            signing_bytes(MsgKind.CAR, self.committee.chain_id, self.me, pos, digest)
        )
        car = Car(self.me, pos, parent, parent_poa, txs, sig, digest)
        self.store[self.me].setdefault(pos, {})[digest] = car
        self.last_voted[self.me] = (pos, digest)
        self.voted[self.me][pos] = digest
        self.own_votes[pos] = {self.me: self._sign_vote(car)}
        # One record per car: the restored own tip is the highest persisted own car, so a crash
        # can never make the owner seal a second, different car at this position.
        effects: list[Effect] = [Persist(("car", self.me, pos), car), Broadcast(car)]
        return effects + self._maybe_certify(pos)

    def _sign_vote(self, car: Car) -> bytes:
        return self.signer.sign(
            signing_bytes(MsgKind.LANE_VOTE, self.committee.chain_id, car.lane, car.pos, car.digest)
        )

    def on_lane_vote(self, sender: int, vote: LaneVote) -> list[Effect]:
        if vote.lane != self.me:
            return [Reject(sender, "lane vote for a lane this validator does not own")]
        votes = self.own_votes.get(vote.pos)
        if votes is None or vote.voter in votes:
            return [Ignore("lane vote for a certified, unknown or already counted car")]
        if self.voted[self.me].get(vote.pos) != vote.car_digest:
            return [Reject(sender, "lane vote for a car this lane never proposed")]
        if not self.checks.is_valid_lane_vote(vote):
            return [Reject(sender, "bad lane vote signature")]
        votes[vote.voter] = vote.signature
        return self._maybe_certify(vote.pos)

    def _maybe_certify(self, pos: int) -> list[Effect]:
        votes = self.own_votes[pos]
        if self.committee.weight_of(votes) < self.committee.poa_quorum:
            return []
        signers = tuple(sorted(votes))
        digest = self.voted[self.me][pos]
        poa = PoA(self.me, pos, digest, signers, tuple(votes[s] for s in signers))
        del self.own_votes[pos]
        effects: list[Effect] = []
        if self._learn_poa(poa):
            effects += [Persist(("poa", self.me), poa), Broadcast(poa)]
        return effects + self._seal_cars_if_full()

    def _seal_cars_if_full(self) -> list[Effect]:
        if len(self.pending) >= self.config.car_max_txs:
            return self._seal_cars()
        return []

    # ------------------------------------------------------------ other lanes

    def on_car(self, sender: int, car: Car) -> list[Effect]:
        if not self.committee.is_member(car.lane):
            return [Reject(sender, "car for an unknown lane")]
        if car.lane == self.me:
            return self._on_own_car(sender, car)
        known = self.store[car.lane].get(car.pos, {})
        if car.digest in known:
            return self._revote(sender, car)
        if car.pos <= self.ordered_pos[car.lane]:
            return [Ignore("car at an already ordered position")]
        effects = self._show_voted_car(sender, car)
        if car.pos > self.last_voted[car.lane][0] + 4 * self.config.lane_window:
            return [Ignore("car too far ahead of this lane's votes")]
        if len(known) >= MAX_FORKS_PER_POS:
            return [*effects, Ignore("too many forks at this position")]
        reason = self.checks.validate_car(car, self.config.car_max_txs, self.config.car_max_bytes)
        if reason is not None:
            return [Reject(sender, reason)]
        if car.parent_poa is not None:
            self._learn_poa(car.parent_poa)
        self.store[car.lane].setdefault(car.pos, {})[car.digest] = car
        effects += self._vote_cascade(car.lane)
        voted_pos = self.last_voted[car.lane][0]
        if car.pos > voted_pos + 1 and self.get_car(car.lane, car.pos - 1, car.parent) is None:
            candidates = (car.lane,) + (car.parent_poa.signers if car.parent_poa else ())
            effects += self.request(car.lane, voted_pos + 1, car.pos - 1, car.parent, candidates)
        return effects

    def _on_own_car(self, sender: int, car: Car) -> list[Effect]:
        """A peer shows this validator an own car it voted for. If this replica does not hold
        it, an earlier incarnation sealed it before the data was lost, and this replica has
        since sealed another car at that position that no peer voted for: continue the lane
        from the car peers voted for, or the lane stays stuck (they never vote twice at one
        position). Nothing new is signed, so this adds no fork of its own."""
        pos = car.pos
        current = self.voted[self.me].get(pos)
        if current is None or current == car.digest or pos <= self.certified_pos(self.me):
            return [Ignore("own car not in place of an uncertified own car")]
        held = self.get_car(self.me, pos, current)
        if held is None or car.parent != held.parent:
            return [Ignore("own car off the own chain")]
        votes = self.own_votes.get(pos, {})
        if any(voter != self.me for voter in votes):
            return [Ignore("a peer voted for the own car at this position")]
        reason = self.checks.validate_car(car, self.config.car_max_txs, self.config.car_max_bytes)
        if reason is not None:
            return [Reject(sender, reason)]
        self.store[self.me].setdefault(pos, {})[car.digest] = car
        effects = self._adopt_own(pos, car.digest)
        self.own_votes[pos] = {self.me: self._sign_vote(car)}
        # peers that voted for it vote again (_revote); the sender is one of them
        return [*effects, Broadcast(car), *self._maybe_certify(pos)]

    def _revote(self, sender: int, car: Car) -> list[Effect]:
        """A re-sent car this replica voted for: send the same vote again (the owner lost it).
        Only an actual vote is repeated, never a car merely adopted from the ordered chain.
        A re-sent fork from its owner gets the car voted for at that position again."""
        if self.voted[car.lane].get(car.pos) == car.digest:
            vote = LaneVote(car.lane, car.pos, car.digest, self.me, self._sign_vote(car))
            return [Send(car.lane, vote)]
        return self._show_voted_car(sender, car) or [Ignore("duplicate car")]

    def _show_voted_car(self, sender: int, car: Car) -> list[Effect]:
        """The owner offers another car where this replica voted, above the ordered part of
        its lane: show it the car voted for there (an owner that lost its data continues
        from that one)."""
        mine = self.voted[car.lane].get(car.pos)
        if sender != car.lane or mine is None or car.pos <= self.ordered_pos[car.lane]:
            return []
        held = self.get_car(car.lane, car.pos, mine)
        return [Send(car.lane, held)] if held is not None else []

    def _vote_cascade(self, lane: int) -> list[Effect]:
        """Vote, in order, for every stored car that extends the chain this replica voted on."""
        effects: list[Effect] = []
        while True:
            pos, digest = self.last_voted[lane]
            nxt = next(
                (c for c in self.store[lane].get(pos + 1, {}).values() if c.parent == digest), None
            )
            if nxt is None:
                return effects
            self.last_voted[lane] = (nxt.pos, nxt.digest)
            self.voted[lane][nxt.pos] = nxt.digest
            effects.append(Persist(("car", lane, nxt.pos), nxt))
            if nxt.pos > self.certified_pos(lane):
                sig = self._sign_vote(nxt)
                effects.append(Send(lane, LaneVote(lane, nxt.pos, nxt.digest, self.me, sig)))

    def on_poa(self, sender: int, poa: PoA) -> list[Effect]:
        current = self.certified[poa.lane] if self.committee.is_member(poa.lane) else None
        if current is not None and current.pos >= poa.pos:
            return [Ignore("PoA not newer than the known tip")]
        if not self.checks.is_valid_poa(poa):
            return [Reject(sender, "invalid PoA")]
        self._learn_poa(poa)
        return []

    def learn_poa(self, poa: PoA) -> bool:
        """Record a PoA seen inside a cut; True if it is a newer, valid tip. It is checked here
        because a cut's digest does not cover its PoAs."""
        current = self.certified[poa.lane] if self.committee.is_member(poa.lane) else None
        if current is not None and current.pos >= poa.pos:
            return False
        return self.checks.is_valid_poa(poa) and self._learn_poa(poa)

    def _learn_poa(self, poa: PoA) -> bool:
        current = self.certified[poa.lane]
        if current is not None and current.pos >= poa.pos:
            return False
        self.certified[poa.lane] = poa
        return True

    # ------------------------------------------------------------ sync

    def request(
        self, lane: int, from_pos: int, to_pos: int, to_digest: bytes, candidates: tuple[int, ...]
    ) -> list[Effect]:
        """Fetch cars ``from_pos``..``to_pos`` of ``lane`` (ending at ``to_digest``)."""
        peers = tuple(dict.fromkeys(c for c in candidates if c != self.me))
        if not peers or to_pos < from_pos:
            return []
        current = self.sync.get(lane)
        if current is not None and current.to_pos >= to_pos:
            return []
        self.sync[lane] = SyncTarget(from_pos, to_pos, to_digest, peers)
        return self._send_sync(lane)

    def _send_sync(self, lane: int) -> list[Effect]:
        target = self.sync[lane]
        peer = target.candidates[target.attempt % len(target.candidates)]
        req = SyncRequest(lane, target.from_pos, target.to_pos, target.to_digest)
        return [Send(peer, req), SetTimer(sync_timer(lane), self.config.sync_retry_ms)]

    def on_sync_timer(self, lane: int) -> list[Effect]:
        target = self.sync.get(lane)
        if target is None:
            return []
        if self.chain(lane, target.from_pos, target.to_pos, target.to_digest) is not None:
            del self.sync[lane]
            return []
        target.attempt += 1
        return self._send_sync(lane)

    def on_sync_request(self, sender: int, req: SyncRequest) -> list[Effect]:
        if not self.committee.is_member(req.lane) or req.from_pos < 1 or req.to_pos < req.from_pos:
            return [Reject(sender, "malformed sync request")]
        cars = self.chain(req.lane, req.from_pos, req.to_pos, req.to_digest)
        if cars is None:
            return [Ignore("sync request for cars this replica does not hold")]
        return [Send(sender, SyncReply(req.lane, tuple(cars[: self.config.max_sync_cars])))]

    def on_sync_reply(self, sender: int, reply: SyncReply) -> list[Effect]:
        target = self.sync.get(reply.lane)
        if target is None or not reply.cars:
            return [Ignore("unrequested or empty sync reply")]
        cars = reply.cars
        if len(cars) > self.config.max_sync_cars:
            return [Reject(sender, "sync reply longer than allowed")]
        if cars[0].pos != target.from_pos:
            return [Ignore("sync reply for an earlier request")]
        for prev, car in zip(cars, cars[1:], strict=False):
            if car.pos != prev.pos + 1 or car.parent != prev.digest:
                return [Reject(sender, "sync reply is not a gap-free hash chain")]
        for car in cars:
            if car.lane != reply.lane:
                return [Reject(sender, "sync reply mixes lanes")]
            reason = self.checks.validate_car(
                car, self.config.car_max_txs, self.config.car_max_bytes
            )
            if reason is not None:
                return [Reject(sender, f"sync reply holds a bad car: {reason}")]
        for car in cars:
            self.store[car.lane].setdefault(car.pos, {})[car.digest] = car
        effects = self._vote_cascade(reply.lane)
        last = cars[-1]
        if self.chain(reply.lane, target.from_pos, target.to_pos, target.to_digest) is not None:
            del self.sync[reply.lane]
            effects.append(CancelTimer(sync_timer(reply.lane)))
        elif last.pos < target.to_pos:
            target.from_pos = last.pos + 1
            effects += self._send_sync(reply.lane)
        return effects

    # ------------------------------------------------------------ after ordering

    def on_ordered(self, lane: int, pos: int, digest: bytes) -> list[Effect]:
        """The car (lane, pos, digest) was ordered: adopt that chain and prune old cars."""
        effects: list[Effect] = []
        self.ordered_pos[lane] = max(self.ordered_pos[lane], pos)
        if lane == self.me:
            if self.voted[lane].get(pos) != digest:
                effects += self._adopt_own(pos, digest)
        elif self.last_voted[lane][0] < pos:
            self.last_voted[lane] = (pos, digest)
            effects.append(Persist(("lane_pos", lane), (pos, digest)))
            effects += self._vote_cascade(lane)
        horizon = pos - self.config.car_retention
        store = self.store[lane]
        if horizon > 0 and len(store) > self.config.car_retention:
            for old in [p for p in store if p <= horizon]:
                del store[old]
                self.voted[lane].pop(old, None)
                effects.append(Persist(("car", lane, old), None))
        return effects

    def _adopt_own(self, pos: int, digest: bytes) -> list[Effect]:
        """An own car this replica does not hold was ordered: one an earlier incarnation
        sealed before its data was lost (a validator restored from a snapshot). Continue the
        lane after it; own cars sealed since at or above ``pos`` are on a dead branch, so
        they are dropped and their transactions go back to the front of the queue."""
        effects: list[Effect] = []
        dropped = sorted(p for p in self.voted[self.me] if p >= pos)
        requeue: list[bytes] = []
        for p in dropped:
            car = self.store[self.me].get(p, {}).pop(self.voted[self.me].pop(p), None)
            if not self.store[self.me].get(p):
                self.store[self.me].pop(p, None)
            self.own_votes.pop(p, None)
            if car is not None:
                requeue.extend(car.txs)
            if p != pos:
                effects.append(Persist(("car", self.me, p), None))
        self.pending[:0] = requeue
        self.pending_bytes += sum(len(t) for t in requeue)
        self.voted[self.me][pos] = digest
        self.last_voted[self.me] = (pos, digest)
        # A restart restores the own tip from the highest own car record: the ordered car
        # (held, since ordering delivered it) replaces the dropped one's record at pos.
        effects.append(Persist(("car", self.me, pos), self.get_car(self.me, pos, digest)))
        effects.append(Persist(("lane_pos", self.me), (pos, digest)))
        return effects

    # ------------------------------------------------------------ restart

    def restore_car(self, car: Car) -> None:
        """A persisted car is one this replica voted for (or sealed): restore the vote too."""
        self.store[car.lane].setdefault(car.pos, {})[car.digest] = car
        self.voted[car.lane][car.pos] = car.digest
        if car.pos > self.last_voted[car.lane][0]:
            self.last_voted[car.lane] = (car.pos, car.digest)

    def restore_lane_pos(self, lane: int, pos: int, digest: bytes) -> None:
        """An adopted position from ordering; a higher voted car restored elsewhere wins."""
        if pos > self.last_voted[lane][0]:
            self.last_voted[lane] = (pos, digest)

    def restore_poa(self, poa: PoA) -> None:
        self._learn_poa(poa)
