"""The persistence contract: persist before revealing, and never sign twice across a restart."""

from __future__ import annotations

from collections.abc import Iterable

from hypothesis import given, settings
from hypothesis import strategies as st

from node.protocol.consensus import view_timer
from node.protocol.effects import Effect, Persist, Reject, Send
from node.protocol.events import MessageReceived, Start, TxsSubmitted
from node.protocol.lanes import CAR_TIMER
from node.types.messages import Car, Confirm, Message, MsgKind, PoA, Prepare, Timeout, Vote
from tests.unit.protocol.helpers import (
    Keys,
    Net,
    Step,
    conflicts,
    fire,
    messages,
    own_votes,
    receive,
    signed_claims,
    unpersisted_reveals,
)

KEYS = Keys(4)
NODE = 2


def claims_of(net: Net, node: int) -> list[tuple[tuple[object, ...], bytes]]:
    return [c for s in net.steps if s.node == node for c in signed_claims(s.effects, node)]


def equivocations(keys: Keys, message: Message) -> list[tuple[int, Message]]:
    """Byzantine twins of an honest message: the same (slot, view) with another cut."""
    out: list[tuple[int, Message]] = []
    empty = keys.cut()
    if isinstance(message, Prepare) and message.proposal.cut != empty:
        p = message.proposal
        twin = keys.proposal(p.slot, p.view, empty, leader=p.leader)
        out.append((p.leader, Prepare(twin, message.ticket)))
    if isinstance(message, Confirm) and message.cut != empty:
        qc = message.prepare_qc
        # a PrepareQC for another cut cannot exist with f faults; forge one anyway to check
        # the one-ack-per-view rule on its own
        forged = keys.prepare_qc(qc.slot, qc.view, empty)
        out.append((keys.committee.leader(qc.slot, qc.view), Confirm(forged, empty)))
    return out


def redeliver_everything(net: Net, node: int) -> Iterable[tuple[int, Message]]:
    """Every message the node received before crashing, each followed by its twins."""
    out: list[tuple[int, Message]] = []
    for s in net.steps:
        if s.node == node and isinstance(s.event, MessageReceived):
            out.append((s.event.sender, s.event.message))
            out += equivocations(net.keys, s.event.message)
    return out


# ---------------------------------------------------------------- persist before reveal


@settings(max_examples=12, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**16),
    silent=st.sampled_from([None, 0, 1, 3]),
    crash=st.one_of(st.none(), st.tuples(st.integers(0, 3), st.integers(1, 120))),
)
def test_every_revealed_signature_is_persisted_first(
    seed: int, silent: int | None, crash: tuple[int, int] | None
) -> None:
    """In a random run (jitter, loss, a silent node, a restart) every own Vote, Timeout,
    LaneVote, Car and Prepare a replica sends is durable, with an equal value, by then."""
    net = Net(
        KEYS,
        jitter=20,
        loss=0.05,
        seed=seed,
        silent=frozenset() if silent is None else frozenset({silent}),
        crash=None if crash is None else (crash[0], crash[1], 10**6),
    )
    net.start(until=800)
    net.run(2500)
    for node in range(4):
        assert unpersisted_reveals(net.steps, node) == []


def test_contract_checker_catches_a_missing_persist() -> None:
    """The checker used above flags a vote sent without its Persist."""
    vote = KEYS.vote(MsgKind.PREPARE_VOTE, 1, 0, KEYS.cut(), NODE)
    ok: list[Effect] = [Persist(("prepare_vote", 1), vote), Send(1, vote)]
    bad: list[Effect] = [Send(1, vote), Persist(("prepare_vote", 1), vote)]
    event = Start(0)
    assert unpersisted_reveals([Step(0, NODE, event, ok)], NODE) == []
    assert unpersisted_reveals([Step(0, NODE, event, bad)], NODE) == [(0, vote)]


# ---------------------------------------------------------------- crash and restart


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    step=st.integers(1, 150),
    prefix=st.one_of(st.just(10**6), st.integers(0, 8)),
    seed=st.integers(0, 2**16),
)
def test_restart_never_signs_a_conflicting_value(step: int, prefix: int, seed: int) -> None:
    """A replica that crashes at any step (after any prefix of that step's effects), is
    rebuilt from its records, and is fed every earlier message again plus equivocating
    Prepares and Confirms, never signs two different values for one (phase, slot, view),
    (slot, view) timeout, proposal, or (lane, pos)."""
    net = Net(
        KEYS, jitter=5, seed=seed, crash=(NODE, step, prefix), after_restart=redeliver_everything
    )
    net.start(until=600)
    net.run(2500)
    assert conflicts(claims_of(net, NODE)) == []
    assert unpersisted_reveals(net.steps, NODE) == []
    assert net.committed[0], "the run must get far enough to matter"


def test_restart_after_voting_refuses_a_conflicting_prepare() -> None:
    """A replica restored after voting for cut A in (1, 0) does not vote for cut B there."""
    replica = KEYS.replica(0)
    replica.step(Start(0))
    car = KEYS.lane(2, 1)[0]
    cut_a, cut_b = KEYS.cut(KEYS.tip(car)), KEYS.cut()
    effects = receive(replica, 1, KEYS.prepare(1, 0, cut_a))
    assert len(own_votes(effects, 0)) == 1
    records = {e.key: e.value for e in effects if isinstance(e, Persist)}
    restored = KEYS.replica(0)
    restored.restore(records)
    restored.step(Start(1))
    assert own_votes(receive(restored, 1, KEYS.prepare(1, 0, cut_b)), 0) == []
    assert own_votes(receive(restored, 1, KEYS.prepare(1, 0, cut_a)), 0) == []
    qc_b = KEYS.prepare_qc(1, 0, cut_b)
    (ack,) = own_votes(receive(restored, 1, Confirm(qc_b, cut_b)), 0)
    assert ack.phase == MsgKind.CONFIRM_ACK
    assert own_votes(receive(restored, 1, Confirm(KEYS.prepare_qc(1, 0, cut_a), cut_a)), 0) == []


def test_restart_after_timing_out_keeps_the_same_timeout_and_no_vote() -> None:
    """A replica restored after timing out in (1, 0) re-sends the identical Timeout and still
    refuses to vote for (1, 0)."""
    replica = KEYS.replica(0)
    replica.step(Start(0))
    car = KEYS.lane(2, 1)[0]
    effects = receive(replica, 2, KEYS.poa(car))
    effects += fire(replica, view_timer(1, 0))
    (timeout,) = messages(effects, Timeout)
    records = {e.key: e.value for e in effects if isinstance(e, Persist)}
    restored = KEYS.replica(0)
    restored.restore(records)
    restored.step(Start(1))
    assert messages(fire(restored, view_timer(1, 0)), Timeout) == [timeout]
    prepare = KEYS.prepare(1, 0, KEYS.cut(KEYS.tip(car)))
    assert own_votes(receive(restored, 1, prepare), 0) == []


def test_restart_keeps_lane_votes() -> None:
    """A replica restored after voting (lane 1, pos 1) does not vote for a fork there."""
    replica = KEYS.replica(0)
    replica.step(Start(0))
    honest = KEYS.lane(1, 1)[0]
    fork = KEYS.lane(1, 1, tag=b"fork")[0]
    effects = receive(replica, 1, honest)
    records = {e.key: e.value for e in effects if isinstance(e, Persist)}
    restored = KEYS.replica(0)
    restored.restore(records)
    restored.step(Start(1))
    # no vote for the fork; its owner is shown the car voted for at that position
    assert messages(receive(restored, 1, fork)) == [honest]
    again = messages(receive(restored, 1, honest))
    assert again == messages(effects)


# ---------------------------------------------------------------- crash inside one step


def crash_after(effects: list[Effect], key_kind: str) -> dict:
    """Records durable when a crash hits right after the first Persist of ``key_kind``."""
    records: dict = {}
    for e in effects:
        if isinstance(e, Persist):
            records[e.key] = e.value
            if e.key[0] == key_kind:
                return records
    raise AssertionError(f"no Persist of {key_kind}")


def test_crash_after_persisting_an_own_car_keeps_the_lane_certifiable() -> None:
    """If the owner crashes after persisting a new car but before broadcasting it (or
    persisting anything else), the car it seals after restart still gets a valid PoA."""
    replica = KEYS.replica(0)
    replica.step(Start(0))
    effects = replica.step(TxsSubmitted(0, (b"a",))) + fire(replica, CAR_TIMER)
    records = crash_after(effects, "car")  # Broadcast(car) never happened
    restored = KEYS.replica(0)
    restored.restore(records)
    restored.step(Start(1))
    effects = restored.step(TxsSubmitted(1, (b"b",))) + fire(restored, CAR_TIMER)
    (car,) = [m for m in messages(effects, Car) if isinstance(m, Car)]
    (poa,) = messages(receive(restored, 1, KEYS.lane_vote(car, 1)), PoA)
    assert restored.checks.is_valid_poa(poa)


def test_crash_between_high_prop_and_vote_persists_keeps_timeouts_truthful() -> None:
    """After a crash between persisting high_prop and the vote, the replica counts the
    persisted proposal as its vote in that view: it votes for no other cut there, and its
    Timeout reports that proposal as its last vote."""
    replica = KEYS.replica(0)
    replica.step(Start(0))
    car = KEYS.lane(2, 1)[0]
    cut_a, cut_b = KEYS.cut(KEYS.tip(car)), KEYS.cut()
    effects = receive(replica, 1, KEYS.prepare(1, 0, cut_a))
    records = crash_after(effects, "high_prop")  # the vote for A was never sent
    restored = KEYS.replica(0)
    restored.restore(records)
    restored.step(Start(1))
    assert own_votes(receive(restored, 1, KEYS.prepare(1, 0, cut_b)), 0) == []
    (timeout,) = messages(fire(restored, view_timer(1, 0)), Timeout)
    assert timeout.high_prop is not None
    assert timeout.high_prop.cut.digest == cut_a.digest


def test_persisted_vote_precedes_its_send_in_one_step() -> None:
    """Within the effect list of a vote, Persist comes before the Send (a direct check)."""
    replica = KEYS.replica(0)
    replica.step(Start(0))
    effects = receive(replica, 1, KEYS.prepare(1, 0, KEYS.cut()))
    kinds = [(type(e).__name__, getattr(e, "key", None)) for e in effects]
    persist_at = kinds.index(("Persist", ("prepare_vote", 1)))
    send_at = next(
        i for i, e in enumerate(effects) if isinstance(getattr(e, "message", None), Vote)
    )
    assert persist_at < send_at
    assert not [e for e in effects if isinstance(e, Reject)]
