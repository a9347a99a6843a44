"""Byzantine behaviours forge what a malicious validator could, and reach honest nodes."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable

from node.crypto.hashing import ZERO_DIGEST
from node.crypto.signing import KeyedHashSigner, KeyedHashVerifier
from node.sim.byzantine import (
    KINDS,
    BadSignatures,
    EquivocatingLeader,
    ForkedLane,
    PartialCommit,
    Replayer,
    StaleTimeouts,
    WithholdVotes,
    corrupt_signature,
    split_peers,
)
from node.sim.harness import Simulation
from node.sim.hosts import make_keys
from node.sim.scenarios import Scenario, byzantine, twins
from node.types.committee import Committee
from node.types.messages import (
    QC,
    Car,
    Commit,
    Confirm,
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

COMMITTEE, SECRETS = make_keys(4, seed=0)
VERIFIER = KeyedHashVerifier(SECRETS)


class FakeContext:
    def __init__(self, index: int) -> None:
        self.index = index
        self.committee: Committee = COMMITTEE
        self.signer = KeyedHashSigner(SECRETS[index])
        self.rng = random.Random(1)
        self.sent: list[tuple[int, Message]] = []
        self.periodic: list[Callable[[], None]] = []

    @property
    def now(self) -> int:
        return 0

    def inject(self, to: int, message: Message) -> None:
        self.sent.append((to, message))

    def every(self, period: int, action: Callable[[], None]) -> None:
        self.periodic.append(action)


def _tip(lane: int, pos: int) -> CutTip:
    digest = bytes([lane, pos]) * 16
    return CutTip(lane, pos, digest, PoA(lane, pos, digest, (0, 1), (b"a", b"b")))


def _prepare(ctx: FakeContext, cut: Cut, slot: int = 3) -> Prepare:
    sig = ctx.signer.sign(signing_bytes(MsgKind.PROPOSAL, COMMITTEE.chain_id, slot, 0, cut.digest))
    return Prepare(Proposal(slot, 0, cut, ctx.index, sig), Ticket())


def test_equivocating_leader_sends_another_validly_signed_cut_to_one_half() -> None:
    """Peers in the chosen half get a different cut with a valid leader signature."""
    ctx = FakeContext(0)
    behaviour = EquivocatingLeader(frozenset({1}))
    behaviour.on_send(ctx, 2, _prepare(ctx, Cut((_tip(0, 1), _tip(1, 1), _tip(2, 1), _tip(3, 1)))))
    honest = _prepare(ctx, Cut((_tip(0, 2), _tip(1, 2), _tip(2, 2), _tip(3, 2))), slot=4)
    [(_, other)] = behaviour.on_send(ctx, 1, honest)
    [(_, same)] = behaviour.on_send(ctx, 2, honest)
    assert same is honest
    assert isinstance(other, Prepare)
    assert other.proposal.cut.digest != honest.proposal.cut.digest
    proposal = other.proposal
    signed = signing_bytes(
        MsgKind.PROPOSAL, COMMITTEE.chain_id, proposal.slot, proposal.view, proposal.cut.digest
    )
    assert VERIFIER.verify(0, signed, proposal.signature)
    assert behaviour.on_send(ctx, 1, honest) == [(1, other)]


def test_forked_lane_sends_another_validly_signed_car_at_the_same_position() -> None:
    """A forked car keeps lane, pos and parent, changes payload, and is signed by the owner."""
    ctx = FakeContext(2)
    behaviour = ForkedLane(frozenset({1}), rate=1.0)
    car = Car.create(2, 5, ZERO_DIGEST, None, (b"tx",), b"sig")
    [(_, fork)] = behaviour.on_send(ctx, 1, car)
    assert isinstance(fork, Car)
    assert (fork.lane, fork.pos, fork.parent) == (car.lane, car.pos, car.parent)
    assert fork.digest != car.digest
    assert fork.has_valid_digest()
    signed = signing_bytes(MsgKind.CAR, COMMITTEE.chain_id, 2, 5, fork.digest)
    assert VERIFIER.verify(2, signed, fork.signature)
    assert behaviour.on_send(ctx, 3, car) == [(3, car)]


def test_withholding_drops_votes_only() -> None:
    """Lane votes and consensus votes vanish; other messages pass."""
    ctx = FakeContext(1)
    behaviour = WithholdVotes()
    assert behaviour.on_send(ctx, 0, LaneVote(0, 1, b"d", 1, b"s")) == []
    assert behaviour.on_send(ctx, 0, Vote(MsgKind.PREPARE_VOTE, 1, 0, b"d", 1, b"s")) == []
    car = Car.create(1, 1, ZERO_DIGEST, None, (), b"s")
    assert behaviour.on_send(ctx, 0, car) == [(0, car)]


def test_bad_signatures_no_longer_verify() -> None:
    """A corrupted vote's signature fails verification."""
    ctx = FakeContext(1)
    signed = signing_bytes(MsgKind.LANE_VOTE, COMMITTEE.chain_id, 0, 1, b"d" * 32)
    vote = LaneVote(0, 1, b"d" * 32, 1, ctx.signer.sign(signed))
    bad = corrupt_signature(vote, random.Random(3))
    assert isinstance(bad, LaneVote)
    assert not VERIFIER.verify(1, signed, bad.signature)
    [(_, out)] = BadSignatures(rate=1.0).on_send(ctx, 0, vote)
    assert out != vote


def test_replayer_resends_recorded_traffic() -> None:
    """Messages seen earlier are re-sent to peers when the replay timer fires."""
    ctx = FakeContext(3)
    behaviour = Replayer(period=1000)
    behaviour.on_start(ctx)
    vote = LaneVote(0, 1, b"d", 2, b"s")
    behaviour.on_receive(ctx, 2, vote)
    ctx.periodic[0]()
    assert ctx.sent
    assert all(msg is vote and to != 3 for to, msg in ctx.sent)


def test_split_peers_is_a_seeded_half_without_self() -> None:
    """The chosen half never contains the node and depends only on the rng."""
    half = split_peers(2, 7, random.Random(4))
    assert 2 not in half
    assert len(half) == 3
    assert half == split_peers(2, 7, random.Random(4))


def _run(scenario: Scenario) -> Simulation:
    sim = Simulation(scenario)
    sim.run()
    return sim


def test_byzantine_behaviours_reach_honest_nodes() -> None:
    """Across seeds every behaviour shows up, and honest nodes reject bad signatures."""
    kinds: set[str] = set()
    rejects = 0
    for seed in range(40):
        scenario = byzantine(4, seed)
        drawn = {k for _, ks in scenario.byzantine for k in ks}
        if drawn <= kinds:
            continue
        sim = _run(scenario)
        for host in sim.hosts:
            for behaviour in host.behaviours:
                kinds.add(behaviour.name)
                if isinstance(behaviour, EquivocatingLeader):
                    assert behaviour.variants
        rejects += sim.counters["reject"]
        if kinds >= set(KINDS):
            break
    assert set(KINDS) <= kinds
    assert rejects > 0


def test_twins_sign_conflicting_statements() -> None:
    """Two instances sharing one key, each with its own peers and clients, equivocate."""
    for seed in range(2):
        sim = _run(twins(4, seed))
        [(index, _)] = sim.scenario.byzantine
        first, second = sim.hosts[index].instances
        assert first.audience is not None
        assert second.audience is not None
        assert first.audience.isdisjoint(second.audience)
        conflicts = sim.monitor.byzantine_votes.violations
        assert any(f"node {index} signed two" in v.detail for v in conflicts)


def test_equivocation_and_forks_show_up_as_byzantine_conflicts() -> None:
    """The equivocating leader and forked lane sign conflicting statements that peers see."""
    seen: set[str] = set()
    for seed in range(12):
        scenario = byzantine(4, seed)
        kinds = {k for _, ks in scenario.byzantine for k in ks}
        if not kinds & {"equivocate-leader", "fork-lane"}:
            continue
        sim = _run(scenario)
        for violation in sim.monitor.byzantine_votes.violations:
            seen.add(violation.detail.split()[4])
    assert {"proposals", "lane-votes"} & seen


def test_partial_commit_drops_confirm_and_commit_to_some_peers() -> None:
    """With keep 0 no Confirm or Commit leaves the leader; other messages pass."""
    ctx = FakeContext(0)
    behaviour = PartialCommit(keep=0.0)
    qc = QC(MsgKind.PREPARE_VOTE, 1, 0, b"d" * 32, (0, 1, 2), (b"a", b"b", b"c"))
    cut = Cut((_tip(0, 1),))
    assert behaviour.on_send(ctx, 1, Confirm(qc, cut)) == []
    assert behaviour.on_send(ctx, 1, Commit(qc, cut)) == []
    vote = Vote(MsgKind.PREPARE_VOTE, 1, 0, b"d", 0, b"s")
    assert behaviour.on_send(ctx, 1, vote) == [(1, vote)]


def test_stale_timeout_replaces_the_lock_with_an_older_one_and_re_signs() -> None:
    """A Timeout goes out with the oldest lock seen for its slot (or none), validly signed."""
    ctx = FakeContext(1)
    behaviour = StaleTimeouts()
    cut = Cut((_tip(0, 1),))
    old_qc = QC(MsgKind.PREPARE_VOTE, 5, 0, cut.digest, (0, 1, 2), (b"a", b"b", b"c"))
    new_qc = dataclasses.replace(old_qc, view=2)
    behaviour.on_receive(ctx, 2, Timeout(5, 1, old_qc, cut, None, 2, b"s"))
    mine = Timeout(5, 3, new_qc, cut, None, 1, b"s")
    for _ in range(10):
        [(_, sent)] = behaviour.on_send(ctx, 0, mine)
        assert isinstance(sent, Timeout)
        assert sent.high_qc in (old_qc, None)
        signed = signing_bytes(MsgKind.TIMEOUT, COMMITTEE.chain_id, 5, 3, sent.content_digest)
        assert VERIFIER.verify(1, signed, sent.signature)
