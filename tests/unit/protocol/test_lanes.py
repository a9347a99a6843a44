"""The data layer: in-order lane votes, PoAs of the own lane, the lane window and car sync."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from node.crypto.hashing import ZERO_DIGEST
from node.protocol.config import ProtocolConfig
from node.protocol.effects import CancelTimer, Effect, Persist, Reject, Send, SetTimer
from node.protocol.events import Start, Timer, TxsSubmitted
from node.protocol.lanes import CAR_TIMER, sync_timer
from node.protocol.ordering import OrderingCheckpoint
from node.protocol.replica import Replica
from node.types.messages import (
    Car,
    Commit,
    LaneVote,
    MsgKind,
    PoA,
    SyncReply,
    SyncRequest,
)
from tests.unit.protocol.helpers import (
    Keys,
    drops,
    fire,
    messages,
    receive,
    sends_to,
    snapshot,
)

ME = 0
OWNER = 1


def lane_votes(effects: list[Effect]) -> list[LaneVote]:
    return [m for m in messages(effects, LaneVote) if isinstance(m, LaneVote)]


def voted(effects: list[Effect]) -> list[tuple[int, int, bytes]]:
    return [(v.lane, v.pos, v.car_digest) for v in lane_votes(effects)]


def started(keys: Keys, me: int = ME, config: ProtocolConfig | None = None) -> Replica:
    replica = keys.replica(me, config or ProtocolConfig())
    replica.step(Start(0))
    return replica


# ---------------------------------------------------------------- voting on other lanes


def test_votes_for_a_car_extending_the_voted_chain_and_sends_to_owner() -> None:
    """A car at pos 1 with the zero parent gets one LaneVote, sent to its owner only."""
    keys = Keys(4)
    replica = started(keys)
    car = keys.lane(OWNER, 1)[0]
    effects = receive(replica, OWNER, car)
    assert sends_to(effects, LaneVote) == [(OWNER, keys.lane_vote(car, ME))]


def test_no_vote_before_the_parent_is_voted_then_votes_in_order() -> None:
    """A car at pos 2 waits for pos 1; once pos 1 arrives both are voted, 1 before 2."""
    keys = Keys(4)
    replica = started(keys)
    first, second = keys.lane(OWNER, 2, poas=False)
    assert voted(receive(replica, OWNER, second)) == []
    assert replica.lanes.last_voted[OWNER][0] == 0
    effects = receive(replica, OWNER, first)
    assert voted(effects) == [(OWNER, 1, first.digest), (OWNER, 2, second.digest)]


def test_cars_below_a_known_poa_are_stored_in_order_but_not_voted() -> None:
    """A car whose PoA is already known is chained into the voted lane without a vote, and
    its child above the certified tip is voted."""
    keys = Keys(4)
    replica = started(keys)
    first, second = keys.lane(OWNER, 2)  # second carries first's PoA
    assert voted(receive(replica, OWNER, second)) == []
    assert replica.lanes.certified_pos(OWNER) == 1
    effects = receive(replica, OWNER, first)
    assert voted(effects) == [(OWNER, 2, second.digest)]
    assert replica.lanes.last_voted[OWNER] == (2, second.digest)
    assert Persist(("car", OWNER, 1), first) in effects


def test_no_vote_for_a_car_whose_parent_is_not_the_voted_car() -> None:
    """A car at pos 2 naming another parent than the voted pos-1 car gets no vote."""
    keys = Keys(4)
    replica = started(keys)
    first = keys.lane(OWNER, 1)[0]
    receive(replica, OWNER, first)
    sibling = keys.car(OWNER, 1, txs=(b"fork",))
    stray = keys.car(OWNER, 2, sibling.digest, parent_poa=keys.poa(sibling))
    assert voted(receive(replica, OWNER, stray)) == []
    assert replica.lanes.last_voted[OWNER] == (1, first.digest)


def test_never_two_votes_at_one_position_even_for_a_fork() -> None:
    """After voting (lane, 1), a forked car at pos 1 and its child get no vote."""
    keys = Keys(4)
    replica = started(keys)
    honest = keys.lane(OWNER, 2)
    fork = keys.lane(OWNER, 2, tag=b"fork")
    all_effects = receive(replica, OWNER, honest[0])
    all_effects += receive(replica, OWNER, fork[0])
    all_effects += receive(replica, OWNER, fork[1])
    all_effects += receive(replica, OWNER, honest[1])
    assert voted(all_effects) == [(OWNER, 1, honest[0].digest), (OWNER, 2, honest[1].digest)]


def test_resent_identical_car_gets_the_same_vote_again() -> None:
    """An identical car delivered twice gets an identical LaneVote both times."""
    keys = Keys(4)
    replica = started(keys)
    car = keys.lane(OWNER, 1)[0]
    first = lane_votes(receive(replica, OWNER, car))
    again = receive(replica, OWNER, car)
    assert lane_votes(again) == first
    assert not [e for e in again if isinstance(e, Persist)]


def test_resent_fork_gets_no_vote() -> None:
    """Re-sending a fork this replica did not vote for gets no vote; the owner is shown the
    car voted for at that position each time, anyone else is ignored."""
    keys = Keys(4)
    replica = started(keys)
    honest = keys.lane(OWNER, 1)[0]
    fork = keys.lane(OWNER, 1, tag=b"fork")[0]
    receive(replica, OWNER, honest)
    receive(replica, OWNER, fork)
    again = receive(replica, OWNER, fork)
    assert lane_votes(again) == []
    assert [(e.to, e.message) for e in again if isinstance(e, Send)] == [(OWNER, honest)]
    assert drops(receive(replica, 2, fork))


def test_invalid_car_is_rejected_and_changes_nothing() -> None:
    """A badly signed car is rejected and leaves the lane state unchanged."""
    keys = Keys(4)
    replica = started(keys)
    before = snapshot(replica)
    bad = keys.car(OWNER, 1, signer=2)
    effects = receive(replica, 2, bad)
    assert effects == [Reject(2, "bad car signature")]
    assert snapshot(replica) == before


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.data())
def test_votes_follow_one_hash_chain_for_any_delivery_order(data: st.DataObject) -> None:
    """Whatever order cars and forks arrive in, a lane's votes ascend along one parent chain
    (contiguously from 1 when no PoA is known), never two at one position, and voting stops
    only where no delivered car extends the voted tip."""
    keys = Keys(4)
    replica = started(keys)
    with_poas = data.draw(st.booleans())
    honest = keys.lane(OWNER, 4, poas=with_poas)
    fork_at = data.draw(st.integers(1, 4))
    parent = honest[fork_at - 2].digest if fork_at > 1 else b"\x00" * 32
    poa = keys.poa(honest[fork_at - 2]) if fork_at > 1 and with_poas else None
    fork = keys.lane(
        OWNER, 2, tag=b"fork", first_parent=parent, first_pos=fork_at, first_poa=poa, poas=with_poas
    )
    cars = data.draw(st.permutations(honest + fork))
    votes: list[LaneVote] = []
    for car in cars:
        votes += [v for v in lane_votes(receive(replica, OWNER, car)) if v.voter == ME]
    by_pos: dict[int, bytes] = {}
    for v in votes:
        assert by_pos.setdefault(v.pos, v.car_digest) == v.car_digest, "two votes at one pos"
    assert [v.pos for v in votes] == sorted(by_pos), "votes not in ascending order"
    # walk the voted chain back from the final tip: every vote lies on it
    by_digest = {c.digest: c for c in honest + fork}
    top, digest = replica.lanes.last_voted[OWNER]
    on_chain = {}
    while top > 0:
        on_chain[top] = digest
        digest = by_digest[digest].parent
        top -= 1
    assert all(on_chain[p] == d for p, d in by_pos.items())
    if not with_poas:
        assert sorted(by_pos) == list(range(1, len(by_pos) + 1))
    final_pos, final_digest = replica.lanes.last_voted[OWNER]
    assert not [c for c in cars if c.parent == final_digest and c.pos == final_pos + 1]


# ---------------------------------------------------------------- the own lane and PoAs


def own_car(replica: Replica, txs: tuple[bytes, ...] = (b"a",)) -> Car:
    effects = replica.step(TxsSubmitted(0, txs))
    effects += fire(replica, CAR_TIMER)
    cars = [m for m in messages(effects, Car) if isinstance(m, Car)]
    assert len(cars) == 1
    return cars[0]


def test_poa_forms_at_exactly_f_plus_one_and_is_broadcast() -> None:
    """With n = 7 the owner's vote plus one is not a PoA, plus two is, and it is broadcast."""
    keys = Keys(7)
    replica = started(keys)
    car = own_car(replica)
    assert messages(receive(replica, 1, keys.lane_vote(car, 1)), PoA) == []
    effects = receive(replica, 2, keys.lane_vote(car, 2))
    ((target, poa),) = sends_to(effects, PoA)
    assert target is None
    assert isinstance(poa, PoA)
    assert (poa.lane, poa.pos, poa.car_digest, poa.signers) == (ME, 1, car.digest, (0, 1, 2))
    assert replica.checks.is_valid_poa(poa)
    assert Persist(("poa", ME), poa) in effects
    assert messages(receive(replica, 3, keys.lane_vote(car, 3)), PoA) == []


def test_poa_threshold_is_by_weight() -> None:
    """A heavy voter alone can complete a PoA: weights [1, 3, 1, 1] make F = 1, PoA = 2."""
    keys = Keys(4, weights=[1, 3, 1, 1])
    replica = started(keys)
    car = own_car(replica)
    poas = messages(receive(replica, 1, keys.lane_vote(car, 1)), PoA)
    assert len(poas) == 1


def test_single_validator_certifies_its_own_cars() -> None:
    """With n = 1 the owner's own vote is a PoA."""
    keys = Keys(1)
    replica = started(keys)
    effects = replica.step(TxsSubmitted(0, (b"a",))) + fire(replica, CAR_TIMER)
    assert len(messages(effects, PoA)) == 1
    assert replica.lanes.certified_pos(ME) == 1


def test_bad_lane_votes_are_rejected() -> None:
    """Lane votes for another lane, an unknown car, or with a bad signature are rejected."""
    keys = Keys(4)
    replica = started(keys)
    car = own_car(replica)
    vote = keys.lane_vote(car, 1)
    before = snapshot(replica)
    assert rejects_only(receive(replica, 1, replace(vote, lane=2)))
    assert rejects_only(receive(replica, 1, replace(vote, car_digest=b"\x01" * 32)))
    assert rejects_only(receive(replica, 1, replace(vote, signature=b"\x00" * 32)))
    assert rejects_only(receive(replica, 1, replace(vote, voter=2)))
    assert snapshot(replica) == before
    assert len(messages(receive(replica, 1, vote), PoA)) == 1


def rejects_only(effects: list[Effect]) -> bool:
    return len(effects) == 1 and isinstance(effects[0], Reject)


def test_lane_window_stops_sealing_until_a_poa_arrives() -> None:
    """With lane_window = 2 a lane seals two uncertified cars, then waits for a PoA."""
    keys = Keys(4)
    config = ProtocolConfig(lane_window=2, car_max_txs=1)
    replica = started(keys, config=config)
    effects = replica.step(TxsSubmitted(0, (b"a", b"b", b"c", b"d")))
    cars = [m for m in messages(effects, Car) if isinstance(m, Car)]
    assert [c.pos for c in cars] == [1, 2]
    assert not messages(fire(replica, CAR_TIMER), Car)
    effects = receive(replica, 1, keys.lane_vote(cars[0], 1))
    more = [m for m in messages(effects, Car) if isinstance(m, Car)]
    assert [c.pos for c in more] == [3]
    assert more[0].parent_poa is None  # pos 2 is not certified yet
    effects = receive(replica, 1, keys.lane_vote(cars[1], 1))
    last = [m for m in messages(effects, Car) if isinstance(m, Car)]
    assert [c.pos for c in last] == [4]
    assert last[0].parent_poa is None or last[0].parent_poa.pos == 3


def test_sealed_car_carries_parent_poa_and_is_persisted_before_broadcast() -> None:
    """Car pos+1 carries the PoA of pos, and each car is persisted before it is broadcast."""
    keys = Keys(4)
    replica = started(keys)
    first = own_car(replica)
    receive(replica, 1, keys.lane_vote(first, 1))
    effects = replica.step(TxsSubmitted(0, (b"b",))) + fire(replica, CAR_TIMER)
    (second,) = [m for m in messages(effects, Car) if isinstance(m, Car)]
    assert second.pos == 2 and second.parent == first.digest
    assert second.parent_poa is not None and second.parent_poa.car_digest == first.digest
    kinds = [type(e).__name__ for e in effects]
    assert kinds.index("Persist") < kinds.index("Broadcast")
    assert replica.checks.validate_car(second, 4000, 1 << 20) is None


# ---------------------------------------------------------------- parked cars and sync


def parked_setup(poas: bool = False) -> tuple[Keys, Replica, list[Car]]:
    keys = Keys(4)
    replica = started(keys)
    cars = keys.lane(OWNER, 4, poas=poas)
    return keys, replica, cars


def test_parked_car_triggers_exactly_one_sync_request_to_owner() -> None:
    """A car whose parent is missing triggers one SyncRequest for the gap, to its owner."""
    _, replica, cars = parked_setup()
    effects = receive(replica, OWNER, cars[3])
    requests = sends_to(effects, SyncRequest)
    assert requests == [(OWNER, SyncRequest(OWNER, 1, 3, cars[2].digest))]
    assert SetTimer(sync_timer(OWNER), ProtocolConfig().sync_retry_ms) in effects
    again = receive(replica, OWNER, cars[3])
    assert sends_to(again, SyncRequest) == []


def test_sync_retries_go_to_the_parent_poa_signers() -> None:
    """When the owner does not answer, the retry asks a signer of the parked car's parent PoA."""
    _, replica, cars = parked_setup(poas=True)
    receive(replica, OWNER, cars[3])
    signers = set(cars[3].parent_poa.signers) - {ME}
    effects = fire(replica, Timer("sync", OWNER))
    ((peer, request),) = sends_to(effects, SyncRequest)
    assert peer in signers | {OWNER}
    assert request == SyncRequest(OWNER, 1, 3, cars[2].digest)


def test_sync_reply_unparks_and_votes_in_order() -> None:
    """A correct sync reply stores the gap, votes 1..4 in order and cancels the retry."""
    _, replica, cars = parked_setup()
    receive(replica, OWNER, cars[3])
    effects = receive(replica, OWNER, SyncReply(OWNER, tuple(cars[:3])))
    assert [v.pos for v in lane_votes(effects)] == [1, 2, 3, 4]
    assert CancelTimer(sync_timer(OWNER)) in effects
    assert OWNER not in replica.lanes.sync


def test_sync_is_served_from_the_store() -> None:
    """A replica holding a chain answers a SyncRequest with exactly the requested cars."""
    _, replica, cars = parked_setup()
    for car in cars:
        receive(replica, OWNER, car)
    effects = receive(replica, 2, SyncRequest(OWNER, 2, 3, cars[2].digest))
    assert sends_to(effects, SyncReply) == [(2, SyncReply(OWNER, tuple(cars[1:3])))]
    assert drops(receive(replica, 2, SyncRequest(OWNER, 2, 3, b"\x09" * 32)))
    assert rejects_only(receive(replica, 2, SyncRequest(9, 1, 3, cars[2].digest)))
    assert rejects_only(receive(replica, 2, SyncRequest(OWNER, 0, 3, cars[2].digest)))
    assert rejects_only(receive(replica, 2, SyncRequest(OWNER, 3, 2, cars[2].digest)))


def bad_replies(keys: Keys, cars: list[Car]) -> dict[str, SyncReply]:
    other = keys.lane(2, 3)
    swapped = keys.car(2, 2, cars[0].digest, txs=(b"z",))  # lane 2 car chained to lane 1
    return {
        "gap": SyncReply(OWNER, (cars[0], cars[2])),
        "reordered": SyncReply(OWNER, (cars[1], cars[0], cars[2])),
        "starts elsewhere": SyncReply(OWNER, tuple(cars[1:3])),
        "mixes lanes": SyncReply(OWNER, (cars[0], swapped)),
        "other lane": SyncReply(OWNER, tuple(other)),
        "bad signature": SyncReply(OWNER, (cars[0], cars[1], replace(cars[2], signature=b"x"))),
        "bad digest": SyncReply(OWNER, (cars[0], cars[1], replace(cars[2], txs=(b"evil",)))),
        "broken chain": SyncReply(OWNER, (cars[0], replace(cars[1], parent=b"\x05" * 32), cars[2])),
        "too long": SyncReply(OWNER, tuple(keys.lane(OWNER, 600, poas=False))),
    }


def test_bad_sync_replies_are_dropped_and_change_nothing() -> None:
    """A reply that is no gap-free hash chain, starts elsewhere, mixes lanes, holds a bad
    car or is too long is dropped, casts no vote, and leaves all state unchanged."""
    keys, replica, cars = parked_setup()
    receive(replica, OWNER, cars[3])
    before = snapshot(replica)
    for name, reply in bad_replies(keys, cars).items():
        effects = receive(replica, 2, reply)
        assert drops(effects) and len(effects) == 1, name
        assert snapshot(replica) == before, name
    # the honest reply still works afterwards
    effects = receive(replica, OWNER, SyncReply(OWNER, tuple(cars[:3])))
    assert [v.pos for v in lane_votes(effects)] == [1, 2, 3, 4]


def test_bad_sync_replies_blame_the_sender() -> None:
    """Chains with gaps, mixed lanes, bad cars or excess length are Rejects (penalized)."""
    keys, replica, cars = parked_setup()
    receive(replica, OWNER, cars[3])
    replies = bad_replies(keys, cars)
    for name in ("gap", "mixes lanes", "bad signature", "bad digest", "broken chain", "too long"):
        effects = receive(replica, 2, replies[name])
        assert rejects_only(effects), name


def test_unrequested_sync_reply_is_ignored() -> None:
    """A sync reply nobody asked for is ignored and changes nothing."""
    _, replica, cars = parked_setup()
    before = snapshot(replica)
    effects = receive(replica, OWNER, SyncReply(OWNER, tuple(cars[:3])))
    assert drops(effects) and not isinstance(effects[0], Reject)
    assert snapshot(replica) == before


def test_invalid_poa_is_rejected_and_stale_poa_ignored() -> None:
    """A PoA with too few signers is rejected; one not newer than the known tip is ignored."""
    keys, replica, cars = parked_setup()
    before = snapshot(replica)
    assert rejects_only(receive(replica, 2, keys.poa(cars[1], (2,))))
    assert rejects_only(receive(replica, 2, replace(keys.poa(cars[1]), signers=(1, 1))))
    assert snapshot(replica) == before
    assert not drops(receive(replica, 2, keys.poa(cars[1])))
    assert replica.lanes.certified_pos(OWNER) == 2
    before = snapshot(replica)
    assert drops(receive(replica, 2, keys.poa(cars[0])))
    assert snapshot(replica) == before


def test_no_second_vote_at_a_position_after_ordering_adopts_a_fork() -> None:
    """After voting A1, A2 and then ordering a committed fork B1..B3, a replayed B2 does not
    get a LaneVote: position 2 was already voted for A2."""
    keys = Keys(4)
    replica = started(keys)
    branch_a = keys.lane(OWNER, 2, poas=False)
    branch_b = keys.lane(OWNER, 3, tag=b"fork", poas=False)
    effects = []
    for car in branch_a + branch_b:
        effects += receive(replica, OWNER, car)
    assert [v.pos for v in lane_votes(effects)] == [1, 2]
    cut = keys.cut(keys.tip(branch_b[2], (1, 2)))
    effects += receive(replica, OWNER, Commit(keys.qc(MsgKind.CONFIRM_ACK, 1, 0, cut), cut))
    assert replica.ordering.positions[OWNER][0] == 3
    effects += receive(replica, OWNER, branch_b[1])
    by_pos: dict[int, bytes] = {}
    for v in lane_votes(effects):
        assert by_pos.setdefault(v.pos, v.car_digest) == v.car_digest


def test_lost_own_cars_are_sent_again() -> None:
    """When no votes come back for its uncertified cars, the owner sends them again on a
    later car timer (so one lost broadcast cannot stall its lane for good)."""
    keys = Keys(4)
    replica = started(keys, config=ProtocolConfig(lane_window=2, car_max_txs=1))
    effects = replica.step(TxsSubmitted(0, (b"a", b"b", b"c")))
    sent = [m for m in messages(effects, Car) if isinstance(m, Car)]
    assert [c.pos for c in sent] == [1, 2]  # window full, both broadcasts lost
    resent: list[Car] = []
    for tick in range(1, 41):  # 40 car intervals, 2 s of silence
        resent += [
            m for m in messages(fire(replica, CAR_TIMER, now=50 * tick), Car) if isinstance(m, Car)
        ]
    assert {c.pos for c in resent} >= {1}


def test_slow_votes_get_resends_at_doubling_intervals_not_every_tick() -> None:
    """Under load votes are slow, not lost: a car is first re-sent sync_retry_ms after it
    was sealed, then at doubling intervals up to 8x."""
    keys = Keys(4)
    config = ProtocolConfig(car_interval_ms=50, sync_retry_ms=300, car_max_txs=1)
    replica = started(keys, config=config)
    sealed = sends_to(replica.step(TxsSubmitted(0, (b"a",))), Car)
    assert [to for to, _car in sealed] == [None]  # broadcast once, then the votes are lost
    resent_at: list[int] = []
    for tick in range(1, 101):
        cars = sends_to(fire(replica, CAR_TIMER, now=50 * tick), Car)
        if cars:
            assert sorted(to for to, _car in cars if to is not None) == [1, 2, 3]
            resent_at.append(tick)
    every = 300 // 50
    assert resent_at[0] >= every
    gaps = [b - a for a, b in zip(resent_at, resent_at[1:], strict=False)]
    assert gaps == [2 * every, 4 * every, 8 * every]


# ---------------------------------------------------------------- restored from a snapshot


def checkpoint_at(own_tip: Car, n: int = 4) -> OrderingCheckpoint:
    """Slot 5 next, lane ME ordered up to ``own_tip``, the other lanes empty."""
    positions = tuple(
        (own_tip.pos, own_tip.digest) if lane == ME else (0, ZERO_DIGEST) for lane in range(n)
    )
    return OrderingCheckpoint(5, 4, b"\x01" * 32, positions)


def restored_at(keys: Keys, own_tip: Car, config: ProtocolConfig, me: int = ME) -> Replica:
    """Validator ``me`` restored from a snapshot: only the ordering checkpoint (lane ME at
    ``own_tip``, an earlier incarnation's car), no car, PoA or vote of its own."""
    replica = keys.replica(me, config)
    replica.restore({("ordering",): checkpoint_at(own_tip, keys.n)})
    replica.step(Start(0))
    return replica


def test_a_validator_restored_from_a_snapshot_seals_after_its_last_ordered_car() -> None:
    """Its lane stood far beyond the lane window when its data was lost: the ordered position
    counts as certified, so new transactions go into car 24 on top of ordered car 23, and a
    peer that ordered car 23 votes for it."""
    keys = Keys(4)
    config = ProtocolConfig(lane_window=2, car_max_txs=1)
    old = keys.lane(ME, 23)
    replica = restored_at(keys, old[-1], config)
    effects = replica.step(TxsSubmitted(0, (b"a", b"b")))
    cars = [m for m in messages(effects, Car) if isinstance(m, Car)]
    assert [(c.pos, c.parent) for c in cars[:1]] == [(24, old[-1].digest)]
    assert [c.pos for c in cars] == [24, 25]  # the window (2) counts from the ordered car
    peer = restored_at(keys, old[-1], config, me=1)
    assert voted(receive(peer, ME, cars[0])) == [(ME, 24, cars[0].digest)]


def test_an_own_car_of_an_earlier_incarnation_ordered_later_is_adopted() -> None:
    """The lost incarnation had certified car 24; the restored validator, not knowing it,
    sealed its own car 24. When the old car 24 is ordered, the validator continues its lane
    after it: the dropped car's transactions go into the next car, whose parent is the
    ordered car, and a restart from its records keeps that tip."""
    keys = Keys(4)
    config = ProtocolConfig(car_max_txs=1)
    old = keys.lane(ME, 24)
    replica = restored_at(keys, old[22], config)
    effects = replica.step(TxsSubmitted(0, (b"new",)))
    (mine,) = [m for m in messages(effects, Car) if isinstance(m, Car)]
    assert mine.pos == 24 and mine.digest != old[23].digest
    records: dict[object, object] = {}
    cut = keys.cut(keys.tip(old[23], (1, 2)))
    effects += receive(replica, 1, Commit(keys.qc(MsgKind.CONFIRM_ACK, 5, 0, cut), cut))
    assert [r.lane for r in messages(effects, SyncRequest) if isinstance(r, SyncRequest)] == [ME]
    effects += receive(replica, 1, SyncReply(ME, (old[23],)))
    assert replica.ordering.height == 5  # the block with the old car 24 was delivered
    assert replica.lanes.own_tip == (24, old[23].digest)
    effects += fire(replica, CAR_TIMER)
    (after,) = [m for m in messages(effects, Car) if isinstance(m, Car) and m.pos == 25]
    assert after.parent == old[23].digest and after.txs == (b"new",)
    for e in effects:
        if isinstance(e, Persist):
            records[e.key] = e.value
    again = keys.replica(ME, config)
    again.restore({k: v for k, v in records.items() if v is not None})  # type: ignore[misc]
    assert again.lanes.own_tip == (25, after.digest)
    assert again.lanes.voted[ME][24] == old[23].digest


def test_a_peer_shows_the_owner_the_car_it_voted_for_instead_of_a_fork() -> None:
    """The owner sends another car at a position this replica voted for: the replica sends
    back the car it voted for there, and votes for neither."""
    keys = Keys(4)
    replica = started(keys)
    cars = keys.lane(OWNER, 3, poas=False)
    for car in cars:
        receive(replica, OWNER, car)
    fork = keys.car(OWNER, 3, cars[1].digest, (b"other",))
    effects = receive(replica, OWNER, fork)
    assert [(e.to, e.message) for e in effects if isinstance(e, Send)] == [(OWNER, cars[2])]
    assert lane_votes(effects) == []
    assert not [e for e in receive(replica, 2, fork) if isinstance(e, Send)]  # not the owner


def test_an_owner_that_lost_its_data_continues_from_the_car_peers_voted_for() -> None:
    """The lost incarnation sealed car 24 and a peer voted for it, but its PoA never left.
    Restored from a snapshot, the validator seals its own car 24, which that peer will not
    vote for; the peer shows it the old car 24, the validator continues from it (its new
    car's transactions go into car 25), the peer votes again, and the lane moves on."""
    keys = Keys(4)
    config = ProtocolConfig(car_max_txs=1)
    old = keys.lane(ME, 24, poas=False)
    owner = restored_at(keys, old[22], config)
    peer = restored_at(keys, old[22], config, me=1)
    assert voted(receive(peer, ME, old[23])) == [(ME, 24, old[23].digest)]
    effects = owner.step(TxsSubmitted(0, (b"new",)))
    (fresh,) = [m for m in messages(effects, Car) if isinstance(m, Car)]
    assert fresh.pos == 24 and fresh.digest != old[23].digest
    shown = [e.message for e in receive(peer, ME, fresh) if isinstance(e, Send)]
    assert shown == [old[23]]
    effects = receive(owner, 1, old[23])
    assert owner.lanes.own_tip == (24, old[23].digest)
    assert old[23] in messages(effects, Car)
    (again,) = lane_votes(receive(peer, ME, old[23]))  # the peer's vote, sent again
    effects = receive(owner, 1, again) + fire(owner, CAR_TIMER)
    assert [(p.lane, p.pos) for p in messages(effects, PoA) if isinstance(p, PoA)] == [(ME, 24)]
    (after,) = [m for m in messages(effects, Car) if isinstance(m, Car)]
    assert (after.pos, after.parent, after.txs) == (25, old[23].digest, (b"new",))
    assert voted(receive(peer, ME, after)) == [(ME, 25, after.digest)]


def test_an_owner_keeps_its_car_once_a_peer_voted_for_it() -> None:
    """Shown an older car at a position where a peer already voted for its current car, the
    owner keeps the current one (that peer would never vote for the older one); once its
    current car is certified, too."""
    keys = Keys(7)  # a PoA needs f+1 = 3 votes
    config = ProtocolConfig(car_max_txs=1)
    old = keys.lane(ME, 24, poas=False)
    owner = restored_at(keys, old[22], config)
    (fresh,) = messages(owner.step(TxsSubmitted(0, (b"new",))), Car)
    assert isinstance(fresh, Car)
    receive(owner, 2, keys.lane_vote(fresh, 2))
    assert drops(receive(owner, 1, old[23]))
    assert owner.lanes.own_tip == (24, fresh.digest)
    receive(owner, 3, keys.lane_vote(fresh, 3))
    assert owner.lanes.certified_pos(ME) == 24
    assert drops(receive(owner, 1, old[23]))
    assert owner.lanes.own_tip == (24, fresh.digest)
